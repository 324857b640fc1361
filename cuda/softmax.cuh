// tessera CUDA backend: softmax / log-softmax over the middle axis of x [outer, n, inner],
// forward and backward (same contract as Backend::softmax_*). Dimension letters: outer,
// n (softmax axis), inner.
#pragma once
#include <cstdint>

namespace ts {
namespace cuda {

void softmax_forward(float* out, const float* inp, int64_t outer, int64_t n, int64_t inner, bool log);
void softmax_backward(float* dinp, const float* dout, const float* out, int64_t outer, int64_t n, int64_t inner,
                      bool log);

}  // namespace cuda
}  // namespace ts
