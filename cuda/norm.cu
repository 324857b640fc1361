// tessera CUDA backend: layer / RMS / group norm.
//   layer: xhat = (x - mean) * rstd, rstd = 1 / sqrt(var + eps), out = xhat * w + b
//   rms:   xhat = x * rstd, rstd = 1 / sqrt(mean(x^2) + eps), out = xhat * w
//   group: layer norm over each (b, g) run of (C/G) * S values, w/b per channel
// Backward, dn = dout * w: dx = rstd * (dn - mean(dn) - xhat * mean(dn * xhat)) (rms
// drops the mean(dn) term); dw = sum dout * xhat, db = sum dout over rows (layer/rms)
// or over (b, s) (group).
// Rows: one warp per row when N <= 1024, else one block per row; statistics summed in
// double. Parameter gradients: a column pass (32 columns x 8 row-lanes per block, rows
// split over gridDim.y chunks) writes double partials that a second pass adds in
// order: deterministic, no atomics. Group norm: one block per (b, g) group.
// Memory contract: every output and gradient is overwritten.
#include "common.cuh"
#include "norm.cuh"

namespace ts {
namespace cuda {

namespace {

// ---- row statistics -----------------------------------------------------------------
// Sum over the threads of a row: a warp (WARP) or the whole block.
template <bool WARP, typename T>
__device__ __forceinline__ T row_sum(T v, T* scratch) {
  return WARP ? warp_sum(v) : block_sum(v, scratch);
}

// RMS: mean == nullptr. Rows of a warp (WARP) or a block.
template <bool WARP>
__global__ void k_rownorm_fwd(float* __restrict__ out, float* __restrict__ mean, float* __restrict__ rstd,
                              const float* __restrict__ inp, const float* __restrict__ w, const float* __restrict__ b,
                              int64_t M, int64_t N, float eps, bool rms) {
  __shared__ double sd[32];
  int lane = WARP ? (threadIdx.x & 31) : threadIdx.x;
  int step = WARP ? 32 : blockDim.x;
  int64_t r0 = WARP ? blockIdx.x * static_cast<int64_t>(blockDim.x >> 5) + (threadIdx.x >> 5) : blockIdx.x;
  int64_t rstep = WARP ? static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5) : gridDim.x;
  for (int64_t r = r0; r < M; r += rstep) {
    const float* x = inp + r * N;
    float* y = out + r * N;
    float mu = 0;
    double ss = 0;
    if (!rms) {
      double s = 0;
      for (int64_t i = lane; i < N; i += step) s += x[i];
      mu = static_cast<float>(row_sum<WARP>(s, sd) / N);
      for (int64_t i = lane; i < N; i += step) {
        float d = x[i] - mu;
        ss += static_cast<double>(d) * d;
      }
    } else {
      for (int64_t i = lane; i < N; i += step) ss += static_cast<double>(x[i]) * x[i];
    }
    ss = row_sum<WARP>(ss, sd);
    float rs = static_cast<float>(1.0 / sqrt(ss / N + eps));
    for (int64_t i = lane; i < N; i += step) {
      float v = (x[i] - mu) * rs;
      if (w) v *= w[i];
      if (b) v += b[i];
      y[i] = v;
    }
    if (lane == 0) {
      if (mean) mean[r] = mu;
      rstd[r] = rs;
    }
  }
}

template <bool WARP>
__global__ void k_rownorm_bwd(float* __restrict__ dinp, const float* __restrict__ dout, const float* __restrict__ inp,
                              const float* __restrict__ w, const float* __restrict__ mean,
                              const float* __restrict__ rstd, int64_t M, int64_t N) {
  __shared__ double sd[32];
  int lane = WARP ? (threadIdx.x & 31) : threadIdx.x;
  int step = WARP ? 32 : blockDim.x;
  int64_t r0 = WARP ? blockIdx.x * static_cast<int64_t>(blockDim.x >> 5) + (threadIdx.x >> 5) : blockIdx.x;
  int64_t rstep = WARP ? static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5) : gridDim.x;
  for (int64_t r = r0; r < M; r += rstep) {
    const float* x = inp + r * N;
    const float* g = dout + r * N;
    float mu = mean ? mean[r] : 0.0f, rs = rstd[r];
    double a = 0, bb = 0;
    for (int64_t i = lane; i < N; i += step) {
      float xh = (x[i] - mu) * rs, dn = g[i] * (w ? w[i] : 1.0f);
      a += dn;
      bb += static_cast<double>(dn) * xh;
    }
    if (mean) a = row_sum<WARP>(a, sd);
    bb = row_sum<WARP>(bb, sd);
    float am = mean ? static_cast<float>(a / N) : 0.0f, bm = static_cast<float>(bb / N);
    for (int64_t i = lane; i < N; i += step) {
      float xh = (x[i] - mu) * rs, dn = g[i] * (w ? w[i] : 1.0f);
      dinp[r * N + i] = rs * (dn - am - xh * bm);
    }
  }
}

// Column partials of dw = sum dout * xhat and db = sum dout over the rows of chunk
// blockIdx.y: part[(chunk * N + i) * 2 + {0, 1}].
__global__ void k_rownorm_param_part(double* __restrict__ part, const float* __restrict__ dout,
                                     const float* __restrict__ inp, const float* __restrict__ mean,
                                     const float* __restrict__ rstd, int64_t M, int64_t N, int64_t rows_per_chunk) {
  __shared__ double sw[8][33], sb[8][33];
  int tx = threadIdx.x, ty = threadIdx.y;
  int64_t i = blockIdx.x * 32LL + tx;
  int64_t r0 = blockIdx.y * rows_per_chunk, r1 = min(M, r0 + rows_per_chunk);
  double aw = 0, ab = 0;
  if (i < N)
    for (int64_t r = r0 + ty; r < r1; r += 8) {
      float g = dout[r * N + i];
      float xh = (inp[r * N + i] - (mean ? mean[r] : 0.0f)) * rstd[r];
      aw += static_cast<double>(g) * xh;
      ab += g;
    }
  sw[ty][tx] = aw;
  sb[ty][tx] = ab;
  __syncthreads();
  if (ty == 0 && i < N) {
    double tw = 0, tb = 0;
    for (int k = 0; k < 8; ++k) tw += sw[k][tx], tb += sb[k][tx];
    part[(blockIdx.y * N + i) * 2] = tw;
    part[(blockIdx.y * N + i) * 2 + 1] = tb;
  }
}

__global__ void k_param_finish(float* __restrict__ dw, float* __restrict__ db, const double* __restrict__ part,
                               int64_t chunks, int64_t N) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < N;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    double tw = 0, tb = 0;
    for (int64_t c = 0; c < chunks; ++c) tw += part[(c * N + i) * 2], tb += part[(c * N + i) * 2 + 1];
    if (dw) dw[i] = static_cast<float>(tw);
    if (db) db[i] = static_cast<float>(tb);
  }
}

void rownorm_params(float* dw, float* db, const float* dout, const float* inp, const float* mean, const float* rstd,
                    int64_t M, int64_t N, int dev, cudaStream_t s, const char* op) {
  if (!dw && !db) return;
  int64_t chunks = std::min<int64_t>(std::max<int64_t>(1, M / 64), 256);
  int64_t per = (M + chunks - 1) / chunks;
  chunks = (M + per - 1) / per;
  Tensor part = workspace(std::max<int64_t>(1, chunks * N * 2), DType::Float64, dev, op);
  dim3 grid(static_cast<unsigned>((N + 31) / 32), static_cast<unsigned>(chunks));
  k_rownorm_param_part<<<grid, dim3(32, 8), 0, s>>>(part.data<double>(), dout, inp, mean, rstd, M, N, per);
  check_launch(op);
  k_param_finish<<<grid_for(N), kThreads, 0, s>>>(dw, db, part.data<double>(), chunks, N);
  check_launch(op);
}

void rownorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b, int64_t M,
                     int64_t N, float eps, bool rms, const char* op) {
  if (M * N == 0) return;
  cudaStream_t s = prepare_ptr(out);
  if (N <= 1024)
    k_rownorm_fwd<true><<<grid_for(M * 32), kThreads, 0, s>>>(out, mean, rstd, inp, w, b, M, N, eps, rms);
  else
    k_rownorm_fwd<false><<<static_cast<unsigned>(std::min<int64_t>(M, 65535)), 512, 0, s>>>(out, mean, rstd, inp, w,
                                                                                            b, M, N, eps, rms);
  check_launch(op);
}

void rownorm_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                      const float* mean, const float* rstd, int64_t M, int64_t N, const char* op) {
  if (N == 0) return;
  int dev = 0;
  cudaStream_t s = prepare_ptr(dinp ? static_cast<const void*>(dinp) : static_cast<const void*>(dout), &dev);
  if (M == 0) {
    if (dw) check(cudaMemsetAsync(dw, 0, N * sizeof(float), s), op);
    if (db) check(cudaMemsetAsync(db, 0, N * sizeof(float), s), op);
    return;
  }
  if (N <= 1024)
    k_rownorm_bwd<true><<<grid_for(M * 32), kThreads, 0, s>>>(dinp, dout, inp, w, mean, rstd, M, N);
  else
    k_rownorm_bwd<false><<<static_cast<unsigned>(std::min<int64_t>(M, 65535)), 512, 0, s>>>(dinp, dout, inp, w, mean,
                                                                                            rstd, M, N);
  check_launch(op);
  rownorm_params(dw, db, dout, inp, mean, rstd, M, N, dev, s, op);
}

// ---- group norm ------------------------------------------------------------------------
// One block per (b, g): the K = Cg * S values starting at (b*C + g*Cg) * S.
__global__ void k_groupnorm_fwd(float* __restrict__ out, float* __restrict__ mean, float* __restrict__ rstd,
                                const float* __restrict__ inp, const float* __restrict__ w,
                                const float* __restrict__ b, int64_t C, int64_t S, int64_t G, float eps) {
  __shared__ double sd[32];
  int64_t bg = blockIdx.x, bi = bg / G, g = bg - bi * G, Cg = C / G, K = Cg * S;
  int64_t base = (bi * C + g * Cg) * S;
  const float* x = inp + base;
  double s = 0;
  for (int64_t i = threadIdx.x; i < K; i += blockDim.x) s += x[i];
  float mu = static_cast<float>(block_sum(s, sd) / K);
  double v = 0;
  for (int64_t i = threadIdx.x; i < K; i += blockDim.x) {
    float d = x[i] - mu;
    v += static_cast<double>(d) * d;
  }
  v = block_sum(v, sd);
  float rs = static_cast<float>(1.0 / sqrt(v / K + eps));
  for (int64_t i = threadIdx.x; i < K; i += blockDim.x) {
    int64_t c = g * Cg + i / S;
    float y = (x[i] - mu) * rs;
    if (w) y *= w[c];
    if (b) y += b[c];
    out[base + i] = y;
  }
  if (threadIdx.x == 0) mean[bg] = mu, rstd[bg] = rs;
}

__global__ void k_groupnorm_bwd(float* __restrict__ dinp, const float* __restrict__ dout,
                                const float* __restrict__ inp, const float* __restrict__ w,
                                const float* __restrict__ mean, const float* __restrict__ rstd, int64_t C, int64_t S,
                                int64_t G) {
  __shared__ double sd[32];
  int64_t bg = blockIdx.x, bi = bg / G, g = bg - bi * G, Cg = C / G, K = Cg * S;
  int64_t base = (bi * C + g * Cg) * S;
  float mu = mean[bg], rs = rstd[bg];
  double a = 0, bb = 0;
  for (int64_t i = threadIdx.x; i < K; i += blockDim.x) {
    int64_t c = g * Cg + i / S;
    float xh = (inp[base + i] - mu) * rs, dn = dout[base + i] * (w ? w[c] : 1.0f);
    a += dn;
    bb += static_cast<double>(dn) * xh;
  }
  a = block_sum(a, sd);
  bb = block_sum(bb, sd);
  float am = static_cast<float>(a / K), bm = static_cast<float>(bb / K);
  for (int64_t i = threadIdx.x; i < K; i += blockDim.x) {
    int64_t c = g * Cg + i / S;
    float xh = (inp[base + i] - mu) * rs, dn = dout[base + i] * (w ? w[c] : 1.0f);
    dinp[base + i] = rs * (dn - am - xh * bm);
  }
}

// One block per channel c: dw[c] = sum_{b,s} dout * xhat, db[c] = sum_{b,s} dout.
__global__ void k_groupnorm_params(float* __restrict__ dw, float* __restrict__ db, const float* __restrict__ dout,
                                   const float* __restrict__ inp, const float* __restrict__ mean,
                                   const float* __restrict__ rstd, int64_t B, int64_t C, int64_t S, int64_t G) {
  __shared__ double sd[32];
  int64_t c = blockIdx.x, g = c / (C / G);
  double aw = 0, ab = 0;
  for (int64_t bi = 0; bi < B; ++bi) {
    float mu = mean[bi * G + g], rs = rstd[bi * G + g];
    const float* x = inp + (bi * C + c) * S;
    const float* gr = dout + (bi * C + c) * S;
    for (int64_t i = threadIdx.x; i < S; i += blockDim.x) {
      aw += static_cast<double>(gr[i]) * ((x[i] - mu) * rs);
      ab += gr[i];
    }
  }
  aw = block_sum(aw, sd);
  ab = block_sum(ab, sd);
  if (threadIdx.x == 0) {
    if (dw) dw[c] = static_cast<float>(aw);
    if (db) db[c] = static_cast<float>(ab);
  }
}

}  // namespace

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                       int64_t M, int64_t N, float eps) {
  rownorm_forward(out, mean, rstd, inp, weight, bias, M, N, eps, false, "layerNorm");
}
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t M, int64_t N) {
  rownorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, M, N, "layerNorm");
}
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t M, int64_t N, float eps) {
  rownorm_forward(out, nullptr, rstd, inp, weight, nullptr, M, N, eps, true, "rmsNorm");
}
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t M, int64_t N) {
  rownorm_backward(dinp, dweight, nullptr, dout, inp, weight, nullptr, rstd, M, N, "rmsNorm");
}

void groupnorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                       int64_t B, int64_t C, int64_t S, int64_t G, float eps) {
  if (B * C * S == 0) return;
  cudaStream_t s = prepare_ptr(out);
  k_groupnorm_fwd<<<static_cast<unsigned>(B * G), 1024, 0, s>>>(out, mean, rstd, inp, weight, bias, C, S, G, eps);
  check_launch("groupNorm");
}

void groupnorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t B, int64_t C, int64_t S,
                        int64_t G) {
  if (C == 0) return;
  cudaStream_t s = prepare_ptr(dinp);
  if (B * S > 0) {
    k_groupnorm_bwd<<<static_cast<unsigned>(B * G), 1024, 0, s>>>(dinp, dout, inp, weight, mean, rstd, C, S, G);
    check_launch("groupNorm");
  }
  if (dweight || dbias) {
    k_groupnorm_params<<<static_cast<unsigned>(C), 256, 0, s>>>(dweight, dbias, dout, inp, mean, rstd, B, C, S, G);
    check_launch("groupNorm");
  }
}

}  // namespace cuda
}  // namespace ts
