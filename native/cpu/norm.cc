// tessera CPU: layer norm, RMS norm and group norm, forward and backward side by side
// (CUDA twin: cuda/norm.cu; groupNorm+SiLU and layerNorm+modulate, fused, are in
// fused_norm.cc).
// Dimension letters: M rows, N normalized width (layer and RMS norm); B batch,
// C channels, S spatial size, G groups (group norm).
// Each op has a plain reference loop (one thread, sums in double; chosen by
// cpu::reference_kernels()) beside the optimized path (threads via parallel_for,
// vectorizable float loops, fused passes, blocked deterministic sums from common.h);
// llm.c argument order: outputs, gradients, inputs, saved stats, sizes.
// Memory contract: out, mean, rstd, dinp and the parameter gradients (dweight, dbias)
// are overwritten (=), never accumulated; callers pass fresh buffers.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/parallel.h"
#include "common.h"
#include "cpu.h"

namespace ts {
namespace cpu {

// ======================= layer norm ======================================================
// inp [M, N]: xhat = (x - mean) * rstd, rstd = 1 / sqrt(var + eps) (biased variance),
// out = xhat * weight + bias. Backward, with dn = dout * weight:
//   dx = rstd * (dn - mean(dn) - xhat * mean(dn * xhat)),
//   dweight = sum_rows dout * xhat, dbias = sum_rows dout.

static void layernorm_forward_ref(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                                  const float* bias, int64_t M, int64_t N, float eps) {
  for (int64_t m = 0; m < M; ++m) {
    const float* x = inp + m * N;
    double mu = 0, var = 0;
    for (int64_t i = 0; i < N; ++i) mu += x[i];
    mu /= N;
    for (int64_t i = 0; i < N; ++i) var += (x[i] - mu) * (x[i] - mu);
    var /= N;
    double rs = 1.0 / std::sqrt(var + eps);
    for (int64_t i = 0; i < N; ++i) {
      double v = (x[i] - mu) * rs;
      if (weight) v *= weight[i];
      if (bias) v += bias[i];
      out[m * N + i] = static_cast<float>(v);
    }
    mean[m] = static_cast<float>(mu);
    rstd[m] = static_cast<float>(rs);
  }
}

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                       int64_t M, int64_t N, float eps) {
  if (reference_kernels()) return layernorm_forward_ref(out, mean, rstd, inp, weight, bias, M, N, eps);
  parallel_for(0, M, row_grain(N), [&](int64_t lo, int64_t hi) {
    for (int64_t m = lo; m < hi; ++m) {
      const float* x = inp + m * N;
      float* y = out + m * N;
      float mu = static_cast<float>(block_sum(0, N, [&](int64_t i) { return x[i]; }) / N);
      double v = block_sum(0, N, [&](int64_t i) { return (x[i] - mu) * (x[i] - mu); });
      float rs = static_cast<float>(1.0 / std::sqrt(v / N + eps));
      if (weight && bias) {
        for (int64_t i = 0; i < N; ++i) y[i] = (x[i] - mu) * rs * weight[i] + bias[i];
      } else if (weight) {
        for (int64_t i = 0; i < N; ++i) y[i] = (x[i] - mu) * rs * weight[i];
      } else {
        float b0 = 0;
        for (int64_t i = 0; i < N; ++i) y[i] = (x[i] - mu) * rs + (bias ? bias[i] : b0);
      }
      mean[m] = mu;
      rstd[m] = rs;
    }
  });
}

static void layernorm_backward_ref(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                                   const float* weight, const float* mean, const float* rstd, int64_t M, int64_t N) {
  std::vector<double> dw(N, 0.0), db(N, 0.0);
  for (int64_t m = 0; m < M; ++m) {
    const float* x = inp + m * N;
    const float* g = dout + m * N;
    double mu = mean[m], rs = rstd[m], a = 0, b = 0;
    for (int64_t i = 0; i < N; ++i) {
      double xh = (x[i] - mu) * rs, dn = static_cast<double>(g[i]) * (weight ? weight[i] : 1.0f);
      a += dn;
      b += dn * xh;
      dw[i] += g[i] * xh;
      db[i] += g[i];
    }
    a /= N;
    b /= N;
    for (int64_t i = 0; i < N; ++i) {
      double xh = (x[i] - mu) * rs, dn = static_cast<double>(g[i]) * (weight ? weight[i] : 1.0f);
      dinp[m * N + i] = static_cast<float>(rs * (dn - a - xh * b));
    }
  }
  for (int64_t i = 0; i < N; ++i) {
    if (dweight) dweight[i] = static_cast<float>(dw[i]);
    if (dbias) dbias[i] = static_cast<float>(db[i]);
  }
}

// Adds `count` partial rows of [count, N] into out [N] in order (deterministic).
static void sum_partials(float* out, const std::vector<float>& part, int64_t count, int64_t N) {
  parallel_for(0, N, kGrain / 8, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      float s = 0;
      for (int64_t c = 0; c < count; ++c) s += part[c * N + i];
      out[i] = s;
    }
  });
}

// The backward of layer norm (with_mean) and RMS norm (without): one pass per row
// chunk computes dinp and the chunk's partial dweight (and dbias).
static void rownorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                             const float* weight, const float* mean, const float* rstd, int64_t M, int64_t N) {
  Chunks ch(M, N);
  std::vector<float> pw(dweight ? ch.count * N : 0), pb(dbias ? ch.count * N : 0);
  parallel_for(0, ch.count, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) {
      float* aw = dweight ? pw.data() + c * N : nullptr;
      float* ab = dbias ? pb.data() + c * N : nullptr;
      if (aw) std::fill(aw, aw + N, 0.0f);
      if (ab) std::fill(ab, ab + N, 0.0f);
      for (int64_t m = c * ch.per; m < std::min(M, (c + 1) * ch.per); ++m) {
        const float* x = inp + m * N;
        const float* g = dout + m * N;
        float* d = dinp + m * N;
        float mu = mean ? mean[m] : 0.0f, rs = rstd[m], a = 0, b = 0;
        if (weight) {
          block_sum2(N, [&](int64_t i) { float dn = g[i] * weight[i]; return Pair{dn, dn * (x[i] - mu) * rs}; }, &a, &b);
        } else {
          block_sum2(N, [&](int64_t i) { return Pair{g[i], g[i] * (x[i] - mu) * rs}; }, &a, &b);
        }
        a = mean ? a / N : 0.0f;  // RMS norm has no mean term
        b /= N;
        if (weight) {
          for (int64_t i = 0; i < N; ++i) d[i] = rs * (g[i] * weight[i] - a - (x[i] - mu) * rs * b);
        } else {
          for (int64_t i = 0; i < N; ++i) d[i] = rs * (g[i] - a - (x[i] - mu) * rs * b);
        }
        if (aw)
          for (int64_t i = 0; i < N; ++i) aw[i] += g[i] * (x[i] - mu) * rs;
        if (ab)
          for (int64_t i = 0; i < N; ++i) ab[i] += g[i];
      }
    }
  });
  if (dweight) sum_partials(dweight, pw, ch.count, N);
  if (dbias) sum_partials(dbias, pb, ch.count, N);
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t M, int64_t N) {
  if (reference_kernels())
    return layernorm_backward_ref(dinp, dweight, dbias, dout, inp, weight, mean, rstd, M, N);
  rownorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, M, N);
}

// ======================= RMS norm ========================================================
// inp [M, N]: rstd = 1 / sqrt(mean(x^2) + eps), xhat = x * rstd, out = xhat * weight.
// Backward, dn = dout * weight: dx = rstd * (dn - xhat * mean(dn * xhat)),
// dweight = sum_rows dout * xhat.

static void rmsnorm_forward_ref(float* out, float* rstd, const float* inp, const float* weight, int64_t M, int64_t N,
                                float eps) {
  for (int64_t m = 0; m < M; ++m) {
    const float* x = inp + m * N;
    double ss = 0;
    for (int64_t i = 0; i < N; ++i) ss += static_cast<double>(x[i]) * x[i];
    double rs = 1.0 / std::sqrt(ss / N + eps);
    for (int64_t i = 0; i < N; ++i) out[m * N + i] = static_cast<float>(x[i] * rs * (weight ? weight[i] : 1.0f));
    rstd[m] = static_cast<float>(rs);
  }
}

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t M, int64_t N, float eps) {
  if (reference_kernels()) return rmsnorm_forward_ref(out, rstd, inp, weight, M, N, eps);
  parallel_for(0, M, row_grain(N), [&](int64_t lo, int64_t hi) {
    for (int64_t m = lo; m < hi; ++m) {
      const float* x = inp + m * N;
      float* y = out + m * N;
      double ss = block_sum(0, N, [&](int64_t i) { return x[i] * x[i]; });
      float rs = static_cast<float>(1.0 / std::sqrt(ss / N + eps));
      if (weight) {
        for (int64_t i = 0; i < N; ++i) y[i] = x[i] * rs * weight[i];
      } else {
        for (int64_t i = 0; i < N; ++i) y[i] = x[i] * rs;
      }
      rstd[m] = rs;
    }
  });
}

static void rmsnorm_backward_ref(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                                 const float* rstd, int64_t M, int64_t N) {
  std::vector<double> dw(N, 0.0);
  for (int64_t m = 0; m < M; ++m) {
    const float* x = inp + m * N;
    const float* g = dout + m * N;
    double rs = rstd[m], b = 0;
    for (int64_t i = 0; i < N; ++i) {
      double xh = x[i] * rs;
      b += static_cast<double>(g[i]) * (weight ? weight[i] : 1.0f) * xh;
      dw[i] += g[i] * xh;
    }
    b /= N;
    for (int64_t i = 0; i < N; ++i) {
      double dn = static_cast<double>(g[i]) * (weight ? weight[i] : 1.0f);
      dinp[m * N + i] = static_cast<float>(rs * (dn - x[i] * rs * b));
    }
  }
  if (dweight)
    for (int64_t i = 0; i < N; ++i) dweight[i] = static_cast<float>(dw[i]);
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t M, int64_t N) {
  if (reference_kernels()) return rmsnorm_backward_ref(dinp, dweight, dout, inp, weight, rstd, M, N);
  rownorm_backward(dinp, dweight, nullptr, dout, inp, weight, nullptr, rstd, M, N);
}

// ======================= group norm ======================================================
// inp [B, C, S]; group g of sample b is the contiguous run of K = (C/G) * S elements
// starting at (b*C + g*C/G) * S. Statistics per (b, g); weight/bias per channel.
// Backward, dn = dout * weight[c]: dx = rstd * (dn - mean(dn) - xhat * mean(dn * xhat))
// over the group; dweight[c] = sum_{b,s} dout * xhat, dbias[c] = sum_{b,s} dout.

static void groupnorm_forward_ref(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                                  const float* bias, int64_t B, int64_t C, int64_t S, int64_t G, float eps) {
  int64_t Cg = C / G, K = Cg * S;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t g = 0; g < G; ++g) {
      const float* x = inp + (b * C + g * Cg) * S;
      float* y = out + (b * C + g * Cg) * S;
      double mu = 0, var = 0;
      for (int64_t i = 0; i < K; ++i) mu += x[i];
      mu /= K;
      for (int64_t i = 0; i < K; ++i) var += (x[i] - mu) * (x[i] - mu);
      var /= K;
      double rs = 1.0 / std::sqrt(var + eps);
      for (int64_t i = 0; i < K; ++i) {
        int64_t c = g * Cg + i / S;
        double v = (x[i] - mu) * rs;
        if (weight) v *= weight[c];
        if (bias) v += bias[c];
        y[i] = static_cast<float>(v);
      }
      mean[b * G + g] = static_cast<float>(mu);
      rstd[b * G + g] = static_cast<float>(rs);
    }
}

void groupnorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                       int64_t B, int64_t C, int64_t S, int64_t G, float eps) {
  if (reference_kernels()) return groupnorm_forward_ref(out, mean, rstd, inp, weight, bias, B, C, S, G, eps);
  int64_t Cg = C / G, K = Cg * S;
  parallel_for(0, B * G, row_grain(K), [&](int64_t lo, int64_t hi) {
    for (int64_t bg = lo; bg < hi; ++bg) {
      int64_t b = bg / G, g = bg % G;
      const float* x = inp + (b * C + g * Cg) * S;
      float* y = out + (b * C + g * Cg) * S;
      float mu = static_cast<float>(block_sum(0, K, [&](int64_t i) { return x[i]; }) / K);
      double v = block_sum(0, K, [&](int64_t i) { return (x[i] - mu) * (x[i] - mu); });
      float rs = static_cast<float>(1.0 / std::sqrt(v / K + eps));
      // Per channel: y = x * a + c with a = rstd * w, c = bias - mean * a.
      for (int64_t k = 0; k < Cg; ++k) {
        int64_t ch = g * Cg + k;
        float a = rs * (weight ? weight[ch] : 1.0f);
        float c = (bias ? bias[ch] : 0.0f) - mu * a;
        const float* xs = x + k * S;
        float* ys = y + k * S;
        for (int64_t i = 0; i < S; ++i) ys[i] = xs[i] * a + c;
      }
      mean[bg] = mu;
      rstd[bg] = rs;
    }
  });
}

static void groupnorm_backward_ref(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                                   const float* weight, const float* mean, const float* rstd, int64_t B, int64_t C,
                                   int64_t S, int64_t G) {
  int64_t Cg = C / G, K = Cg * S;
  std::vector<double> dw(C, 0.0), db(C, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t g = 0; g < G; ++g) {
      int64_t base = (b * C + g * Cg) * S;
      double mu = mean[b * G + g], rs = rstd[b * G + g], a = 0, bb = 0;
      for (int64_t i = 0; i < K; ++i) {
        int64_t c = g * Cg + i / S;
        double xh = (inp[base + i] - mu) * rs, gi = dout[base + i];
        double dn = gi * (weight ? weight[c] : 1.0f);
        a += dn;
        bb += dn * xh;
        dw[c] += gi * xh;
        db[c] += gi;
      }
      a /= K;
      bb /= K;
      for (int64_t i = 0; i < K; ++i) {
        int64_t c = g * Cg + i / S;
        double xh = (inp[base + i] - mu) * rs;
        double dn = static_cast<double>(dout[base + i]) * (weight ? weight[c] : 1.0f);
        dinp[base + i] = static_cast<float>(rs * (dn - a - xh * bb));
      }
    }
  for (int64_t c = 0; c < C; ++c) {
    if (dweight) dweight[c] = static_cast<float>(dw[c]);
    if (dbias) dbias[c] = static_cast<float>(db[c]);
  }
}

void groupnorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t B, int64_t C, int64_t S,
                        int64_t G) {
  if (reference_kernels())
    return groupnorm_backward_ref(dinp, dweight, dbias, dout, inp, weight, mean, rstd, B, C, S, G);
  int64_t Cg = C / G, K = Cg * S;
  // Per (b, c) partial sums of dout * xhat and dout, summed over b in order afterwards.
  std::vector<float> pw(B * C), pb(B * C);
  parallel_for(0, B * G, row_grain(K), [&](int64_t lo, int64_t hi) {
    for (int64_t bg = lo; bg < hi; ++bg) {
      int64_t b = bg / G, g = bg % G, base = (b * C + g * Cg) * S;
      const float* x = inp + base;
      const float* go = dout + base;
      float* d = dinp + base;
      float mu = mean[bg], rs = rstd[bg], a = 0, bb = 0;
      for (int64_t k = 0; k < Cg; ++k) {
        int64_t ch = g * Cg + k;
        const float* xs = x + k * S;
        const float* gs = go + k * S;
        float sg, sgx;
        block_sum2(S, [&](int64_t i) { return Pair{gs[i], gs[i] * (xs[i] - mu)}; }, &sg, &sgx);
        sgx *= rs;  // sum dout * xhat over this channel's run
        pw[b * C + ch] = sgx;
        pb[b * C + ch] = sg;
        float w = weight ? weight[ch] : 1.0f;
        a += w * sg;
        bb += w * sgx;
      }
      a /= K;
      bb /= K;
      for (int64_t k = 0; k < Cg; ++k) {
        int64_t ch = g * Cg + k;
        float w = weight ? weight[ch] : 1.0f;
        const float* xs = x + k * S;
        const float* gs = go + k * S;
        float* ds = d + k * S;
        for (int64_t i = 0; i < S; ++i) ds[i] = rs * (gs[i] * w - a - (xs[i] - mu) * rs * bb);
      }
    }
  });
  for (int64_t c = 0; c < C; ++c) {
    float sw = 0, sb = 0;
    for (int64_t b = 0; b < B; ++b) sw += pw[b * C + c], sb += pb[b * C + c];
    if (dweight) dweight[c] = sw;
    if (dbias) dbias[c] = sb;
  }
}

}  // namespace cpu
}  // namespace ts
