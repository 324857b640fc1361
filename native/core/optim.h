// tessera core: optimizer update entry points. Dimension letters: N = number of
// elements of one parameter tensor (any shape; updates are elementwise).
#pragma once
#include <cstdint>
#include <vector>

#include "tensor.h"

namespace ts {

struct AdamWStep {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
  int64_t step = 1;  // 1-based count of this parameter's updates, including this one
};

// One AdamW step (Loshchilov & Hutter: decoupled weight decay, bias-corrected
// moments), in place and in one pass, with torch.optim.AdamW's operation order:
//   param *= 1 - lr*wd;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g
//   param += -(lr / (1 - b1^step)) * m / (sqrt(v) / sqrt(1 - b2^step) + eps)
// param, m, v: float32, contiguous, one shape and device; read and overwritten.
// grad: float32, same shape and device, any strides; only read.
void adamw_update_(Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamWStep& s);

// Multi-tensor helpers of the training loop: one call for a whole list of tensors
// instead of several ops (and allocations) per tensor.
// sum_of_squares: the sum of x^2 over every element of every tensor (float32, any
// strides, one device), accumulated in double, tensor by tensor in list order; the
// same value for any thread count. clipGradNorm's global norm is its square root.
// The result is a float64 [1] tensor on the tensors' device (nothing is read back), so a
// training step can clip by it without a host sync.
Tensor sum_of_squares(const std::vector<Tensor>& xs);
// clip_by_norm_: with norm = sqrt(sumsq[0]) (sumsq: float64 [1] on the tensors' device, as
// sum_of_squares returns), x *= max_norm / (norm + 1e-6) in place for each x when that
// factor is below 1 and norm is finite (else nothing changes). Computed on the device.
void clip_by_norm_(const std::vector<Tensor>& xs, const Tensor& sumsq, double max_norm);
// scale_: x *= s in place for each x (float32, contiguous).
void scale_(const std::vector<Tensor>& xs, double s);
// ema_update_: shadow = decay * shadow + (1 - decay) * param for each pair, in place
// (shadow float32 contiguous; param float32 of its shape, any strides). decay in [0, 1].
void ema_update_(const std::vector<Tensor>& shadow, const std::vector<Tensor>& params, double decay);

}  // namespace ts
