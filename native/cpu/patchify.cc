// tessera CPU: spacetime patches, patchify and unpatchify (each is the other's backward:
// exact copies), side by side (CUDA twin: cuda/patchify.cu).
// Dimension letters: B batch, C channels, T H W latent extents, pt ph pw the patch,
// T' H' W' (Tg Hg Wg) the patch grid, N = T'H'W' tokens, F = C pt ph pw features.
// The reference walk (one thread, token order; chosen by cpu::reference_kernels()) sits
// beside the optimized slab walk (threads via parallel_for).
// Memory contract: tokens (patchify) and x (unpatchify) are overwritten (=), every
// element written once.
#include <cstdint>

#include "../core/parallel.h"
#include "common.h"
#include "cpu.h"

namespace ts {
namespace cpu {

// ======================= patchify / unpatchify ===========================================
// x [B, C, T, H, W] (element strides xs) <-> tokens [B, N, F], N = T'H'W', F = C pt ph pw:
//   tokens[b, (tt H' + hh) W' + ww, ((c pt + i) ph + j) pw + k]
//     = x[b, c, tt pt + i, hh ph + j, ww pw + k].
// Optimized: one task per (b, tt, hh) slab. Its input is C*pt*ph rows of W values and
// its output is W' consecutive tokens, C*pt*ph*W values in one contiguous run, so
// both sides of the copy stay in cache; rows are read (or written) in full.

namespace {
struct PatchGeom {
  int64_t B, C, T, H, W, pt, ph, pw, Tg, Hg, Wg, N, F;
  PatchGeom(int64_t B_, int64_t C_, int64_t T_, int64_t H_, int64_t W_, int64_t pt_, int64_t ph_, int64_t pw_)
      : B(B_), C(C_), T(T_), H(H_), W(W_), pt(pt_), ph(ph_), pw(pw_) {
    Tg = T / pt, Hg = H / ph, Wg = W / pw;
    N = Tg * Hg * Wg;
    F = C * pt * ph * pw;
  }
};

// Calls f(token_offset, x_offset) for every element, in token order (reference order).
template <typename Fn>
void patch_walk_ref(const PatchGeom& g, const int64_t xs[5], const int64_t tks[3], Fn&& f) {
  for (int64_t b = 0; b < g.B; ++b)
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t q = 0; q < g.F; ++q) {
        int64_t tt = n / (g.Hg * g.Wg), hh = (n / g.Wg) % g.Hg, ww = n % g.Wg;
        int64_t c = q / (g.pt * g.ph * g.pw), i = (q / (g.ph * g.pw)) % g.pt, j = (q / g.pw) % g.ph, k = q % g.pw;
        int64_t xo = b * xs[0] + c * xs[1] + (tt * g.pt + i) * xs[2] + (hh * g.ph + j) * xs[3] + (ww * g.pw + k) * xs[4];
        f(b * tks[0] + n * tks[1] + q * tks[2], xo);
      }
}

// Calls f(token_offset, x_offset, len) for each run of pw elements, a slab at a time.
template <typename Fn>
void patch_walk_fast(const PatchGeom& g, const int64_t xs[5], const int64_t tks[3], Fn&& f) {
  int64_t slabs = g.B * g.Tg * g.Hg;
  parallel_for(0, slabs, row_grain(g.C * g.pt * g.ph * g.W), [&](int64_t lo, int64_t hi) {
    for (int64_t s = lo; s < hi; ++s) {
      int64_t b = s / (g.Tg * g.Hg), tt = (s / g.Hg) % g.Tg, hh = s % g.Hg;
      int64_t n0 = (tt * g.Hg + hh) * g.Wg;
      for (int64_t c = 0; c < g.C; ++c)
        for (int64_t i = 0; i < g.pt; ++i)
          for (int64_t j = 0; j < g.ph; ++j) {
            int64_t xrow = b * xs[0] + c * xs[1] + (tt * g.pt + i) * xs[2] + (hh * g.ph + j) * xs[3];
            int64_t q0 = ((c * g.pt + i) * g.ph + j) * g.pw;
            for (int64_t ww = 0; ww < g.Wg; ++ww)
              f(b * tks[0] + (n0 + ww) * tks[1] + q0 * tks[2], xrow + ww * g.pw * xs[4]);
          }
    }
  });
}
}  // namespace

void patchify(float* tokens, const float* x, const int64_t xs[5], int64_t B, int64_t C, int64_t T, int64_t H,
              int64_t W, int64_t pt, int64_t ph, int64_t pw) {
  PatchGeom g(B, C, T, H, W, pt, ph, pw);
  const int64_t tks[3] = {g.N * g.F, g.F, 1};
  if (reference_kernels()) {
    patch_walk_ref(g, xs, tks, [&](int64_t to, int64_t xo) { tokens[to] = x[xo]; });
    return;
  }
  const int64_t sx = xs[4];
  if (sx == 1) {
    patch_walk_fast(g, xs, tks, [&](int64_t to, int64_t xo) {
      for (int64_t k = 0; k < pw; ++k) tokens[to + k] = x[xo + k];
    });
  } else {
    patch_walk_fast(g, xs, tks, [&](int64_t to, int64_t xo) {
      for (int64_t k = 0; k < pw; ++k) tokens[to + k] = x[xo + k * sx];
    });
  }
}

void unpatchify(float* x, const float* tokens, const int64_t tks[3], int64_t B, int64_t C, int64_t T, int64_t H,
                int64_t W, int64_t pt, int64_t ph, int64_t pw) {
  PatchGeom g(B, C, T, H, W, pt, ph, pw);
  const int64_t xs[5] = {C * T * H * W, T * H * W, H * W, W, 1};
  if (reference_kernels()) {
    patch_walk_ref(g, xs, tks, [&](int64_t to, int64_t xo) { x[xo] = tokens[to]; });
    return;
  }
  const int64_t sq = tks[2];
  patch_walk_fast(g, xs, tks, [&](int64_t to, int64_t xo) {
    for (int64_t k = 0; k < pw; ++k) x[xo + k] = tokens[to + k * sq];
  });
}

}  // namespace cpu
}  // namespace ts
