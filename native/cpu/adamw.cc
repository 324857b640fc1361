// tessera CPU: fused AdamW update. Dimension letters: N = elements of one parameter.
// One pass reads param, m, v, grad and writes param, m, v (16 bytes read + 12 written
// per element): memory bound, so the optimized path is the same arithmetic as the
// reference loop, split over threads and compiled for AVX-512 / AVX2 when present.
// Memory contract: param, m, v are overwritten in place; grad is only read.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/parallel.h"
#include "cpu.h"

namespace ts {
namespace cpu {

namespace {

// The per-step scalars, rounded to float once from double host values, exactly as
// PyTorch turns its Python-float scalars into float32 operands.
struct AdamWScalars {
  float decay, beta1, one_minus_beta1, beta2, one_minus_beta2, neg_step_size, bc2_sqrt, eps;
};
AdamWScalars scalars(double lr, double beta1, double beta2, double eps, double wd, double bc1, double bc2) {
  return {static_cast<float>(1.0 - lr * wd), static_cast<float>(beta1), static_cast<float>(1.0 - beta1),
          static_cast<float>(beta2),         static_cast<float>(1.0 - beta2), static_cast<float>(-(lr / bc1)),
          static_cast<float>(std::sqrt(bc2)), static_cast<float>(eps)};
}

// param.mul_(decay); m.mul_(b1).add_(g, 1-b1); v.mul_(b2).addcmul_(g, g, 1-b2);
// denom = sqrt(v) / sqrt(bc2) + eps; param.addcdiv_(m, denom, -lr/bc1)
inline void adamw_span(float* __restrict p, float* __restrict m, float* __restrict v, const float* __restrict g,
                       int64_t n, const AdamWScalars& s) {
  for (int64_t i = 0; i < n; ++i) {
    float gi = g[i];
    float mi = m[i] * s.beta1 + s.one_minus_beta1 * gi;
    float vi = v[i] * s.beta2 + s.one_minus_beta2 * gi * gi;
    float denom = std::sqrt(vi) / s.bc2_sqrt + s.eps;
    p[i] = p[i] * s.decay + s.neg_step_size * mi / denom;
    m[i] = mi;
    v[i] = vi;
  }
}

__attribute__((target("avx512f"))) void adamw_span_avx512(float* p, float* m, float* v, const float* g, int64_t n,
                                                          const AdamWScalars& s) {
  adamw_span(p, m, v, g, n, s);
}
__attribute__((target("avx2"))) void adamw_span_avx2(float* p, float* m, float* v, const float* g, int64_t n,
                                                     const AdamWScalars& s) {
  adamw_span(p, m, v, g, n, s);
}

constexpr int64_t kGrain = 1 << 15;

}  // namespace

void adamw_reference(float* param, float* m, float* v, const float* grad, int64_t n, double lr, double beta1,
                     double beta2, double eps, double weight_decay, double bc1, double bc2) {
  const AdamWScalars s = scalars(lr, beta1, beta2, eps, weight_decay, bc1, bc2);
  for (int64_t i = 0; i < n; ++i) {
    float p = param[i] * s.decay;
    m[i] = m[i] * s.beta1 + s.one_minus_beta1 * grad[i];
    v[i] = v[i] * s.beta2 + s.one_minus_beta2 * grad[i] * grad[i];
    float denom = std::sqrt(v[i]) / s.bc2_sqrt + s.eps;
    param[i] = p + s.neg_step_size * m[i] / denom;
  }
}

void adamw(float* param, float* m, float* v, const float* grad, int64_t n, double lr, double beta1, double beta2,
           double eps, double weight_decay, double bc1, double bc2) {
  if (reference_kernels()) return adamw_reference(param, m, v, grad, n, lr, beta1, beta2, eps, weight_decay, bc1, bc2);
  const AdamWScalars s = scalars(lr, beta1, beta2, eps, weight_decay, bc1, bc2);
  const Features& f = features();
  parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) {
    if (f.avx512f)
      adamw_span_avx512(param + b, m + b, v + b, grad + b, e - b, s);
    else if (f.avx2)
      adamw_span_avx2(param + b, m + b, v + b, grad + b, e - b, s);
    else
      adamw_span(param + b, m + b, v + b, grad + b, e - b, s);
  });
}

// ---- training-loop helpers (core/optim.h) ------------------------------------------

namespace {
constexpr int64_t kSumBlock = 1 << 14;  // the partial sums' blocks: fixed, so thread count does not matter

// Sum of squares of one block, 8 double accumulators (the loop vectorizes in lanes of
// 4 doubles under AVX2), folded in a fixed order.
// Inlined into the AVX2 entry below, where it is compiled (and vectorized) for AVX2.
__attribute__((always_inline)) inline double block_sum_squares(const float* x, int64_t n) {
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) a[j] += static_cast<double>(x[i + j]) * x[i + j];
  for (; i < n; ++i) a[i & 7] += static_cast<double>(x[i]) * x[i];
  return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}
__attribute__((target("avx2,fma"))) double block_sum_squares_avx2(const float* x, int64_t n) {
  return block_sum_squares(x, n);
}
}  // namespace

double sum_squares(const float* x, int64_t n) {
  if (reference_kernels()) {
    double acc = 0;
    for (int64_t i = 0; i < n; ++i) acc += static_cast<double>(x[i]) * x[i];
    return acc;
  }
  const int64_t nb = (n + kSumBlock - 1) / kSumBlock;
  std::vector<double> part(static_cast<size_t>(nb));
  const bool avx2 = features().avx2 && features().fma;
  parallel_for(0, nb, 4, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      const int64_t i0 = b * kSumBlock, len = std::min(kSumBlock, n - i0);
      part[static_cast<size_t>(b)] = avx2 ? block_sum_squares_avx2(x + i0, len) : block_sum_squares(x + i0, len);
    }
  });
  double total = 0;
  for (double p : part) total += p;
  return total;
}

void scale_inplace(float* x, int64_t n, float s) {
  if (reference_kernels()) {
    for (int64_t i = 0; i < n; ++i) x[i] *= s;
    return;
  }
  parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) x[i] *= s;
  });
}

void ema_update(float* shadow, const float* param, int64_t n, float decay, float one_minus_decay) {
  auto span = [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) shadow[i] = shadow[i] * decay + param[i] * one_minus_decay;
  };
  if (reference_kernels()) return span(0, n);
  parallel_for(0, n, kGrain, span);
}

}  // namespace cpu
}  // namespace ts
