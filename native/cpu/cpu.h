// tessera CPU backend: kernel entry points (float32 unless noted). Each op has a
// plain reference loop (kept for checking) and, where it pays, an optimized path;
// set_reference_kernels(true) makes every op use the reference loops.
//
// One file per op family, named like its CUDA twin, forward and backward side by side:
//   CPU (native/cpu/)   CUDA (cuda/)       family
//   elementwise.cc      elementwise.cu     copies, fill, arange, rand/randn; unary, binary
//   reduce.cc           reduce.cu          sum, mean, max, min over a middle axis
//   gemm.cc             gemm.cu            GEMM (own micro-kernels / cuBLASLt)
//   conv3d.cc           conv3d.cu          conv3d (implicit GEMM)
//   attention.cc        attention.cu       flash attention
//   softmax.cc          softmax.cu         softmax, log-softmax
//   norm.cc             norm.cu            layer norm, RMS norm, group norm
//   fused_norm.cc       fused_norm.cu      groupNorm+SiLU, layerNorm+modulate
//   modulate.cc         modulate.cu        adaLN modulate
//   embedding.cc        embedding.cu       embedding
//   dropout.cc          dropout.cu         dropout
//   loss.cc             loss.cu            MSE / L1 losses, Gaussian KL
//   upsample.cc         upsample.cu        nearest 3D upsampling
//   patchify.cc         patchify.cu        patchify, unpatchify
//   adamw.cc            adamw.cu           AdamW; sum_squares, scale, EMA
//   cpu_backend.cc      backend.cu         the Backend binding (and, on CPU, the
//                                          reference switch and CPU features)
// CPU only: peak.cc (FMA peak), scratch.cc/.h (per-thread scratch), vec.h (SIMD math),
// common.h (grains and blocked sums of the op families), kernel_device.h (the device a
// kernel's workspace is counted on: cpu or a simulated cpu:N). CUDA only: runtime.cu (streams,
// caching allocator), common.cuh, mma.cuh.
#pragma once
#include <cstdint>

#include "../core/backend.h"

namespace ts {
namespace cpu {

// ---- switches and CPU features (cpu_backend.cc) ---------------------------------------
bool reference_kernels();
void set_reference_kernels(bool on);

struct Features {
  bool avx2 = false, fma = false, avx512f = false, avx512bw = false, avx512_bf16 = false;
};
const Features& features();

// ---- copies and elementwise math (elementwise.cc) -------------------------------------
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

// ---- reductions (reduce.cc) -----------------------------------------------------------
void reduce(ReduceOp op, Tensor& out, const Tensor& x, int64_t outer, int64_t n, int64_t inner);

// ---- GEMM (gemm.cc) -------------------------------------------------------------------
// Row-major single GEMM: C = A' B' + beta C (+ bias), A' = trans_a ? A^T : A ([M, K]), B'
// likewise ([K, N]). beta is 0 (overwrite) or 1 (accumulate). bias (optional, [N], with
// beta = 0) is added to every row: each C tile starts from it in L1, so the bias costs
// no pass of its own over C (nn.Linear's forward).
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
          int64_t ldb, float* C, int64_t ldc, float beta, const float* bias = nullptr);
void gemm_reference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float* C, int64_t ldc, float beta);
// gemm's cache blocking in floats (K slab, rows of A per packed block, B columns one A
// panel sweeps, packed-B budget); set_gemm_blocking is for tuning runs and tests (a
// value <= 0 restores that field's default).
struct GemmBlocking {
  int64_t kc, mc, nc_chunk, pack_budget;
};
GemmBlocking gemm_blocking();
void set_gemm_blocking(const GemmBlocking& b);
// Building blocks of gemm for fused kernels that pack their own operands (conv3d).
// fn computes one MR x NR tile: C (+ C when acc) = a [kc][MR] x b [kc][NR] and stores
// its top-left mr x nr part at C (row stride ldc). b must be 64-byte aligned.
struct MicroKernel {
  void (*fn)(int64_t kc, const float* a, const float* b, float* C, int64_t ldc, int mr, int nr, bool acc);
  int MR, NR;
  // The same tile with B rows read in place (convolutions, whose B rows are shifted input
  // rows), at offsets from a base per segment of kOffsetLanes lanes: step
  // p takes lanes 0-15 at base + off[p] and, where NR is 32 (AVX-512), lanes 16-31 at
  // base1 + off[p] (any alignment), all of them read; callers make every row lie inside
  // one buffer (conv3d pads its input first), and a segment can start anywhere (two
  // output row pieces of 16). Set on AVX-512 and AVX2; null on scalar builds.
  static constexpr int kOffsetLanes = 16;
  // off[] must hold this many readable entries past step kc - 1: the AVX-512 form reads
  // offsets ahead to prefetch those rows (conv3d's tap_offsets pads with zeros).
  static constexpr int kOffsetSlack = 32;
  void (*offsets)(int64_t kc, const float* a, const float* base, const float* base1, const int32_t* off, float* C,
                  int64_t ldc, int mr, int nr, bool acc);
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
// Test hook: false makes the forward (and the conv-shaped dinp) pack its column panels,
// and the weight gradient build its columns, even where they would read them in place
// from a padded window (unit W stride; 16 | W' for the forward). Returns the previous
// setting.
bool set_conv3d_direct(bool on);

// ---- machine peak (peak.cc) -----------------------------------------------------------
// Peak fp32 FMA throughput of this machine on num_threads() threads, in GFLOP/s.
double measure_peak_gflops(double seconds);

// The kernels of Backend's nn block, softmax.cc to patchify.cc below, keep Backend's
// signatures and memory contract (every output and gradient is overwritten).
// ---- softmax (softmax.cc) -------------------------------------------------------------
void softmax_forward(float* out, const float* inp, int64_t outer, int64_t n, int64_t inner, bool log);
void softmax_backward(float* dinp, const float* dout, const float* out, int64_t outer, int64_t n, int64_t inner,
                      bool log);
// ---- norms (norm.cc) ------------------------------------------------------------------
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                       int64_t M, int64_t N, float eps);
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t M, int64_t N);
void groupnorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                       int64_t B, int64_t C, int64_t S, int64_t G, float eps);
void groupnorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t B, int64_t C, int64_t S,
                        int64_t G);
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t M, int64_t N, float eps);
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t M, int64_t N);
// ---- adaLN modulate (modulate.cc) -----------------------------------------------------
void modulate_forward(float* out, const float* inp, const float* shift, const float* scale, int64_t B, int64_t N,
                      int64_t D);
void modulate_backward(float* dinp, float* dshift, float* dscale, const float* dout, const float* inp,
                       const float* scale, int64_t B, int64_t N, int64_t D);
// ---- embedding (embedding.cc) ---------------------------------------------------------
void embedding_forward(float* out, const int64_t* ids, const float* weight, int64_t n, int64_t V, int64_t D);
void embedding_backward(float* dweight, const float* dout, const int64_t* ids, int64_t n, int64_t V, int64_t D);
// ---- dropout (dropout.cc) -------------------------------------------------------------
void dropout_forward(float* out, const float* inp, int64_t n, float p, uint64_t seed, uint64_t offset);
void dropout_backward(float* dinp, const float* dout, int64_t n, float p, uint64_t seed, uint64_t offset);
// ---- losses and Gaussian KL (loss.cc) -------------------------------------------------
void loss_forward(LossKind kind, Reduction r, float* out, const float* a, const float* b, int64_t n);
void loss_backward(LossKind kind, Reduction r, float* da, float* db, const float* dout, const float* a, const float* b,
                   int64_t n);
void gaussian_kl_forward(float* out, const float* mean, const float* logvar, int64_t B, int64_t n);
void gaussian_kl_backward(float* dmean, float* dlogvar, const float* dout, const float* mean, const float* logvar,
                          int64_t B, int64_t n);
// ---- nearest upsampling (upsample.cc) -------------------------------------------------
void upsample_nearest3d_forward(float* out, const float* inp, int64_t BC, int64_t T, int64_t H, int64_t W, int64_t st,
                                int64_t sh, int64_t sw);
void upsample_nearest3d_backward(float* dinp, const float* dout, int64_t BC, int64_t T, int64_t H, int64_t W,
                                 int64_t st, int64_t sh, int64_t sw);
// ---- patchify / unpatchify (patchify.cc) ----------------------------------------------
void patchify(float* tokens, const float* x, const int64_t xs[5], int64_t B, int64_t C, int64_t T, int64_t H,
              int64_t W, int64_t pt, int64_t ph, int64_t pw);
void unpatchify(float* x, const float* tokens, const int64_t ts[3], int64_t B, int64_t C, int64_t T, int64_t H,
                int64_t W, int64_t pt, int64_t ph, int64_t pw);

// ---- attention (attention.cc) ------------------------------------------------------
// Flash-style scaled dot-product attention; layouts and masks in core/attention.h.
// Forward writes out and lse; backward overwrites dq, dk, dv (contiguous).
void attention_forward(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                       const AttentionParams& p);
void attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q, const Tensor& k,
                        const Tensor& v, const Tensor& out, const Tensor& lse, const AttentionParams& p);
// Test hook: caps the vector width of the optimized kernels (16 AVX-512, 8 AVX2,
// 4 portable; 0 = the best the CPU has) so every path can be checked on one machine.
// Returns the width now in use.
int attention_set_max_width(int width);

// ---- optimizers (adamw.cc) ------------------------------------------------------------
// One AdamW step in place over n contiguous float32 elements (torch.optim.AdamW's
// operation order; see core/optim.h). param, m, v: read and overwritten; grad: read.
void adamw(float* param, float* m, float* v, const float* grad, int64_t n, double lr, double beta1, double beta2,
           double eps, double weight_decay, double bias_correction1, double bias_correction2);
void adamw_reference(float* param, float* m, float* v, const float* grad, int64_t n, double lr, double beta1,
                     double beta2, double eps, double weight_decay, double bias_correction1, double bias_correction2);
// The training-loop helpers of core/optim.h over n contiguous floats (the reference
// loops under set_reference_kernels(true)). sum_squares is the same for any thread count.
double sum_squares(const float* x, int64_t n);
void scale_inplace(float* x, int64_t n, float s);
void ema_update(float* shadow, const float* param, int64_t n, float decay, float one_minus_decay);

// ---- fused norms (fused_norm.cc; entry points in core/fused_norm.h) -------------------
// Same signatures and memory contract as Backend's fused-norm block (overwrite).
void groupnorm_silu_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                            const float* bias, int64_t B, int64_t C, int64_t S, int64_t G, float eps);
void groupnorm_silu_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                             const float* weight, const float* bias, const float* mean, const float* rstd, int64_t B,
                             int64_t C, int64_t S, int64_t G);
// Per frame: inp [B, C, T, S], groups per (b, t); mean, rstd [B*T*G] in (b, t, g) order.
void groupnorm_silu_frames_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                                   const float* bias, int64_t B, int64_t C, int64_t T, int64_t S, int64_t G, float eps);
void groupnorm_silu_frames_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                                    const float* weight, const float* bias, const float* mean, const float* rstd,
                                    int64_t B, int64_t C, int64_t T, int64_t S, int64_t G);
void layernorm_modulate_forward(float* out, float* mean, float* rstd, const float* inp, const float* shift,
                                const float* scale, int64_t B, int64_t N, int64_t D, float eps);
void layernorm_modulate_backward(float* dinp, float* dshift, float* dscale, const float* dout, const float* inp,
                                 const float* scale, const float* mean, const float* rstd, int64_t B, int64_t N,
                                 int64_t D);

// ---- SIMD width for the vec.h kernels (elementwise.cc; used by fused_norm.cc too) -----
// Test hook: caps the vector width (16 AVX-512, 8 AVX2, 4 portable; 0 = the best the CPU
// has) so every path can be checked on one machine. Returns the width now in use.
int simd_set_max_width(int width);
int simd_width();  // the width in use

}  // namespace cpu
}  // namespace ts
