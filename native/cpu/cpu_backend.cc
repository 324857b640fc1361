// tessera CPU backend: binds the CPU kernels to the core's Backend interface.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <atomic>
#include <cmath>
#include <cstring>

#include "../core/parallel.h"
#include "cpu.h"

namespace ts {
namespace cpu {

namespace {
std::atomic<bool> g_reference{false};
}
bool reference_kernels() { return g_reference.load(); }
void set_reference_kernels(bool on) { g_reference = on; }

const Features& features() {
  static const Features f = [] {
    Features r;
    __builtin_cpu_init();
    r.avx2 = __builtin_cpu_supports("avx2");
    r.fma = __builtin_cpu_supports("fma");
    r.avx512f = __builtin_cpu_supports("avx512f");
    r.avx512bw = __builtin_cpu_supports("avx512bw");
#if defined(__GNUC__) && __GNUC__ >= 12
    r.avx512_bf16 = __builtin_cpu_supports("avx512bf16");
#endif
    // TESSERA_CPU_ISA=avx2 or portable: no kernels wider than that, whatever the CPU has
    // (ctest runs the op tables so on an AVX-512 machine, so every path is tested on
    // either CI machine; benchmarks can time the AVX2 paths). Read once, at first use.
    if (const char* isa = std::getenv("TESSERA_CPU_ISA")) {
      const std::string v(isa);
      if (v == "avx2" || v == "portable") {
        r.avx512f = r.avx512bw = r.avx512_bf16 = false;
        if (v == "portable") r.avx2 = r.fma = false;
      } else if (v != "native" && !v.empty()) {
        std::fprintf(stderr, "tessera: TESSERA_CPU_ISA='%s' is not one of native, avx2, portable; using this CPU's widest kernels\n", isa);
      }
    }
    return r;
  }();
  return f;
}

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  // Every family has CPU kernels (reference loops and the optimized path): the CPU is
  // the reference the op table compares other backends with.
  bool supports(OpKind op, DType dt) const override {
    switch (op) {
      case OpKind::Copy:
      case OpKind::Fill:
        return true;  // every storage dtype
      case OpKind::Random:
      case OpKind::Unary:
      case OpKind::Binary:
      case OpKind::Reduce:
      case OpKind::Matmul:
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
      case OpKind::GroupNormSiLUFrames:
        return dt == DType::Float32;
    }
    return false;
  }
  void copy(Tensor& dst, const Tensor& src) override { cpu::copy(dst, src); }
  void copy_from_host(Tensor& dst, const void* src) override { std::memcpy(dst.raw(), src, dst.nbytes()); }
  void copy_to_host(void* dst, const Tensor& src) override { std::memcpy(dst, src.raw(), src.nbytes()); }
  void fill(Tensor& dst, double v) override { cpu::fill(dst, v); }
  void arange(Tensor& dst, double start, double step) override { cpu::arange(dst, start, step); }
  void rand(Tensor& dst, uint64_t seed, uint64_t offset) override { cpu::rand(dst, seed, offset); }
  void randn(Tensor& dst, uint64_t seed, uint64_t offset) override { cpu::randn(dst, seed, offset); }
  void unary(UnaryOp op, Tensor& out, const Tensor& x) override { cpu::unary(op, out, x); }
  void unary_backward(UnaryOp op, Tensor& dinp, const Tensor& dout, const Tensor& x, const Tensor& out) override {
    cpu::unary_backward(op, dinp, dout, x, out);
  }
  void binary(BinaryOp op, Tensor& out, const Tensor& a, const Tensor& b) override { cpu::binary(op, out, a, b); }
  void binary_scalar(BinaryOp op, Tensor& out, const Tensor& a, double s, bool first) override {
    cpu::binary_scalar(op, out, a, s, first);
  }
  void reduce(ReduceOp op, Tensor& out, const Tensor& x, int64_t outer, int64_t n, int64_t inner) override {
    cpu::reduce(op, out, x, outer, n, inner);
  }
  void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, int64_t sa, const float* b,
            int64_t ldb, int64_t sb, float* c, int64_t ldc, int64_t sc, int64_t batch, float beta) override {
    for (int64_t i = 0; i < batch; ++i) cpu::gemm(ta, tb, M, N, K, a + i * sa, lda, b + i * sb, ldb, c + i * sc, ldc, beta);
  }
  void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t M, int64_t K,
                      int64_t N) override {
    cpu::gemm(false, true, M, N, K, inp, K, weight, K, out, N, 0.0f, bias);
  }

  // ---- nn family (softmax.cc, norm.cc, modulate.cc, embedding.cc, dropout.cc, loss.cc, upsample.cc, patchify.cc) --
  void softmax_forward(float* out, const float* inp, int64_t outer, int64_t n, int64_t inner, bool log) override {
    cpu::softmax_forward(out, inp, outer, n, inner, log);
  }
  void softmax_backward(float* dinp, const float* dout, const float* out, int64_t outer, int64_t n, int64_t inner,
                        bool log) override {
    cpu::softmax_backward(dinp, dout, out, outer, n, inner, log);
  }
  void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b,
                         int64_t M, int64_t N, float eps) override {
    cpu::layernorm_forward(out, mean, rstd, inp, w, b, M, N, eps);
  }
  void layernorm_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                          const float* mean, const float* rstd, int64_t M, int64_t N) override {
    cpu::layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, M, N);
  }
  void groupnorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b,
                         int64_t B, int64_t C, int64_t S, int64_t G, float eps) override {
    cpu::groupnorm_forward(out, mean, rstd, inp, w, b, B, C, S, G, eps);
  }
  void groupnorm_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                          const float* mean, const float* rstd, int64_t B, int64_t C, int64_t S, int64_t G) override {
    cpu::groupnorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, B, C, S, G);
  }
  void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* w, int64_t M, int64_t N,
                       float eps) override {
    cpu::rmsnorm_forward(out, rstd, inp, w, M, N, eps);
  }
  void rmsnorm_backward(float* dinp, float* dw, const float* dout, const float* inp, const float* w, const float* rstd,
                        int64_t M, int64_t N) override {
    cpu::rmsnorm_backward(dinp, dw, dout, inp, w, rstd, M, N);
  }
  void modulate_forward(float* out, const float* inp, const float* shift, const float* scale, int64_t B, int64_t N,
                        int64_t D) override {
    cpu::modulate_forward(out, inp, shift, scale, B, N, D);
  }
  void modulate_backward(float* dinp, float* dshift, float* dscale, const float* dout, const float* inp,
                         const float* scale, int64_t B, int64_t N, int64_t D) override {
    cpu::modulate_backward(dinp, dshift, dscale, dout, inp, scale, B, N, D);
  }
  void embedding_forward(float* out, const int64_t* ids, const float* w, int64_t n, int64_t V, int64_t D) override {
    cpu::embedding_forward(out, ids, w, n, V, D);
  }
  void embedding_backward(float* dw, const float* dout, const int64_t* ids, int64_t n, int64_t V, int64_t D) override {
    cpu::embedding_backward(dw, dout, ids, n, V, D);
  }
  void dropout_forward(float* out, const float* inp, int64_t n, float p, uint64_t seed, uint64_t offset) override {
    cpu::dropout_forward(out, inp, n, p, seed, offset);
  }
  void dropout_backward(float* dinp, const float* dout, int64_t n, float p, uint64_t seed, uint64_t offset) override {
    cpu::dropout_backward(dinp, dout, n, p, seed, offset);
  }
  void loss_forward(LossKind k, Reduction r, float* out, const float* a, const float* b, int64_t n) override {
    cpu::loss_forward(k, r, out, a, b, n);
  }
  void loss_backward(LossKind k, Reduction r, float* da, float* db, const float* dout, const float* a, const float* b,
                     int64_t n) override {
    cpu::loss_backward(k, r, da, db, dout, a, b, n);
  }
  void gaussian_kl_forward(float* out, const float* mean, const float* logvar, int64_t B, int64_t n) override {
    cpu::gaussian_kl_forward(out, mean, logvar, B, n);
  }
  void gaussian_kl_backward(float* dmean, float* dlogvar, const float* dout, const float* mean, const float* logvar,
                            int64_t B, int64_t n) override {
    cpu::gaussian_kl_backward(dmean, dlogvar, dout, mean, logvar, B, n);
  }
  void upsample_nearest3d_forward(float* out, const float* inp, int64_t BC, int64_t T, int64_t H, int64_t W,
                                  int64_t st, int64_t sh, int64_t sw) override {
    cpu::upsample_nearest3d_forward(out, inp, BC, T, H, W, st, sh, sw);
  }
  void upsample_nearest3d_backward(float* dinp, const float* dout, int64_t BC, int64_t T, int64_t H, int64_t W,
                                   int64_t st, int64_t sh, int64_t sw) override {
    cpu::upsample_nearest3d_backward(dinp, dout, BC, T, H, W, st, sh, sw);
  }
  void patchify(float* tokens, const float* x, const int64_t xs[5], int64_t B, int64_t C, int64_t T, int64_t H,
                int64_t W, int64_t pt, int64_t ph, int64_t pw) override {
    cpu::patchify(tokens, x, xs, B, C, T, H, W, pt, ph, pw);
  }
  void unpatchify(float* x, const float* tokens, const int64_t tks[3], int64_t B, int64_t C, int64_t T, int64_t H,
                  int64_t W, int64_t pt, int64_t ph, int64_t pw) override {
    cpu::unpatchify(x, tokens, tks, B, C, T, H, W, pt, ph, pw);
  }
  // ---- end of nn family
  // ---- attention --------------------------------------------------------------------
  void attention_forward(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                         const AttentionParams& p) override {
    cpu::attention_forward(out, lse, q, k, v, p);
  }
  void attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q, const Tensor& k,
                          const Tensor& v, const Tensor& out, const Tensor& lse, const AttentionParams& p) override {
    cpu::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, p);
  }
  // ---- conv3d ----
  void conv3d_forward(Tensor& out, const Tensor& inp, const Tensor& weight, const Tensor& bias,
                      const Conv3dGeometry& g) override {
    cpu::conv3d_forward(out, inp, weight, bias, g);
  }
  void conv3d_backward(Tensor& dinp, Tensor& dweight, Tensor& dbias, const Tensor& dout, const Tensor& inp,
                       const Tensor& weight, const Conv3dGeometry& g) override {
    cpu::conv3d_backward(dinp, dweight, dbias, dout, inp, weight, g);
  }
  // ---- optimizers ----
  void adamw(Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, double lr, double beta1, double beta2, double eps,
             double weight_decay, double bc1, double bc2) override {
    cpu::adamw(param.data<float>(), m.data<float>(), v.data<float>(), grad.data<float>(), param.numel(), lr, beta1,
               beta2, eps, weight_decay, bc1, bc2);
  }
  void sum_squares(double* acc, const float* x, int64_t n) override { *acc += cpu::sum_squares(x, n); }
  void clip_scale(float* x, int64_t n, const double* sumsq, double max_norm) override {
    const double norm = std::sqrt(*sumsq);
    const double coef = max_norm / (norm + 1e-6);
    if (std::isfinite(norm) && coef < 1) cpu::scale_inplace(x, n, static_cast<float>(coef));
  }
  void scale_inplace(float* x, int64_t n, float s) override { cpu::scale_inplace(x, n, s); }
  void ema_update(float* shadow, const float* param, int64_t n, float decay, float one_minus_decay) override {
    cpu::ema_update(shadow, param, n, decay, one_minus_decay);
  }
  // ---- fused norms (fused_norm.cc) ----
  void groupnorm_silu_forward(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b,
                              int64_t B, int64_t C, int64_t S, int64_t G, float eps) override {
    cpu::groupnorm_silu_forward(out, mean, rstd, inp, w, b, B, C, S, G, eps);
  }
  void groupnorm_silu_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                               const float* b, const float* mean, const float* rstd, int64_t B, int64_t C, int64_t S,
                               int64_t G) override {
    cpu::groupnorm_silu_backward(dinp, dw, db, dout, inp, w, b, mean, rstd, B, C, S, G);
  }
  void groupnorm_silu_frames_forward(float* out, float* mean, float* rstd, const float* inp, const float* w,
                                     const float* b, int64_t B, int64_t C, int64_t T, int64_t S, int64_t G,
                                     float eps) override {
    cpu::groupnorm_silu_frames_forward(out, mean, rstd, inp, w, b, B, C, T, S, G, eps);
  }
  void groupnorm_silu_frames_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp,
                                      const float* w, const float* b, const float* mean, const float* rstd, int64_t B,
                                      int64_t C, int64_t T, int64_t S, int64_t G) override {
    cpu::groupnorm_silu_frames_backward(dinp, dw, db, dout, inp, w, b, mean, rstd, B, C, T, S, G);
  }
  void layernorm_modulate_forward(float* out, float* mean, float* rstd, const float* inp, const float* shift,
                                  const float* scale, int64_t B, int64_t N, int64_t D, float eps) override {
    cpu::layernorm_modulate_forward(out, mean, rstd, inp, shift, scale, B, N, D, eps);
  }
  void layernorm_modulate_backward(float* dinp, float* dshift, float* dscale, const float* dout, const float* inp,
                                   const float* scale, const float* mean, const float* rstd, int64_t B, int64_t N,
                                   int64_t D) override {
    cpu::layernorm_modulate_backward(dinp, dshift, dscale, dout, inp, scale, mean, rstd, B, N, D);
  }
};

}  // namespace cpu

Backend& cpu_backend() {
  static cpu::CpuBackend b;
  return b;
}

}  // namespace ts
