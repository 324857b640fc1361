// tessera core: argument checks shared by the op entry points. Each failure names
// the op and says what was expected and what came (ts::fail).
#pragma once
#include <cmath>

#include "tensor.h"

namespace ts {

inline void check_f32(const Tensor& x, const char* op, const char* what = "input") {
  if (!x.defined()) fail(op, what, " is an undefined (disposed) tensor");
  if (x.dtype() != DType::Float32)
    fail(op, "expected ", what, " of dtype float32, got ", dtype_name(x.dtype()), " (convert with .to('float32'))");
}

inline void check_device(const Tensor& a, const Tensor& b, const char* op) {
  if (a.defined() && b.defined() && a.device() != b.device())
    fail(op, "expected tensors on one device, got ", a.device().str(), " and ", b.device().str());
}

inline void check_shape_is(const Tensor& t, const Shape& want, const char* op, const char* what, const char* letters = "") {
  if (t.shape() != want)
    fail(op, "expected ", what, " of shape ", shape_str(want), letters, ", got ", shape_str(t.shape()));
}

inline void check_eps(double eps, const char* op) {
  if (!std::isfinite(eps) || eps < 0) fail(op, "expected a finite eps >= 0, got ", eps);
}

// An optional float32 parameter (weight / bias) on x's device: undefined, or of
// exactly `want` (made contiguous).
inline Tensor optional_param(const Tensor& p, const Shape& want, const Tensor& x, const char* op, const char* what,
                             const char* letters = "") {
  if (!p.defined()) return Tensor();
  check_f32(p, op, what);
  check_device(x, p, op);
  check_shape_is(p, want, op, what, letters);
  return p.contiguous();
}

// Raw float pointers of optional (possibly undefined) tensors, for kernel calls.
inline const float* cptr(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }
inline float* mptr(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

}  // namespace ts
