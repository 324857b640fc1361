// tessera N-API: scaled dot-product attention (core/attention.h).
#include "core/attention.h"
#include "napi_util.h"

using namespace tsn;

namespace {
constexpr const char* kOp = "scaledDotProductAttention";

// Options at arguments i.. : scale (number, or null/undefined for 1/sqrt(D)), causal,
// cuSeqlensQ, cuSeqlensK (tensors or null/undefined).
ts::AttentionOptions options_arg(const Napi::CallbackInfo& info, size_t i) {
  ts::AttentionOptions o;
  if (i < info.Length() && !info[i].IsUndefined() && !info[i].IsNull()) o.scale = number_arg(info, i, kOp);
  o.causal = bool_arg(info, i + 1, kOp);
  o.cu_seqlens_q = optional_tensor_arg(info, i + 2, kOp);
  o.cu_seqlens_k = optional_tensor_arg(info, i + 3, kOp);
  return o;
}
}  // namespace

// scaledDotProductAttention(q, k, v, scale, causal, cuSeqlensQ, cuSeqlensK) -> [out, lse]
TS_NAPI(scaledDotProductAttention) {
  const ts::Tensor &q = tensor_arg(info, 0, kOp), &k = tensor_arg(info, 1, kOp), &v = tensor_arg(info, 2, kOp);
  ts::AttentionResult r = ts::scaled_dot_product_attention(q, k, v, options_arg(info, 3));
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(0u, wrap(info.Env(), r.out));
  a.Set(1u, wrap(info.Env(), r.lse));
  return a;
}

// scaledDotProductAttentionBackward(dout, q, k, v, out, lse, scale, causal, cuSeqlensQ, cuSeqlensK)
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
