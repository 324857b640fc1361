// tessera CUDA backend: reductions. Rows (inner == 1): one warp per row for rows of up
// to 1024 values (8 rows per block), one block per row for longer ones, or for a few
// long rows, split rows whose double partials a second pass adds in order. Columns
// (inner > 1): 32 columns x 8 row-lanes per block, lanes combined in shared memory in a
// fixed order. Every path is deterministic (no atomics). Memory contract: out is
// overwritten.
#include "common.cuh"
#include "reduce.cuh"

namespace ts {
namespace cuda {

namespace {

__device__ __forceinline__ float combine(ReduceOp op, float c, float v) {
  if (c != c || v != v) return NAN;
  return op == ReduceOp::Max ? (v > c ? v : c) : (v < c ? v : c);
}

// Short rows: warp w of the grid takes rows w, w + warps, ... and writes out[row].
__global__ void k_reduce_rows_warp(ReduceOp op, float* __restrict__ out, const float* __restrict__ x, int64_t outer,
                                   int64_t n) {
  const bool sum = op == ReduceOp::Sum || op == ReduceOp::Mean;
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  for (int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x >> 5) + (threadIdx.x >> 5); r < outer; r += warps) {
    const float* p = x + r * n;
    if (sum) {
      double acc = 0;
      for (int64_t i = lane; i < n; i += 32) acc += p[i];
      acc = warp_sum(acc);
      if (lane == 0) out[r] = static_cast<float>(op == ReduceOp::Mean ? acc / n : acc);
    } else {
      float m = p[0];  // n >= 1 here; lanes past the row's end keep this neutral start
      for (int64_t i = lane; i < n; i += 32) m = combine(op, m, p[i]);
      for (int o = 16; o > 0; o >>= 1) m = combine(op, m, __shfl_xor_sync(0xffffffffu, m, o));
      if (lane == 0) out[r] = m;
    }
  }
}

// grid.x: rows (grid-stride), grid.y: splits of each row. Writes a double partial per
// (row, split) (sum) or a float (max/min, stored as double).
__global__ void k_reduce_rows(ReduceOp op, double* __restrict__ part, const float* __restrict__ x, int64_t outer,
                              int64_t n, int64_t chunk) {
  __shared__ double sd[32];
  __shared__ float sf[32];
  const bool sum = op == ReduceOp::Sum || op == ReduceOp::Mean;
  int64_t b = blockIdx.y * chunk, e = min(n, b + chunk);
  for (int64_t r = blockIdx.x; r < outer; r += gridDim.x) {
    const float* p = x + r * n;
    if (sum) {
      double acc = 0;
      for (int64_t i = b + threadIdx.x; i < e; i += blockDim.x) acc += p[i];
      acc = block_sum(acc, sd);
      if (threadIdx.x == 0) part[r * gridDim.y + blockIdx.y] = acc;
    } else {
      float m = p[b];
      for (int64_t i = b + threadIdx.x; i < e; i += blockDim.x) m = combine(op, m, p[i]);
      // block combine (NaN-propagating)
      int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
      for (int o = 16; o > 0; o >>= 1) m = combine(op, m, __shfl_xor_sync(0xffffffffu, m, o));
      __syncthreads();
      if (lane == 0) sf[warp] = m;
      __syncthreads();
      if (threadIdx.x == 0) {
        float t = sf[0];
        for (int w = 1; w < static_cast<int>(blockDim.x >> 5); ++w) t = combine(op, t, sf[w]);
        part[r * gridDim.y + blockIdx.y] = t;
      }
    }
  }
}

__global__ void k_reduce_finish(ReduceOp op, float* __restrict__ out, const double* __restrict__ part, int64_t outer,
                                int splits, int64_t n) {
  for (int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; r < outer;
       r += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const double* p = part + r * splits;
    if (op == ReduceOp::Sum || op == ReduceOp::Mean) {
      double acc = 0;
      for (int s = 0; s < splits; ++s) acc += p[s];
      out[r] = static_cast<float>(op == ReduceOp::Mean ? (n ? acc / n : NAN) : acc);
    } else {
      float m = static_cast<float>(p[0]);
      for (int s = 1; s < splits; ++s) m = combine(op, m, static_cast<float>(p[s]));
      out[r] = m;
    }
  }
}

// Block (32, 8): column j = blockIdx.x*32 + tx of row-block o = blockIdx.y.
__global__ void k_reduce_cols(ReduceOp op, float* __restrict__ out, const float* __restrict__ x, int64_t outer,
                              int64_t n, int64_t inner) {
  __shared__ double sd[8][33];
  __shared__ float sf[8][33];
  const bool sum = op == ReduceOp::Sum || op == ReduceOp::Mean;
  int tx = threadIdx.x, ty = threadIdx.y;
  int64_t j = blockIdx.x * 32LL + tx;
  for (int64_t o = blockIdx.y; o < outer; o += gridDim.y) {
    const float* p = x + o * n * inner;
    if (sum) {
      double acc = 0;
      if (j < inner)
        for (int64_t i = ty; i < n; i += 8) acc += p[i * inner + j];
      sd[ty][tx] = acc;
    } else {
      float m = j < inner ? p[j] : 0.0f;
      if (j < inner)
        for (int64_t i = ty; i < n; i += 8) m = combine(op, m, p[i * inner + j]);
      sf[ty][tx] = m;
    }
    __syncthreads();
    if (ty == 0 && j < inner) {
      if (sum) {
        double acc = 0;
        for (int k = 0; k < 8; ++k) acc += sd[k][tx];
        out[o * inner + j] = static_cast<float>(op == ReduceOp::Mean ? (n ? acc / n : NAN) : acc);
      } else {
        float m = sf[0][tx];
        for (int k = 1; k < 8; ++k) m = combine(op, m, sf[k][tx]);
        out[o * inner + j] = m;
      }
    }
    __syncthreads();
  }
}

__global__ void k_fill_mean_empty(float* __restrict__ out, int64_t m, float v) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < m;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = v;
}

}  // namespace

void reduce(ReduceOp op, Tensor& out, const Tensor& x, int64_t outer, int64_t n, int64_t inner) {
  int64_t m = outer * inner;
  if (m == 0) return;
  cudaStream_t s = prepare(out);
  const char* nm = "reduce";
  if (n == 0) {  // sum: 0, mean: NaN (max/min were refused by the core)
    k_fill_mean_empty<<<grid_for(m), kThreads, 0, s>>>(out.data<float>(), m, op == ReduceOp::Mean ? NAN : 0.0f);
    check_launch(nm);
    return;
  }
  if (inner == 1 && n <= 1024) {
    k_reduce_rows_warp<<<grid_for(outer * 32), kThreads, 0, s>>>(op, out.data<float>(), x.data<float>(), outer, n);
    check_launch(nm);
    return;
  }
  if (inner == 1) {
    // Split long rows when there are too few rows to fill the device.
    int splits = 1;
    if (outer < 1024 && n > 32768) splits = static_cast<int>(std::min<int64_t>(1024, (n + 32767) / 32768));
    int64_t chunk = (n + splits - 1) / splits;
    Tensor part = workspace(outer * splits, DType::Float64, out.device().index, nm);
    dim3 grid(static_cast<unsigned>(std::min<int64_t>(outer, 65535)), static_cast<unsigned>(splits));
    k_reduce_rows<<<grid, kThreads, 0, s>>>(op, part.data<double>(), x.data<float>(), outer, n, chunk);
    check_launch(nm);
    k_reduce_finish<<<grid_for(outer), kThreads, 0, s>>>(op, out.data<float>(), part.data<double>(), outer, splits, n);
    check_launch(nm);
    return;
  }
  dim3 block(32, 8);
  dim3 grid(static_cast<unsigned>((inner + 31) / 32), static_cast<unsigned>(std::min<int64_t>(outer, 65535)));
  k_reduce_cols<<<grid, block, 0, s>>>(op, out.data<float>(), x.data<float>(), outer, n, inner);
  check_launch(nm);
}

}  // namespace cuda
}  // namespace ts
