// tessera core: the kernel interface a device backend implements (the CPU backend
// always; the CUDA backend when linked). Core ops validate and allocate, then call
// these with outputs preallocated and contiguous. Inputs may be strided (including
// stride-0 broadcast views) unless a comment says contiguous. A backend that lacks a
// kernel inherits the default, which throws "<op>: not supported on <device>".
#pragma once
#include <string>

#include "nn.h"
#include "fused_norm.h"
#include "attention.h"
#include "conv.h"
#include "ops.h"

namespace ts {

// The kernel families of the Backend interface, one per group of methods below. A
// backend answers supports() from an explicit list, so callers (the op table) learn
// what it lacks before running anything, never from an error message.
enum class OpKind {
  Copy,             // copy, copy_from_host, copy_to_host
  Fill,             // fill, arange
  Random,           // rand, randn
  Unary,            // unary, unary_backward
  Binary,           // binary, binary_scalar
  Reduce,           // reduce
  Matmul,           // gemm, linear_forward
  Softmax,          // softmax_forward / _backward (log too)
  LayerNorm,        // layernorm_forward / _backward
  GroupNorm,        // groupnorm_forward / _backward
  RmsNorm,          // rmsnorm_forward / _backward
  Modulate,         // modulate_forward / _backward
  Embedding,        // embedding_forward / _backward
  Dropout,          // dropout_forward / _backward
  Loss,             // loss_forward / _backward
  GaussianKL,       // gaussian_kl_forward / _backward
  Interpolate,      // upsample_nearest3d_forward / _backward
  Patchify,         // patchify, unpatchify
  Attention,        // attention_forward / _backward
  Conv3d,           // conv3d_forward / _backward
  AdamW,            // adamw
  TrainingHelpers,  // the training-loop helpers (sum_squares, scale_inplace, ema_update, ...)
  GroupNormSiLU,    // groupnorm_silu_forward / _backward
  LayerNormModulate,  // layernorm_modulate_forward / _backward
  GroupNormSiLUFrames,  // groupnorm_silu_frames_forward / _backward (per-frame groups)
};

inline const char* op_kind_name(OpKind k) {
  switch (k) {
    case OpKind::Copy: return "copy";
    case OpKind::Fill: return "fill";
    case OpKind::Random: return "random";
    case OpKind::Unary: return "unary";
    case OpKind::Binary: return "binary";
    case OpKind::Reduce: return "reduce";
    case OpKind::Matmul: return "matmul";
    case OpKind::Softmax: return "softmax";
    case OpKind::LayerNorm: return "layerNorm";
    case OpKind::GroupNorm: return "groupNorm";
    case OpKind::RmsNorm: return "rmsNorm";
    case OpKind::Modulate: return "modulate";
    case OpKind::Embedding: return "embedding";
    case OpKind::Dropout: return "dropout";
    case OpKind::Loss: return "loss";
    case OpKind::GaussianKL: return "gaussianKL";
    case OpKind::Interpolate: return "interpolate";
    case OpKind::Patchify: return "patchify";
    case OpKind::Attention: return "scaledDotProductAttention";
    case OpKind::Conv3d: return "conv3d";
    case OpKind::AdamW: return "adamw";
    case OpKind::TrainingHelpers: return "training helpers";
    case OpKind::GroupNormSiLU: return "groupNormSiLU";
    case OpKind::LayerNormModulate: return "layerNormModulate";
    case OpKind::GroupNormSiLUFrames: return "groupNormSiLU (per frame)";
  }
  return "op";
}

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  // Whether this backend has the kernels of family op for tensors of dtype dt (the
  // dtype the kernels read and write: float32 for every compute family, any storage
  // dtype for Copy and Fill). Each backend answers from an explicit list.
  virtual bool supports(OpKind op, DType dt) const = 0;

  // data movement within the backend's device (dst and src of one shape)
  virtual void copy(Tensor& dst, const Tensor& src) { unsupported("copy"); }
  // host <-> device, contiguous on both sides, same dtype
  virtual void copy_from_host(Tensor& dst, const void* src) { unsupported("copy_from_host"); }
  virtual void copy_to_host(void* dst, const Tensor& src) { unsupported("copy_to_host"); }
  virtual void fill(Tensor& dst, double value) { unsupported("fill"); }
  virtual void arange(Tensor& dst, double start, double step) { unsupported("arange"); }
  virtual void rand(Tensor& dst, uint64_t seed, uint64_t offset) { unsupported("rand"); }
  virtual void randn(Tensor& dst, uint64_t seed, uint64_t offset) { unsupported("randn"); }

  // elementwise (float32)
  virtual void unary(UnaryOp op, Tensor& out, const Tensor& x) { unsupported(unary_name(op)); }
  virtual void unary_backward(UnaryOp op, Tensor& dinp, const Tensor& dout, const Tensor& x, const Tensor& out) {
    unsupported(unary_name(op));
  }
  // a and b are views already broadcast to out's shape
  virtual void binary(BinaryOp op, Tensor& out, const Tensor& a, const Tensor& b) { unsupported(binary_name(op)); }
  virtual void binary_scalar(BinaryOp op, Tensor& out, const Tensor& a, double s, bool scalar_first) {
    unsupported(binary_name(op));
  }

  // x contiguous [outer, n, inner]; out [outer, inner] = op over n
  virtual void reduce(ReduceOp op, Tensor& out, const Tensor& x, int64_t outer, int64_t n, int64_t inner) {
    unsupported("reduce");
  }

  // C[b] = A[b] @ B[b] for b < batch, row-major float32. A[b] is [M, K] at a + b*stride_a
  // with leading dim lda (or [K, M] when trans_a), likewise B; C contiguous [batch, M, N].
  // beta = 0 overwrites C, beta = 1 accumulates.
  virtual void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* a, int64_t lda,
                    int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b, float* c, int64_t ldc,
                    int64_t stride_c, int64_t batch, float beta) {
    unsupported("matmul");
  }

  // out [M, N] = inp [M, K] @ weight [N, K]^T (+ bias [N] on every row; bias may be null):
  // nn.Linear's forward. All contiguous.
  virtual void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t M,
                              int64_t K, int64_t N) {
    unsupported("linear");
  }

  // ---- nn family (native/core/nn.h) ------------------------------------------------------
  // llm.c argument order: outputs, gradients, inputs, saved stats, sizes. All pointers are
  // float32 and contiguous unless a stride argument says otherwise. Every gradient output
  // (activation and parameter alike) is overwritten, never accumulated: the core allocates
  // it fresh, and the autograd engine sums gradients across uses.

  // x viewed as [outer, n, inner]; softmax (or log-softmax when log) over n.
  virtual void softmax_forward(float* out, const float* inp, int64_t outer, int64_t n, int64_t inner, bool log) {
    unsupported(log ? "logSoftmax" : "softmax");
  }
  virtual void softmax_backward(float* dinp, const float* dout, const float* out, int64_t outer, int64_t n,
                                int64_t inner, bool log) {
    unsupported(log ? "logSoftmax" : "softmax");
  }
  // inp [M, N], weight/bias [N] or null; mean, rstd [M].
  virtual void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                                 const float* bias, int64_t M, int64_t N, float eps) {
    unsupported("layerNorm");
  }
  // dweight/dbias may be null (not wanted).
  virtual void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                                  const float* weight, const float* mean, const float* rstd, int64_t M, int64_t N) {
    unsupported("layerNorm");
  }
  // inp [B, C, S] with S the product of spatial dims, G groups of C/G channels;
  // weight/bias [C] or null; mean, rstd [B, G].
  virtual void groupnorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                                 const float* bias, int64_t B, int64_t C, int64_t S, int64_t G, float eps) {
    unsupported("groupNorm");
  }
  virtual void groupnorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                                  const float* weight, const float* mean, const float* rstd, int64_t B, int64_t C,
                                  int64_t S, int64_t G) {
    unsupported("groupNorm");
  }
  // inp [M, N], weight [N] or null; rstd [M].
  virtual void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t M, int64_t N,
                               float eps) {
    unsupported("rmsNorm");
  }
  virtual void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                                const float* rstd, int64_t M, int64_t N) {
    unsupported("rmsNorm");
  }
  // inp [B, N, D], shift/scale [B, D].
  virtual void modulate_forward(float* out, const float* inp, const float* shift, const float* scale, int64_t B,
                                int64_t N, int64_t D) {
    unsupported("modulate");
  }
  virtual void modulate_backward(float* dinp, float* dshift, float* dscale, const float* dout, const float* inp,
                                 const float* scale, int64_t B, int64_t N, int64_t D) {
    unsupported("modulate");
  }
  // ids [n] (already checked to lie in [0, V)), weight/dweight [V, D], out/dout [n, D].
  virtual void embedding_forward(float* out, const int64_t* ids, const float* weight, int64_t n, int64_t V,
                                 int64_t D) {
    unsupported("embedding");
  }
  virtual void embedding_backward(float* dweight, const float* dout, const int64_t* ids, int64_t n, int64_t V,
                                  int64_t D) {
    unsupported("embedding");
  }
  // Element i is kept (and scaled by 1/(1-p)) when philox_uniform(seed, offset, i) >= p.
  virtual void dropout_forward(float* out, const float* inp, int64_t n, float p, uint64_t seed, uint64_t offset) {
    unsupported("dropout");
  }
  virtual void dropout_backward(float* dinp, const float* dout, int64_t n, float p, uint64_t seed, uint64_t offset) {
    unsupported("dropout");
  }
  // a, b [n]; out [n] (None) or [1] (Mean, Sum); dout likewise.
  virtual void loss_forward(LossKind kind, Reduction r, float* out, const float* a, const float* b, int64_t n) {
    unsupported(loss_name(kind));
  }
  virtual void loss_backward(LossKind kind, Reduction r, float* da, float* db, const float* dout, const float* a,
                             const float* b, int64_t n) {
    unsupported(loss_name(kind));
  }
  // mean, logvar [B, n/B]; out, dout [1].
  virtual void gaussian_kl_forward(float* out, const float* mean, const float* logvar, int64_t B, int64_t n) {
    unsupported("gaussianKL");
  }
  virtual void gaussian_kl_backward(float* dmean, float* dlogvar, const float* dout, const float* mean,
                                    const float* logvar, int64_t B, int64_t n) {
    unsupported("gaussianKL");
  }
  // inp [BC, T, H, W] -> out [BC, T*st, H*sh, W*sw].
  virtual void upsample_nearest3d_forward(float* out, const float* inp, int64_t BC, int64_t T, int64_t H, int64_t W,
                                          int64_t st, int64_t sh, int64_t sw) {
    unsupported("interpolate");
  }
  virtual void upsample_nearest3d_backward(float* dinp, const float* dout, int64_t BC, int64_t T, int64_t H,
                                           int64_t W, int64_t st, int64_t sh, int64_t sw) {
    unsupported("interpolate");
  }
  // x [B, C, T, H, W] with element strides xs (any layout) -> tokens [B, N, F] contiguous.
  // Also the backward of unpatchify.
  virtual void patchify(float* tokens, const float* x, const int64_t xs[5], int64_t B, int64_t C, int64_t T,
                        int64_t H, int64_t W, int64_t pt, int64_t ph, int64_t pw) {
    unsupported("patchify");
  }
  // tokens [B, N, F] with element strides ts (any layout) -> x [B, C, T, H, W] contiguous.
  // Also the backward of patchify.
  virtual void unpatchify(float* x, const float* tokens, const int64_t ts[3], int64_t B, int64_t C, int64_t T,
                          int64_t H, int64_t W, int64_t pt, int64_t ph, int64_t pw) {
    unsupported("unpatchify");
  }
  // ---- end of nn family ------------------------------------------------------------------
  // ---- attention (flash-style; native/core/attention.h) -------------------------------
  // q [B, Nq, H, D], k and v [B, Nk, H, D]: unit stride on D, other strides free.
  // out [B, Nq, H, D] and lse [B, H, Nq] are preallocated and contiguous (overwritten).
  virtual void attention_forward(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                                 const AttentionParams& p) {
    unsupported("scaledDotProductAttention");
  }
  // dq, dk, dv contiguous, shapes of q, k, v, overwritten. dout like q (unit stride on
  // D); out and lse contiguous, as returned by attention_forward with the same params.
  virtual void attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q,
                                  const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                                  const AttentionParams& p) {
    unsupported("scaledDotProductAttention");
  }

  // ---- conv3d (geometry and layouts in core/conv.h) ----------------------------------
  // inp [B, Cin, T, H, W], weight [Cout, Cin, kt, kh, kw], bias [Cout] (or undefined):
  // all contiguous. out [B, Cout, T', H', W'] preallocated contiguous, overwritten.
  virtual void conv3d_forward(Tensor& out, const Tensor& inp, const Tensor& weight, const Tensor& bias,
                              const Conv3dGeometry& g) {
    unsupported("conv3d");
  }
  // dinp / dweight / dbias: preallocated contiguous, or undefined when not wanted.
  // Memory contract: all three are overwritten (=), never accumulated; the autograd
  // engine does the accumulation. dout, inp, weight contiguous.
  virtual void conv3d_backward(Tensor& dinp, Tensor& dweight, Tensor& dbias, const Tensor& dout, const Tensor& inp,
                               const Tensor& weight, const Conv3dGeometry& g) {
    unsupported("conv3d");
  }

  // ---- optimizers (entry points in optim.h) ------------------------------------------
  // One AdamW step over n = param.numel() elements; param, m, v, grad are float32 and
  // contiguous. param, m, v are read and overwritten in place; grad is only read.
  // bias_correction1/2 = 1 - beta^step (computed in double by the entry point).
  virtual void adamw(Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, double lr, double beta1, double beta2,
                     double eps, double weight_decay, double bias_correction1, double bias_correction2) {
    unsupported("adamw");
  }
  // Training-loop helpers over one contiguous float32 buffer of n elements (the entry
  // points in optim.h loop over lists of tensors):
  //   sum_squares: *acc += sum of x^2 in double, the same value for any thread count; acc
  //     is one double in device memory (nothing is read back to the host);
  //   clip_scale: x *= max_norm / (sqrt(*sumsq) + 1e-6) when that is below 1 and the norm
  //     is finite, else x is left as it is; sumsq is one double in device memory;
  //   scale_inplace: x *= s;  ema_update: shadow = decay * shadow + one_minus_decay * param.
  virtual void sum_squares(double* acc, const float* x, int64_t n) { unsupported("sumOfSquares"); }
  virtual void clip_scale(float* x, int64_t n, const double* sumsq, double max_norm) { unsupported("clipByNorm_"); }
  virtual void scale_inplace(float* x, int64_t n, float s) { unsupported("scale_"); }
  virtual void ema_update(float* shadow, const float* param, int64_t n, float decay, float one_minus_decay) {
    unsupported("emaUpdate");
  }

  // ---- fused norms (native/core/fused_norm.h) -----------------------------------------
  // Pointers float32 and contiguous; llm.c argument order; every output and gradient is
  // overwritten. inp [B, C, S] with G groups; weight/bias [C] or null; mean, rstd [B*G].
  virtual void groupnorm_silu_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                                      const float* bias, int64_t B, int64_t C, int64_t S, int64_t G, float eps) {
    unsupported("groupNormSiLU");
  }
  // dweight/dbias null when not wanted; bias (or null) re-forms the pre-activation.
  virtual void groupnorm_silu_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                                       const float* weight, const float* bias, const float* mean, const float* rstd,
                                       int64_t B, int64_t C, int64_t S, int64_t G) {
    unsupported("groupNormSiLU");
  }
  // Per frame: inp [B, C, T, S] (S = H*W), one group per (b, t, g); mean, rstd [B*T*G] in
  // (b, t, g) order. A backend without it gets the frames as [B*T, C, S] copies from the core.
  virtual void groupnorm_silu_frames_forward(float* out, float* mean, float* rstd, const float* inp,
                                             const float* weight, const float* bias, int64_t B, int64_t C, int64_t T,
                                             int64_t S, int64_t G, float eps) {
    unsupported("groupNormSiLU");
  }
  virtual void groupnorm_silu_frames_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                                              const float* inp, const float* weight, const float* bias,
                                              const float* mean, const float* rstd, int64_t B, int64_t C, int64_t T,
                                              int64_t S, int64_t G) {
    unsupported("groupNormSiLU");
  }
  // inp [B, N, D], shift/scale [B, D]; mean, rstd [B*N].
  virtual void layernorm_modulate_forward(float* out, float* mean, float* rstd, const float* inp, const float* shift,
                                          const float* scale, int64_t B, int64_t N, int64_t D, float eps) {
    unsupported("layerNormModulate");
  }
  // dinp [B, N, D], dshift/dscale [B, D].
  virtual void layernorm_modulate_backward(float* dinp, float* dshift, float* dscale, const float* dout,
                                           const float* inp, const float* scale, const float* mean, const float* rstd,
                                           int64_t B, int64_t N, int64_t D) {
    unsupported("layerNormModulate");
  }
  // ---- end of fused norms ----------------------------------------------------------------

 protected:
  [[noreturn]] void unsupported(const char* op) const { fail(op, "not supported on ", name()); }
};

Backend& backend_for(Device dev, const char* op);  // throws when the device is not available
void register_backend(DeviceType type, Backend* b);
Backend& cpu_backend();

}  // namespace ts
