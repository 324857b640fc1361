// tessera core: optimizer update entry points (validate, then dispatch by device).
#include "optim.h"

#include <cmath>

#include "backend.h"

namespace ts {

namespace {
void check_state(const Tensor& t, const Tensor& param, const char* what) {
  const char* op = "adamw";
  if (!t.defined()) fail(op, what, " is an undefined (disposed) tensor");
  if (t.dtype() != DType::Float32)
    fail(op, "expected ", what, " of dtype float32, got ", dtype_name(t.dtype()));
  if (t.shape() != param.shape())
    fail(op, "expected ", what, " of the parameter's shape ", shape_str(param.shape()), ", got ", shape_str(t.shape()));
  if (t.device() != param.device())
    fail(op, "expected ", what, " on the parameter's device ", param.device().str(), ", got ", t.device().str());
}
}  // namespace

void adamw_update_(Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamWStep& s) {
  const char* op = "adamw";
  if (!param.defined()) fail(op, "param is an undefined (disposed) tensor");
  if (param.dtype() != DType::Float32)
    fail(op, "expected param of dtype float32 (master weights), got ", dtype_name(param.dtype()));
  check_state(m, param, "exp_avg (m)");
  check_state(v, param, "exp_avg_sq (v)");
  check_state(grad, param, "grad");
  // Updated in place, so no hidden copies: the caller's tensors must be dense.
  if (!param.is_contiguous() || !m.is_contiguous() || !v.is_contiguous())
    fail(op, "expected contiguous param, exp_avg and exp_avg_sq (they are updated in place)");
  if (param.storage() == m.storage() || param.storage() == v.storage() || m.storage() == v.storage())
    fail(op, "expected param, exp_avg and exp_avg_sq in separate storages");
  if (!(std::isfinite(s.lr) && s.lr >= 0)) fail(op, "expected a finite lr >= 0, got ", s.lr);
  if (!(s.beta1 >= 0 && s.beta1 < 1)) fail(op, "expected beta1 in [0, 1), got ", s.beta1);
  if (!(s.beta2 >= 0 && s.beta2 < 1)) fail(op, "expected beta2 in [0, 1), got ", s.beta2);
  if (!(std::isfinite(s.eps) && s.eps >= 0)) fail(op, "expected a finite eps >= 0, got ", s.eps);
  if (!(std::isfinite(s.weight_decay) && s.weight_decay >= 0))
    fail(op, "expected a finite weight_decay >= 0, got ", s.weight_decay);
  if (s.step < 1) fail(op, "expected step >= 1 (the count including this update), got ", s.step);
  if (param.numel() == 0) return;
  Tensor g = grad.contiguous();
  double bc1 = 1.0 - std::pow(s.beta1, static_cast<double>(s.step));
  double bc2 = 1.0 - std::pow(s.beta2, static_cast<double>(s.step));
  backend_for(param.device(), op).adamw(param, m, v, g, s.lr, s.beta1, s.beta2, s.eps, s.weight_decay, bc1, bc2);
}

namespace {
// A float32 tensor of a list (named by its index), on the first one's device.
void check_listed(const Tensor& t, size_t i, const Tensor& first, const char* op, const char* what) {
  if (!t.defined()) fail(op, what, " ", i, " is an undefined (disposed) tensor");
  if (t.dtype() != DType::Float32) fail(op, "expected ", what, " ", i, " of dtype float32, got ", dtype_name(t.dtype()));
  if (t.device() != first.device())
    fail(op, "expected every tensor on one device, got ", what, " ", i, " on ", t.device().str(), " and the first on ",
         first.device().str());
}
void check_dense(const Tensor& t, size_t i, const char* op, const char* what) {
  if (!t.is_contiguous()) fail(op, "expected ", what, " ", i, " to be contiguous (it is updated in place)");
}
}  // namespace

Tensor sum_of_squares(const std::vector<Tensor>& xs) {
  const char* op = "sumOfSquares";
  if (xs.empty()) fail(op, "expected at least one tensor, got none");
  for (size_t i = 0; i < xs.size(); ++i) check_listed(xs[i], i, xs[0], op, "tensor");
  Backend& be = backend_for(xs[0].device(), op);
  Tensor total = Tensor::empty({1}, DType::Float64, xs[0].device(), op);
  be.fill(total, 0.0);
  for (const Tensor& x : xs) {
    if (x.numel() == 0) continue;
    Tensor c = x.contiguous();
    be.sum_squares(total.data<double>(), c.data<float>(), c.numel());
  }
  return total;
}

void clip_by_norm_(const std::vector<Tensor>& xs, const Tensor& sumsq, double max_norm) {
  const char* op = "clipByNorm_";
  if (!(max_norm >= 0) || !std::isfinite(max_norm)) fail(op, "expected a finite max_norm >= 0, got ", max_norm);
  if (!sumsq.defined()) fail(op, "sumsq is an undefined (disposed) tensor");
  if (sumsq.dtype() != DType::Float64 || sumsq.numel() != 1)
    fail(op, "expected sumsq as a float64 [1] tensor (from sumOfSquares), got ", dtype_name(sumsq.dtype()), " ",
         shape_str(sumsq.shape()));
  for (size_t i = 0; i < xs.size(); ++i) {
    check_listed(xs[i], i, sumsq, op, "tensor");
    check_dense(xs[i], i, op, "tensor");
  }
  Tensor s = sumsq.contiguous();
  for (const Tensor& x : xs)
    if (x.numel() > 0) backend_for(x.device(), op).clip_scale(x.data<float>(), x.numel(), s.data<double>(), max_norm);
}

void scale_(const std::vector<Tensor>& xs, double s) {
  const char* op = "scale_";
  if (!std::isfinite(s)) fail(op, "expected a finite scale, got ", s);
  for (size_t i = 0; i < xs.size(); ++i) {
    check_listed(xs[i], i, xs[0], op, "tensor");
    check_dense(xs[i], i, op, "tensor");
  }
  for (const Tensor& x : xs)
    if (x.numel() > 0) backend_for(x.device(), op).scale_inplace(x.data<float>(), x.numel(), static_cast<float>(s));
}

void ema_update_(const std::vector<Tensor>& shadow, const std::vector<Tensor>& params, double decay) {
  const char* op = "emaUpdate";
  if (shadow.size() != params.size())
    fail(op, "expected as many parameters as shadow tensors, got ", params.size(), " and ", shadow.size());
  if (!(decay >= 0 && decay <= 1)) fail(op, "expected decay in [0, 1], got ", decay);
  for (size_t i = 0; i < shadow.size(); ++i) {
    check_listed(shadow[i], i, shadow[0], op, "shadow");
    check_dense(shadow[i], i, op, "shadow");
    check_listed(params[i], i, shadow[0], op, "parameter");
    if (params[i].shape() != shadow[i].shape())
      fail(op, "expected parameter ", i, " of its shadow's shape ", shape_str(shadow[i].shape()), ", got ",
           shape_str(params[i].shape()));
    if (params[i].storage() == shadow[i].storage()) fail(op, "shadow ", i, " shares its storage with its parameter");
  }
  for (size_t i = 0; i < shadow.size(); ++i) {
    if (shadow[i].numel() == 0) continue;
    Tensor p = params[i].contiguous();
    backend_for(p.device(), op).ema_update(shadow[i].data<float>(), p.data<float>(), p.numel(),
                                           static_cast<float>(decay), static_cast<float>(1.0 - decay));
  }
}

}  // namespace ts
