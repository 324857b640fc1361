// tessera CUDA backend: nearest upsampling by integer factors, forward and backward.
// Dimension letters: BC batch x channels, T H W input extents, st sh sw factors.
#pragma once
#include <cstdint>

namespace ts {
namespace cuda {

void upsample_nearest3d_forward(float* out, const float* inp, int64_t BC, int64_t T, int64_t H, int64_t W, int64_t st,
                                int64_t sh, int64_t sw);
void upsample_nearest3d_backward(float* dinp, const float* dout, int64_t BC, int64_t T, int64_t H, int64_t W,
                                 int64_t st, int64_t sh, int64_t sw);

}  // namespace cuda
}  // namespace ts
