// tessera core: scaled dot-product attention (flash-style: O(N) memory).
// Dimension letters: B batch, N tokens (Nq queries, Nk keys), H heads, D head dim,
// S packed sequences. Layout follows tessera's attention convention (no transposes
// after the QKV projection):
//   q [B, Nq, H, D], k and v [B, Nk, H, D] -> out [B, Nq, H, D]
//   lse [B, H, Nq]: log-sum-exp of each query's scaled scores (saved for backward)
// out[b,i,h] = sum_j softmax_j(scale * q[b,i,h] . k[b,j,h] + mask) v[b,j,h]
// Masks: causal hides key j > query i (top-left alignment, as PyTorch's is_causal,
// also when Nq != Nk); packing (NaViT) with cu_seqlens_q / cu_seqlens_k (int32 prefix
// sums [0, n1, n1+n2, ...], B = 1) lets queries of sequence s see only keys of
// sequence s, and causal then counts positions within each sequence. A query that
// sees no key (a sequence with no keys) gets out = 0 and lse = -inf.
#pragma once
#include <optional>
#include <vector>

#include "tensor.h"

namespace ts {

struct AttentionOptions {
  std::optional<double> scale;  // default 1/sqrt(D)
  bool causal = false;
  Tensor cu_seqlens_q, cu_seqlens_k;  // both undefined, or both int32 [S + 1]
  // Optional host copies of cu_seqlens_q / _k (the caller built them from these values):
  // on a device whose memory the host cannot read, they size the launch without a
  // device-to-host read per call. Checked against the tensors' shapes.
  std::vector<int32_t> host_cu_q, host_cu_k;
};

// What a backend kernel receives once the core has validated everything.
struct AttentionParams {
  float scale = 1.0f;
  bool causal = false;
  // Undefined: every batch row is one sequence of Nq queries and Nk keys. Defined:
  // int32 [S + 1], contiguous, on the inputs' device; B == 1; prefix sums checked.
  Tensor cu_seqlens_q, cu_seqlens_k;
  int64_t num_seqs = 1;      // S (1 when not packed)
  int64_t max_seqlen_q = 0;  // longest query / key sequence (grid sizing on devices)
  int64_t max_seqlen_k = 0;
};

struct AttentionResult {
  Tensor out;  // [B, Nq, H, D]
  Tensor lse;  // [B, H, Nq]
};
struct AttentionGrads {
  Tensor dq, dk, dv;  // shapes of q, k, v; fresh and contiguous (overwritten, not accumulated)
};

// q, k, v float32 and possibly strided (e.g. slices of a fused qkv [B, N, 3, H, D]).
AttentionResult scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                             const AttentionOptions& opts = {});
// dout [B, Nq, H, D]; out and lse as returned by the forward with the same options.
AttentionGrads scaled_dot_product_attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k,
                                                     const Tensor& v, const Tensor& out, const Tensor& lse,
                                                     const AttentionOptions& opts = {});

}  // namespace ts
