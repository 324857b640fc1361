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
// order: deterministic, no atomics. Group norm: chunked group statistics (several
// blocks per group), combined in order, then elementwise passes; channel sums for the
// parameter gradients one block per channel. The group passes also serve groupNormSiLU
// (fused_norm.cu), with SiLU applied after the affine and differentiated through.
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

// ---- group norm (plain, or followed by SiLU: groupNormSiLU in fused_norm.cu) ----------
// Group (b, g) is the run of K = Cg * S values starting at (b*C + g*Cg) * S. The run is
// split into chunks (enough blocks to fill the device even for B*G = 32 groups of a
// video VAE); each block reduces one chunk, a second pass combines the chunks of a group
// in order (statistics: Chan's parallel mean / M2 update in double), and a third,
// elementwise pass writes the output. Groups run along grid.y in a loop (B*G may pass
// the 65,535 limit of grid.y). A chunk shorter than 256 values gets a one-warp block.
// With SiLU the output is h * sigmoid(h), h the affine output; the backward re-forms h
// from x and bias and feeds dh = dout * s * (1 + h (1 - s)), s = sigmoid(h), to the
// group-norm backward where the plain norm feeds dout. Deterministic for fixed sizes.

constexpr int64_t kGnChunk = 32768;  // values per chunk (at least)
constexpr int64_t kMaxGridY = 65535;

int64_t gn_chunks(int64_t K) { return std::max<int64_t>(1, std::min<int64_t>(256, K / kGnChunk)); }
unsigned gn_threads(int64_t values_per_block) { return values_per_block >= 256 ? 256 : 32; }

// The gradient reaching the affine output h at one value (xh = normalized x, channel c).
template <bool SILU>
__device__ __forceinline__ float gn_dh(float g, float xh, const float* __restrict__ w, const float* __restrict__ b,
                                       int64_t c) {
  if (!SILU) return g;
  const float h = xh * (w ? w[c] : 1.0f) + (b ? b[c] : 0.0f);
  const float s = 1.0f / (1.0f + expf(-h));
  return g * s * (1.0f + h * (1.0f - s));
}

// part[(bg * nch + c) * 3 + {0,1,2}] = count, mean, M2 of chunk c (= blockIdx.x) of group bg.
__global__ void k_gn_stats_part(double* __restrict__ part, const float* __restrict__ inp, int64_t C, int64_t S,
                                int64_t G, int64_t groups, int64_t nch) {
  __shared__ double sd[32];
  const int64_t c = blockIdx.x, Cg = C / G, K = Cg * S;
  const int64_t per = (K + nch - 1) / nch, k0 = c * per, k1 = min(K, k0 + per);
  const int64_t n = (k1 > k0 ? k1 - k0 : int64_t{0});
  for (int64_t bg = blockIdx.y; bg < groups; bg += gridDim.y) {
    const int64_t bi = bg / G, g = bg - bi * G;
    const float* x = inp + (bi * C + g * Cg) * S;
    double s = 0;
    for (int64_t i = k0 + threadIdx.x; i < k1; i += blockDim.x) s += x[i];
    s = block_sum(s, sd);
    const double mu = n ? s / n : 0.0;
    double m2 = 0;
    for (int64_t i = k0 + threadIdx.x; i < k1; i += blockDim.x) {
      double d = x[i] - mu;
      m2 += d * d;
    }
    m2 = block_sum(m2, sd);
    if (threadIdx.x == 0) {
      double* o = part + (bg * nch + c) * 3;
      o[0] = static_cast<double>(n), o[1] = mu, o[2] = m2;
    }
  }
}

__global__ void k_gn_stats_finish(float* __restrict__ mean, float* __restrict__ rstd, const double* __restrict__ part,
                                  int64_t groups, int64_t nch, float eps) {
  for (int64_t bg = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; bg < groups;
       bg += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const double* p = part + bg * nch * 3;
    double n = 0, mu = 0, m2 = 0;
    for (int64_t c = 0; c < nch; ++c) {
      double nb = p[c * 3], mb = p[c * 3 + 1], m2b = p[c * 3 + 2];
      if (nb == 0) continue;
      double nt = n + nb, d = mb - mu;
      mu += d * nb / nt;
      m2 += m2b + d * d * n * nb / nt;
      n = nt;
    }
    mean[bg] = static_cast<float>(mu);
    rstd[bg] = static_cast<float>(1.0 / sqrt(m2 / n + eps));
  }
}

template <bool SILU>
__global__ void k_gn_apply(float* __restrict__ out, const float* __restrict__ inp, const float* __restrict__ mean,
                           const float* __restrict__ rstd, const float* __restrict__ w, const float* __restrict__ b,
                           int64_t C, int64_t S, int64_t G, int64_t total) {
  const int64_t Cg = C / G;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t bc = e / S, c = bc % C, bg = (bc / C) * G + c / Cg;
    float y = (inp[e] - mean[bg]) * rstd[bg];
    if (w) y *= w[c];
    if (b) y += b[c];
    if (SILU) y = y / (1.0f + expf(-y));
    out[e] = y;
  }
}

// part[(bg * nch + c) * 2 + {0, 1}] = sum dn, sum dn * xhat over chunk c of group bg,
// dn = dh * w.
template <bool SILU>
__global__ void k_gn_bwd_part(double* __restrict__ part, const float* __restrict__ dout,
                              const float* __restrict__ inp, const float* __restrict__ w, const float* __restrict__ b,
                              const float* __restrict__ mean, const float* __restrict__ rstd, int64_t C, int64_t S,
                              int64_t G, int64_t groups, int64_t nch) {
  __shared__ double sd[32];
  const int64_t c = blockIdx.x, Cg = C / G, K = Cg * S;
  const int64_t per = (K + nch - 1) / nch, k0 = c * per, k1 = min(K, k0 + per);
  for (int64_t bg = blockIdx.y; bg < groups; bg += gridDim.y) {
    const int64_t bi = bg / G, g = bg - bi * G;
    const int64_t base = (bi * C + g * Cg) * S;
    const float mu = mean[bg], rs = rstd[bg];
    double a = 0, bb = 0;
    for (int64_t i = k0 + threadIdx.x; i < k1; i += blockDim.x) {
      int64_t ch = g * Cg + i / S;
      float xh = (inp[base + i] - mu) * rs;
      float dn = gn_dh<SILU>(dout[base + i], xh, w, b, ch) * (w ? w[ch] : 1.0f);
      a += dn;
      bb += static_cast<double>(dn) * xh;
    }
    a = block_sum(a, sd);
    bb = block_sum(bb, sd);
    if (threadIdx.x == 0) {
      part[(bg * nch + c) * 2] = a;
      part[(bg * nch + c) * 2 + 1] = bb;
    }
  }
}

__global__ void k_gn_bwd_finish(float* __restrict__ ab, const double* __restrict__ part, int64_t groups, int64_t nch,
                                int64_t K) {
  for (int64_t bg = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; bg < groups;
       bg += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    double a = 0, bb = 0;
    for (int64_t c = 0; c < nch; ++c) a += part[(bg * nch + c) * 2], bb += part[(bg * nch + c) * 2 + 1];
    ab[bg * 2] = static_cast<float>(a / K);
    ab[bg * 2 + 1] = static_cast<float>(bb / K);
  }
}

template <bool SILU>
__global__ void k_gn_bwd_apply(float* __restrict__ dinp, const float* __restrict__ dout,
                               const float* __restrict__ inp, const float* __restrict__ w, const float* __restrict__ b,
                               const float* __restrict__ mean, const float* __restrict__ rstd,
                               const float* __restrict__ ab, int64_t C, int64_t S, int64_t G, int64_t total) {
  const int64_t Cg = C / G;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t bc = e / S, c = bc % C, bg = (bc / C) * G + c / Cg;
    float rs = rstd[bg];
    float xh = (inp[e] - mean[bg]) * rs;
    float dn = gn_dh<SILU>(dout[e], xh, w, b, c) * (w ? w[c] : 1.0f);
    dinp[e] = rs * (dn - ab[bg * 2] - xh * ab[bg * 2 + 1]);
  }
}

// One block per channel c: dw[c] = sum_{b,s} dh * xhat, db[c] = sum_{b,s} dh.
template <bool SILU>
__global__ void k_groupnorm_params(float* __restrict__ dw, float* __restrict__ db, const float* __restrict__ dout,
                                   const float* __restrict__ inp, const float* __restrict__ w,
                                   const float* __restrict__ b, const float* __restrict__ mean,
                                   const float* __restrict__ rstd, int64_t B, int64_t C, int64_t S, int64_t G) {
  __shared__ double sd[32];
  int64_t c = blockIdx.x, g = c / (C / G);
  double aw = 0, ab = 0;
  for (int64_t bi = 0; bi < B; ++bi) {
    float mu = mean[bi * G + g], rs = rstd[bi * G + g];
    const float* x = inp + (bi * C + c) * S;
    const float* gr = dout + (bi * C + c) * S;
    for (int64_t i = threadIdx.x; i < S; i += blockDim.x) {
      float xh = (x[i] - mu) * rs;
      float dh = gn_dh<SILU>(gr[i], xh, w, b, c);
      aw += static_cast<double>(dh) * xh;
      ab += dh;
    }
  }
  aw = block_sum(aw, sd);
  ab = block_sum(ab, sd);
  if (threadIdx.x == 0) {
    if (dw) dw[c] = static_cast<float>(aw);
    if (db) db[c] = static_cast<float>(ab);
  }
}

template <bool SILU>
void gn_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                int64_t B, int64_t C, int64_t S, int64_t G, float eps, const char* op) {
  if (B * C * S == 0) return;
  int dev = 0;
  cudaStream_t s = prepare_ptr(out, &dev);
  const int64_t K = (C / G) * S, nch = gn_chunks(K), groups = B * G;
  Tensor part = workspace(groups * nch * 3, DType::Float64, dev, op);
  dim3 grid(static_cast<unsigned>(nch), static_cast<unsigned>(std::min(groups, kMaxGridY)));
  k_gn_stats_part<<<grid, gn_threads(K / nch), 0, s>>>(part.data<double>(), inp, C, S, G, groups, nch);
  check_launch(op);
  k_gn_stats_finish<<<grid_for(groups), kThreads, 0, s>>>(mean, rstd, part.data<double>(), groups, nch, eps);
  check_launch(op);
  k_gn_apply<SILU><<<grid_for(B * C * S), kThreads, 0, s>>>(out, inp, mean, rstd, weight, bias, C, S, G, B * C * S);
  check_launch(op);
}

template <bool SILU>
void gn_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight,
                 const float* bias, const float* mean, const float* rstd, int64_t B, int64_t C, int64_t S, int64_t G,
                 const char* op) {
  if (C == 0) return;
  int dev = 0;
  cudaStream_t s = prepare_ptr(dinp && B * S > 0 ? static_cast<const void*>(dinp) : dweight ? dweight : dbias, &dev);
  if (B * S > 0) {
    const int64_t K = (C / G) * S, nch = gn_chunks(K), groups = B * G;
    Tensor part = workspace(groups * nch * 2, DType::Float64, dev, op);
    Tensor ab = workspace(groups * 2, DType::Float32, dev, op);
    dim3 grid(static_cast<unsigned>(nch), static_cast<unsigned>(std::min(groups, kMaxGridY)));
    k_gn_bwd_part<SILU><<<grid, gn_threads(K / nch), 0, s>>>(part.data<double>(), dout, inp, weight, bias, mean, rstd,
                                                             C, S, G, groups, nch);
    check_launch(op);
    k_gn_bwd_finish<<<grid_for(groups), kThreads, 0, s>>>(ab.data<float>(), part.data<double>(), groups, nch, K);
    check_launch(op);
    k_gn_bwd_apply<SILU><<<grid_for(B * C * S), kThreads, 0, s>>>(dinp, dout, inp, weight, bias, mean, rstd,
                                                                  ab.data<float>(), C, S, G, B * C * S);
    check_launch(op);
  }
  if (dweight || dbias) {
    k_groupnorm_params<SILU><<<static_cast<unsigned>(C), gn_threads(B * S), 0, s>>>(dweight, dbias, dout, inp, weight,
                                                                                   bias, mean, rstd, B, C, S, G);
    check_launch(op);
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
  groupnorm_act_forward(false, out, mean, rstd, inp, weight, bias, B, C, S, G, eps, "groupNorm");
}

void groupnorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t B, int64_t C, int64_t S,
                        int64_t G) {
  groupnorm_act_backward(false, dinp, dweight, dbias, dout, inp, weight, nullptr, mean, rstd, B, C, S, G, "groupNorm");
}

void groupnorm_act_forward(bool silu, float* out, float* mean, float* rstd, const float* inp, const float* weight,
                           const float* bias, int64_t B, int64_t C, int64_t S, int64_t G, float eps, const char* op) {
  if (silu)
    gn_forward<true>(out, mean, rstd, inp, weight, bias, B, C, S, G, eps, op);
  else
    gn_forward<false>(out, mean, rstd, inp, weight, bias, B, C, S, G, eps, op);
}

void groupnorm_act_backward(bool silu, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                            const float* weight, const float* bias, const float* mean, const float* rstd, int64_t B,
                            int64_t C, int64_t S, int64_t G, const char* op) {
  if (silu)
    gn_backward<true>(dinp, dweight, dbias, dout, inp, weight, bias, mean, rstd, B, C, S, G, op);
  else
    gn_backward<false>(dinp, dweight, dbias, dout, inp, weight, bias, mean, rstd, B, C, S, G, op);
}

}  // namespace cuda
}  // namespace ts
