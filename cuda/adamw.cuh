// tessera CUDA backend: one fused AdamW step (torch.optim.AdamW's operation order; see
// core/optim.h). Dimension letters: n elements of one parameter.
#pragma once
#include <cstdint>

namespace ts {
namespace cuda {

// param, m, v: read and overwritten in place; grad: read. All float32, contiguous.
void adamw(float* param, float* m, float* v, const float* grad, int64_t n, double lr, double beta1, double beta2,
           double eps, double weight_decay, double bias_correction1, double bias_correction2);

// Training-loop helpers (core/optim.h) over n contiguous floats on the current device.
// sum_squares: *acc += sum of x^2; block partials in double, added in order on the device
// (deterministic, no host sync). clip_scale: x *= max_norm / (sqrt(*sumsq) + 1e-6) when
// that is below 1 and the norm finite (the factor is computed on the device).
void sum_squares(double* acc, const float* x, int64_t n);
void clip_scale(float* x, int64_t n, const double* sumsq, double max_norm);
void scale_inplace(float* x, int64_t n, float s);
void ema_update(float* shadow, const float* param, int64_t n, float decay, float one_minus_decay);

}  // namespace cuda
}  // namespace ts
