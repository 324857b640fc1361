// tessera core: fused norm entry points (see fused_norm.h). Each validates its
// arguments (naming the op as TypeScript calls it, expected vs got), makes inputs
// contiguous, allocates fresh outputs and dispatches to the device's backend.
// Dimension letters: B batch, C channels, S spatial size, G groups, N tokens, D features.
#include "fused_norm.h"

#include <cmath>
#include <utility>

#include "backend.h"
#include "checks.h"

namespace ts {

namespace {

constexpr const char* kGn = "groupNormSiLU";
constexpr const char* kLn = "layerNormModulate";

void check_stats(const Tensor& s, int64_t M, const Tensor& x, const char* op, const char* what) {
  check_f32(s, op, what);
  check_device(x, s, op);
  if (s.numel() != M) fail(op, "backward expected ", what, " with ", M, " values, got shape ", shape_str(s.shape()));
}

Tensor fresh(const Shape& s, const Tensor& like, const char* op) {
  return Tensor::empty(s, DType::Float32, like.device(), op);
}

struct GroupDims {
  int64_t B, C, S;
};
GroupDims group_dims(const Tensor& x, int64_t G, const char* op) {
  if (x.dim() < 2) fail(op, "expected input of shape [B, C, ...] (rank >= 2), got ", shape_str(x.shape()));
  int64_t B = x.shape()[0], C = x.shape()[1];
  if (G < 1) fail(op, "expected numGroups >= 1, got ", G);
  if (C % G != 0)
    fail(op, "expected channels C = ", C, " to be divisible by numGroups = ", G, " (input ", shape_str(x.shape()), ")");
  int64_t S = 1;
  for (int64_t d = 2; d < x.dim(); ++d) S *= x.shape()[d];
  return {B, C, S};
}

struct TokenDims {
  int64_t B, N, D;
};
TokenDims token_dims(const Tensor& x, const char* op) {
  if (x.dim() != 3) fail(op, "expected x of shape [B, N, D], got ", shape_str(x.shape()));
  return {x.shape()[0], x.shape()[1], x.shape()[2]};
}

}  // namespace

// ---- groupNormSiLU -----------------------------------------------------------------------

namespace {
// [B, C, T, ...] -> [B*T, C, S] (a copy) and back: per-frame groups for backends without
// the frames kernel.
Tensor frames_first(const Tensor& x, int64_t S) {
  const Shape& s = x.shape();
  return x.reshape({s[0], s[1], s[2], S}).permute({0, 2, 1, 3}).contiguous().reshape({s[0] * s[2], s[1], S});
}
Tensor frames_back(const Tensor& y, const Shape& like) {
  return y.reshape({like[0], like[2], like[1], -1}).permute({0, 2, 1, 3}).contiguous().reshape(like);
}
// T and the per-frame size S of x [B, C, T, ...] for per-frame groups.
std::pair<int64_t, int64_t> frame_dims(const Tensor& x, const char* op) {
  if (x.dim() < 3) fail(op, "per-frame groups expect input [B, C, T, ...] (rank >= 3), got ", shape_str(x.shape()));
  int64_t S = 1;
  for (int64_t d = 3; d < x.dim(); ++d) S *= x.shape()[d];
  return {x.shape()[2], S};
}
}  // namespace

NormOut group_norm_silu(const Tensor& x, int64_t G, const Tensor& weight, const Tensor& bias, double eps,
                        bool per_frame) {
  check_f32(x, kGn, "input");
  GroupDims d = group_dims(x, G, kGn);
  Tensor w = optional_param(weight, {d.C}, x, kGn, "weight"), b = optional_param(bias, {d.C}, x, kGn, "bias");
  check_eps(eps, kGn);
  if (per_frame) {
    auto [T, S] = frame_dims(x, kGn);
    Backend& be = backend_for(x.device(), kGn);
    if (!be.supports(OpKind::GroupNormSiLUFrames, DType::Float32)) {
      NormOut r = group_norm_silu(frames_first(x, S), G, w, b, eps);
      r.out = frames_back(r.out, x.shape());
      return r;
    }
    Tensor xc = x.contiguous();
    NormOut r{fresh(x.shape(), x, kGn), fresh({d.B * T * G}, x, kGn), fresh({d.B * T * G}, x, kGn)};
    if (x.numel() > 0)
      be.groupnorm_silu_frames_forward(r.out.data<float>(), r.mean.data<float>(), r.rstd.data<float>(),
                                       xc.data<float>(), cptr(w), cptr(b), d.B, d.C, T, S, G, static_cast<float>(eps));
    return r;
  }
  Tensor xc = x.contiguous();
  NormOut r{fresh(x.shape(), x, kGn), fresh({d.B * G}, x, kGn), fresh({d.B * G}, x, kGn)};
  if (x.numel() > 0)
    backend_for(x.device(), kGn)
        .groupnorm_silu_forward(r.out.data<float>(), r.mean.data<float>(), r.rstd.data<float>(), xc.data<float>(),
                                cptr(w), cptr(b), d.B, d.C, d.S, G, static_cast<float>(eps));
  return r;
}

NormGrads group_norm_silu_backward(const Tensor& dout, const Tensor& x, const Tensor& weight, const Tensor& bias,
                                   const Tensor& mean, const Tensor& rstd, int64_t G, bool per_frame) {
  check_f32(x, kGn, "input");
  check_f32(dout, kGn, "gradient");
  check_device(x, dout, kGn);
  check_shape_is(dout, x.shape(), kGn, "gradient");
  GroupDims d = group_dims(x, G, kGn);
  Tensor w = optional_param(weight, {d.C}, x, kGn, "weight"), b = optional_param(bias, {d.C}, x, kGn, "bias");
  if (per_frame) {
    auto [T, S] = frame_dims(x, kGn);
    check_stats(mean, d.B * T * G, x, kGn, "mean");
    check_stats(rstd, d.B * T * G, x, kGn, "rstd");
    Backend& be = backend_for(x.device(), kGn);
    if (!be.supports(OpKind::GroupNormSiLUFrames, DType::Float32)) {
      NormGrads r = group_norm_silu_backward(frames_first(dout, S), frames_first(x, S), w, b, mean, rstd, G);
      r.dinp = frames_back(r.dinp, x.shape());
      return r;
    }
    Tensor g = dout.contiguous(), xc = x.contiguous(), mc = mean.contiguous(), rc = rstd.contiguous();
    NormGrads r{fresh(x.shape(), x, kGn), w.defined() ? fresh({d.C}, x, kGn) : Tensor(),
                b.defined() ? fresh({d.C}, x, kGn) : Tensor()};
    be.groupnorm_silu_frames_backward(r.dinp.data<float>(), mptr(r.dweight), mptr(r.dbias), g.data<float>(),
                                      xc.data<float>(), cptr(w), cptr(b), mc.data<float>(), rc.data<float>(), d.B, d.C,
                                      T, S, G);
    return r;
  }
  check_stats(mean, d.B * G, x, kGn, "mean");
  check_stats(rstd, d.B * G, x, kGn, "rstd");
  Tensor g = dout.contiguous(), xc = x.contiguous(), mc = mean.contiguous(), rc = rstd.contiguous();
  NormGrads r{fresh(x.shape(), x, kGn), w.defined() ? fresh({d.C}, x, kGn) : Tensor(),
              b.defined() ? fresh({d.C}, x, kGn) : Tensor()};
  backend_for(x.device(), kGn)
      .groupnorm_silu_backward(r.dinp.data<float>(), mptr(r.dweight), mptr(r.dbias), g.data<float>(), xc.data<float>(),
                               cptr(w), cptr(b), mc.data<float>(), rc.data<float>(), d.B, d.C, d.S, G);
  return r;
}

// ---- layerNormModulate -------------------------------------------------------------------

NormOut layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, double eps) {
  check_f32(x, kLn, "x");
  check_f32(shift, kLn, "shift");
  check_f32(scale, kLn, "scale");
  TokenDims t = token_dims(x, kLn);
  if (t.D < 1) fail(kLn, "expected D >= 1, got x of shape ", shape_str(x.shape()));
  Tensor sh = optional_param(shift, {t.B, t.D}, x, kLn, "shift", " ([B, D])");
  Tensor sc = optional_param(scale, {t.B, t.D}, x, kLn, "scale", " ([B, D])");
  check_eps(eps, kLn);
  Tensor xc = x.contiguous();
  NormOut r{fresh(x.shape(), x, kLn), fresh({t.B * t.N}, x, kLn), fresh({t.B * t.N}, x, kLn)};
  if (x.numel() > 0)
    backend_for(x.device(), kLn)
        .layernorm_modulate_forward(r.out.data<float>(), r.mean.data<float>(), r.rstd.data<float>(), xc.data<float>(),
                                    sh.data<float>(), sc.data<float>(), t.B, t.N, t.D, static_cast<float>(eps));
  return r;
}

ModulateGrads layer_norm_modulate_backward(const Tensor& dout, const Tensor& x, const Tensor& scale,
                                           const Tensor& mean, const Tensor& rstd) {
  check_f32(dout, kLn, "gradient");
  check_f32(x, kLn, "x");
  check_f32(scale, kLn, "scale");
  check_device(x, dout, kLn);
  TokenDims t = token_dims(x, kLn);
  check_shape_is(dout, x.shape(), kLn, "gradient");
  Tensor sc = optional_param(scale, {t.B, t.D}, x, kLn, "scale", " ([B, D])");
  check_stats(mean, t.B * t.N, x, kLn, "mean");
  check_stats(rstd, t.B * t.N, x, kLn, "rstd");
  Tensor g = dout.contiguous(), xc = x.contiguous(), mc = mean.contiguous(), rc = rstd.contiguous();
  ModulateGrads r{fresh(x.shape(), x, kLn), fresh({t.B, t.D}, x, kLn), fresh({t.B, t.D}, x, kLn)};
  if (t.B * t.D > 0)
    backend_for(x.device(), kLn)
        .layernorm_modulate_backward(r.dinp.data<float>(), r.dshift.data<float>(), r.dscale.data<float>(),
                                     g.data<float>(), xc.data<float>(), sc.data<float>(), mc.data<float>(),
                                     rc.data<float>(), t.B, t.N, t.D);
  return r;
}

}  // namespace ts
