// tessera CUDA backend: elementwise losses (MSE, L1) with reductions and the Gaussian KL
// of a VAE posterior, forward and backward. Dimension letters: n elements, B batch.
#pragma once
#include <cstdint>

#include "core/nn.h"

namespace ts {
namespace cuda {

void loss_forward(LossKind kind, Reduction r, float* out, const float* a, const float* b, int64_t n);
void loss_backward(LossKind kind, Reduction r, float* da, float* db, const float* dout, const float* a, const float* b,
                   int64_t n);
void gaussian_kl_forward(float* out, const float* mean, const float* logvar, int64_t B, int64_t n);
void gaussian_kl_backward(float* dmean, float* dlogvar, const float* dout, const float* mean, const float* logvar,
                          int64_t B, int64_t n);

}  // namespace cuda
}  // namespace ts
