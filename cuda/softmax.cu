// tessera CUDA backend: softmax and log-softmax (numerically stable: max subtracted).
//   forward:  y = exp(x - max) / sum exp(x - max);   log: y = x - max - log(sum)
//   backward: dx = y * (dy - sum(dy * y));           log: dx = dy - exp(y) * sum(dy)
// Rows (inner == 1): one warp per row up to 1024 values, else one block per row; the
// row is read three times (L1/L2 hits after the first). Columns (inner > 1): one thread
// per column walks n with coalesced reads across the columns. Sums in double.
// Memory contract: out / dinp overwritten.
#include "common.cuh"
#include "softmax.cuh"

namespace ts {
namespace cuda {

namespace {

// One warp per row: warps of a block take consecutive rows.
__global__ void k_softmax_rows_warp(float* __restrict__ out, const float* __restrict__ inp, int64_t rows, int64_t n,
                                    bool log) {
  int lane = threadIdx.x & 31;
  int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x >> 5) + (threadIdx.x >> 5);
  if (r >= rows) return;
  const float* x = inp + r * n;
  float* y = out + r * n;
  float m = -INFINITY;
  for (int64_t i = lane; i < n; i += 32) m = fmaxf(m, x[i]);
  m = warp_max(m);
  double s = 0;
  for (int64_t i = lane; i < n; i += 32) s += static_cast<double>(expf(x[i] - m));
  s = warp_sum(s);
  if (log) {
    float ls = static_cast<float>(::log(s));
    for (int64_t i = lane; i < n; i += 32) y[i] = (x[i] - m) - ls;
  } else {
    float inv = static_cast<float>(1.0 / s);
    for (int64_t i = lane; i < n; i += 32) y[i] = expf(x[i] - m) * inv;
  }
}

__global__ void k_softmax_rows_block(float* __restrict__ out, const float* __restrict__ inp, int64_t rows, int64_t n,
                                     bool log) {
  __shared__ float sf[32];
  __shared__ double sd[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* x = inp + r * n;
    float* y = out + r * n;
    float m = -INFINITY;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) m = fmaxf(m, x[i]);
    m = block_max(m, sf);
    double s = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += static_cast<double>(expf(x[i] - m));
    s = block_sum(s, sd);
    if (log) {
      float ls = static_cast<float>(::log(s));
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) y[i] = (x[i] - m) - ls;
    } else {
      float inv = static_cast<float>(1.0 / s);
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) y[i] = expf(x[i] - m) * inv;
    }
  }
}

__global__ void k_softmax_cols(float* __restrict__ out, const float* __restrict__ inp, int64_t outer, int64_t n,
                               int64_t inner, bool log) {
  for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < outer * inner;
       c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t o = c / inner, j = c - o * inner;
    const float* x = inp + o * n * inner + j;
    float* y = out + o * n * inner + j;
    float m = -INFINITY;
    for (int64_t i = 0; i < n; ++i) m = fmaxf(m, x[i * inner]);
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += static_cast<double>(expf(x[i * inner] - m));
    if (log) {
      float ls = static_cast<float>(::log(s));
      for (int64_t i = 0; i < n; ++i) y[i * inner] = (x[i * inner] - m) - ls;
    } else {
      float inv = static_cast<float>(1.0 / s);
      for (int64_t i = 0; i < n; ++i) y[i * inner] = expf(x[i * inner] - m) * inv;
    }
  }
}

__device__ __forceinline__ float softmax_dx(bool log, float g, float y, float s) {
  return log ? g - expf(y) * s : y * (g - s);
}

__global__ void k_softmax_bwd_rows_warp(float* __restrict__ dinp, const float* __restrict__ dout,
                                        const float* __restrict__ out, int64_t rows, int64_t n, bool log) {
  int lane = threadIdx.x & 31;
  int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x >> 5) + (threadIdx.x >> 5);
  if (r >= rows) return;
  const float* g = dout + r * n;
  const float* y = out + r * n;
  double s = 0;
  for (int64_t i = lane; i < n; i += 32) s += log ? static_cast<double>(g[i]) : static_cast<double>(g[i]) * y[i];
  float sf = static_cast<float>(warp_sum(s));
  for (int64_t i = lane; i < n; i += 32) dinp[r * n + i] = softmax_dx(log, g[i], y[i], sf);
}

__global__ void k_softmax_bwd_rows_block(float* __restrict__ dinp, const float* __restrict__ dout,
                                         const float* __restrict__ out, int64_t rows, int64_t n, bool log) {
  __shared__ double sd[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* g = dout + r * n;
    const float* y = out + r * n;
    double s = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
      s += log ? static_cast<double>(g[i]) : static_cast<double>(g[i]) * y[i];
    float sf = static_cast<float>(block_sum(s, sd));
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) dinp[r * n + i] = softmax_dx(log, g[i], y[i], sf);
  }
}

__global__ void k_softmax_bwd_cols(float* __restrict__ dinp, const float* __restrict__ dout,
                                   const float* __restrict__ out, int64_t outer, int64_t n, int64_t inner, bool log) {
  for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < outer * inner;
       c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t o = c / inner, j = c - o * inner;
    int64_t base = o * n * inner + j;
    double s = 0;
    for (int64_t i = 0; i < n; ++i) {
      int64_t k = base + i * inner;
      s += log ? static_cast<double>(dout[k]) : static_cast<double>(dout[k]) * out[k];
    }
    float sf = static_cast<float>(s);
    for (int64_t i = 0; i < n; ++i) {
      int64_t k = base + i * inner;
      dinp[k] = softmax_dx(log, dout[k], out[k], sf);
    }
  }
}

}  // namespace

void softmax_forward(float* out, const float* inp, int64_t outer, int64_t n, int64_t inner, bool log) {
  const char* op = log ? "logSoftmax" : "softmax";
  if (outer * n * inner == 0) return;
  cudaStream_t s = prepare_ptr(out);
  if (inner == 1 && n <= 1024) {
    k_softmax_rows_warp<<<blocks_for(outer * 32), kThreads, 0, s>>>(out, inp, outer, n, log);
  } else if (inner == 1) {
    k_softmax_rows_block<<<static_cast<unsigned>(std::min<int64_t>(outer, 65535)), 512, 0, s>>>(out, inp, outer, n,
                                                                                                log);
  } else {
    k_softmax_cols<<<grid_for(outer * inner), kThreads, 0, s>>>(out, inp, outer, n, inner, log);
  }
  check_launch(op);
}

void softmax_backward(float* dinp, const float* dout, const float* out, int64_t outer, int64_t n, int64_t inner,
                      bool log) {
  const char* op = log ? "logSoftmax" : "softmax";
  if (outer * n * inner == 0) return;
  cudaStream_t s = prepare_ptr(dinp);
  if (inner == 1 && n <= 1024) {
    k_softmax_bwd_rows_warp<<<blocks_for(outer * 32), kThreads, 0, s>>>(dinp, dout, out, outer, n, log);
  } else if (inner == 1) {
    k_softmax_bwd_rows_block<<<static_cast<unsigned>(std::min<int64_t>(outer, 65535)), 512, 0, s>>>(dinp, dout, out,
                                                                                                    outer, n, log);
  } else {
    k_softmax_bwd_cols<<<grid_for(outer * inner), kThreads, 0, s>>>(dinp, dout, out, outer, n, inner, log);
  }
  check_launch(op);
}

}  // namespace cuda
}  // namespace ts
