// tessera CUDA backend: fused norms (contracts in fused_norm.cuh and core/fused_norm.h).
// Dimension letters: B batch, C channels, S spatial size, G groups; N tokens, D features;
// M = B*N rows of layerNormModulate.
//
// groupNormSiLU: the group-norm passes of norm.cu with SiLU applied after the affine
//   (out = h * sigmoid(h)); the backward re-forms h from x and bias and differentiates
//   through SiLU in the same passes (no stored pre-activation).
// layerNormModulate: per row r = (b, n) over D:
//   xhat = (x - mean) * rstd, out = xhat * (1 + scale[b]) + shift[b].
//   Backward with dn = dout * (1 + scale[b]):
//     dx = rstd * (dn - mean_D(dn) - xhat * mean_D(dn * xhat)),
//     dshift[b] = sum_n dout, dscale[b] = sum_n dout * xhat.
//   Rows: one warp per row when D <= 1024 (8 rows per block), else one 512-thread block
//   per row, rows in a grid-stride loop; statistics summed in double. dshift / dscale:
//   a column pass over (b, token chunk) tasks (32 features x 8 token-lanes per block,
//   tasks along grid.y in a loop, so B may pass 65,535) writes double partials that a
//   second pass adds in order: deterministic, no atomics.
// Memory contract: out, mean, rstd, dinp and the parameter gradients (dweight, dbias,
// dshift, dscale) are overwritten (=), never accumulated.
#include "common.cuh"
#include "fused_norm.cuh"
#include "norm.cuh"

namespace ts {
namespace cuda {

namespace {

constexpr const char* kGn = "groupNormSiLU";
constexpr const char* kLn = "layerNormModulate";
constexpr int64_t kMaxGridY = 65535;

// Sum over the threads of a row: a warp (WARP) or the whole block.
template <bool WARP, typename T>
__device__ __forceinline__ T row_sum(T v, T* scratch) {
  return WARP ? warp_sum(v) : block_sum(v, scratch);
}

template <bool WARP>
__global__ void k_lnmod_fwd(float* __restrict__ out, float* __restrict__ mean, float* __restrict__ rstd,
                            const float* __restrict__ inp, const float* __restrict__ shift,
                            const float* __restrict__ scale, int64_t M, int64_t N, int64_t D, float eps) {
  __shared__ double sd[32];
  const int lane = WARP ? (threadIdx.x & 31) : threadIdx.x;
  const int step = WARP ? 32 : blockDim.x;
  const int64_t r0 = WARP ? blockIdx.x * static_cast<int64_t>(blockDim.x >> 5) + (threadIdx.x >> 5) : blockIdx.x;
  const int64_t rstep = WARP ? static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5) : gridDim.x;
  for (int64_t r = r0; r < M; r += rstep) {
    const float* x = inp + r * D;
    const float* sh = shift + (r / N) * D;
    const float* sc = scale + (r / N) * D;
    float* y = out + r * D;
    double s = 0;
    for (int64_t i = lane; i < D; i += step) s += x[i];
    const float mu = static_cast<float>(row_sum<WARP>(s, sd) / D);
    double ss = 0;
    for (int64_t i = lane; i < D; i += step) {
      float d = x[i] - mu;
      ss += static_cast<double>(d) * d;
    }
    ss = row_sum<WARP>(ss, sd);
    const float rs = static_cast<float>(1.0 / sqrt(ss / D + eps));
    for (int64_t i = lane; i < D; i += step) y[i] = (x[i] - mu) * rs * (1.0f + sc[i]) + sh[i];
    if (lane == 0) mean[r] = mu, rstd[r] = rs;
  }
}

template <bool WARP>
__global__ void k_lnmod_bwd_rows(float* __restrict__ dinp, const float* __restrict__ dout,
                                 const float* __restrict__ inp, const float* __restrict__ scale,
                                 const float* __restrict__ mean, const float* __restrict__ rstd, int64_t M, int64_t N,
                                 int64_t D) {
  __shared__ double sd[32];
  const int lane = WARP ? (threadIdx.x & 31) : threadIdx.x;
  const int step = WARP ? 32 : blockDim.x;
  const int64_t r0 = WARP ? blockIdx.x * static_cast<int64_t>(blockDim.x >> 5) + (threadIdx.x >> 5) : blockIdx.x;
  const int64_t rstep = WARP ? static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5) : gridDim.x;
  for (int64_t r = r0; r < M; r += rstep) {
    const float* x = inp + r * D;
    const float* g = dout + r * D;
    const float* sc = scale + (r / N) * D;
    const float mu = mean[r], rs = rstd[r];
    double a = 0, bb = 0;
    for (int64_t i = lane; i < D; i += step) {
      float xh = (x[i] - mu) * rs, dn = g[i] * (1.0f + sc[i]);
      a += dn;
      bb += static_cast<double>(dn) * xh;
    }
    a = row_sum<WARP>(a, sd);
    bb = row_sum<WARP>(bb, sd);
    const float am = static_cast<float>(a / D), bm = static_cast<float>(bb / D);
    for (int64_t i = lane; i < D; i += step) {
      float xh = (x[i] - mu) * rs, dn = g[i] * (1.0f + sc[i]);
      dinp[r * D + i] = rs * (dn - am - xh * bm);
    }
  }
}

// grid (ceil(D/32), min(tasks, 65535)), block (32, 8). Task t = b * chunks + c covers
// tokens [c * per, (c + 1) * per) of sample b: part[(t * D + d) * 2 + {0, 1}] = sums of
// dout and dout * xhat over them.
__global__ void k_lnmod_bwd_cols(double* __restrict__ part, const float* __restrict__ dout,
                                 const float* __restrict__ inp, const float* __restrict__ mean,
                                 const float* __restrict__ rstd, int64_t B, int64_t N, int64_t D, int64_t chunks,
                                 int64_t per) {
  __shared__ double s0[8][33], s1[8][33];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t d = blockIdx.x * 32LL + tx;
  for (int64_t t = blockIdx.y; t < B * chunks; t += gridDim.y) {
    const int64_t b = t / chunks, c = t - b * chunks;
    const int64_t n0 = c * per, n1 = min(N, n0 + per);
    double a0 = 0, a1 = 0;
    if (d < D)
      for (int64_t n = n0 + ty; n < n1; n += 8) {
        const int64_t r = b * N + n, k = r * D + d;
        const float g = dout[k], xh = (inp[k] - mean[r]) * rstd[r];
        a0 += g;
        a1 += static_cast<double>(g) * xh;
      }
    s0[ty][tx] = a0;
    s1[ty][tx] = a1;
    __syncthreads();
    if (ty == 0 && d < D) {
      double t0 = 0, t1 = 0;
      for (int k = 0; k < 8; ++k) t0 += s0[k][tx], t1 += s1[k][tx];
      part[(t * D + d) * 2] = t0;
      part[(t * D + d) * 2 + 1] = t1;
    }
    __syncthreads();  // s0 / s1 are rewritten by the next task
  }
}

__global__ void k_lnmod_bwd_finish(float* __restrict__ dshift, float* __restrict__ dscale,
                                   const double* __restrict__ part, int64_t B, int64_t chunks, int64_t D) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < B * D;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = i / D, d = i - b * D;
    double t0 = 0, t1 = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t o = ((b * chunks + c) * D + d) * 2;
      t0 += part[o];
      t1 += part[o + 1];
    }
    dshift[i] = static_cast<float>(t0);
    dscale[i] = static_cast<float>(t1);
  }
}

}  // namespace

void groupnorm_silu_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                            const float* bias, int64_t B, int64_t C, int64_t S, int64_t G, float eps) {
  groupnorm_act_forward(true, out, mean, rstd, inp, weight, bias, B, C, S, G, eps, kGn);
}

void groupnorm_silu_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                             const float* weight, const float* bias, const float* mean, const float* rstd, int64_t B,
                             int64_t C, int64_t S, int64_t G) {
  groupnorm_act_backward(true, dinp, dweight, dbias, dout, inp, weight, bias, mean, rstd, B, C, S, G, kGn);
}

void layernorm_modulate_forward(float* out, float* mean, float* rstd, const float* inp, const float* shift,
                                const float* scale, int64_t B, int64_t N, int64_t D, float eps) {
  const int64_t M = B * N;
  if (M * D == 0) return;
  cudaStream_t s = prepare_ptr(out);
  if (D <= 1024)
    k_lnmod_fwd<true><<<grid_for(M * 32), kThreads, 0, s>>>(out, mean, rstd, inp, shift, scale, M, N, D, eps);
  else
    k_lnmod_fwd<false><<<static_cast<unsigned>(std::min<int64_t>(M, 65535)), 512, 0, s>>>(out, mean, rstd, inp, shift,
                                                                                          scale, M, N, D, eps);
  check_launch(kLn);
}

void layernorm_modulate_backward(float* dinp, float* dshift, float* dscale, const float* dout, const float* inp,
                                 const float* scale, const float* mean, const float* rstd, int64_t B, int64_t N,
                                 int64_t D) {
  if (B * D == 0) return;
  int dev = 0;
  cudaStream_t s = prepare_ptr(dshift, &dev);
  const int64_t M = B * N;
  if (M > 0) {
    if (D <= 1024)
      k_lnmod_bwd_rows<true><<<grid_for(M * 32), kThreads, 0, s>>>(dinp, dout, inp, scale, mean, rstd, M, N, D);
    else
      k_lnmod_bwd_rows<false><<<static_cast<unsigned>(std::min<int64_t>(M, 65535)), 512, 0, s>>>(
          dinp, dout, inp, scale, mean, rstd, M, N, D);
    check_launch(kLn);
  }
  // Token chunks of at least 64 rows, at most 64 per sample (N = 0: one empty chunk,
  // so dshift and dscale come out zero).
  int64_t chunks = std::min<int64_t>(std::max<int64_t>(1, N / 64), 64);
  const int64_t per = std::max<int64_t>(1, (N + chunks - 1) / chunks);
  chunks = std::max<int64_t>(1, (N + per - 1) / per);
  Tensor part = workspace(B * chunks * D * 2, DType::Float64, dev, kLn);
  dim3 grid(static_cast<unsigned>((D + 31) / 32), static_cast<unsigned>(std::min(B * chunks, kMaxGridY)));
  k_lnmod_bwd_cols<<<grid, dim3(32, 8), 0, s>>>(part.data<double>(), dout, inp, mean, rstd, B, N, D, chunks, per);
  check_launch(kLn);
  k_lnmod_bwd_finish<<<grid_for(B * D), kThreads, 0, s>>>(dshift, dscale, part.data<double>(), B, chunks, D);
  check_launch(kLn);
}

}  // namespace cuda
}  // namespace ts
