// tessera CUDA backend: nearest upsampling. inp [BC, T, H, W] -> out [BC, T*st, H*sh, W*sw],
// out[.., t, h, w] = inp[.., t/st, h/sh, w/sw]. Forward: one thread per output value
// (coalesced writes, reads hit the same input row). Backward: one thread per input
// value adds its st x sh x sw block in (i, j, k) order in double (deterministic).
// Memory contract: out / dinp overwritten.
#include "common.cuh"
#include "upsample.cuh"

namespace ts {
namespace cuda {

namespace {
__global__ void k_up_fwd(float* __restrict__ out, const float* __restrict__ inp, int64_t total, int64_t T, int64_t H,
                         int64_t W, int64_t st, int64_t sh, int64_t sw) {
  int64_t Ho = H * sh, Wo = W * sw, To = T * st;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t w = i % Wo, r = i / Wo, h = r % Ho;
    r /= Ho;
    int64_t t = r % To, p = r / To;
    out[i] = inp[((p * T + t / st) * H + h / sh) * W + w / sw];
  }
}

__global__ void k_up_bwd(float* __restrict__ dinp, const float* __restrict__ dout, int64_t total, int64_t T, int64_t H,
                         int64_t W, int64_t st, int64_t sh, int64_t sw) {
  int64_t Ho = H * sh, Wo = W * sw, To = T * st;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t w = i % W, r = i / W, h = r % H;
    r /= H;
    int64_t t = r % T, p = r / T;
    double s = 0;
    for (int64_t a = 0; a < st; ++a)
      for (int64_t b = 0; b < sh; ++b) {
        const float* row = dout + ((p * To + t * st + a) * Ho + h * sh + b) * Wo + w * sw;
        for (int64_t c = 0; c < sw; ++c) s += row[c];
      }
    dinp[i] = static_cast<float>(s);
  }
}
}  // namespace

void upsample_nearest3d_forward(float* out, const float* inp, int64_t BC, int64_t T, int64_t H, int64_t W, int64_t st,
                                int64_t sh, int64_t sw) {
  int64_t total = BC * T * st * H * sh * W * sw;
  if (!total) return;
  cudaStream_t s = prepare_ptr(out);
  k_up_fwd<<<grid_for(total), kThreads, 0, s>>>(out, inp, total, T, H, W, st, sh, sw);
  check_launch("interpolate");
}

void upsample_nearest3d_backward(float* dinp, const float* dout, int64_t BC, int64_t T, int64_t H, int64_t W,
                                 int64_t st, int64_t sh, int64_t sw) {
  int64_t total = BC * T * H * W;
  if (!total) return;
  cudaStream_t s = prepare_ptr(dinp);
  k_up_bwd<<<grid_for(total), kThreads, 0, s>>>(dinp, dout, total, T, H, W, st, sh, sw);
  check_launch("interpolate");
}

}  // namespace cuda
}  // namespace ts
