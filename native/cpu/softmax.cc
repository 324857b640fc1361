// tessera CPU: softmax and log-softmax over the middle axis of x [outer, n, inner],
// forward and backward side by side (CUDA twin: cuda/softmax.cu).
// Dimension letters: outer, n (the softmax axis), inner.
// Each op has a plain reference loop (one thread, sums in double; chosen by
// cpu::reference_kernels()) beside the optimized path (threads via parallel_for,
// vectorizable float loops, blocked deterministic sums from common.h); llm.c argument
// order: outputs, gradients, inputs, saved stats, sizes.
// Memory contract: out and dinp are overwritten (=).
#include <algorithm>
#include <cmath>

#include "../core/parallel.h"
#include "common.h"
#include "cpu.h"

namespace ts {
namespace cpu {

// ======================= softmax / log-softmax ===========================================
// x [outer, n, inner]; softmax over n.
//   forward:  y = exp(x - max) / sum exp(x - max);   log: y = x - max - log(sum)
//   backward: dx = y * (dy - sum(dy * y));           log: dx = dy - exp(y) * sum(dy)

static void softmax_forward_ref(float* out, const float* inp, int64_t outer, int64_t n, int64_t inner, bool log) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      const float* x = inp + o * n * inner + j;
      float* y = out + o * n * inner + j;
      float m = kNegInf;
      for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i * inner]);
      double s = 0;
      for (int64_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(x[i * inner]) - m);
      for (int64_t i = 0; i < n; ++i) {
        double z = static_cast<double>(x[i * inner]) - m;
        y[i * inner] = static_cast<float>(log ? z - std::log(s) : std::exp(z) / s);
      }
    }
}

void softmax_forward(float* out, const float* inp, int64_t outer, int64_t n, int64_t inner, bool log) {
  if (reference_kernels()) return softmax_forward_ref(out, inp, outer, n, inner, log);
  if (n == 0) return;
  if (inner == 1) {
    parallel_for(0, outer, row_grain(n), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        const float* x = inp + r * n;
        float* y = out + r * n;
        float m = kNegInf;
        TS_SIMD_MAX(m)
        for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
        if (log) {
          float c = m + static_cast<float>(std::log(block_sum(0, n, [&](int64_t i) { return std::exp(x[i] - m); })));
          for (int64_t i = 0; i < n; ++i) y[i] = x[i] - c;
        } else {
          double s = block_sum(0, n, [&](int64_t i) {
            float e = std::exp(x[i] - m);
            y[i] = e;
            return e;
          });
          float inv = static_cast<float>(1.0 / s);
          for (int64_t i = 0; i < n; ++i) y[i] *= inv;
        }
      }
    });
    return;
  }
  // Softmax over a middle axis: walk the n rows of a block of columns, so every
  // access is a contiguous run and the column statistics vectorize.
  int64_t blocks = (inner + kCols - 1) / kCols;
  parallel_for(0, outer * blocks, std::max<int64_t>(1, kGrain / (n * kCols)), [&](int64_t lo, int64_t hi) {
    float m[kCols], s[kCols];
    for (int64_t w = lo; w < hi; ++w) {
      int64_t o = w / blocks, j0 = (w % blocks) * kCols, nj = std::min(kCols, inner - j0);
      const float* x = inp + o * n * inner + j0;
      float* y = out + o * n * inner + j0;
      for (int64_t j = 0; j < nj; ++j) m[j] = kNegInf, s[j] = 0;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < nj; ++j) m[j] = x[i * inner + j] > m[j] ? x[i * inner + j] : m[j];
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < nj; ++j) {
          float e = std::exp(x[i * inner + j] - m[j]);
          if (!log) y[i * inner + j] = e;
          s[j] += e;
        }
      if (log) {
        for (int64_t j = 0; j < nj; ++j) m[j] += std::log(s[j]);
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = 0; j < nj; ++j) y[i * inner + j] = x[i * inner + j] - m[j];
      } else {
        for (int64_t j = 0; j < nj; ++j) s[j] = 1.0f / s[j];
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = 0; j < nj; ++j) y[i * inner + j] *= s[j];
      }
    }
  });
}

static void softmax_backward_ref(float* dinp, const float* dout, const float* out, int64_t outer, int64_t n,
                                 int64_t inner, bool log) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      int64_t base = o * n * inner + j;
      double s = 0;
      for (int64_t i = 0; i < n; ++i) {
        int64_t k = base + i * inner;
        s += log ? static_cast<double>(dout[k]) : static_cast<double>(dout[k]) * out[k];
      }
      for (int64_t i = 0; i < n; ++i) {
        int64_t k = base + i * inner;
        dinp[k] = static_cast<float>(log ? dout[k] - std::exp(static_cast<double>(out[k])) * s
                                         : out[k] * (dout[k] - s));
      }
    }
}

void softmax_backward(float* dinp, const float* dout, const float* out, int64_t outer, int64_t n, int64_t inner,
                      bool log) {
  if (reference_kernels()) return softmax_backward_ref(dinp, dout, out, outer, n, inner, log);
  if (n == 0) return;
  if (inner == 1) {
    parallel_for(0, outer, row_grain(n), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        const float* g = dout + r * n;
        const float* y = out + r * n;
        float* d = dinp + r * n;
        if (log) {
          float s = static_cast<float>(block_sum(0, n, [&](int64_t i) { return g[i]; }));
          for (int64_t i = 0; i < n; ++i) d[i] = g[i] - std::exp(y[i]) * s;
        } else {
          float s = static_cast<float>(block_sum(0, n, [&](int64_t i) { return g[i] * y[i]; }));
          for (int64_t i = 0; i < n; ++i) d[i] = y[i] * (g[i] - s);
        }
      }
    });
    return;
  }
  int64_t blocks = (inner + kCols - 1) / kCols;
  parallel_for(0, outer * blocks, std::max<int64_t>(1, kGrain / (n * kCols)), [&](int64_t lo, int64_t hi) {
    float s[kCols];
    for (int64_t w = lo; w < hi; ++w) {
      int64_t o = w / blocks, j0 = (w % blocks) * kCols, nj = std::min(kCols, inner - j0);
      int64_t base = o * n * inner + j0;
      const float* g = dout + base;
      const float* y = out + base;
      float* d = dinp + base;
      for (int64_t j = 0; j < nj; ++j) s[j] = 0;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < nj; ++j) s[j] += log ? g[i * inner + j] : g[i * inner + j] * y[i * inner + j];
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < nj; ++j) {
          int64_t k = i * inner + j;
          d[k] = log ? g[k] - std::exp(y[k]) * s[j] : y[k] * (g[k] - s[j]);
        }
    }
  });
}

}  // namespace cpu
}  // namespace ts
