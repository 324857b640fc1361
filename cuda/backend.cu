// tessera CUDA backend: binds the CUDA kernels (one family per .cu/.cuh pair in this
// directory) to the core's Backend interface and registers it, with the caching
// allocator, for DeviceType::CUDA. Every kernel is queued on the device's one stream;
// host reads (copy_to_host) synchronize. Ops without a CUDA kernel inherit the
// Backend default, which reports "<op>: not supported on cuda".
#include "adamw.cuh"
#include "attention.cuh"
#include "common.cuh"
#include "conv3d.cuh"
#include "core/backend.h"
#include "dropout.cuh"
#include "elementwise.cuh"
#include "embedding.cuh"
#include "fused_norm.cuh"
#include "gemm.cuh"
#include "loss.cuh"
#include "modulate.cuh"
#include "norm.cuh"
#include "patchify.cuh"
#include "reduce.cuh"
#include "softmax.cuh"
#include "upsample.cuh"

namespace ts {
namespace cuda {

namespace {

class CudaBackend final : public Backend {
 public:
  const char* name() const override { return "cuda"; }
  // Every family below has CUDA kernels; the GEMMs need cuBLAS (a build linked without
  // it still registers the backend, so that "no device" and "not supported" are checked).
  bool supports(OpKind op, DType dt) const override {
    switch (op) {
      case OpKind::Copy:
      case OpKind::Fill:
        return true;  // every storage dtype
      case OpKind::Matmul:
        return dt == DType::Float32 && have_cublas();
      case OpKind::Random:
      case OpKind::Unary:
      case OpKind::Binary:
      case OpKind::Reduce:
      case OpKind::Softmax:
      case OpKind::LayerNorm:
      case OpKind::GroupNorm:
      case OpKind::RmsNorm:
      case OpKind::Modulate:
      case OpKind::Embedding:
      case OpKind::Dropout:
      case OpKind::Loss:
      case OpKind::GaussianKL:
      case OpKind::Interpolate:
      case OpKind::Patchify:
      case OpKind::Attention:
      case OpKind::Conv3d:
      case OpKind::AdamW:
      case OpKind::TrainingHelpers:
      case OpKind::GroupNormSiLU:
      case OpKind::LayerNormModulate:
        return dt == DType::Float32;
    }
    return false;
  }

  // ---- data movement -------------------------------------------------------------------
  void copy(Tensor& dst, const Tensor& src) override { cuda::copy(dst, src); }
  void copy_from_host(Tensor& dst, const void* src) override {
    if (!dst.nbytes()) return;
    int dev = dst.device().index;
    cudaStream_t s = prepare(dst);
    check(cudaMemcpyAsync(dst.raw(), src, dst.nbytes(), cudaMemcpyHostToDevice, s), "copy");
    synchronize(dev);  // the host buffer may be freed right after
  }
  void copy_to_host(void* dst, const Tensor& src) override {
    if (!src.nbytes()) return;
    int dev = src.device().index;
    cudaStream_t s = prepare(src);
    check(cudaMemcpyAsync(dst, src.raw(), src.nbytes(), cudaMemcpyDeviceToHost, s), "copy");
    synchronize(dev);
  }
  void fill(Tensor& dst, double v) override { cuda::fill(dst, v); }
  void arange(Tensor& dst, double start, double step) override { cuda::arange(dst, start, step); }
  void rand(Tensor& dst, uint64_t seed, uint64_t offset) override { cuda::rand(dst, seed, offset, false); }
  void randn(Tensor& dst, uint64_t seed, uint64_t offset) override { cuda::rand(dst, seed, offset, true); }

  // ---- elementwise, reductions, GEMM ---------------------------------------------------
  void unary(UnaryOp op, Tensor& out, const Tensor& x) override { cuda::unary(op, out, x); }
  void unary_backward(UnaryOp op, Tensor& dinp, const Tensor& dout, const Tensor& x, const Tensor& out) override {
    cuda::unary_backward(op, dinp, dout, x, out);
  }
  void binary(BinaryOp op, Tensor& out, const Tensor& a, const Tensor& b) override { cuda::binary(op, out, a, b); }
  void binary_scalar(BinaryOp op, Tensor& out, const Tensor& a, double s, bool first) override {
    cuda::binary_scalar(op, out, a, s, first);
  }
  void reduce(ReduceOp op, Tensor& out, const Tensor& x, int64_t outer, int64_t n, int64_t inner) override {
    cuda::reduce(op, out, x, outer, n, inner);
  }
  void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, int64_t sa, const float* b,
            int64_t ldb, int64_t sb, float* c, int64_t ldc, int64_t sc, int64_t batch, float beta) override {
    cuda::gemm(ta, tb, M, N, K, a, lda, sa, b, ldb, sb, c, ldc, sc, batch, beta);
  }
  void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t M, int64_t K,
                      int64_t N) override {
    cuda::linear_forward(out, inp, weight, bias, M, K, N);
  }

  // ---- nn family ---------------------------------------------------------------------------
  void softmax_forward(float* out, const float* inp, int64_t outer, int64_t n, int64_t inner, bool log) override {
    cuda::softmax_forward(out, inp, outer, n, inner, log);
  }
  void softmax_backward(float* dinp, const float* dout, const float* out, int64_t outer, int64_t n, int64_t inner,
                        bool log) override {
    cuda::softmax_backward(dinp, dout, out, outer, n, inner, log);
  }
  void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b,
                         int64_t M, int64_t N, float eps) override {
    cuda::layernorm_forward(out, mean, rstd, inp, w, b, M, N, eps);
  }
  void layernorm_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                          const float* mean, const float* rstd, int64_t M, int64_t N) override {
    cuda::layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, M, N);
  }
  void groupnorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b,
                         int64_t B, int64_t C, int64_t S, int64_t G, float eps) override {
    cuda::groupnorm_forward(out, mean, rstd, inp, w, b, B, C, S, G, eps);
  }
  void groupnorm_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                          const float* mean, const float* rstd, int64_t B, int64_t C, int64_t S, int64_t G) override {
    cuda::groupnorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, B, C, S, G);
  }
  void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* w, int64_t M, int64_t N,
                       float eps) override {
    cuda::rmsnorm_forward(out, rstd, inp, w, M, N, eps);
  }
  void rmsnorm_backward(float* dinp, float* dw, const float* dout, const float* inp, const float* w, const float* rstd,
                        int64_t M, int64_t N) override {
    cuda::rmsnorm_backward(dinp, dw, dout, inp, w, rstd, M, N);
  }
  void modulate_forward(float* out, const float* inp, const float* shift, const float* scale, int64_t B, int64_t N,
                        int64_t D) override {
    cuda::modulate_forward(out, inp, shift, scale, B, N, D);
  }
  void modulate_backward(float* dinp, float* dshift, float* dscale, const float* dout, const float* inp,
                         const float* scale, int64_t B, int64_t N, int64_t D) override {
    cuda::modulate_backward(dinp, dshift, dscale, dout, inp, scale, B, N, D);
  }
  void embedding_forward(float* out, const int64_t* ids, const float* w, int64_t n, int64_t V, int64_t D) override {
    cuda::embedding_forward(out, ids, w, n, V, D);
  }
  void embedding_backward(float* dw, const float* dout, const int64_t* ids, int64_t n, int64_t V, int64_t D) override {
    cuda::embedding_backward(dw, dout, ids, n, V, D);
  }
  void dropout_forward(float* out, const float* inp, int64_t n, float p, uint64_t seed, uint64_t offset) override {
    cuda::dropout_forward(out, inp, n, p, seed, offset);
  }
  void dropout_backward(float* dinp, const float* dout, int64_t n, float p, uint64_t seed, uint64_t offset) override {
    cuda::dropout_backward(dinp, dout, n, p, seed, offset);
  }
  void loss_forward(LossKind k, Reduction r, float* out, const float* a, const float* b, int64_t n) override {
    cuda::loss_forward(k, r, out, a, b, n);
  }
  void loss_backward(LossKind k, Reduction r, float* da, float* db, const float* dout, const float* a, const float* b,
                     int64_t n) override {
    cuda::loss_backward(k, r, da, db, dout, a, b, n);
  }
  void gaussian_kl_forward(float* out, const float* mean, const float* logvar, int64_t B, int64_t n) override {
    cuda::gaussian_kl_forward(out, mean, logvar, B, n);
  }
  void gaussian_kl_backward(float* dmean, float* dlogvar, const float* dout, const float* mean, const float* logvar,
                            int64_t B, int64_t n) override {
    cuda::gaussian_kl_backward(dmean, dlogvar, dout, mean, logvar, B, n);
  }
  void upsample_nearest3d_forward(float* out, const float* inp, int64_t BC, int64_t T, int64_t H, int64_t W,
                                  int64_t st, int64_t sh, int64_t sw) override {
    cuda::upsample_nearest3d_forward(out, inp, BC, T, H, W, st, sh, sw);
  }
  void upsample_nearest3d_backward(float* dinp, const float* dout, int64_t BC, int64_t T, int64_t H, int64_t W,
                                   int64_t st, int64_t sh, int64_t sw) override {
    cuda::upsample_nearest3d_backward(dinp, dout, BC, T, H, W, st, sh, sw);
  }
  void patchify(float* tokens, const float* x, const int64_t xs[5], int64_t B, int64_t C, int64_t T, int64_t H,
                int64_t W, int64_t pt, int64_t ph, int64_t pw) override {
    cuda::patchify(tokens, x, xs, B, C, T, H, W, pt, ph, pw);
  }
  void unpatchify(float* x, const float* tokens, const int64_t ts[3], int64_t B, int64_t C, int64_t T, int64_t H,
                  int64_t W, int64_t pt, int64_t ph, int64_t pw) override {
    cuda::unpatchify(x, tokens, ts, B, C, T, H, W, pt, ph, pw);
  }

  // ---- attention, conv3d, optimizers ---------------------------------------------------
  void attention_forward(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                         const AttentionParams& p) override {
    cuda::attention_forward(out, lse, q, k, v, p);
  }
  void attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q, const Tensor& k,
                          const Tensor& v, const Tensor& out, const Tensor& lse, const AttentionParams& p) override {
    cuda::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, p);
  }
  void conv3d_forward(Tensor& out, const Tensor& inp, const Tensor& weight, const Tensor& bias,
                      const Conv3dGeometry& g) override {
    cuda::conv3d_forward(out, inp, weight, bias, g);
  }
  void conv3d_backward(Tensor& dinp, Tensor& dweight, Tensor& dbias, const Tensor& dout, const Tensor& inp,
                       const Tensor& weight, const Conv3dGeometry& g) override {
    cuda::conv3d_backward(dinp, dweight, dbias, dout, inp, weight, g);
  }
  void adamw(Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, double lr, double beta1, double beta2, double eps,
             double weight_decay, double bc1, double bc2) override {
    Tensor g = grad.contiguous();
    cuda::adamw(param.data<float>(), m.data<float>(), v.data<float>(), g.data<float>(), param.numel(), lr, beta1, beta2,
                eps, weight_decay, bc1, bc2);
  }
  void sum_squares(double* acc, const float* x, int64_t n) override { cuda::sum_squares(acc, x, n); }
  void clip_scale(float* x, int64_t n, const double* sumsq, double max_norm) override {
    cuda::clip_scale(x, n, sumsq, max_norm);
  }
  void scale_inplace(float* x, int64_t n, float s) override { cuda::scale_inplace(x, n, s); }
  void ema_update(float* shadow, const float* param, int64_t n, float decay, float one_minus_decay) override {
    cuda::ema_update(shadow, param, n, decay, one_minus_decay);
  }

  // ---- fused norms ---------------------------------------------------------------------
  void groupnorm_silu_forward(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b,
                              int64_t B, int64_t C, int64_t S, int64_t G, float eps) override {
    cuda::groupnorm_silu_forward(out, mean, rstd, inp, w, b, B, C, S, G, eps);
  }
  void groupnorm_silu_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                               const float* b, const float* mean, const float* rstd, int64_t B, int64_t C, int64_t S,
                               int64_t G) override {
    cuda::groupnorm_silu_backward(dinp, dw, db, dout, inp, w, b, mean, rstd, B, C, S, G);
  }
  void layernorm_modulate_forward(float* out, float* mean, float* rstd, const float* inp, const float* shift,
                                  const float* scale, int64_t B, int64_t N, int64_t D, float eps) override {
    cuda::layernorm_modulate_forward(out, mean, rstd, inp, shift, scale, B, N, D, eps);
  }
  void layernorm_modulate_backward(float* dinp, float* dshift, float* dscale, const float* dout, const float* inp,
                                   const float* scale, const float* mean, const float* rstd, int64_t B, int64_t N,
                                   int64_t D) override {
    cuda::layernorm_modulate_backward(dinp, dshift, dscale, dout, inp, scale, mean, rstd, B, N, D);
  }
};

struct Registration {
  Registration() {
    static CudaBackend backend;
    register_backend(DeviceType::CUDA, &backend);
    DeviceAllocator a;
    // The allocator interface does not carry the asking op yet: errors other than out of
    // memory name the allocator.
    a.alloc = [](size_t n, int d, const char* op) { return cached_alloc(n, d, op); };
    a.free = [](void* p, size_t n, int d) { cached_free(p, n, d); };
    a.reserved = [] { return reserved_bytes(); };
    set_device_allocator(DeviceType::CUDA, a);
  }
};

}  // namespace
}  // namespace cuda

// Called by the core (device_info.h) before the first CUDA allocation, dispatch or
// device query. A static object's constructor alone would not do: the backend sits in
// a static library, whose members the linker keeps only when something refers to them.
void cuda_backend_init() { static cuda::Registration once; }

}  // namespace ts
