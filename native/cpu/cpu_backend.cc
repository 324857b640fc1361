// tessera CPU backend: binds the CPU kernels to the core's Backend interface.
#include <atomic>
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
    return r;
  }();
  return f;
}

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }
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
  // ---- optimizers ----
  void adamw(Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, double lr, double beta1, double beta2, double eps,
             double weight_decay, double bc1, double bc2) override {
    cpu::adamw(param.data<float>(), m.data<float>(), v.data<float>(), grad.data<float>(), param.numel(), lr, beta1,
               beta2, eps, weight_decay, bc1, bc2);
  }
};

}  // namespace cpu

Backend& cpu_backend() {
  static cpu::CpuBackend b;
  return b;
}

}  // namespace ts
