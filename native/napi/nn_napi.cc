// tessera N-API: the nn family (see native/core/nn.h). Converts arguments, calls the
// core, and returns a handle, or an array of handles (null for a gradient that was
// not computed) where an op has several outputs.
#include "core/nn.h"
#include "napi_util.h"

using namespace tsn;

namespace {

ts::Reduction reduction_arg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  std::string r = string_arg(info, i, op);
  if (r == "mean") return ts::Reduction::Mean;
  if (r == "sum") return ts::Reduction::Sum;
  if (r == "none") return ts::Reduction::None;
  ts::fail(op, "expected reduction 'mean', 'sum' or 'none', got '", r, "'");
}

ts::LossKind loss_arg(const Napi::CallbackInfo& info, size_t i) {
  std::string k = string_arg(info, i, "loss");
  if (k == "mse") return ts::LossKind::Mse;
  if (k == "l1") return ts::LossKind::L1;
  ts::fail("loss", "unknown loss '", k, "' (expected 'mse' or 'l1')");
}

uint64_t u64_arg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  int64_t v = int_arg(info, i, op);
  if (v < 0) ts::fail(op, "argument ", i, " must be a non-negative integer, got ", v);
  return static_cast<uint64_t>(v);
}
}  // namespace

// softmax(x, axis, log) / softmaxBackward(dout, out, axis, log)
TS_NAPI(softmax) {
  bool log = bool_arg(info, 2, "softmax");
  const char* op = log ? "logSoftmax" : "softmax";
  return wrap(info.Env(), ts::softmax(tensor_arg(info, 0, op), int_arg(info, 1, op), log));
}
TS_NAPI(softmaxBackward) {
  bool log = bool_arg(info, 3, "softmax");
  const char* op = log ? "logSoftmax" : "softmax";
  return wrap(info.Env(), ts::softmax_backward(tensor_arg(info, 0, op), tensor_arg(info, 1, op), int_arg(info, 2, op), log));
}

// layerNorm(x, normalizedShape, weight?, bias?, eps) -> [out, mean, rstd]
TS_NAPI(layerNorm) {
  const char* op = "layerNorm";
  ts::NormOut r = ts::layer_norm(tensor_arg(info, 0, op), ints_arg(info, 1, op), optional_tensor_arg(info, 2, op),
                                 optional_tensor_arg(info, 3, op), number_arg(info, 4, op));
  return handles(info.Env(), {r.out, r.mean, r.rstd});
}
// layerNormBackward(dout, x, weight?, mean, rstd, normalizedShape, hasBias) -> [dinp, dweight?, dbias?]
TS_NAPI(layerNormBackward) {
  const char* op = "layerNorm";
  ts::NormGrads r = ts::layer_norm_backward(tensor_arg(info, 0, op), tensor_arg(info, 1, op),
                                            optional_tensor_arg(info, 2, op), tensor_arg(info, 3, op),
                                            tensor_arg(info, 4, op), ints_arg(info, 5, op), bool_arg(info, 6, op));
  return handles(info.Env(), {r.dinp, r.dweight, r.dbias});
}

// groupNorm(x, numGroups, weight?, bias?, eps) -> [out, mean, rstd]
TS_NAPI(groupNorm) {
  const char* op = "groupNorm";
  ts::NormOut r = ts::group_norm(tensor_arg(info, 0, op), int_arg(info, 1, op), optional_tensor_arg(info, 2, op),
                                 optional_tensor_arg(info, 3, op), number_arg(info, 4, op));
  return handles(info.Env(), {r.out, r.mean, r.rstd});
}
// groupNormBackward(dout, x, weight?, mean, rstd, numGroups, hasBias) -> [dinp, dweight?, dbias?]
TS_NAPI(groupNormBackward) {
  const char* op = "groupNorm";
  ts::NormGrads r = ts::group_norm_backward(tensor_arg(info, 0, op), tensor_arg(info, 1, op),
                                            optional_tensor_arg(info, 2, op), tensor_arg(info, 3, op),
                                            tensor_arg(info, 4, op), int_arg(info, 5, op), bool_arg(info, 6, op));
  return handles(info.Env(), {r.dinp, r.dweight, r.dbias});
}

// rmsNorm(x, weight?, eps) -> [out, rstd]
TS_NAPI(rmsNorm) {
  const char* op = "rmsNorm";
  ts::NormOut r = ts::rms_norm(tensor_arg(info, 0, op), optional_tensor_arg(info, 1, op), number_arg(info, 2, op));
  return handles(info.Env(), {r.out, r.rstd});
}
// rmsNormBackward(dout, x, weight?, rstd) -> [dinp, dweight?]
TS_NAPI(rmsNormBackward) {
  const char* op = "rmsNorm";
  ts::NormGrads r = ts::rms_norm_backward(tensor_arg(info, 0, op), tensor_arg(info, 1, op),
                                          optional_tensor_arg(info, 2, op), tensor_arg(info, 3, op));
  return handles(info.Env(), {r.dinp, r.dweight});
}

// linear(x, weight, bias?) -> out / linearBackward(dout, x, weight, needDx, needDw, needDb) -> [dx?, dw?, db?]
TS_NAPI(linear) {
  const char* op = "linear";
  return wrap(info.Env(), ts::linear(tensor_arg(info, 0, op), tensor_arg(info, 1, op), optional_tensor_arg(info, 2, op)));
}
TS_NAPI(linearBackward) {
  const char* op = "linear";
  ts::LinearGrads r = ts::linear_backward(tensor_arg(info, 0, op), tensor_arg(info, 1, op), tensor_arg(info, 2, op),
                                          bool_arg(info, 3, op), bool_arg(info, 4, op), bool_arg(info, 5, op));
  return handles(info.Env(), {r.dinp, r.dweight, r.dbias});
}

// modulate(x, shift, scale) / modulateBackward(dout, x, scale) -> [dx, dshift, dscale]
TS_NAPI(modulate) {
  const char* op = "modulate";
  return wrap(info.Env(), ts::modulate(tensor_arg(info, 0, op), tensor_arg(info, 1, op), tensor_arg(info, 2, op)));
}
TS_NAPI(modulateBackward) {
  const char* op = "modulate";
  ts::ModulateGrads r = ts::modulate_backward(tensor_arg(info, 0, op), tensor_arg(info, 1, op), tensor_arg(info, 2, op));
  return handles(info.Env(), {r.dinp, r.dshift, r.dscale});
}

// embedding(ids, weight) / embeddingBackward(dout, ids, numEmbeddings) -> dweight
TS_NAPI(embedding) {
  const char* op = "embedding";
  return wrap(info.Env(), ts::embedding(tensor_arg(info, 0, op), tensor_arg(info, 1, op)));
}
TS_NAPI(embeddingBackward) {
  const char* op = "embedding";
  return wrap(info.Env(), ts::embedding_backward(tensor_arg(info, 0, op), tensor_arg(info, 1, op), int_arg(info, 2, op)));
}

// dropout(x, p, training) -> [out, seed, offset] (draws from the default generator);
// dropoutBackward(dout, p, seed, offset) regenerates the mask.
TS_NAPI(dropout) {
  const char* op = "dropout";
  ts::DropoutOut r = ts::dropout(tensor_arg(info, 0, op), number_arg(info, 1, op), bool_arg(info, 2, op),
                                 ts::default_generator());
  Napi::Env env = info.Env();
  Napi::Array a = Napi::Array::New(env, 3);
  a.Set(0u, wrap(env, r.out));
  a.Set(1u, Napi::Number::New(env, static_cast<double>(r.seed)));
  a.Set(2u, Napi::Number::New(env, static_cast<double>(r.offset)));
  return a;
}
TS_NAPI(dropoutBackward) {
  const char* op = "dropout";
  return wrap(info.Env(), ts::dropout_backward(tensor_arg(info, 0, op), number_arg(info, 1, op), u64_arg(info, 2, op),
                                               u64_arg(info, 3, op)));
}

// loss(kind, a, b, reduction) / lossBackward(kind, dout, a, b, reduction) -> [da, db];
// kind 'mse' or 'l1', reduction 'mean' | 'sum' | 'none'.
TS_NAPI(loss) {
  ts::LossKind k = loss_arg(info, 0);
  const char* op = ts::loss_name(k);
  return wrap(info.Env(), ts::loss(k, tensor_arg(info, 1, op), tensor_arg(info, 2, op), reduction_arg(info, 3, op)));
}
TS_NAPI(lossBackward) {
  ts::LossKind k = loss_arg(info, 0);
  const char* op = ts::loss_name(k);
  auto r = ts::loss_backward(k, tensor_arg(info, 1, op), tensor_arg(info, 2, op), tensor_arg(info, 3, op),
                             reduction_arg(info, 4, op));
  return handles(info.Env(), {r[0], r[1]});
}

// gaussianKL(mean, logvar) / gaussianKLBackward(dout, mean, logvar) -> [dmean, dlogvar]
TS_NAPI(gaussianKL) {
  const char* op = "gaussianKL";
  return wrap(info.Env(), ts::gaussian_kl(tensor_arg(info, 0, op), tensor_arg(info, 1, op)));
}
TS_NAPI(gaussianKLBackward) {
  const char* op = "gaussianKL";
  auto r = ts::gaussian_kl_backward(tensor_arg(info, 0, op), tensor_arg(info, 1, op), tensor_arg(info, 2, op));
  return handles(info.Env(), {r[0], r[1]});
}

// interpolateNearest(x, [st, sh, sw]) / interpolateNearestBackward(dout, [st, sh, sw])
TS_NAPI(interpolateNearest) {
  const char* op = "interpolate";
  return wrap(info.Env(), ts::interpolate_nearest(tensor_arg(info, 0, op), ints_arg(info, 1, op)));
}
TS_NAPI(interpolateNearestBackward) {
  const char* op = "interpolate";
  return wrap(info.Env(), ts::interpolate_nearest_backward(tensor_arg(info, 0, op), ints_arg(info, 1, op)));
}

// patchify(x, [pt, ph, pw]) / unpatchify(tokens, channels, [T', H', W'], [pt, ph, pw])
TS_NAPI(patchify) {
  const char* op = "patchify";
  return wrap(info.Env(), ts::patchify(tensor_arg(info, 0, op), ints_arg(info, 1, op)));
}
TS_NAPI(unpatchify) {
  const char* op = "unpatchify";
  return wrap(info.Env(), ts::unpatchify(tensor_arg(info, 0, op), int_arg(info, 1, op), ints_arg(info, 2, op),
                                         ints_arg(info, 3, op)));
}
