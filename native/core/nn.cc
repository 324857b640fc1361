// tessera core: nn op entry points. Each validates its arguments (naming the op as
// TypeScript calls it, expected vs got), makes inputs contiguous where its kernel
// needs that, allocates fresh outputs and dispatches to the device's backend.
// Dimension letters: B batch, C channels, T H W time/height/width, N tokens,
// D features, V vocabulary, G groups, M rows.
#include "nn.h"

#include <algorithm>
#include <cmath>

#include "backend.h"
#include "checks.h"
#include "ops.h"

namespace ts {

namespace {


Tensor empty_like_f32(const Shape& s, const Tensor& like, const char* op) {
  return Tensor::empty(s, DType::Float32, like.device(), op);
}

// x viewed as [outer, n, inner] around axis ax.
void split_axis(const Shape& s, int64_t ax, int64_t* outer, int64_t* n, int64_t* inner) {
  *outer = 1;
  *inner = 1;
  for (int64_t d = 0; d < ax; ++d) *outer *= s[d];
  for (size_t d = ax + 1; d < s.size(); ++d) *inner *= s[d];
  *n = s[ax];
}

std::string ints_str(const std::vector<int64_t>& v) { return shape_str(v); }

void check_triple(const std::vector<int64_t>& v, const char* op, const char* what, const char* names) {
  bool ok = v.size() == 3;
  for (int64_t x : v) ok = ok && x >= 1;
  if (!ok) fail(op, "expected ", what, " of 3 positive integers ", names, ", got ", ints_str(v));
}

}  // namespace

// ---- softmax -----------------------------------------------------------------------------

Tensor softmax(const Tensor& x, int64_t axis, bool log) {
  const char* op = log ? "logSoftmax" : "softmax";
  check_f32(x, op, "input");
  int64_t ax = normalize_axis(axis, x.dim(), op);
  int64_t outer, n, inner;
  split_axis(x.shape(), ax, &outer, &n, &inner);
  Tensor xc = x.contiguous();
  Tensor out = empty_like_f32(x.shape(), x, op);
  if (out.numel() > 0) backend_for(x.device(), op).softmax_forward(out.data<float>(), xc.data<float>(), outer, n, inner, log);
  return out;
}

Tensor softmax_backward(const Tensor& dout, const Tensor& out, int64_t axis, bool log) {
  const char* op = log ? "logSoftmax" : "softmax";
  check_f32(dout, op, "gradient");
  check_f32(out, op, "output");
  check_device(dout, out, op);
  check_shape_is(dout, out.shape(), op, "gradient");
  int64_t ax = normalize_axis(axis, out.dim(), op);
  int64_t outer, n, inner;
  split_axis(out.shape(), ax, &outer, &n, &inner);
  Tensor g = dout.contiguous(), y = out.contiguous();
  Tensor dinp = empty_like_f32(out.shape(), out, op);
  if (dinp.numel() > 0)
    backend_for(out.device(), op).softmax_backward(dinp.data<float>(), g.data<float>(), y.data<float>(), outer, n,
                                                   inner, log);
  return dinp;
}

// ---- layer norm ----------------------------------------------------------------------------

namespace {
// Checks x [..., *ns] and returns (M, N).
std::pair<int64_t, int64_t> layer_norm_rows(const Tensor& x, const Shape& ns, const char* op) {
  if (ns.empty()) fail(op, "expected a non-empty normalizedShape, got []");
  for (int64_t s : ns)
    if (s < 1) fail(op, "expected normalizedShape of positive sizes, got ", shape_str(ns));
  int64_t k = static_cast<int64_t>(ns.size());
  bool ok = x.dim() >= k;
  for (int64_t i = 0; ok && i < k; ++i) ok = x.shape()[x.dim() - k + i] == ns[i];
  if (!ok)
    fail(op, "expected input whose trailing dims are normalizedShape ", shape_str(ns), ", got input of shape ",
         shape_str(x.shape()));
  int64_t N = shape_numel(ns);
  return {x.numel() / N, N};
}

void check_stats(const Tensor& s, int64_t M, const Tensor& x, const char* op, const char* what) {
  check_f32(s, op, what);
  check_device(x, s, op);
  if (s.numel() != M) fail(op, "backward expected ", what, " with ", M, " values (one per row), got shape ", shape_str(s.shape()));
}
}  // namespace

NormOut layer_norm(const Tensor& x, const Shape& ns, const Tensor& weight, const Tensor& bias, double eps) {
  const char* op = "layerNorm";
  check_f32(x, op, "input");
  auto [M, N] = layer_norm_rows(x, ns, op);
  Tensor w = optional_param(weight, ns, x, op, "weight"), b = optional_param(bias, ns, x, op, "bias");
  check_eps(eps, op);
  Tensor xc = x.contiguous();
  NormOut r{empty_like_f32(x.shape(), x, op), empty_like_f32({M}, x, op), empty_like_f32({M}, x, op)};
  if (M > 0)
    backend_for(x.device(), op).layernorm_forward(r.out.data<float>(), r.mean.data<float>(), r.rstd.data<float>(),
                                                  xc.data<float>(), cptr(w), cptr(b), M, N, static_cast<float>(eps));
  return r;
}

NormGrads layer_norm_backward(const Tensor& dout, const Tensor& x, const Tensor& weight, const Tensor& mean,
                              const Tensor& rstd, const Shape& ns, bool has_bias) {
  const char* op = "layerNorm";
  check_f32(x, op, "input");
  check_f32(dout, op, "gradient");
  check_device(x, dout, op);
  check_shape_is(dout, x.shape(), op, "gradient");
  auto [M, N] = layer_norm_rows(x, ns, op);
  Tensor w = optional_param(weight, ns, x, op, "weight");
  check_stats(mean, M, x, op, "mean");
  check_stats(rstd, M, x, op, "rstd");
  Tensor g = dout.contiguous(), xc = x.contiguous(), mc = mean.contiguous(), rc = rstd.contiguous();
  NormGrads r{empty_like_f32(x.shape(), x, op), w.defined() ? empty_like_f32(ns, x, op) : Tensor(),
              has_bias ? empty_like_f32(ns, x, op) : Tensor()};
  backend_for(x.device(), op).layernorm_backward(r.dinp.data<float>(), mptr(r.dweight), mptr(r.dbias), g.data<float>(),
                                                 xc.data<float>(), cptr(w), mc.data<float>(), rc.data<float>(), M, N);
  return r;
}

// ---- group norm ----------------------------------------------------------------------------

namespace {
struct GroupDims {
  int64_t B, C, S;
};
GroupDims group_dims(const Tensor& x, int64_t G, const char* op) {
  if (x.dim() < 2) fail(op, "expected input of shape [B, C, ...] (rank >= 2), got ", shape_str(x.shape()));
  int64_t B = x.shape()[0], C = x.shape()[1];
  if (G < 1) fail(op, "expected numGroups >= 1, got ", G);
  if (C % G != 0) fail(op, "expected channels C = ", C, " to be divisible by numGroups = ", G, " (input ", shape_str(x.shape()), ")");
  int64_t S = 1;
  for (int64_t d = 2; d < x.dim(); ++d) S *= x.shape()[d];
  return {B, C, S};
}
}  // namespace

NormOut group_norm(const Tensor& x, int64_t G, const Tensor& weight, const Tensor& bias, double eps) {
  const char* op = "groupNorm";
  check_f32(x, op, "input");
  GroupDims d = group_dims(x, G, op);
  Tensor w = optional_param(weight, {d.C}, x, op, "weight"), b = optional_param(bias, {d.C}, x, op, "bias");
  check_eps(eps, op);
  Tensor xc = x.contiguous();
  NormOut r{empty_like_f32(x.shape(), x, op), empty_like_f32({d.B * G}, x, op), empty_like_f32({d.B * G}, x, op)};
  if (x.numel() > 0)
    backend_for(x.device(), op).groupnorm_forward(r.out.data<float>(), r.mean.data<float>(), r.rstd.data<float>(),
                                                  xc.data<float>(), cptr(w), cptr(b), d.B, d.C, d.S, G,
                                                  static_cast<float>(eps));
  return r;
}

NormGrads group_norm_backward(const Tensor& dout, const Tensor& x, const Tensor& weight, const Tensor& mean,
                              const Tensor& rstd, int64_t G, bool has_bias) {
  const char* op = "groupNorm";
  check_f32(x, op, "input");
  check_f32(dout, op, "gradient");
  check_device(x, dout, op);
  check_shape_is(dout, x.shape(), op, "gradient");
  GroupDims d = group_dims(x, G, op);
  Tensor w = optional_param(weight, {d.C}, x, op, "weight");
  check_stats(mean, d.B * G, x, op, "mean");
  check_stats(rstd, d.B * G, x, op, "rstd");
  Tensor g = dout.contiguous(), xc = x.contiguous(), mc = mean.contiguous(), rc = rstd.contiguous();
  NormGrads r{empty_like_f32(x.shape(), x, op), w.defined() ? empty_like_f32({d.C}, x, op) : Tensor(),
              has_bias ? empty_like_f32({d.C}, x, op) : Tensor()};
  backend_for(x.device(), op).groupnorm_backward(r.dinp.data<float>(), mptr(r.dweight), mptr(r.dbias), g.data<float>(),
                                                 xc.data<float>(), cptr(w), mc.data<float>(), rc.data<float>(), d.B,
                                                 d.C, d.S, G);
  return r;
}

// ---- RMS norm ------------------------------------------------------------------------------

NormOut rms_norm(const Tensor& x, const Tensor& weight, double eps) {
  const char* op = "rmsNorm";
  check_f32(x, op, "input");
  if (x.dim() < 1 || x.shape().back() < 1)
    fail(op, "expected input of shape [..., D] with D >= 1, got ", shape_str(x.shape()));
  int64_t N = x.shape().back(), M = x.numel() / N;
  Tensor w = optional_param(weight, {N}, x, op, "weight");
  check_eps(eps, op);
  Tensor xc = x.contiguous();
  NormOut r{empty_like_f32(x.shape(), x, op), Tensor(), empty_like_f32({M}, x, op)};
  if (M > 0)
    backend_for(x.device(), op).rmsnorm_forward(r.out.data<float>(), r.rstd.data<float>(), xc.data<float>(), cptr(w),
                                                M, N, static_cast<float>(eps));
  return r;
}

NormGrads rms_norm_backward(const Tensor& dout, const Tensor& x, const Tensor& weight, const Tensor& rstd) {
  const char* op = "rmsNorm";
  check_f32(x, op, "input");
  check_f32(dout, op, "gradient");
  check_device(x, dout, op);
  check_shape_is(dout, x.shape(), op, "gradient");
  if (x.dim() < 1 || x.shape().back() < 1)
    fail(op, "expected input of shape [..., D] with D >= 1, got ", shape_str(x.shape()));
  int64_t N = x.shape().back(), M = x.numel() / N;
  Tensor w = optional_param(weight, {N}, x, op, "weight");
  check_stats(rstd, M, x, op, "rstd");
  Tensor g = dout.contiguous(), xc = x.contiguous(), rc = rstd.contiguous();
  NormGrads r{empty_like_f32(x.shape(), x, op), w.defined() ? empty_like_f32({N}, x, op) : Tensor(), Tensor()};
  backend_for(x.device(), op).rmsnorm_backward(r.dinp.data<float>(), mptr(r.dweight), g.data<float>(), xc.data<float>(),
                                               cptr(w), rc.data<float>(), M, N);
  return r;
}

// ---- modulate ------------------------------------------------------------------------------

Tensor modulate(const Tensor& x, const Tensor& shift, const Tensor& scale) {
  const char* op = "modulate";
  check_f32(x, op, "x");
  check_f32(shift, op, "shift");
  check_f32(scale, op, "scale");
  check_device(x, shift, op);
  check_device(x, scale, op);
  if (x.dim() != 3) fail(op, "expected x of shape [B, N, D], got ", shape_str(x.shape()));
  int64_t B = x.shape()[0], N = x.shape()[1], D = x.shape()[2];
  check_shape_is(shift, {B, D}, op, "shift", " ([B, D])");
  check_shape_is(scale, {B, D}, op, "scale", " ([B, D])");
  Tensor xc = x.contiguous(), sh = shift.contiguous(), sc = scale.contiguous();
  Tensor out = empty_like_f32(x.shape(), x, op);
  if (out.numel() > 0)
    backend_for(x.device(), op).modulate_forward(out.data<float>(), xc.data<float>(), sh.data<float>(), sc.data<float>(),
                                                 B, N, D);
  return out;
}

ModulateGrads modulate_backward(const Tensor& dout, const Tensor& x, const Tensor& scale) {
  const char* op = "modulate";
  check_f32(dout, op, "gradient");
  check_f32(x, op, "x");
  check_f32(scale, op, "scale");
  check_device(x, dout, op);
  check_device(x, scale, op);
  if (x.dim() != 3) fail(op, "expected x of shape [B, N, D], got ", shape_str(x.shape()));
  check_shape_is(dout, x.shape(), op, "gradient");
  int64_t B = x.shape()[0], N = x.shape()[1], D = x.shape()[2];
  check_shape_is(scale, {B, D}, op, "scale", " ([B, D])");
  Tensor g = dout.contiguous(), xc = x.contiguous(), sc = scale.contiguous();
  ModulateGrads r{empty_like_f32(x.shape(), x, op), empty_like_f32({B, D}, x, op), empty_like_f32({B, D}, x, op)};
  if (B * D > 0)
    backend_for(x.device(), op).modulate_backward(r.dinp.data<float>(), r.dshift.data<float>(), r.dscale.data<float>(),
                                                  g.data<float>(), xc.data<float>(), sc.data<float>(), B, N, D);
  return r;
}

// ---- embedding -----------------------------------------------------------------------------

namespace {
// ids as contiguous int64 on their device, every id checked to lie in [0, V).
Tensor checked_ids(const Tensor& ids, int64_t V, const char* op) {
  if (!ids.defined()) fail(op, "ids is an undefined (disposed) tensor");
  if (ids.dtype() != DType::Int32 && ids.dtype() != DType::Int64)
    fail(op, "expected ids of dtype int32 or int64, got ", dtype_name(ids.dtype()));
  Tensor ids64 = to_dtype(ids, DType::Int64).contiguous();
  int64_t n = ids64.numel();
  // Checked where the ids are in host memory. On CUDA, reading them back would cost a
  // sync per call: the kernels bound-check instead (out-of-range ids give zero rows).
  if (!ids64.device().is_cpu()) return ids64;
  const int64_t* p = ids64.data<int64_t>();
  for (int64_t i = 0; i < n; ++i)
    if (p[i] < 0 || p[i] >= V)
      fail(op, "id ", p[i], " (at flat position ", i, ") is out of range for ", V, " embeddings (expected 0 <= id < ", V,
           ")");
  return ids64;
}
}  // namespace

Tensor embedding(const Tensor& ids, const Tensor& weight) {
  const char* op = "embedding";
  check_f32(weight, op, "weight");
  if (weight.dim() != 2) fail(op, "expected weight of shape [V, D], got ", shape_str(weight.shape()));
  int64_t V = weight.shape()[0], D = weight.shape()[1];
  Tensor ids64 = checked_ids(ids, V, op);
  check_device(ids, weight, op);
  Shape os = ids.shape();
  os.push_back(D);
  Tensor wc = weight.contiguous();
  Tensor out = empty_like_f32(os, weight, op);
  if (out.numel() > 0)
    backend_for(weight.device(), op).embedding_forward(out.data<float>(), ids64.data<int64_t>(), wc.data<float>(),
                                                       ids64.numel(), V, D);
  return out;
}

Tensor embedding_backward(const Tensor& dout, const Tensor& ids, int64_t V) {
  const char* op = "embedding";
  check_f32(dout, op, "gradient");
  if (V < 1) fail(op, "expected at least one embedding, got V = ", V);
  Tensor ids64 = checked_ids(ids, V, op);
  check_device(ids, dout, op);
  if (dout.dim() != ids.dim() + 1 || !std::equal(ids.shape().begin(), ids.shape().end(), dout.shape().begin()))
    fail(op, "backward expected a gradient of shape ", shape_str(ids.shape()), " + [D], got ", shape_str(dout.shape()));
  int64_t D = dout.shape().back();
  Tensor g = dout.contiguous();
  Tensor dweight = empty_like_f32({V, D}, dout, op);
  backend_for(dout.device(), op).embedding_backward(dweight.data<float>(), g.data<float>(), ids64.data<int64_t>(),
                                                    ids64.numel(), V, D);
  return dweight;
}

// ---- dropout -------------------------------------------------------------------------------

namespace {
void check_p(double p, const char* op) {
  if (!(p >= 0.0 && p < 1.0)) fail(op, "expected p in [0, 1), got ", p);
}
}  // namespace

DropoutOut dropout(const Tensor& x, double p, bool training, Generator& g) {
  const char* op = "dropout";
  check_f32(x, op, "input");
  check_p(p, op);
  if (!training || p == 0.0) return {x, 0, 0};
  Tensor xc = x.contiguous();
  DropoutOut r{empty_like_f32(x.shape(), x, op), g.seed, 0};
  r.offset = g.reserve(static_cast<uint64_t>(x.numel()), 4);
  if (x.numel() > 0)
    backend_for(x.device(), op).dropout_forward(r.out.data<float>(), xc.data<float>(), x.numel(), static_cast<float>(p),
                                                r.seed, r.offset);
  return r;
}

Tensor dropout_backward(const Tensor& dout, double p, uint64_t seed, uint64_t offset) {
  const char* op = "dropout";
  check_f32(dout, op, "gradient");
  check_p(p, op);
  Tensor g = dout.contiguous();
  Tensor dinp = empty_like_f32(dout.shape(), dout, op);
  if (dinp.numel() > 0)
    backend_for(dout.device(), op).dropout_backward(dinp.data<float>(), g.data<float>(), dout.numel(),
                                                    static_cast<float>(p), seed, offset);
  return dinp;
}

// ---- losses --------------------------------------------------------------------------------

const char* loss_name(LossKind k) { return k == LossKind::Mse ? "mseLoss" : "l1Loss"; }

namespace {
void check_loss_inputs(const Tensor& a, const Tensor& b, const char* op) {
  check_f32(a, op, "input");
  check_f32(b, op, "target");
  check_device(a, b, op);
  if (a.shape() != b.shape())
    fail(op, "expected input and target of one shape, got ", shape_str(a.shape()), " and ", shape_str(b.shape()));
}
}  // namespace

Tensor loss(LossKind kind, const Tensor& a, const Tensor& b, Reduction r) {
  const char* op = loss_name(kind);
  check_loss_inputs(a, b, op);
  Tensor ac = a.contiguous(), bc = b.contiguous();
  Tensor out = empty_like_f32(r == Reduction::None ? a.shape() : Shape{}, a, op);
  if (out.numel() > 0)
    backend_for(a.device(), op).loss_forward(kind, r, out.data<float>(), ac.data<float>(), bc.data<float>(), a.numel());
  return out;
}

std::array<Tensor, 2> loss_backward(LossKind kind, const Tensor& dout, const Tensor& a, const Tensor& b, Reduction r) {
  const char* op = loss_name(kind);
  check_loss_inputs(a, b, op);
  check_f32(dout, op, "gradient");
  check_device(a, dout, op);
  if (r == Reduction::None) check_shape_is(dout, a.shape(), op, "gradient");
  else if (dout.numel() != 1) fail(op, "backward expected a one-element gradient, got shape ", shape_str(dout.shape()));
  Tensor g = dout.contiguous(), ac = a.contiguous(), bc = b.contiguous();
  std::array<Tensor, 2> res{empty_like_f32(a.shape(), a, op), empty_like_f32(a.shape(), a, op)};
  if (a.numel() > 0)
    backend_for(a.device(), op).loss_backward(kind, r, res[0].data<float>(), res[1].data<float>(), g.data<float>(),
                                              ac.data<float>(), bc.data<float>(), a.numel());
  return res;
}

namespace {
int64_t kl_batch(const Tensor& mean, const Tensor& logvar, const char* op) {
  check_f32(mean, op, "mean");
  check_f32(logvar, op, "logvar");
  check_device(mean, logvar, op);
  if (mean.dim() < 1 || mean.shape()[0] < 1)
    fail(op, "expected mean of shape [B, ...] with B >= 1, got ", shape_str(mean.shape()));
  if (mean.shape() != logvar.shape())
    fail(op, "expected mean and logvar of one shape, got ", shape_str(mean.shape()), " and ", shape_str(logvar.shape()));
  return mean.shape()[0];
}
}  // namespace

Tensor gaussian_kl(const Tensor& mean, const Tensor& logvar) {
  const char* op = "gaussianKL";
  int64_t B = kl_batch(mean, logvar, op);
  Tensor m = mean.contiguous(), lv = logvar.contiguous();
  Tensor out = empty_like_f32({}, mean, op);
  backend_for(mean.device(), op).gaussian_kl_forward(out.data<float>(), m.data<float>(), lv.data<float>(), B,
                                                     mean.numel());
  return out;
}

std::array<Tensor, 2> gaussian_kl_backward(const Tensor& dout, const Tensor& mean, const Tensor& logvar) {
  const char* op = "gaussianKL";
  int64_t B = kl_batch(mean, logvar, op);
  check_f32(dout, op, "gradient");
  check_device(mean, dout, op);
  if (dout.numel() != 1) fail(op, "backward expected a one-element gradient, got shape ", shape_str(dout.shape()));
  Tensor g = dout.contiguous(), m = mean.contiguous(), lv = logvar.contiguous();
  std::array<Tensor, 2> res{empty_like_f32(mean.shape(), mean, op), empty_like_f32(mean.shape(), mean, op)};
  if (mean.numel() > 0)
    backend_for(mean.device(), op).gaussian_kl_backward(res[0].data<float>(), res[1].data<float>(), g.data<float>(),
                                                        m.data<float>(), lv.data<float>(), B, mean.numel());
  return res;
}

// ---- nearest upsampling ----------------------------------------------------------------

Tensor interpolate_nearest(const Tensor& x, const std::vector<int64_t>& scale) {
  const char* op = "interpolate";
  check_f32(x, op, "input");
  if (x.dim() != 5) fail(op, "expected input of shape [B, C, T, H, W], got ", shape_str(x.shape()));
  check_triple(scale, op, "scaleFactor", "[t, h, w]");
  const Shape& s = x.shape();
  Tensor xc = x.contiguous();
  Tensor out = empty_like_f32({s[0], s[1], s[2] * scale[0], s[3] * scale[1], s[4] * scale[2]}, x, op);
  if (out.numel() > 0)
    backend_for(x.device(), op).upsample_nearest3d_forward(out.data<float>(), xc.data<float>(), s[0] * s[1], s[2], s[3],
                                                           s[4], scale[0], scale[1], scale[2]);
  return out;
}

Tensor interpolate_nearest_backward(const Tensor& dout, const std::vector<int64_t>& scale) {
  const char* op = "interpolate";
  check_f32(dout, op, "gradient");
  if (dout.dim() != 5) fail(op, "backward expected a gradient of shape [B, C, T, H, W], got ", shape_str(dout.shape()));
  check_triple(scale, op, "scaleFactor", "[t, h, w]");
  const Shape& s = dout.shape();
  if (s[2] % scale[0] || s[3] % scale[1] || s[4] % scale[2])
    fail(op, "backward expected a gradient whose T, H, W are multiples of scaleFactor ", ints_str(scale), ", got ",
         shape_str(s));
  int64_t T = s[2] / scale[0], H = s[3] / scale[1], W = s[4] / scale[2];
  Tensor g = dout.contiguous();
  Tensor dinp = empty_like_f32({s[0], s[1], T, H, W}, dout, op);
  if (dinp.numel() > 0)
    backend_for(dout.device(), op).upsample_nearest3d_backward(dinp.data<float>(), g.data<float>(), s[0] * s[1], T, H,
                                                               W, scale[0], scale[1], scale[2]);
  return dinp;
}

// ---- patchify / unpatchify ---------------------------------------------------------------

Tensor patchify(const Tensor& x, const std::vector<int64_t>& patch) {
  const char* op = "patchify";
  check_f32(x, op, "input");
  if (x.dim() != 5) fail(op, "expected input of shape [B, C, T, H, W], got ", shape_str(x.shape()));
  check_triple(patch, op, "patch", "[pt, ph, pw]");
  const Shape& s = x.shape();
  const char* names[3] = {"T", "H", "W"};
  const char* pnames[3] = {"pt", "ph", "pw"};
  for (int i = 0; i < 3; ++i)
    if (s[2 + i] % patch[i] != 0)
      fail(op, "expected T, H, W divisible by the patch ", ints_str(patch), ", got input ", shape_str(s), " (",
           names[i], " = ", s[2 + i], " is not divisible by ", pnames[i], " = ", patch[i], ")");
  int64_t N = (s[2] / patch[0]) * (s[3] / patch[1]) * (s[4] / patch[2]);
  int64_t F = s[1] * patch[0] * patch[1] * patch[2];
  Tensor out = empty_like_f32({s[0], N, F}, x, op);
  // The kernel reads any layout through x's strides: no contiguous copy first.
  int64_t xs[5];
  for (int i = 0; i < 5; ++i) xs[i] = x.strides()[i];
  if (out.numel() > 0)
    backend_for(x.device(), op).patchify(out.data<float>(), x.data<float>(), xs, s[0], s[1], s[2], s[3], s[4], patch[0],
                                         patch[1], patch[2]);
  return out;
}

Tensor unpatchify(const Tensor& tokens, int64_t channels, const std::vector<int64_t>& grid,
                  const std::vector<int64_t>& patch) {
  const char* op = "unpatchify";
  check_f32(tokens, op, "tokens");
  if (channels < 1) fail(op, "expected channels >= 1, got ", channels);
  check_triple(grid, op, "grid", "[T', H', W']");
  check_triple(patch, op, "patch", "[pt, ph, pw]");
  int64_t N = grid[0] * grid[1] * grid[2], F = channels * patch[0] * patch[1] * patch[2];
  if (tokens.dim() != 3 || tokens.shape()[1] != N || tokens.shape()[2] != F)
    fail(op, "expected tokens of shape [B, ", N, ", ", F, "] (N = T'H'W' = ", grid[0], "*", grid[1], "*", grid[2],
         ", features = channels*pt*ph*pw = ", channels, "*", patch[0], "*", patch[1], "*", patch[2], "), got ",
         shape_str(tokens.shape()));
  int64_t B = tokens.shape()[0];
  int64_t T = grid[0] * patch[0], H = grid[1] * patch[1], W = grid[2] * patch[2];
  Tensor out = empty_like_f32({B, channels, T, H, W}, tokens, op);
  int64_t tks[3] = {tokens.strides()[0], tokens.strides()[1], tokens.strides()[2]};
  if (out.numel() > 0)
    backend_for(tokens.device(), op).unpatchify(out.data<float>(), tokens.data<float>(), tks, B, channels, T, H, W,
                                                patch[0], patch[1], patch[2]);
  return out;
}

// ---- linear ---------------------------------------------------------------------------------

namespace {
struct LinearDims {
  int64_t M, K, N;
};
// x [..., K] and weight [N, K] (checked, naming the op) -> M = rows of x (all leading dims).
LinearDims linear_dims(const Tensor& x, const Tensor& weight, const char* op) {
  check_f32(x, op, "input");
  check_f32(weight, op, "weight");
  check_device(x, weight, op);
  if (weight.dim() != 2) fail(op, "expected weight of shape [out, in], got ", shape_str(weight.shape()));
  const int64_t N = weight.shape()[0], K = weight.shape()[1];
  if (x.dim() < 1 || x.shape().back() != K)
    fail(op, "input's last dim must equal weight's in features ", K, ", got input ", shape_str(x.shape()));
  int64_t M = 1;
  for (int64_t d = 0; d + 1 < x.dim(); ++d) M *= x.shape()[d];
  return {M, K, N};
}
}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const char* op = "linear";
  LinearDims d = linear_dims(x, weight, op);
  Tensor b = optional_param(bias, {d.N}, x, op, "bias");
  Shape os = x.shape();
  os.back() = d.N;
  Tensor out = Tensor::empty(os, DType::Float32, x.device(), op);
  if (out.numel() == 0) return out;
  Tensor xc = x.contiguous(), wc = weight.contiguous();
  backend_for(x.device(), op).linear_forward(out.data<float>(), xc.data<float>(), wc.data<float>(), cptr(b), d.M, d.K,
                                             d.N);
  return out;
}

LinearGrads linear_backward(const Tensor& dout, const Tensor& x, const Tensor& weight, bool need_dinp,
                            bool need_dweight, bool need_dbias) {
  const char* op = "linear";
  LinearDims d = linear_dims(x, weight, op);
  check_f32(dout, op, "gradient");
  check_device(x, dout, op);
  Shape os = x.shape();
  os.back() = d.N;
  check_shape_is(dout, os, op, "gradient");
  Backend& be = backend_for(x.device(), op);
  Tensor g = dout.contiguous(), xc = x.contiguous(), wc = weight.contiguous();
  LinearGrads r;
  if (need_dinp) {
    r.dinp = Tensor::empty(x.shape(), DType::Float32, x.device(), op);
    // [M, K] = dout [M, N] @ weight [N, K]
    if (r.dinp.numel() > 0)
      be.gemm(false, false, d.M, d.K, d.N, g.data<float>(), d.N, 0, wc.data<float>(), d.K, 0, r.dinp.data<float>(),
              d.K, 0, 1, 0.0f);
  }
  if (need_dweight) {
    r.dweight = Tensor::empty({d.N, d.K}, DType::Float32, x.device(), op);
    // [N, K] = dout^T [N, M] @ x [M, K] (M = 0 gives zeros)
    if (r.dweight.numel() > 0)
      be.gemm(true, false, d.N, d.K, d.M, g.data<float>(), d.N, 0, xc.data<float>(), d.K, 0, r.dweight.data<float>(),
              d.K, 0, 1, 0.0f);
  }
  if (need_dbias) {
    r.dbias = Tensor::empty({d.N}, DType::Float32, x.device(), op);
    // [N] = dout [1, M, N] summed over M
    if (d.N > 0) be.reduce(ReduceOp::Sum, r.dbias, g, 1, d.M, d.N);
  }
  return r;
}

}  // namespace ts
