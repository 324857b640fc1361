// tessera CPU: portable SIMD helpers on GCC vector extensions, for kernels written
// once and compiled per ISA: a template on the vector width W (16 floats for AVX-512,
// 8 for AVX2, 4 for the portable fallback), always inlined into a function carrying
// __attribute__((target(...))), chosen at run time by cpu::features().
// Math: vexp (Cephes expf), vtanh, vsigmoid, verf (errors: see each; test_simd_math), so the
// activation, softmax, attention and fused-norm kernels need no scalar libm calls.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

namespace ts {
namespace cpu {

// Every helper taking or returning a vector is always inlined into code compiled for
// its ISA, so the ABI notes GCC gives for wide vector arguments do not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
#define TS_INLINE inline __attribute__((always_inline))
// Lambdas inside SIMD templates: always inlined too, so they are compiled for the ISA
// of the function they sit in (an out-of-line lambda would get the default target).
#define TS_INLINE_LAMBDA __attribute__((always_inline))

template <int W>
struct Vec {
  typedef float F __attribute__((vector_size(W * 4)));
  typedef float FU __attribute__((vector_size(W * 4), aligned(4), may_alias));
  typedef int32_t I __attribute__((vector_size(W * 4)));
};

template <int W>
TS_INLINE typename Vec<W>::F vload(const float* p) {
  return *reinterpret_cast<const typename Vec<W>::FU*>(p);
}
template <int W>
TS_INLINE void vstore(float* p, typename Vec<W>::F v) {
  *reinterpret_cast<typename Vec<W>::FU*>(p) = v;
}
// Broadcast. Done on the integer bits: 0.0f + x cannot be folded (signed zeros), 0 + bits
// can, so this compiles to one broadcast load.
template <int W>
TS_INLINE typename Vec<W>::F vset(float x) {
  int32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return reinterpret_cast<typename Vec<W>::F>(typename Vec<W>::I{} + bits);
}
template <int W>
TS_INLINE typename Vec<W>::F vmax(typename Vec<W>::F a, typename Vec<W>::F b) {
  return a > b ? a : b;
}
template <int W>
TS_INLINE float hmax(typename Vec<W>::F v) {
  float m = v[0];
  for (int i = 1; i < W; ++i) m = std::max(m, v[i]);
  return m;
}
template <int W>
TS_INLINE float hsum(typename Vec<W>::F v) {
  float s = v[0];
  for (int i = 1; i < W; ++i) s += v[i];
  return s;
}

// exp(x) for x in [-87.34, 88] (the caller clamps): Cephes expf, range reduction by ln 2
// and a degree-6 polynomial, about 1 ulp; NaN propagates.
template <int W>
TS_INLINE typename Vec<W>::F vexp_core(typename Vec<W>::F x) {
  using F = typename Vec<W>::F;
  using I = typename Vec<W>::I;
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  F t = x * 1.44269504088896341f + magic;
  F n = t - magic;
  I ni = reinterpret_cast<I>(t) - reinterpret_cast<I>(vset<W>(magic));
  F r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  F poly = vset<W>(1.9875691500e-4f);
  poly = poly * r + 1.3981999507e-3f;
  poly = poly * r + 8.3334519073e-3f;
  poly = poly * r + 4.1665795894e-2f;
  poly = poly * r + 1.6666665459e-1f;
  poly = poly * r + 5.0000001201e-1f;
  F y = poly * (r * r) + r + 1.0f;
  I e = (ni + 127) << 23;
  return y * reinterpret_cast<F>(e);
}

// exp(x) for x <= 88 (vexp_core after clamping). Returns exactly 0 below ln(FLT_MIN) (so
// -inf, a masked score, gives 0) and propagates NaN.
template <int W>
TS_INLINE typename Vec<W>::F vexp(typename Vec<W>::F x) {
  using I = typename Vec<W>::I;
  const float lo = -87.33654475f, hi = 88.0f;
  I keep = ~(x < lo);
  x = x < lo ? vset<W>(lo) : x;
  x = x > hi ? vset<W>(hi) : x;
  return reinterpret_cast<typename Vec<W>::F>(reinterpret_cast<I>(vexp_core<W>(x)) & keep);
}

// tanh(x): for |x| >= 0.625, 1 - 2 / (exp(2|x|) + 1) with the sign restored; below, the
// Cephes tanhf odd polynomial (which keeps the relative precision near 0).
template <int W>
TS_INLINE typename Vec<W>::F vtanh(typename Vec<W>::F x) {
  using F = typename Vec<W>::F;
  using I = typename Vec<W>::I;
  const I sign = reinterpret_cast<I>(x) & (I{} + static_cast<int32_t>(0x80000000u));
  const F ax = reinterpret_cast<F>(reinterpret_cast<I>(x) ^ sign);
  F big = 1.0f - 2.0f / (vexp<W>(ax + ax) + 1.0f);
  const F s = x * x;
  F p = vset<W>(-5.70498872745e-3f);
  p = p * s + 2.06390887954e-2f;
  p = p * s - 5.37397155531e-2f;
  p = p * s + 1.33314422036e-1f;
  p = p * s - 3.33332819422e-1f;
  F small = p * s * x + x;
  big = reinterpret_cast<F>(reinterpret_cast<I>(big) | sign);
  return ax < 0.625f ? small : big;
}

// 1 / (1 + exp(-x)); exp(-x) saturates at exp(88), so x < -88 gives about 6e-39, not 0,
// and x > 87.3 gives 1 (exp(-x) stays at its clamp, ~1e-38, instead of the 0 vexp would
// give: the same sum). The clamp alone, no zeroing mask: the sigmoid is on the hot path of
// SiLU and groupNorm+SiLU. NaN propagates.
template <int W>
TS_INLINE typename Vec<W>::F vsigmoid(typename Vec<W>::F x) {
  using F = typename Vec<W>::F;
  F t = -x;
  t = t < -87.33654475f ? vset<W>(-87.33654475f) : t;
  t = t > 88.0f ? vset<W>(88.0f) : t;
  return 1.0f / (1.0f + vexp_core<W>(t));
}

// erf(x) = sign(x) (1 - poly(t) t exp(-x^2)), t = 1 / (1 + p|x|) (Abramowitz & Stegun
// 7.1.26): absolute error below 5e-7 in float (the formula's 1.5e-7 plus rounding;
// relative error is larger near 0, which GELU, 0.5 x (1 + erf(x / sqrt 2)), does not see).
template <int W>
TS_INLINE typename Vec<W>::F verf(typename Vec<W>::F x) {
  using F = typename Vec<W>::F;
  using I = typename Vec<W>::I;
  const I sign = reinterpret_cast<I>(x) & (I{} + static_cast<int32_t>(0x80000000u));
  const F ax = reinterpret_cast<F>(reinterpret_cast<I>(x) ^ sign);
  const F t = 1.0f / (1.0f + 0.3275911f * ax);
  F p = vset<W>(1.061405429f);
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  F y = 1.0f - p * t * vexp<W>(-ax * ax);
  return reinterpret_cast<F>(reinterpret_cast<I>(y) | sign);
}

}  // namespace cpu
}  // namespace ts
