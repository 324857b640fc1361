// tessera N-API: conv3d forward and backward (core/conv.h has the contract).
#include "core/conv.h"
#include "napi_util.h"

using namespace tsn;

namespace {
constexpr const char* kOp = "conv3d";

std::array<int64_t, 3> triple_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  std::vector<int64_t> v = ints_arg(info, i, kOp);
  if (v.size() != 3) ts::fail(kOp, "expected ", what, " as 3 integers [t, h, w], got ", v.size());
  return {v[0], v[1], v[2]};
}

// Arguments from index i: stride [3], padding [3], causal, paddingMode.
ts::Conv3dOptions options_arg(const Napi::CallbackInfo& info, size_t i) {
  ts::Conv3dOptions o;
  o.stride = triple_arg(info, i, "stride");
  o.padding = triple_arg(info, i + 1, "padding");
  o.causal = bool_arg(info, i + 2, kOp);
  std::string mode = string_arg(info, i + 3, kOp);
  if (mode == "zeros")
    o.mode = ts::PadMode::Zeros;
  else if (mode == "replicate")
    o.mode = ts::PadMode::Replicate;
  else
    ts::fail(kOp, "expected paddingMode 'zeros' or 'replicate', got '", mode, "'");
  return o;
}
}  // namespace

// conv3d(x, weight, bias | undefined, stride, padding, causal, paddingMode) -> out
TS_NAPI(conv3d) {
  return wrap(info.Env(), ts::conv3d(tensor_arg(info, 0, kOp), tensor_arg(info, 1, kOp),
                                     optional_tensor_arg(info, 2, kOp), options_arg(info, 3)));
}

// conv3dBackward(dout, x, weight, stride, padding, causal, paddingMode, [needDinp, needDweight, needDbias])
//   -> [dinp | null, dweight | null, dbias | null]
TS_NAPI(conv3dBackward) {
  ts::Conv3dOptions o = options_arg(info, 3);
  if (info.Length() < 8 || !info[7].IsArray()) ts::fail(kOp, "argument 7 must be an array of 3 booleans");
  Napi::Array needs = info[7].As<Napi::Array>();
  bool need[3];
  for (uint32_t k = 0; k < 3; ++k) {
    Napi::Value v = needs.Get(k);
    if (!v.IsBoolean()) ts::fail(kOp, "argument 7 must be an array of 3 booleans");
    need[k] = v.As<Napi::Boolean>().Value();
  }
  ts::Conv3dGrads g = ts::conv3d_backward(tensor_arg(info, 0, kOp), tensor_arg(info, 1, kOp),
                                          tensor_arg(info, 2, kOp), o, need[0], need[1], need[2]);
  Napi::Env env = info.Env();
  Napi::Array r = Napi::Array::New(env, 3);
  r.Set(0u, g.dinp.defined() ? wrap(env, g.dinp) : env.Null());
  r.Set(1u, g.dweight.defined() ? wrap(env, g.dweight) : env.Null());
  r.Set(2u, g.dbias.defined() ? wrap(env, g.dbias) : env.Null());
  return r;
}
