// tessera N-API: scaled dot-product attention (core/attention.h).
#include "core/attention.h"
#include "napi_util.h"

using namespace tsn;

namespace {
constexpr const char* kOp = "scaledDotProductAttention";

// An optional Int32Array at argument i (a host copy of a cu_seqlens tensor).
std::vector<int32_t> host_ints(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || info[i].IsUndefined() || info[i].IsNull()) return {};
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    ts::fail(kOp, "expected the host copy of cuSeqlens as an Int32Array");
  Napi::Int32Array a = info[i].As<Napi::Int32Array>();
  return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
}

// Options at arguments i.. : scale (number, or null/undefined for 1/sqrt(D)), causal,
// cuSeqlensQ, cuSeqlensK (tensors or null/undefined), and their host copies (Int32Array
// or null/undefined).
ts::AttentionOptions options_arg(const Napi::CallbackInfo& info, size_t i) {
  ts::AttentionOptions o;
  if (i < info.Length() && !info[i].IsUndefined() && !info[i].IsNull()) o.scale = number_arg(info, i, kOp);
  o.causal = bool_arg(info, i + 1, kOp);
  o.cu_seqlens_q = optional_tensor_arg(info, i + 2, kOp);
  o.cu_seqlens_k = optional_tensor_arg(info, i + 3, kOp);
  o.host_cu_q = host_ints(info, i + 4);
  o.host_cu_k = host_ints(info, i + 5);
  return o;
}
}  // namespace

// scaledDotProductAttention(q, k, v, scale, causal, cuSeqlensQ, cuSeqlensK, hostQ?, hostK?) -> [out, lse]
TS_NAPI(scaledDotProductAttention) {
  const ts::Tensor &q = tensor_arg(info, 0, kOp), &k = tensor_arg(info, 1, kOp), &v = tensor_arg(info, 2, kOp);
  ts::AttentionResult r = ts::scaled_dot_product_attention(q, k, v, options_arg(info, 3));
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(0u, wrap(info.Env(), r.out));
  a.Set(1u, wrap(info.Env(), r.lse));
  return a;
}

// scaledDotProductAttentionBackward(dout, q, k, v, out, lse, scale, causal, cuSeqlensQ, cuSeqlensK, hostQ?, hostK?)
//   -> [dq, dk, dv]
TS_NAPI(scaledDotProductAttentionBackward) {
  const ts::Tensor &g = tensor_arg(info, 0, kOp), &q = tensor_arg(info, 1, kOp), &k = tensor_arg(info, 2, kOp),
                   &v = tensor_arg(info, 3, kOp), &o = tensor_arg(info, 4, kOp), &l = tensor_arg(info, 5, kOp);
  ts::AttentionGrads r = ts::scaled_dot_product_attention_backward(g, q, k, v, o, l, options_arg(info, 6));
  Napi::Array a = Napi::Array::New(info.Env(), 3);
  a.Set(0u, wrap(info.Env(), r.dq));
  a.Set(1u, wrap(info.Env(), r.dk));
  a.Set(2u, wrap(info.Env(), r.dv));
  return a;
}
