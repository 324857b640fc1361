// tessera CPU: nearest upsampling by integer factors, forward and backward side by side
// (CUDA twin: cuda/upsample.cu).
// Dimension letters: BC batch x channels, T H W input extents, st sh sw factors.
// Each op has a plain reference loop (one thread, sums in double; chosen by
// cpu::reference_kernels()) beside the optimized path (threads via parallel_for over
// input rows, row copies); llm.c argument order: outputs, gradients, inputs, sizes.
// Memory contract: out and dinp are overwritten (=).
#include <algorithm>
#include <cstring>
#include <vector>

#include "../core/parallel.h"
#include "common.h"
#include "cpu.h"

namespace ts {
namespace cpu {

// ======================= nearest upsampling (integer factors) ============================
// inp [BC, T, H, W] -> out [BC, T*st, H*sh, W*sw], out[.., t, h, w] = inp[.., t/st, h/sh, w/sw].
// Backward: dinp[.., t, h, w] = sum of dout over the st x sh x sw block it was copied to.

void upsample_nearest3d_forward(float* out, const float* inp, int64_t BC, int64_t T, int64_t H, int64_t W, int64_t st,
                                int64_t sh, int64_t sw) {
  int64_t To = T * st, Ho = H * sh, Wo = W * sw;
  if (reference_kernels()) {
    for (int64_t p = 0; p < BC; ++p)
      for (int64_t t = 0; t < To; ++t)
        for (int64_t h = 0; h < Ho; ++h)
          for (int64_t w = 0; w < Wo; ++w)
            out[((p * To + t) * Ho + h) * Wo + w] = inp[((p * T + t / st) * H + h / sh) * W + w / sw];
    return;
  }
  // Per input row: widen it once into its first output row, then copy that row to the
  // other st*sh - 1 rows of the block.
  parallel_for(0, BC * T * H, row_grain(Wo * st * sh), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      int64_t p = r / (T * H), t = (r / H) % T, h = r % H;
      const float* src = inp + r * W;
      float* first = out + ((p * To + t * st) * Ho + h * sh) * Wo;
      if (sw == 1) {
        std::memcpy(first, src, static_cast<size_t>(W) * sizeof(float));
      } else {
        for (int64_t w = 0; w < W; ++w)
          for (int64_t k = 0; k < sw; ++k) first[w * sw + k] = src[w];
      }
      for (int64_t i = 0; i < st; ++i)
        for (int64_t j = 0; j < sh; ++j) {
          if (i == 0 && j == 0) continue;
          float* dst = out + ((p * To + t * st + i) * Ho + h * sh + j) * Wo;
          std::memcpy(dst, first, static_cast<size_t>(Wo) * sizeof(float));
        }
    }
  });
}

void upsample_nearest3d_backward(float* dinp, const float* dout, int64_t BC, int64_t T, int64_t H, int64_t W,
                                 int64_t st, int64_t sh, int64_t sw) {
  int64_t To = T * st, Ho = H * sh, Wo = W * sw;
  if (reference_kernels()) {
    for (int64_t p = 0; p < BC; ++p)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t w = 0; w < W; ++w) {
            double s = 0;
            for (int64_t i = 0; i < st; ++i)
              for (int64_t j = 0; j < sh; ++j)
                for (int64_t k = 0; k < sw; ++k) s += dout[((p * To + t * st + i) * Ho + h * sh + j) * Wo + w * sw + k];
            dinp[((p * T + t) * H + h) * W + w] = static_cast<float>(s);
          }
    return;
  }
  // Per input row: add the st*sh output rows of its block into a row buffer (each a
  // contiguous read), then fold each run of sw columns.
  parallel_for(0, BC * T * H, row_grain(Wo * st * sh), [&](int64_t lo, int64_t hi) {
    std::vector<float> acc(static_cast<size_t>(Wo));
    for (int64_t r = lo; r < hi; ++r) {
      int64_t p = r / (T * H), t = (r / H) % T, h = r % H;
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t i = 0; i < st; ++i)
        for (int64_t j = 0; j < sh; ++j) {
          const float* src = dout + ((p * To + t * st + i) * Ho + h * sh + j) * Wo;
          for (int64_t w = 0; w < Wo; ++w) acc[w] += src[w];
        }
      float* dst = dinp + r * W;
      for (int64_t w = 0; w < W; ++w) {
        float s = 0;
        for (int64_t k = 0; k < sw; ++k) s += acc[w * sw + k];
        dst[w] = s;
      }
    }
  });
}

}  // namespace cpu
}  // namespace ts
