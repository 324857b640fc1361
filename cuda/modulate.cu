// tessera CUDA backend: adaLN modulate. inp/out [B, N, D], shift/scale [B, D].
// Forward: elementwise. Backward: dx = dout * (1 + scale); dshift[b, d] = sum_n dout,
// dscale[b, d] = sum_n dout * x: one pass writes dx and double partials of both sums
// per chunk of tokens (32 features x 8 token-lanes per block); a second pass adds the
// chunks in order (deterministic). Memory contract: all outputs overwritten.
#include "common.cuh"
#include "modulate.cuh"

namespace ts {
namespace cuda {

namespace {

__global__ void k_modulate_fwd(float* __restrict__ out, const float* __restrict__ inp, const float* __restrict__ shift,
                               const float* __restrict__ scale, int64_t N, int64_t D, int64_t total) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t d = i % D, b = i / (N * D);
    out[i] = inp[i] * (1.0f + scale[b * D + d]) + shift[b * D + d];
  }
}

// grid (ceil(D/32), min(B * chunks, 65535)), block (32, 8). Task t = b * chunks + c
// (along grid.y in a loop: B may pass 65,535) covers tokens [c * per, (c + 1) * per) of
// sample b. part[(t * D + d) * 2 + {0,1}].
__global__ void k_modulate_bwd(float* __restrict__ dinp, double* __restrict__ part, const float* __restrict__ dout,
                               const float* __restrict__ inp, const float* __restrict__ scale, int64_t B, int64_t N,
                               int64_t D, int64_t chunks, int64_t per) {
  __shared__ double s0[8][33], s1[8][33];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t d = blockIdx.x * 32LL + tx;
  for (int64_t t = blockIdx.y; t < B * chunks; t += gridDim.y) {
    const int64_t b = t / chunks, c = t - b * chunks;
    const int64_t n0 = c * per, n1 = min(N, n0 + per);
    double a0 = 0, a1 = 0;
    if (d < D) {
      float f = 1.0f + scale[b * D + d];
      for (int64_t n = n0 + ty; n < n1; n += 8) {
        int64_t k = (b * N + n) * D + d;
        float g = dout[k];
        dinp[k] = g * f;
        a0 += g;
        a1 += static_cast<double>(g) * inp[k];
      }
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

__global__ void k_modulate_finish(float* __restrict__ dshift, float* __restrict__ dscale,
                                  const double* __restrict__ part, int64_t B, int64_t chunks, int64_t D) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < B * D;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t b = i / D, d = i - b * D;
    double t0 = 0, t1 = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      int64_t o = ((b * chunks + c) * D + d) * 2;
      t0 += part[o];
      t1 += part[o + 1];
    }
    dshift[i] = static_cast<float>(t0);
    dscale[i] = static_cast<float>(t1);
  }
}

}  // namespace

void modulate_forward(float* out, const float* inp, const float* shift, const float* scale, int64_t B, int64_t N,
                      int64_t D) {
  int64_t total = B * N * D;
  if (!total) return;
  cudaStream_t s = prepare_ptr(out);
  k_modulate_fwd<<<grid_for(total), kThreads, 0, s>>>(out, inp, shift, scale, N, D, total);
  check_launch("modulate");
}

void modulate_backward(float* dinp, float* dshift, float* dscale, const float* dout, const float* inp,
                       const float* scale, int64_t B, int64_t N, int64_t D) {
  if (B * D == 0) return;
  int dev = 0;
  cudaStream_t s = prepare_ptr(dshift, &dev);
  int64_t chunks = std::min<int64_t>(std::max<int64_t>(1, N / 64), 64);
  int64_t per = std::max<int64_t>(1, (N + chunks - 1) / chunks);
  chunks = std::max<int64_t>(1, (N + per - 1) / per);
  Tensor part = workspace(B * chunks * D * 2, DType::Float64, dev, "modulate");
  dim3 grid(static_cast<unsigned>((D + 31) / 32), static_cast<unsigned>(std::min<int64_t>(B * chunks, 65535)));
  k_modulate_bwd<<<grid, dim3(32, 8), 0, s>>>(dinp, part.data<double>(), dout, inp, scale, B, N, D, chunks, per);
  check_launch("modulate");
  k_modulate_finish<<<grid_for(B * D), kThreads, 0, s>>>(dshift, dscale, part.data<double>(), B, chunks, D);
  check_launch("modulate");
}

}  // namespace cuda
}  // namespace ts
