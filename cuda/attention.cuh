// tessera CUDA backend: flash attention, forward and backward (layouts and masks of
// core/attention.h). Dimension letters: B batch, Nq / Nk query / key tokens, H heads,
// D head dim, S packed sequences.
//   q [B, Nq, H, D], k, v [B, Nk, H, D] (unit stride on D), out [B, Nq, H, D],
//   lse [B, H, Nq] (natural log-sum-exp of the scaled scores; -inf: no keys).
// Two kernel families:
//   tensor cores: bf16 operands (mma.sync m16n8k16), float32 accumulation, online
//     softmax in float32, D = 64 or 128; the backward recomputes P from lse and writes
//     dq with float32 atomics (FlashAttention-2).
//   float32: FFMA, any D (shared memory permitting); the default.
// The Backend entry points (float32 tensors) take the tensor-core path when
// float32_matmul_precision() is Medium and D is 64 or 128: q, k, v (and dout) are
// rounded to bf16 first (relative error 2^-9 per input; outputs, lse and gradients stay
// float32), else the float32 path (errors at float32 rounding).
#pragma once
#include <cstdint>

#include "core/attention.h"

namespace ts {
namespace cuda {

void attention_forward(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                       const AttentionParams& p);
void attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q, const Tensor& k,
                        const Tensor& v, const Tensor& out, const Tensor& lse, const AttentionParams& p);

// ---- raw bf16 entry points (benchmarks; every pointer on the current device) ----------
// Strides in elements for [B, N, H, D] operands (unit stride on D). The tensor-core
// kernels need every row start 16-byte aligned: pointers 16-byte aligned, strides
// multiples of 8.
struct FlashShape {
  int B = 1, H = 1, Nq = 0, Nk = 0, D = 64;
  float scale = 0.125f;
  bool causal = false;
  const int32_t* cu_q = nullptr;  // packed sequences (B = 1) or null
  const int32_t* cu_k = nullptr;
  int num_seqs = 1, max_q = 0, max_k = 0;
};
struct Rows4 {  // a [B, N, H, D] operand
  const void* p = nullptr;
  int64_t sb = 0, sn = 0, sh = 0;
};
// out bf16 [B, Nq, H, D] contiguous; lse float32 [B, H, Nq].
void flash_forward_bf16(const FlashShape& s, Rows4 q, Rows4 k, Rows4 v, void* out, float* lse, void* stream);
// dout, out bf16 (contiguous [B, Nq, H, D]); dq, dk, dv bf16 contiguous; workspace of
// flash_backward_workspace_bytes(s) bytes (dq accumulator and row statistics).
size_t flash_backward_workspace_bytes(const FlashShape& s);
void flash_backward_bf16(const FlashShape& s, Rows4 q, Rows4 k, Rows4 v, const void* out, const void* dout,
                         const float* lse, void* dq, void* dk, void* dv, void* workspace, void* stream);

}  // namespace cuda
}  // namespace ts
