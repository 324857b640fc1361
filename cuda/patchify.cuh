// tessera CUDA backend: spacetime patches. patchify: x [B, C, T, H, W] (element strides
// xs, any layout) -> tokens [B, N, F] contiguous, N = T'H'W', F = C pt ph pw, tokens in
// (t', h', w') order and features in (c, i, j, k) order; unpatchify: tokens [B, N, F]
// (element strides ts) -> x contiguous. Each is the other's backward (exact copies).
// Dimension letters: B, C, T, H, W, N tokens, F features; pt ph pw the patch.
#pragma once
#include <cstdint>

namespace ts {
namespace cuda {

void patchify(float* tokens, const float* x, const int64_t xs[5], int64_t B, int64_t C, int64_t T, int64_t H,
              int64_t W, int64_t pt, int64_t ph, int64_t pw);
void unpatchify(float* x, const float* tokens, const int64_t ts[3], int64_t B, int64_t C, int64_t T, int64_t H,
                int64_t W, int64_t pt, int64_t ph, int64_t pw);

// The same copies on raw 4-byte words (float or any 32-bit payload) with an explicit
// stream: the benchmark's entry point.
void patchify_launch(float* tokens, const float* x, const int64_t xs[5], int64_t B, int64_t C, int64_t T, int64_t H,
                     int64_t W, int64_t pt, int64_t ph, int64_t pw, void* stream);

}  // namespace cuda
}  // namespace ts
