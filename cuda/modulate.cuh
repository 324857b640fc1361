// tessera CUDA backend: DiT adaLN modulate, out = x * (1 + scale[:, None]) + shift[:, None],
// forward and backward. Dimension letters: B batch, N tokens, D features.
#pragma once
#include <cstdint>

namespace ts {
namespace cuda {

void modulate_forward(float* out, const float* inp, const float* shift, const float* scale, int64_t B, int64_t N,
                      int64_t D);
void modulate_backward(float* dinp, float* dshift, float* dscale, const float* dout, const float* inp,
                       const float* scale, int64_t B, int64_t N, int64_t D);

}  // namespace cuda
}  // namespace ts
