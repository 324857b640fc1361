// SIMD math (cpu/vec.h) and the elementwise kernels built on it, at every vector width
// this CPU has (16 AVX-512, 8 AVX2, 4 portable): exp, tanh, sigmoid and erf against the
// C library over wide ranges, and each transcendental unary op (forward and backward)
// against the reference loops.
#include <cmath>
#include <limits>
#include <vector>

#include "check.h"
#include "core/ops.h"
#include "cpu/cpu.h"
#include "cpu/vec.h"

using namespace ts;
using namespace ts::cpu;

namespace {

// Worst absolute and relative error of f_vec against f_ref over xs (relative where |ref| > 1e-30).
struct Err {
  double abs = 0, rel = 0;
};

template <int W, typename FV, typename FR>
TS_INLINE Err compare(const std::vector<float>& xs, FV fv, FR fr) {
  Err e;
  for (size_t i = 0; i + W <= xs.size(); i += W) {
    float out[W];
    vstore<W>(out, fv(vload<W>(xs.data() + i)));
    for (int l = 0; l < W; ++l) {
      const double ref = fr(static_cast<double>(xs[i + l])), d = std::fabs(out[l] - ref);
      e.abs = std::max(e.abs, d);
      if (std::fabs(ref) > 1e-30) e.rel = std::max(e.rel, d / std::fabs(ref));
    }
  }
  return e;
}

std::vector<float> grid(float lo, float hi, int n) {
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) v[i] = lo + (hi - lo) * static_cast<float>(i) / static_cast<float>(n - 1);
  return v;
}

// The math functions at width W: always inlined into functions compiled for W's ISA.
template <int W>
TS_INLINE void math_check(const char* isa) {
  {
    using F = typename Vec<W>::F;
    const auto wide = grid(-87.0f, 88.0f, 40000), mid = grid(-9.0f, 9.0f, 40000), small = grid(-1e-3f, 1e-3f, 4000);
    Err ex = compare<W>(wide, [](F x) TS_INLINE_LAMBDA { return vexp<W>(x); }, [](double x) { return std::exp(x); });
    Err th = compare<W>(mid, [](F x) TS_INLINE_LAMBDA { return vtanh<W>(x); }, [](double x) { return std::tanh(x); });
    Err ths = compare<W>(small, [](F x) TS_INLINE_LAMBDA { return vtanh<W>(x); }, [](double x) { return std::tanh(x); });
    Err sg = compare<W>(mid, [](F x) TS_INLINE_LAMBDA { return vsigmoid<W>(x); }, [](double x) { return 1 / (1 + std::exp(-x)); });
    Err ef = compare<W>(mid, [](F x) TS_INLINE_LAMBDA { return verf<W>(x); }, [](double x) { return std::erf(x); });
    std::printf("  %s: exp rel %.2g, tanh abs %.2g (near 0 rel %.2g), sigmoid abs %.2g, erf abs %.2g\n", isa, ex.rel,
                th.abs, ths.rel, sg.abs, ef.abs);
    EXPECT(ex.rel < 4e-7);
    EXPECT(th.abs < 4e-7);
    EXPECT(ths.rel < 4e-7);
    EXPECT(sg.abs < 4e-7);
    EXPECT(ef.abs < 5e-7);  // A&S 7.1.26: 1.5e-7, plus float rounding
  }
  {
    // The tails and special values: exp is exactly 0 below ln(FLT_MIN) and at -inf, the
    // sigmoid saturates to 1 and to ~0 (never negative, never NaN), NaN propagates.
    using F = typename Vec<W>::F;
    const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
    float xs[16] = {-inf, -1000.0f, -100.0f, -88.5f, -87.0f, 87.5f, 100.0f, 1000.0f,
                    inf,  nan,      -0.0f,   0.0f,   30.0f,  -30.0f, 88.0f, -87.4f};
    for (int i0 = 0; i0 < 16; i0 += W) {
      float e[W], sg[W];
      vstore<W>(e, vexp<W>(vload<W>(xs + i0)));
      vstore<W>(sg, vsigmoid<W>(vload<W>(xs + i0)));
      for (int l = 0; l < W; ++l) {
        const float x = xs[i0 + l];
        if (std::isnan(x)) {
          EXPECT(std::isnan(e[l]) && std::isnan(sg[l]));
          continue;
        }
        if (x < -87.34f) EXPECT(e[l] == 0.0f);
        const double ref = 1 / (1 + std::exp(-static_cast<double>(x)));
        EXPECT(sg[l] >= 0.0f && sg[l] <= 1.0f && std::fabs(sg[l] - ref) < 4e-7);
        if (x >= 30.0f) EXPECT(sg[l] == 1.0f);
      }
    }
  }
}

__attribute__((target("avx512f,fma"))) void check_avx512() { math_check<16>("avx512"); }
__attribute__((target("avx2,fma"))) void check_avx2() { math_check<8>("avx2"); }
void check_portable() { math_check<4>("portable"); }

std::vector<float> host(const Tensor& t) {
  std::vector<float> v(t.numel());
  to_host(t, DType::Float32, v.data(), v.size() * 4);
  return v;
}

double nmse(const std::vector<float>& a, const std::vector<float>& b) {
  double e = 0, n = 0;
  for (size_t i = 0; i < a.size(); ++i) e += (double(a[i]) - b[i]) * (double(a[i]) - b[i]), n += double(b[i]) * b[i];
  return e / (n > 0 ? n : 1);
}

}  // namespace

TEST(simd_math_matches_libm_at_every_width) {
  const cpu::Features& f = cpu::features();
  if (f.avx512f && f.fma) check_avx512();
  else std::printf("  avx512: skipped (this CPU lacks it)\n");
  if (f.avx2 && f.fma) check_avx2();
  else std::printf("  avx2: skipped (this CPU lacks it)\n");
  check_portable();
}

TEST(unary_ops_match_reference_at_every_width) {
  Generator g;
  g.seed = 5;
  Tensor x = binary_scalar(BinaryOp::Mul, randn({5003}, DType::Float32, Device{}, g), 6.0, false);
  Tensor dy = randn({5003}, DType::Float32, Device{}, g);
  const UnaryOp ops[] = {UnaryOp::Exp, UnaryOp::Tanh, UnaryOp::Sigmoid, UnaryOp::Silu, UnaryOp::Gelu, UnaryOp::GeluTanh};
  for (int width : {4, 8, 16}) {
    if (cpu::simd_set_max_width(width) != width) continue;
    for (UnaryOp op : ops) {
      cpu::set_reference_kernels(true);
      auto ry = host(unary(op, x)), rd = host(unary_backward(op, dy, x, Tensor()));
      cpu::set_reference_kernels(false);
      double e = std::max(nmse(host(unary(op, x)), ry), nmse(host(unary_backward(op, dy, x, Tensor())), rd));
      if (!(e < 1e-12)) std::printf("  width %d, %s: nmse %.3g\n", width, unary_name(op), e);
      EXPECT(e < 1e-12);
    }
  }
  cpu::simd_set_max_width(0);
}

TEST_MAIN
