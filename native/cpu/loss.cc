// tessera CPU: elementwise losses (MSE, L1) with their reductions and the Gaussian KL of
// a VAE posterior, forward and backward side by side (CUDA twin: cuda/loss.cu).
// Dimension letters: n elements, B batch (the KL divides by it).
// Each op has a plain reference loop (one thread, sums in double; chosen by
// cpu::reference_kernels()) beside the optimized path (threads via parallel_for, sums by
// chunked_sum from common.h, deterministic); llm.c argument order: outputs, gradients,
// inputs, sizes.
// Memory contract: out, da, db, dmean and dlogvar are overwritten (=).
#include <cmath>

#include "../core/parallel.h"
#include "common.h"
#include "cpu.h"

namespace ts {
namespace cpu {

// ======================= losses ==========================================================
// mse: l_i = (a_i - b_i)^2, dl/da = 2 (a - b);  l1: l_i = |a_i - b_i|, dl/da = sign(a - b)
// (sign(0) = 0, as PyTorch). Mean divides by n (n = 0 gives NaN, as PyTorch); db = -da.

namespace {
inline float loss_f(LossKind k, float d) { return k == LossKind::Mse ? d * d : std::fabs(d); }
inline float loss_df(LossKind k, float d) {
  return k == LossKind::Mse ? 2.0f * d : (d > 0 ? 1.0f : (d < 0 ? -1.0f : 0.0f));
}
}  // namespace

void loss_forward(LossKind kind, Reduction r, float* out, const float* a, const float* b, int64_t n) {
  if (r == Reduction::None) {
    if (reference_kernels()) {
      for (int64_t i = 0; i < n; ++i) out[i] = loss_f(kind, a[i] - b[i]);
      return;
    }
    parallel_for(0, n, kGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) out[i] = loss_f(kind, a[i] - b[i]);
    });
    return;
  }
  double s = 0;
  if (reference_kernels()) {
    for (int64_t i = 0; i < n; ++i) s += loss_f(kind, a[i] - b[i]);
  } else if (kind == LossKind::Mse) {
    s = chunked_sum(n, [&](int64_t i) { return (a[i] - b[i]) * (a[i] - b[i]); });
  } else {
    s = chunked_sum(n, [&](int64_t i) { return std::fabs(a[i] - b[i]); });
  }
  out[0] = static_cast<float>(r == Reduction::Mean ? s / static_cast<double>(n) : s);
}

void loss_backward(LossKind kind, Reduction r, float* da, float* db, const float* dout, const float* a, const float* b,
                   int64_t n) {
  float c = r == Reduction::None ? 1.0f : (r == Reduction::Mean ? dout[0] / static_cast<float>(n) : dout[0]);
  auto one = [&](int64_t i) {
    float g = loss_df(kind, a[i] - b[i]) * (r == Reduction::None ? dout[i] : c);
    da[i] = g;
    db[i] = -g;
  };
  if (reference_kernels()) {
    for (int64_t i = 0; i < n; ++i) one(i);
    return;
  }
  parallel_for(0, n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) one(i);
  });
}

// ======================= Gaussian KL =====================================================
// out = 0.5 * sum(mean^2 + exp(logvar) - 1 - logvar) / B over all n elements.
// dmean = dout * mean / B, dlogvar = dout * 0.5 * (exp(logvar) - 1) / B.

void gaussian_kl_forward(float* out, const float* mean, const float* logvar, int64_t B, int64_t n) {
  auto term = [&](int64_t i) { return mean[i] * mean[i] + std::exp(logvar[i]) - 1.0f - logvar[i]; };
  double s = 0;
  if (reference_kernels()) {
    for (int64_t i = 0; i < n; ++i)
      s += static_cast<double>(mean[i]) * mean[i] + std::exp(static_cast<double>(logvar[i])) - 1.0 - logvar[i];
  } else {
    s = chunked_sum(n, term);
  }
  out[0] = static_cast<float>(0.5 * s / static_cast<double>(B));
}

void gaussian_kl_backward(float* dmean, float* dlogvar, const float* dout, const float* mean, const float* logvar,
                          int64_t B, int64_t n) {
  float c = dout[0] / static_cast<float>(B);
  auto one = [&](int64_t i) {
    dmean[i] = c * mean[i];
    dlogvar[i] = 0.5f * c * (std::exp(logvar[i]) - 1.0f);
  };
  if (reference_kernels()) {
    for (int64_t i = 0; i < n; ++i) one(i);
    return;
  }
  parallel_for(0, n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) one(i);
  });
}

}  // namespace cpu
}  // namespace ts
