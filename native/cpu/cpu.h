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
// Building blocks of gemm for fused kernels that pack their own operands (conv3d).
// fn computes one MR x NR tile: C (+ C when acc) = a [kc][MR] x b [kc][NR] and stores
// its top-left mr x nr part at C (row stride ldc). b must be 64-byte aligned.
struct MicroKernel {
  void (*fn)(int64_t kc, const float* a, const float* b, float* C, int64_t ldc, int mr, int nr, bool acc);
  int MR, NR;
};
const MicroKernel& micro_kernel();  // the one gemm uses on this CPU
// Packs rows [i0, i0+mc) x cols [k0, k0+kc) of A' (A, or A^T when ta) into panels
// [panel][kc][MR], rows past mc zero.
void gemm_pack_a(int MR, bool ta, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t k0, int64_t kc,
                 float* out);

// ---- conv3d (conv3d.cc; layouts and geometry in core/conv.h) --------------------------
// All tensors contiguous. out, dinp, dweight, dbias are overwritten (=); the backward
// skips any of dinp / dweight / dbias that is undefined.
void conv3d_forward(Tensor& out, const Tensor& inp, const Tensor& weight, const Tensor& bias, const Conv3dGeometry& g);
void conv3d_backward(Tensor& dinp, Tensor& dweight, Tensor& dbias, const Tensor& dout, const Tensor& inp,
                     const Tensor& weight, const Conv3dGeometry& g);
// Size in floats the optimized path aims for with its column buffer (it always takes
// at least one output row). Tests shrink it to exercise chunking; <= 0 restores the default.
int64_t conv3d_column_budget();
void set_conv3d_column_budget(int64_t floats);

}  // namespace cpu
}  // namespace ts
