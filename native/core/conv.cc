// tessera core: conv3d entry points: validate, allocate, dispatch by device.
// Dimension letters as in conv.h (B, Cin, Cout, T, H, W; kt, kh, kw).
#include "conv.h"

#include "backend.h"

namespace ts {

namespace {
constexpr const char* kOp = "conv3d";

std::string triple(const std::array<int64_t, 3>& a) { return shape_str({a[0], a[1], a[2]}); }

void check_f32(const Tensor& t, const char* what) {
  if (!t.defined()) fail(kOp, what, " is an undefined (disposed) tensor");
  if (t.dtype() != DType::Float32)
    fail(kOp, "expected ", what, " of dtype float32, got ", dtype_name(t.dtype()), " (convert with .to('float32'))");
}
}  // namespace

Conv3dGeometry conv3d_geometry(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv3dOptions& o) {
  check_f32(x, "input");
  check_f32(w, "weight");
  if (x.dim() != 5) fail(kOp, "expected input of rank 5 [B, Cin, T, H, W], got shape ", shape_str(x.shape()));
  if (w.dim() != 5)
    fail(kOp, "expected weight of rank 5 [Cout, Cin, kt, kh, kw], got shape ", shape_str(w.shape()));
  if (x.device() != w.device())
    fail(kOp, "expected input and weight on one device, got ", x.device().str(), " and ", w.device().str());
  const Shape& xs = x.shape();
  const Shape& ws = w.shape();
  if (xs[1] != ws[1])
    fail(kOp, "input has ", xs[1], " channels (shape ", shape_str(xs), ") but weight ", shape_str(ws),
         " expects Cin = ", ws[1]);
  if (xs[1] < 1 || xs[2] < 1 || xs[3] < 1 || xs[4] < 1)
    fail(kOp, "expected input with Cin, T, H, W >= 1, got shape ", shape_str(xs));
  if (ws[0] < 1 || ws[2] < 1 || ws[3] < 1 || ws[4] < 1)
    fail(kOp, "expected weight with Cout, kt, kh, kw >= 1, got shape ", shape_str(ws));
  if (bias.defined()) {
    check_f32(bias, "bias");
    if (bias.dim() != 1 || bias.shape()[0] != ws[0])
      fail(kOp, "expected bias of shape [", ws[0], "] (Cout), got ", shape_str(bias.shape()));
    if (bias.device() != x.device())
      fail(kOp, "expected bias on ", x.device().str(), ", got ", bias.device().str());
  }
  for (int d = 0; d < 3; ++d) {
    if (o.stride[d] < 1) fail(kOp, "expected strides >= 1, got ", triple(o.stride));
    if (o.padding[d] < 0) fail(kOp, "expected non-negative padding, got ", triple(o.padding));
  }
  if (o.causal && o.padding[0] != 0)
    fail(kOp, "causal pads kt - 1 = ", ws[2] - 1,
         " frames before the input by itself; expected temporal padding 0, got ", triple(o.padding));

  Conv3dGeometry g;
  g.B = xs[0], g.Cin = xs[1], g.T = xs[2], g.H = xs[3], g.W = xs[4];
  g.Cout = ws[0], g.kt = ws[2], g.kh = ws[3], g.kw = ws[4];
  g.st = o.stride[0], g.sh = o.stride[1], g.sw = o.stride[2];
  g.pt0 = o.causal ? g.kt - 1 : o.padding[0];
  g.pt1 = o.causal ? 0 : o.padding[0];
  g.ph = o.padding[1], g.pw = o.padding[2];
  g.replicate = o.mode == PadMode::Replicate;
  int64_t Tp = g.T + g.pt0 + g.pt1, Hp = g.H + 2 * g.ph, Wp = g.W + 2 * g.pw;
  if (g.kt > Tp || g.kh > Hp || g.kw > Wp)
    fail(kOp, "kernel [", g.kt, ", ", g.kh, ", ", g.kw, "] is larger than the padded input [T, H, W] = [", Tp, ", ", Hp,
         ", ", Wp, "] (input ", shape_str(xs), ", padding ", o.causal ? "causal" : "", o.causal ? " + " : "",
         triple(o.padding), ")");
  g.To = (Tp - g.kt) / g.st + 1;
  g.Ho = (Hp - g.kh) / g.sh + 1;
  g.Wo = (Wp - g.kw) / g.sw + 1;
  return g;
}

Tensor conv3d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv3dOptions& o) {
  Conv3dGeometry g = conv3d_geometry(x, weight, bias, o);
  Tensor out = Tensor::empty({g.B, g.Cout, g.To, g.Ho, g.Wo}, DType::Float32, x.device(), kOp);
  Tensor b = bias.defined() ? bias.contiguous() : Tensor();
  backend_for(x.device(), kOp).conv3d_forward(out, x.contiguous(), weight.contiguous(), b, g);
  return out;
}

Conv3dGrads conv3d_backward(const Tensor& dout, const Tensor& x, const Tensor& weight, const Conv3dOptions& o,
                            bool need_dinp, bool need_dweight, bool need_dbias) {
  Conv3dGeometry g = conv3d_geometry(x, weight, Tensor(), o);
  check_f32(dout, "gradient");
  Shape os = {g.B, g.Cout, g.To, g.Ho, g.Wo};
  if (dout.shape() != os)
    fail(kOp, "backward expected a gradient of shape ", shape_str(os), " (the output's), got ",
         shape_str(dout.shape()));
  if (dout.device() != x.device())
    fail(kOp, "backward expected the gradient on ", x.device().str(), ", got ", dout.device().str());
  Conv3dGrads r;
  if (need_dinp) r.dinp = Tensor::empty(x.shape(), DType::Float32, x.device(), kOp);
  if (need_dweight) r.dweight = Tensor::empty(weight.shape(), DType::Float32, x.device(), kOp);
  if (need_dbias) r.dbias = Tensor::empty({g.Cout}, DType::Float32, x.device(), kOp);
  if (!need_dinp && !need_dweight && !need_dbias) return r;
  backend_for(x.device(), kOp)
      .conv3d_backward(r.dinp, r.dweight, r.dbias, dout.contiguous(), x.contiguous(), weight.contiguous(), g);
  return r;
}

}  // namespace ts
