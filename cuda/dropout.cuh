// tessera CUDA backend: dropout with the CPU's Philox stream (element i is kept, and
// scaled by 1/(1-p), when philox_uniform(seed, offset, i) >= p). Dimension letters: n.
#pragma once
#include <cstdint>

namespace ts {
namespace cuda {

void dropout_forward(float* out, const float* inp, int64_t n, float p, uint64_t seed, uint64_t offset);
void dropout_backward(float* dinp, const float* dout, int64_t n, float p, uint64_t seed, uint64_t offset);

}  // namespace cuda
}  // namespace ts
