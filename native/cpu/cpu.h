// tessera CPU backend: kernel entry points (float32 unless noted). Each op has a
// plain reference loop (kept for checking) and, where it pays, an optimized path;
// set_reference_kernels(true) makes every op use the reference loops.
#pragma once
#include <cstdint>

#include "../core/backend.h"

namespace ts {
namespace cpu {

bool reference_kernels();
void set_reference_kernels(bool on);

struct Features {
  bool avx2 = false, fma = false, avx512f = false, avx512bw = false, avx512_bf16 = false;
};
const Features& features();

// Strided copy with dtype conversion (dst and src of one shape).
void copy(Tensor& dst, const Tensor& src);
void fill(Tensor& dst, double v);
void arange(Tensor& dst, double start, double step);
void rand(Tensor& dst, uint64_t seed, uint64_t offset);
void randn(Tensor& dst, uint64_t seed, uint64_t offset);

void unary(UnaryOp op, Tensor& out, const Tensor& x);
void unary_backward(UnaryOp op, Tensor& dinp, const Tensor& dout, const Tensor& x, const Tensor& out);
void binary(BinaryOp op, Tensor& out, const Tensor& a, const Tensor& b);
void binary_scalar(BinaryOp op, Tensor& out, const Tensor& a, double s, bool scalar_first);
void reduce(ReduceOp op, Tensor& out, const Tensor& x, int64_t outer, int64_t n, int64_t inner);

// Row-major single GEMM: C = A' B' + beta C, A' = trans_a ? A^T : A ([M, K]), B' likewise ([K, N]).
// beta is 0 (overwrite) or 1 (accumulate).
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
          int64_t ldb, float* C, int64_t ldc, float beta);
void gemm_reference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float* C, int64_t ldc, float beta);

// ---- optimizers ----------------------------------------------------------------------
// One AdamW step in place over n contiguous float32 elements (torch.optim.AdamW's
// operation order; see core/optim.h). param, m, v: read and overwritten; grad: read.
void adamw(float* param, float* m, float* v, const float* grad, int64_t n, double lr, double beta1, double beta2,
           double eps, double weight_decay, double bias_correction1, double bias_correction2);
void adamw_reference(float* param, float* m, float* v, const float* grad, int64_t n, double lr, double beta1,
                     double beta2, double eps, double weight_decay, double bias_correction1, double bias_correction2);

}  // namespace cpu
}  // namespace ts
