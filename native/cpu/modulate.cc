// tessera CPU: DiT adaLN modulate, out = x * (1 + scale[:, None]) + shift[:, None],
// forward and backward side by side (CUDA twin: cuda/modulate.cu).
// Dimension letters: B batch, N tokens, D features.
// Each op has a plain reference loop (one thread, sums in double; chosen by
// cpu::reference_kernels()) beside the optimized path (threads via parallel_for,
// one fused backward pass, blocked deterministic sums as in common.h); llm.c argument
// order: outputs, gradients, inputs, sizes.
// Memory contract: out, dinp, dshift and dscale are overwritten (=).
#include <algorithm>

#include "../core/parallel.h"
#include "common.h"
#include "cpu.h"

namespace ts {
namespace cpu {

// ======================= adaLN modulate ==================================================
// out[b, n, d] = x[b, n, d] * (1 + scale[b, d]) + shift[b, d].
// Backward: dx = dout * (1 + scale), dshift[b, d] = sum_n dout, dscale[b, d] = sum_n dout * x.

static void modulate_forward_ref(float* out, const float* inp, const float* shift, const float* scale, int64_t B,
                                 int64_t N, int64_t D) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t d = 0; d < D; ++d) {
        int64_t k = (b * N + n) * D + d;
        out[k] = inp[k] * (1.0f + scale[b * D + d]) + shift[b * D + d];
      }
}

void modulate_forward(float* out, const float* inp, const float* shift, const float* scale, int64_t B, int64_t N,
                      int64_t D) {
  if (reference_kernels()) return modulate_forward_ref(out, inp, shift, scale, B, N, D);
  parallel_for(0, B * N, row_grain(D), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const float* sc = scale + (r / N) * D;
      const float* sh = shift + (r / N) * D;
      const float* x = inp + r * D;
      float* y = out + r * D;
      for (int64_t d = 0; d < D; ++d) y[d] = x[d] * (1.0f + sc[d]) + sh[d];
    }
  });
}

static void modulate_backward_ref(float* dinp, float* dshift, float* dscale, const float* dout, const float* inp,
                                  const float* scale, int64_t B, int64_t N, int64_t D) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t d = 0; d < D; ++d) {
      double s0 = 0, s1 = 0;
      for (int64_t n = 0; n < N; ++n) {
        int64_t k = (b * N + n) * D + d;
        dinp[k] = dout[k] * (1.0f + scale[b * D + d]);
        s0 += dout[k];
        s1 += static_cast<double>(dout[k]) * inp[k];
      }
      dshift[b * D + d] = static_cast<float>(s0);
      dscale[b * D + d] = static_cast<float>(s1);
    }
}

void modulate_backward(float* dinp, float* dshift, float* dscale, const float* dout, const float* inp,
                       const float* scale, int64_t B, int64_t N, int64_t D) {
  if (reference_kernels()) return modulate_backward_ref(dinp, dshift, dscale, dout, inp, scale, B, N, D);
  // One fused pass: each task owns a block of feature columns of one sample and
  // walks its N rows, writing dx and accumulating both parameter sums (float within
  // kBlock rows, then double).
  int64_t blocks = (D + kCols - 1) / kCols;
  parallel_for(0, B * blocks, std::max<int64_t>(1, kGrain / (std::max<int64_t>(N, 1) * kCols)), [&](int64_t lo, int64_t hi) {
    float s0[kCols], s1[kCols], f[kCols];
    double t0[kCols], t1[kCols];
    for (int64_t w = lo; w < hi; ++w) {
      int64_t b = w / blocks, d0 = (w % blocks) * kCols, nd = std::min(kCols, D - d0);
      for (int64_t j = 0; j < nd; ++j) t0[j] = 0, t1[j] = 0, f[j] = 1.0f + scale[b * D + d0 + j];
      for (int64_t n0 = 0; n0 < N; n0 += kBlock) {
        for (int64_t j = 0; j < nd; ++j) s0[j] = 0, s1[j] = 0;
        for (int64_t n = n0; n < std::min(N, n0 + kBlock); ++n) {
          int64_t k = (b * N + n) * D + d0;
          const float* g = dout + k;
          const float* x = inp + k;
          float* dx = dinp + k;
          for (int64_t j = 0; j < nd; ++j) {
            dx[j] = g[j] * f[j];
            s0[j] += g[j];
            s1[j] += g[j] * x[j];
          }
        }
        for (int64_t j = 0; j < nd; ++j) t0[j] += s0[j], t1[j] += s1[j];
      }
      for (int64_t j = 0; j < nd; ++j)
        dshift[b * D + d0 + j] = static_cast<float>(t0[j]), dscale[b * D + d0 + j] = static_cast<float>(t1[j]);
    }
  });
}

}  // namespace cpu
}  // namespace ts
