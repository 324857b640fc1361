// tessera CUDA backend: dropout. One thread per Philox block (four consecutive
// elements share one philox4x32_10 call, word k for element 4*blk + k), exactly the
// CPU's draws, so a seed gives the same mask on both backends; the backward
// regenerates the mask. Memory contract: out / dinp overwritten.
#include "common.cuh"
#include "core/rng.h"
#include "dropout.cuh"

namespace ts {
namespace cuda {

namespace {
__global__ void k_dropout(float* __restrict__ out, const float* __restrict__ inp, int64_t n, float p, float scale,
                          uint64_t seed, uint64_t offset) {
  int64_t blocks = (n + 3) / 4;
  for (int64_t blk = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; blk < blocks;
       blk += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    Philox4x32 r = philox4x32_10(offset + static_cast<uint64_t>(blk), seed);
    int64_t i0 = blk * 4;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      if (i0 + k >= n) break;
      float u = static_cast<float>(r.c[k] >> 8) * (1.0f / 16777216.0f);
      out[i0 + k] = u >= p ? inp[i0 + k] * scale : 0.0f;
    }
  }
}

void apply(float* out, const float* inp, int64_t n, float p, uint64_t seed, uint64_t offset) {
  if (!n) return;
  cudaStream_t s = prepare_ptr(out);
  float scale = 1.0f / (1.0f - p);
  k_dropout<<<grid_for((n + 3) / 4), kThreads, 0, s>>>(out, inp, n, p, scale, seed, offset);
  check_launch("dropout");
}
}  // namespace

void dropout_forward(float* out, const float* inp, int64_t n, float p, uint64_t seed, uint64_t offset) {
  apply(out, inp, n, p, seed, offset);
}
void dropout_backward(float* dinp, const float* dout, int64_t n, float p, uint64_t seed, uint64_t offset) {
  apply(dinp, dout, n, p, seed, offset);
}

}  // namespace cuda
}  // namespace ts
