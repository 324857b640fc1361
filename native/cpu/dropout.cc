// tessera CPU: dropout, forward and backward side by side (CUDA twin: cuda/dropout.cu,
// which draws the same Philox words, so a seed gives one mask on both backends).
// Dimension letters: n elements.
// The reference loop (one thread, one philox_uniform per element; chosen by
// cpu::reference_kernels()) sits beside the optimized path (threads via parallel_for).
// Memory contract: out and dinp are overwritten (=); the backward regenerates the mask
// from (seed, offset) instead of saving it.
#include <algorithm>

#include "../core/parallel.h"
#include "../core/rng.h"
#include "common.h"
#include "cpu.h"

namespace ts {
namespace cpu {

// ======================= dropout =========================================================
// keep_i = philox_uniform(seed, offset, i) >= p; out = keep ? x / (1 - p) : 0, and the
// backward regenerates the same mask: dx = keep ? dout / (1 - p) : 0.

static void dropout_apply_ref(float* out, const float* inp, int64_t n, float p, uint64_t seed, uint64_t offset) {
  float scale = 1.0f / (1.0f - p);
  for (int64_t i = 0; i < n; ++i)
    out[i] = philox_uniform(seed, offset, static_cast<uint64_t>(i)) >= p ? inp[i] * scale : 0.0f;
}

// One Philox call yields the uniforms of four consecutive elements.
static void dropout_apply(float* out, const float* inp, int64_t n, float p, uint64_t seed, uint64_t offset) {
  if (reference_kernels()) return dropout_apply_ref(out, inp, n, p, seed, offset);
  float scale = 1.0f / (1.0f - p);
  int64_t blocks = (n + 3) / 4;
  parallel_for(0, blocks, kGrain / 4, [&](int64_t lo, int64_t hi) {
    for (int64_t blk = lo; blk < hi; ++blk) {
      Philox4x32 r = philox4x32_10(offset + static_cast<uint64_t>(blk), seed);
      int64_t i0 = blk * 4, m = std::min<int64_t>(4, n - i0);
      for (int64_t k = 0; k < m; ++k) {
        float u = static_cast<float>(r.c[k] >> 8) * (1.0f / 16777216.0f);
        out[i0 + k] = u >= p ? inp[i0 + k] * scale : 0.0f;
      }
    }
  });
}

void dropout_forward(float* out, const float* inp, int64_t n, float p, uint64_t seed, uint64_t offset) {
  dropout_apply(out, inp, n, p, seed, offset);
}
void dropout_backward(float* dinp, const float* dout, int64_t n, float p, uint64_t seed, uint64_t offset) {
  dropout_apply(dinp, dout, n, p, seed, offset);
}

}  // namespace cpu
}  // namespace ts
