// tessera CPU: fused norms (entry points and contracts in core/fused_norm.h).
// Dimension letters: B batch, C channels, S spatial size (T*H*W), G groups, Cg = C/G
// channels per group, K = Cg*S values per group; N tokens, D features.
//
// groupNormSiLU: inp [B, C, S]; group g of sample b is the contiguous run of K values at
//   (b*C + g*Cg) * S. Per frame (T > 1): inp [B, C, T, S] (S the frame's H*W), a group per
//   (b, t, g): channels g*Cg.. of frame t, Cg runs of S values T*S apart; statistics in
//   (b, t, g) order, as the plain kernel gives for the frames laid out as [B*T, C, S]. Per group: mean, rstd = 1/sqrt(var + eps) (biased); per channel c
//   h = x * a_c + c_c with a_c = rstd * w_c, c_c = bias_c - mean * a_c; out = h * sigmoid(h).
//   Backward: dh = dout * s * (1 + h (1 - s)), s = sigmoid(h) (h recomputed from x), then
//   the group-norm backward with dn = dh * w_c:
//     dx = rstd * (dn - mean_K(dn) - xhat * mean_K(dn * xhat)),
//     dweight_c = sum_{b, s} dh * xhat, dbias_c = sum_{b, s} dh.
// layerNormModulate: inp [B, N, D], shift/scale [B, D]; per row (b, n) over D:
//   xhat = (x - mean) * rstd, out = xhat * (1 + scale_b) + shift_b.
//   Backward with dn = dout * (1 + scale_b): dx = rstd * (dn - mean_D(dn) - xhat * mean_D(dn * xhat)),
//   dshift_b = sum_n dout, dscale_b = sum_n dout * xhat.
//
// Two paths, forward and backward side by side:
// - reference: plain loops in double, one thread (cpu::reference_kernels()).
// - optimized: one pass to read the statistics (two for the variance, the second from
//   cache), one pass that writes the output; SiLU and sigmoid on SIMD math (vec.h,
//   AVX-512 / AVX2 / portable by simd_width()). The backward of groupNormSiLU keeps dh of
//   the group in a per-thread buffer (K floats, L2-sized for video VAEs) instead of
//   recomputing the exponentials. Long sums: float vector lanes within blocks of kBlock
//   values, blocks added in double, so the error does not grow with the group size.
//   Threads: over (b, g) groups, over rows, over (b, row chunk) tasks whose partial
//   parameter gradients are added in a fixed order: results are deterministic and
//   independent of the thread count.
// Memory contract: out, mean, rstd, dinp and the parameter gradients are overwritten (=).
#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/parallel.h"
#include "cpu.h"
#include "scratch.h"
#include "vec.h"

namespace ts {
namespace cpu {

namespace {

constexpr int64_t kBlock = 512;    // values summed in float lanes before the double total
constexpr int kScratchDh = 4;      // scratch slot of the groupNormSiLU backward's dh buffer
constexpr int64_t kRowChunks = 16;  // layerNormModulate backward: row chunks per sample, at most

// ======================= reference loops ==================================================

double sigmoid_d(double h) { return 1.0 / (1.0 + std::exp(-h)); }

// Element i < K = Cg*S of group (b, t, g): channel g*Cg + i/S, position i%S of frame t.
inline int64_t gn_at(int64_t b, int64_t t, int64_t g, int64_t i, int64_t C, int64_t T, int64_t S, int64_t Cg) {
  return ((b * C + g * Cg + i / S) * T + t) * S + i % S;
}

void gn_silu_forward_ref(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                         const float* bias, int64_t B, int64_t C, int64_t T, int64_t S, int64_t G, float eps) {
  const int64_t Cg = C / G, K = Cg * S;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t g = 0; g < G; ++g) {
        double mu = 0, var = 0;
        for (int64_t i = 0; i < K; ++i) mu += inp[gn_at(b, t, g, i, C, T, S, Cg)];
        mu /= K;
        for (int64_t i = 0; i < K; ++i) {
          const double d = inp[gn_at(b, t, g, i, C, T, S, Cg)] - mu;
          var += d * d;
        }
        const double rs = 1.0 / std::sqrt(var / K + eps);
        for (int64_t i = 0; i < K; ++i) {
          const int64_t c = g * Cg + i / S, at = gn_at(b, t, g, i, C, T, S, Cg);
          const double h = (inp[at] - mu) * rs * (weight ? weight[c] : 1.0f) + (bias ? bias[c] : 0.0f);
          out[at] = static_cast<float>(h * sigmoid_d(h));
        }
        mean[(b * T + t) * G + g] = static_cast<float>(mu);
        rstd[(b * T + t) * G + g] = static_cast<float>(rs);
      }
}

void gn_silu_backward_ref(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                          const float* weight, const float* bias, const float* mean, const float* rstd, int64_t B,
                          int64_t C, int64_t T, int64_t S, int64_t G) {
  const int64_t Cg = C / G, K = Cg * S;
  std::vector<double> dw(C, 0.0), db(C, 0.0), dh(K);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t g = 0; g < G; ++g) {
        const double mu = mean[(b * T + t) * G + g], rs = rstd[(b * T + t) * G + g];
        double sa = 0, sb = 0;  // sums of dn and dn * xhat over the group
        for (int64_t i = 0; i < K; ++i) {
          const int64_t c = g * Cg + i / S, at = gn_at(b, t, g, i, C, T, S, Cg);
          const double w = weight ? weight[c] : 1.0, xh = (inp[at] - mu) * rs;
          const double h = xh * w + (bias ? bias[c] : 0.0), s = sigmoid_d(h);
          dh[i] = dout[at] * s * (1.0 + h * (1.0 - s));
          sa += dh[i] * w;
          sb += dh[i] * w * xh;
          dw[c] += dh[i] * xh;
          db[c] += dh[i];
        }
        sa /= K;
        sb /= K;
        for (int64_t i = 0; i < K; ++i) {
          const int64_t c = g * Cg + i / S, at = gn_at(b, t, g, i, C, T, S, Cg);
          const double xh = (inp[at] - mu) * rs;
          dinp[at] = static_cast<float>(rs * (dh[i] * (weight ? weight[c] : 1.0) - sa - xh * sb));
        }
      }
  for (int64_t c = 0; c < C; ++c) {
    if (dweight) dweight[c] = static_cast<float>(dw[c]);
    if (dbias) dbias[c] = static_cast<float>(db[c]);
  }
}

void ln_mod_forward_ref(float* out, float* mean, float* rstd, const float* inp, const float* shift,
                        const float* scale, int64_t B, int64_t N, int64_t D, float eps) {
  for (int64_t m = 0; m < B * N; ++m) {
    const float* x = inp + m * D;
    const float* sh = shift + (m / N) * D;
    const float* sc = scale + (m / N) * D;
    double mu = 0, var = 0;
    for (int64_t i = 0; i < D; ++i) mu += x[i];
    mu /= D;
    for (int64_t i = 0; i < D; ++i) var += (x[i] - mu) * (x[i] - mu);
    const double rs = 1.0 / std::sqrt(var / D + eps);
    for (int64_t i = 0; i < D; ++i) out[m * D + i] = static_cast<float>((x[i] - mu) * rs * (1.0 + sc[i]) + sh[i]);
    mean[m] = static_cast<float>(mu);
    rstd[m] = static_cast<float>(rs);
  }
}

void ln_mod_backward_ref(float* dinp, float* dshift, float* dscale, const float* dout, const float* inp,
                         const float* scale, const float* mean, const float* rstd, int64_t B, int64_t N, int64_t D) {
  std::vector<double> dsh(B * D, 0.0), dsc(B * D, 0.0);
  for (int64_t m = 0; m < B * N; ++m) {
    const int64_t b = m / N;
    const float* x = inp + m * D;
    const float* g = dout + m * D;
    const float* sc = scale + b * D;
    const double mu = mean[m], rs = rstd[m];
    double sa = 0, sb = 0;
    for (int64_t i = 0; i < D; ++i) {
      const double xh = (x[i] - mu) * rs, dn = g[i] * (1.0 + sc[i]);
      sa += dn;
      sb += dn * xh;
      dsh[b * D + i] += g[i];
      dsc[b * D + i] += g[i] * xh;
    }
    sa /= D;
    sb /= D;
    for (int64_t i = 0; i < D; ++i) {
      const double xh = (x[i] - mu) * rs, dn = g[i] * (1.0 + sc[i]);
      dinp[m * D + i] = static_cast<float>(rs * (dn - sa - xh * sb));
    }
  }
  for (int64_t i = 0; i < B * D; ++i) dshift[i] = static_cast<float>(dsh[i]), dscale[i] = static_cast<float>(dsc[i]);
}

// ======================= SIMD building blocks =============================================

// Loads n < W floats (zero padded) / stores the first n lanes.
template <int W>
TS_INLINE typename Vec<W>::F vload_part(const float* p, int64_t n) {
  float buf[W] = {};
  for (int64_t i = 0; i < n; ++i) buf[i] = p[i];
  return vload<W>(buf);
}
template <int W>
TS_INLINE void vstore_part(float* p, typename Vec<W>::F v, int64_t n) {
  float buf[W];
  vstore<W>(buf, v);
  for (int64_t i = 0; i < n; ++i) p[i] = buf[i];
}

// Sum of f over [0, n): f(i) gives a vector of W terms at i (i + W <= n) and ft(i) one
// scalar term (the tail). Float lanes within blocks of kBlock, blocks added in double.
template <int W, typename FV, typename FT>
TS_INLINE double block_sum(int64_t n, FV&& f, FT&& ft) {
  using F = typename Vec<W>::F;
  double total = 0;
  int64_t i = 0;
  for (; i + W <= n;) {
    const int64_t end = std::min(n - W + 1, i + kBlock);
    F acc{};
    for (; i < end; i += W) acc += f(i);
    total += hsum<W>(acc);
  }
  for (; i < n; ++i) total += ft(i);
  return total;
}

// ======================= groupNormSiLU ====================================================

// Groups bg in [bg0, bg1) of (b, t, g) (T = 1: the plain layout, each group one
// contiguous run of K values; T > 1: Cg runs of S values, T*S apart).
template <int W>
TS_INLINE void gn_silu_forward_groups(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                                      const float* bias, int64_t C, int64_t T, int64_t S, int64_t G, float eps,
                                      int64_t bg0, int64_t bg1) {
  using F = typename Vec<W>::F;
  const int64_t Cg = C / G, K = Cg * S, cs = T * S;  // cs: stride between the group's channels
  for (int64_t bg = bg0; bg < bg1; ++bg) {
    const int64_t b = bg / (T * G), t = (bg / G) % T, g = bg % G;
    const float* x = inp + (b * C + g * Cg) * cs + t * S;
    float* y = out + (b * C + g * Cg) * cs + t * S;
    // The sums over the group: one run when contiguous (T = 1), else channel by channel.
    auto group_sum = [&](auto&& fv, auto&& ft) TS_INLINE_LAMBDA {
      if (T == 1) return block_sum<W>(K, fv, ft);
      double total = 0;
      for (int64_t k = 0; k < Cg; ++k)
        total += block_sum<W>(
            S, [&](int64_t i) TS_INLINE_LAMBDA { return fv(k * cs + i); }, [&](int64_t i) TS_INLINE_LAMBDA { return ft(k * cs + i); });
      return total;
    };
    const double sum = group_sum([&](int64_t i) TS_INLINE_LAMBDA { return vload<W>(x + i); }, [&](int64_t i) TS_INLINE_LAMBDA { return x[i]; });
    const float mu = static_cast<float>(sum / K);
    const double var = group_sum(
        [&](int64_t i) TS_INLINE_LAMBDA {
          F d = vload<W>(x + i) - mu;
          return d * d;
        },
        [&](int64_t i) TS_INLINE_LAMBDA { return (x[i] - mu) * (x[i] - mu); });
    const float rs = static_cast<float>(1.0 / std::sqrt(var / K + eps));
    for (int64_t k = 0; k < Cg; ++k) {
      const int64_t ch = g * Cg + k;
      const float a = rs * (weight ? weight[ch] : 1.0f), c = (bias ? bias[ch] : 0.0f) - mu * a;
      const float* xs = x + k * cs;
      float* ys = y + k * cs;
      int64_t i = 0;
      for (; i + W <= S; i += W) {
        F h = vload<W>(xs + i) * a + c;
        vstore<W>(ys + i, h * vsigmoid<W>(h));
      }
      if (i < S) {
        F h = vload_part<W>(xs + i, S - i) * a + c;
        vstore_part<W>(ys + i, h * vsigmoid<W>(h), S - i);
      }
    }
    mean[bg] = mu;
    rstd[bg] = rs;
  }
}

// Groups [bg0, bg1) of (b, t, g): dinp, and per (b, t, c) partial sums pw = sum dh * xhat,
// pb = sum dh (the caller adds them over b and t in order).
template <int W>
TS_INLINE void gn_silu_backward_groups(float* dinp, float* pw, float* pb, const float* dout, const float* inp,
                                       const float* weight, const float* bias, const float* mean, const float* rstd,
                                       int64_t C, int64_t T, int64_t S, int64_t G, int64_t bg0, int64_t bg1) {
  using F = typename Vec<W>::F;
  const int64_t Cg = C / G, K = Cg * S, cs = T * S;
  float* dh = scratch_as<float>(kScratchDh, static_cast<size_t>(K));
  for (int64_t bg = bg0; bg < bg1; ++bg) {
    const int64_t b = bg / (T * G), t = (bg / G) % T, g = bg % G, base = (b * C + g * Cg) * cs + t * S;
    const int64_t prow = (b * T + t) * C;  // this (b, t)'s row of partials
    const float mu = mean[bg], rs = rstd[bg];
    double sa = 0, sb = 0;  // sums over the group of dn and dn * xhat (dn = dh * w)
    for (int64_t k = 0; k < Cg; ++k) {
      const int64_t ch = g * Cg + k;
      const float w = weight ? weight[ch] : 1.0f, a = rs * w, c = (bias ? bias[ch] : 0.0f) - mu * a;
      const float* xs = inp + base + k * cs;
      const float* gs = dout + base + k * cs;
      float* hs = dh + k * S;
      // dh of this channel, written to the buffer while its two sums accumulate.
      auto dh_at = [&](F xv, F gv) TS_INLINE_LAMBDA {
        F h = xv * a + c, s = vsigmoid<W>(h);
        return gv * s * (1.0f + h * (1.0f - s));
      };
      int64_t i = 0;
      for (; i + W <= S; i += W) vstore<W>(hs + i, dh_at(vload<W>(xs + i), vload<W>(gs + i)));
      if (i < S) vstore_part<W>(hs + i, dh_at(vload_part<W>(xs + i, S - i), vload_part<W>(gs + i, S - i)), S - i);
      const double sdh = block_sum<W>(
          S, [&](int64_t j) TS_INLINE_LAMBDA { return vload<W>(hs + j); },
          [&](int64_t j) TS_INLINE_LAMBDA { return hs[j]; });
      const double sdhx = block_sum<W>(
          S, [&](int64_t j) TS_INLINE_LAMBDA { return vload<W>(hs + j) * (vload<W>(xs + j) - mu); },
          [&](int64_t j) TS_INLINE_LAMBDA { return hs[j] * (xs[j] - mu); });
      pw[prow + ch] = static_cast<float>(sdhx * rs);
      pb[prow + ch] = static_cast<float>(sdh);
      sa += w * sdh;
      sb += w * sdhx * rs;
    }
    const float ma = static_cast<float>(sa / K), mb = static_cast<float>(sb / K);
    for (int64_t k = 0; k < Cg; ++k) {
      const int64_t ch = g * Cg + k;
      const float w = weight ? weight[ch] : 1.0f;
      const float* xs = inp + base + k * cs;
      const float* hs = dh + k * S;
      float* ds = dinp + base + k * cs;
      auto dx_at = [&](F xv, F hv) TS_INLINE_LAMBDA { return rs * (hv * w - ma - (xv - mu) * rs * mb); };
      int64_t i = 0;
      for (; i + W <= S; i += W) vstore<W>(ds + i, dx_at(vload<W>(xs + i), vload<W>(hs + i)));
      if (i < S) vstore_part<W>(ds + i, dx_at(vload_part<W>(xs + i, S - i), vload_part<W>(hs + i, S - i)), S - i);
    }
  }
}

// ======================= layerNormModulate ================================================

template <int W>
TS_INLINE void ln_mod_forward_rows(float* out, float* mean, float* rstd, const float* inp, const float* shift,
                                   const float* scale, int64_t N, int64_t D, float eps, int64_t m0, int64_t m1) {
  using F = typename Vec<W>::F;
  for (int64_t m = m0; m < m1; ++m) {
    const float* x = inp + m * D;
    const float* sh = shift + (m / N) * D;
    const float* sc = scale + (m / N) * D;
    float* y = out + m * D;
    const double sum = block_sum<W>(
        D, [&](int64_t i) TS_INLINE_LAMBDA { return vload<W>(x + i); }, [&](int64_t i) TS_INLINE_LAMBDA { return x[i]; });
    const float mu = static_cast<float>(sum / D);
    const double var = block_sum<W>(
        D,
        [&](int64_t i) TS_INLINE_LAMBDA {
          F d = vload<W>(x + i) - mu;
          return d * d;
        },
        [&](int64_t i) TS_INLINE_LAMBDA { return (x[i] - mu) * (x[i] - mu); });
    const float rs = static_cast<float>(1.0 / std::sqrt(var / D + eps));
    auto y_at = [&](F xv, F scv, F shv) TS_INLINE_LAMBDA { return (xv - mu) * rs * (1.0f + scv) + shv; };
    int64_t i = 0;
    for (; i + W <= D; i += W) vstore<W>(y + i, y_at(vload<W>(x + i), vload<W>(sc + i), vload<W>(sh + i)));
    if (i < D)
      vstore_part<W>(
          y + i, y_at(vload_part<W>(x + i, D - i), vload_part<W>(sc + i, D - i), vload_part<W>(sh + i, D - i)), D - i);
    mean[m] = mu;
    rstd[m] = rs;
  }
}

// Rows [m0, m1) of one sample b: dinp, and that chunk's sums of dout and dout * xhat
// into psh / psc [D] (overwritten).
template <int W>
TS_INLINE void ln_mod_backward_rows(float* dinp, float* psh, float* psc, const float* dout, const float* inp,
                                    const float* scale, const float* mean, const float* rstd, int64_t D, int64_t m0,
                                    int64_t m1) {
  using F = typename Vec<W>::F;
  std::fill(psh, psh + D, 0.0f);
  std::fill(psc, psc + D, 0.0f);
  for (int64_t m = m0; m < m1; ++m) {
    const float* x = inp + m * D;
    const float* g = dout + m * D;
    float* d = dinp + m * D;
    const float mu = mean[m], rs = rstd[m];
    const double sa = block_sum<W>(
        D, [&](int64_t i) TS_INLINE_LAMBDA { return vload<W>(g + i) * (1.0f + vload<W>(scale + i)); },
        [&](int64_t i) TS_INLINE_LAMBDA { return g[i] * (1.0f + scale[i]); });
    const double sb = block_sum<W>(
        D,
        [&](int64_t i) TS_INLINE_LAMBDA {
          return vload<W>(g + i) * (1.0f + vload<W>(scale + i)) * (vload<W>(x + i) - mu);
        },
        [&](int64_t i) TS_INLINE_LAMBDA { return g[i] * (1.0f + scale[i]) * (x[i] - mu); });
    const float ma = static_cast<float>(sa / D), mb = static_cast<float>(sb * rs / D);
    auto step = [&](int64_t i, int64_t len) TS_INLINE_LAMBDA {
      const bool full = len == W;
      F xv = full ? vload<W>(x + i) : vload_part<W>(x + i, len);
      F gv = full ? vload<W>(g + i) : vload_part<W>(g + i, len);
      F scv = full ? vload<W>(scale + i) : vload_part<W>(scale + i, len);
      F shv = full ? vload<W>(psh + i) : vload_part<W>(psh + i, len);
      F cv = full ? vload<W>(psc + i) : vload_part<W>(psc + i, len);
      F xh = (xv - mu) * rs;
      F dx = rs * (gv * (1.0f + scv) - ma - xh * mb);
      if (full) {
        vstore<W>(d + i, dx), vstore<W>(psh + i, shv + gv), vstore<W>(psc + i, cv + gv * xh);
      } else {
        vstore_part<W>(d + i, dx, len), vstore_part<W>(psh + i, shv + gv, len);
        vstore_part<W>(psc + i, cv + gv * xh, len);
      }
    };
    int64_t i = 0;
    for (; i + W <= D; i += W) step(i, W);
    if (i < D) step(i, D - i);
  }
}

// ======================= per-ISA instances =================================================

#define TS_FUSED_ISA(SUFFIX, W, TARGET)                                                                              \
  TARGET void gn_fwd_##SUFFIX(float* out, float* mean, float* rstd, const float* inp, const float* weight,          \
                              const float* bias, int64_t C, int64_t T, int64_t S, int64_t G, float eps,            \
                              int64_t bg0, int64_t bg1) {                                                          \
    gn_silu_forward_groups<W>(out, mean, rstd, inp, weight, bias, C, T, S, G, eps, bg0, bg1);                      \
  }                                                                                                                \
  TARGET void gn_bwd_##SUFFIX(float* dinp, float* pw, float* pb, const float* dout, const float* inp,              \
                              const float* weight, const float* bias, const float* mean, const float* rstd,        \
                              int64_t C, int64_t T, int64_t S, int64_t G, int64_t bg0, int64_t bg1) {              \
    gn_silu_backward_groups<W>(dinp, pw, pb, dout, inp, weight, bias, mean, rstd, C, T, S, G, bg0, bg1);           \
  }                                                                                                                \
  TARGET void ln_fwd_##SUFFIX(float* out, float* mean, float* rstd, const float* inp, const float* shift,          \
                              const float* scale, int64_t N, int64_t D, float eps, int64_t m0, int64_t m1) {       \
    ln_mod_forward_rows<W>(out, mean, rstd, inp, shift, scale, N, D, eps, m0, m1);                                 \
  }                                                                                                                \
  TARGET void ln_bwd_##SUFFIX(float* dinp, float* psh, float* psc, const float* dout, const float* inp,            \
                              const float* scale, const float* mean, const float* rstd, int64_t D, int64_t m0,     \
                              int64_t m1) {                                                                        \
    ln_mod_backward_rows<W>(dinp, psh, psc, dout, inp, scale, mean, rstd, D, m0, m1);                              \
  }

TS_FUSED_ISA(avx512, 16, __attribute__((target("avx512f,fma"))))
TS_FUSED_ISA(avx2, 8, __attribute__((target("avx2,fma"))))
TS_FUSED_ISA(portable, 4, )
#undef TS_FUSED_ISA

// Picks the instance for simd_width().
#define TS_FUSED_PICK(NAME) (simd_width() == 16 ? NAME##_avx512 : simd_width() == 8 ? NAME##_avx2 : NAME##_portable)

}  // namespace

// ======================= entry points =====================================================

void groupnorm_silu_frames_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                                   const float* bias, int64_t B, int64_t C, int64_t T, int64_t S, int64_t G, float eps) {
  if (reference_kernels()) return gn_silu_forward_ref(out, mean, rstd, inp, weight, bias, B, C, T, S, G, eps);
  auto fn = TS_FUSED_PICK(gn_fwd);
  const int64_t K = C / G * S;
  parallel_for(0, B * T * G, std::max<int64_t>(1, 16384 / std::max<int64_t>(K, 1)), [&](int64_t lo, int64_t hi) {
    fn(out, mean, rstd, inp, weight, bias, C, T, S, G, eps, lo, hi);
  });
}

void groupnorm_silu_frames_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                                    const float* weight, const float* bias, const float* mean, const float* rstd,
                                    int64_t B, int64_t C, int64_t T, int64_t S, int64_t G) {
  if (reference_kernels())
    return gn_silu_backward_ref(dinp, dweight, dbias, dout, inp, weight, bias, mean, rstd, B, C, T, S, G);
  auto fn = TS_FUSED_PICK(gn_bwd);
  const int64_t K = C / G * S;
  std::vector<float> pw(B * T * C), pb(B * T * C);  // per (b, t, c) partials, summed over (b, t) in order
  parallel_for(0, B * T * G, std::max<int64_t>(1, 16384 / std::max<int64_t>(K, 1)), [&](int64_t lo, int64_t hi) {
    fn(dinp, pw.data(), pb.data(), dout, inp, weight, bias, mean, rstd, C, T, S, G, lo, hi);
  });
  for (int64_t c = 0; c < C; ++c) {
    double sw = 0, sb = 0;
    for (int64_t bt = 0; bt < B * T; ++bt) sw += pw[bt * C + c], sb += pb[bt * C + c];
    if (dweight) dweight[c] = static_cast<float>(sw);
    if (dbias) dbias[c] = static_cast<float>(sb);
  }
}

void groupnorm_silu_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                            const float* bias, int64_t B, int64_t C, int64_t S, int64_t G, float eps) {
  groupnorm_silu_frames_forward(out, mean, rstd, inp, weight, bias, B, C, 1, S, G, eps);
}

void groupnorm_silu_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                             const float* weight, const float* bias, const float* mean, const float* rstd, int64_t B,
                             int64_t C, int64_t S, int64_t G) {
  groupnorm_silu_frames_backward(dinp, dweight, dbias, dout, inp, weight, bias, mean, rstd, B, C, 1, S, G);
}

void layernorm_modulate_forward(float* out, float* mean, float* rstd, const float* inp, const float* shift,
                                const float* scale, int64_t B, int64_t N, int64_t D, float eps) {
  if (reference_kernels()) return ln_mod_forward_ref(out, mean, rstd, inp, shift, scale, B, N, D, eps);
  auto fn = TS_FUSED_PICK(ln_fwd);
  parallel_for(0, B * N, std::max<int64_t>(1, 16384 / D), [&](int64_t lo, int64_t hi) {
    fn(out, mean, rstd, inp, shift, scale, N, D, eps, lo, hi);
  });
}

void layernorm_modulate_backward(float* dinp, float* dshift, float* dscale, const float* dout, const float* inp,
                                 const float* scale, const float* mean, const float* rstd, int64_t B, int64_t N,
                                 int64_t D) {
  if (reference_kernels())
    return ln_mod_backward_ref(dinp, dshift, dscale, dout, inp, scale, mean, rstd, B, N, D);
  auto fn = TS_FUSED_PICK(ln_bwd);
  // Tasks (b, chunk of rows): the chunking depends on N and D only, so the partials
  // and their ordered sum are the same for any thread count.
  const int64_t per = std::max<int64_t>({1, (N + kRowChunks - 1) / kRowChunks, 4096 / D});
  const int64_t chunks = N > 0 ? (N + per - 1) / per : 0;
  std::vector<float> psh(B * chunks * D), psc(B * chunks * D);
  parallel_for(0, B * chunks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t b = t / chunks, c = t % chunks, m0 = b * N + c * per, m1 = b * N + std::min(N, (c + 1) * per);
      fn(dinp, psh.data() + t * D, psc.data() + t * D, dout, inp, scale + b * D, mean, rstd, D, m0, m1);
    }
  });
  parallel_for(0, B * D, 1024, [&](int64_t lo, int64_t hi) {
    for (int64_t j = lo; j < hi; ++j) {
      const int64_t b = j / D, i = j % D;
      double sh = 0, sc = 0;
      for (int64_t c = 0; c < chunks; ++c) sh += psh[(b * chunks + c) * D + i], sc += psc[(b * chunks + c) * D + i];
      dshift[j] = static_cast<float>(sh);
      dscale[j] = static_cast<float>(sc);
    }
  });
}

}  // namespace cpu
}  // namespace ts
