// tessera CPU: conv3d forward and backward (PyTorch layouts, see core/conv.h).
// Dimension letters: B batch, Cin/Cout channels, T frames, H height, W width;
// kt, kh, kw kernel; T', H', W' (To, Ho, Wo) output; K = Cin*kt*kh*kw the GEMM
// reduction length; P = To*Ho*Wo output positions of one (b, cout).
//
// Two paths, forward and backward side by side:
// - reference: plain loops over every output and tap, double accumulation, one
//   thread (used when cpu::reference_kernels() is true; the truth in tests).
// - optimized: per batch item, vol2col writes a column buffer col [K, n] for a chunk
//   of n output positions (whole output rows (t', h'), sized so the buffer stays near
//   kColumnBudget), then cpu::gemm does the work:
//     forward  out[:, chunk]  = weight [Cout, K] @ col [K, n]
//     dweight              += dout[:, chunk] [Cout, n] @ col^T [n, K]
//     dinp    dcol [K, n]   = weight^T [K, Cout] @ dout[:, chunk]; col2im adds dcol
//                             back into dinp.
//   A 1x1x1 kernel with unit stride and no padding uses the input as col directly.
//   Threads: inside cpu::gemm, vol2col (over K rows), col2im (over Cin), bias sums.
// Padding: a padded coordinate i (0-based in the padded input) maps to input index
// i - pad_before; outside [0, n) it reads zero (PadMode::Zeros) or the clamped edge
// element (PadMode::Replicate), whose gradient then lands on that edge element.
// Memory contract: out, dinp, dweight and dbias are overwritten (=), not accumulated.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <vector>

#include "../core/parallel.h"
#include "cpu.h"

namespace ts {
namespace cpu {

namespace {

// Input index for padded coordinate i (already shifted by the front padding), or -1
// for a zero-padded position.
inline int64_t src_index(int64_t i, int64_t n, bool replicate) {
  if (i >= 0 && i < n) return i;
  if (!replicate) return -1;
  return i < 0 ? 0 : n - 1;
}

// ---- reference loops ------------------------------------------------------------------

void forward_reference(float* out, const float* x, const float* w, const float* bias, const Conv3dGeometry& g) {
  for (int64_t b = 0; b < g.B; ++b)
    for (int64_t co = 0; co < g.Cout; ++co)
      for (int64_t to = 0; to < g.To; ++to)
        for (int64_t ho = 0; ho < g.Ho; ++ho)
          for (int64_t wo = 0; wo < g.Wo; ++wo) {
            double acc = bias ? bias[co] : 0.0;
            for (int64_t ci = 0; ci < g.Cin; ++ci)
              for (int64_t a = 0; a < g.kt; ++a) {
                int64_t t = src_index(to * g.st - g.pt0 + a, g.T, g.replicate);
                if (t < 0) continue;
                for (int64_t p = 0; p < g.kh; ++p) {
                  int64_t h = src_index(ho * g.sh - g.ph + p, g.H, g.replicate);
                  if (h < 0) continue;
                  for (int64_t q = 0; q < g.kw; ++q) {
                    int64_t wi = src_index(wo * g.sw - g.pw + q, g.W, g.replicate);
                    if (wi < 0) continue;
                    double xv = x[(((b * g.Cin + ci) * g.T + t) * g.H + h) * g.W + wi];
                    double wv = w[(((co * g.Cin + ci) * g.kt + a) * g.kh + p) * g.kw + q];
                    acc += xv * wv;
                  }
                }
              }
            out[(((b * g.Cout + co) * g.To + to) * g.Ho + ho) * g.Wo + wo] = static_cast<float>(acc);
          }
}

void backward_reference(float* dinp, float* dweight, float* dbias, const float* dout, const float* x, const float* w,
                        const Conv3dGeometry& g) {
  std::vector<double> dx(dinp ? static_cast<size_t>(g.B * g.Cin * g.T * g.H * g.W) : 0, 0.0);
  std::vector<double> dw(dweight ? static_cast<size_t>(g.Cout * g.K()) : 0, 0.0);
  std::vector<double> db(dbias ? static_cast<size_t>(g.Cout) : 0, 0.0);
  for (int64_t b = 0; b < g.B; ++b)
    for (int64_t co = 0; co < g.Cout; ++co)
      for (int64_t to = 0; to < g.To; ++to)
        for (int64_t ho = 0; ho < g.Ho; ++ho)
          for (int64_t wo = 0; wo < g.Wo; ++wo) {
            double go = dout[(((b * g.Cout + co) * g.To + to) * g.Ho + ho) * g.Wo + wo];
            if (dbias) db[co] += go;
            for (int64_t ci = 0; ci < g.Cin; ++ci)
              for (int64_t a = 0; a < g.kt; ++a) {
                int64_t t = src_index(to * g.st - g.pt0 + a, g.T, g.replicate);
                if (t < 0) continue;
                for (int64_t p = 0; p < g.kh; ++p) {
                  int64_t h = src_index(ho * g.sh - g.ph + p, g.H, g.replicate);
                  if (h < 0) continue;
                  for (int64_t q = 0; q < g.kw; ++q) {
                    int64_t wi = src_index(wo * g.sw - g.pw + q, g.W, g.replicate);
                    if (wi < 0) continue;
                    int64_t xi = (((b * g.Cin + ci) * g.T + t) * g.H + h) * g.W + wi;
                    int64_t wk = (((co * g.Cin + ci) * g.kt + a) * g.kh + p) * g.kw + q;
                    if (dinp) dx[xi] += go * w[wk];
                    if (dweight) dw[wk] += go * x[xi];
                  }
                }
              }
          }
  for (size_t i = 0; i < dx.size(); ++i) dinp[i] = static_cast<float>(dx[i]);
  for (size_t i = 0; i < dw.size(); ++i) dweight[i] = static_cast<float>(dw[i]);
  for (size_t i = 0; i < db.size(); ++i) dbias[i] = static_cast<float>(db[i]);
}

// ---- optimized path: vol2col / col2im + GEMM -----------------------------------------

// Column buffer target in floats (default 8 MiB): large enough that each GEMM has a
// long N, small enough to stay near the caches and bounded for any video size.
constexpr int64_t kDefaultColumnBudget = int64_t{2} << 20;
std::atomic<int64_t> g_column_budget{kDefaultColumnBudget};

// The input itself is the column matrix [Cin, T*H*W].
bool pointwise(const Conv3dGeometry& g) {
  return g.kt == 1 && g.kh == 1 && g.kw == 1 && g.st == 1 && g.sh == 1 && g.sw == 1 && g.pt0 == 0 && g.pt1 == 0 &&
         g.ph == 0 && g.pw == 0;
}

// Output rows (t', h') per chunk: each row is Wo positions, each position K floats.
int64_t rows_per_chunk(const Conv3dGeometry& g) {
  int64_t per_row = std::max<int64_t>(1, g.K() * g.Wo);
  return std::max<int64_t>(1, std::min<int64_t>(g.To * g.Ho, g_column_budget.load() / per_row));
}

// For kernel column offset q: output columns [lo, hi) read input columns inside [0, W);
// those before lo read left padding, those from hi on read right padding.
inline void valid_cols(const Conv3dGeometry& g, int64_t q, int64_t* lo, int64_t* hi) {
  // smallest wo with wo*sw - pw + q >= 0, and smallest wo with wo*sw - pw + q >= W
  int64_t a = g.pw - q, b = g.W + g.pw - q;
  int64_t l = a <= 0 ? 0 : (a + g.sw - 1) / g.sw;
  int64_t h = b <= 0 ? 0 : (b + g.sw - 1) / g.sw;
  *lo = std::min(l, g.Wo);
  *hi = std::max(*lo, std::min(h, g.Wo));
}

// col [K, (r1-r0)*Wo] for output rows r = t'*Ho + h' in [r0, r1) of one batch item x [Cin, T, H, W].
void vol2col(float* col, const float* x, const Conv3dGeometry& g, int64_t r0, int64_t r1) {
  const int64_t n = (r1 - r0) * g.Wo, taps = g.kt * g.kh * g.kw;
  parallel_for(0, g.K(), 8, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      int64_t ci = k / taps, rem = k % taps;
      int64_t a = rem / (g.kh * g.kw), p = (rem / g.kw) % g.kh, q = rem % g.kw;
      int64_t lo, hi;
      valid_cols(g, q, &lo, &hi);
      const float* xc = x + ci * g.T * g.H * g.W;
      float* dst = col + k * n;
      for (int64_t r = r0; r < r1; ++r, dst += g.Wo) {
        int64_t to = r / g.Ho, ho = r % g.Ho;
        int64_t t = src_index(to * g.st - g.pt0 + a, g.T, g.replicate);
        int64_t h = src_index(ho * g.sh - g.ph + p, g.H, g.replicate);
        if (t < 0 || h < 0) {
          std::memset(dst, 0, static_cast<size_t>(g.Wo) * sizeof(float));
          continue;
        }
        const float* src = xc + (t * g.H + h) * g.W;
        float left = g.replicate ? src[0] : 0.0f, right = g.replicate ? src[g.W - 1] : 0.0f;
        for (int64_t wo = 0; wo < lo; ++wo) dst[wo] = left;
        const float* s = src + lo * g.sw - g.pw + q;
        if (g.sw == 1) {
          if (hi > lo) std::memcpy(dst + lo, s, static_cast<size_t>(hi - lo) * sizeof(float));
        } else {
          for (int64_t wo = lo; wo < hi; ++wo) dst[wo] = s[(wo - lo) * g.sw];
        }
        for (int64_t wo = hi; wo < g.Wo; ++wo) dst[wo] = right;
      }
    }
  });
}

// dx [Cin, T, H, W] += the scatter of dcol [K, (r1-r0)*Wo] (the transpose of vol2col).
// Threads split Cin, so no two threads touch one element.
void col2im(float* dx, const float* dcol, const Conv3dGeometry& g, int64_t r0, int64_t r1) {
  const int64_t n = (r1 - r0) * g.Wo, taps = g.kt * g.kh * g.kw;
  parallel_for(0, g.Cin, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t ci = c0; ci < c1; ++ci) {
      float* xc = dx + ci * g.T * g.H * g.W;
      for (int64_t tap = 0; tap < taps; ++tap) {
        int64_t a = tap / (g.kh * g.kw), p = (tap / g.kw) % g.kh, q = tap % g.kw;
        int64_t lo, hi;
        valid_cols(g, q, &lo, &hi);
        const float* src = dcol + (ci * taps + tap) * n;
        for (int64_t r = r0; r < r1; ++r, src += g.Wo) {
          int64_t to = r / g.Ho, ho = r % g.Ho;
          int64_t t = src_index(to * g.st - g.pt0 + a, g.T, g.replicate);
          int64_t h = src_index(ho * g.sh - g.ph + p, g.H, g.replicate);
          if (t < 0 || h < 0) continue;
          float* dst = xc + (t * g.H + h) * g.W;
          if (g.replicate) {
            float left = 0, right = 0;
            for (int64_t wo = 0; wo < lo; ++wo) left += src[wo];
            for (int64_t wo = hi; wo < g.Wo; ++wo) right += src[wo];
            dst[0] += left;
            dst[g.W - 1] += right;
          }
          float* d = dst + lo * g.sw - g.pw + q;
          if (g.sw == 1) {
            for (int64_t wo = lo; wo < hi; ++wo) d[wo - lo] += src[wo];
          } else {
            for (int64_t wo = lo; wo < hi; ++wo) d[(wo - lo) * g.sw] += src[wo];
          }
        }
      }
    }
  });
}

struct FloatBuffer {
  std::unique_ptr<float[]> p;
  explicit FloatBuffer(int64_t n) : p(n > 0 ? new float[static_cast<size_t>(n)] : nullptr) {}
  float* get() const { return p.get(); }
};

}  // namespace

int64_t conv3d_column_budget() { return g_column_budget.load(); }
void set_conv3d_column_budget(int64_t floats) { g_column_budget = floats > 0 ? floats : kDefaultColumnBudget; }

void conv3d_forward(Tensor& out_t, const Tensor& inp, const Tensor& weight, const Tensor& bias,
                    const Conv3dGeometry& g) {
  float* out = out_t.data<float>();
  const float* x = inp.data<float>();
  const float* w = weight.data<float>();
  const float* bs = bias.defined() ? bias.data<float>() : nullptr;
  if (out_t.numel() == 0) return;
  if (reference_kernels()) return forward_reference(out, x, w, bs, g);

  const int64_t K = g.K(), P = g.P(), rows = g.To * g.Ho, in_item = g.Cin * g.T * g.H * g.W;
  const bool direct = pointwise(g);
  const int64_t rc = rows_per_chunk(g);
  FloatBuffer col(direct ? 0 : K * rc * g.Wo);
  for (int64_t b = 0; b < g.B; ++b) {
    const float* xb = x + b * in_item;
    float* ob = out + b * g.Cout * P;
    for (int64_t r0 = 0; r0 < rows; r0 += rc) {
      int64_t r1 = std::min(rows, r0 + rc), n = (r1 - r0) * g.Wo;
      if (direct) {
        gemm(false, false, g.Cout, n, K, w, K, xb + r0 * g.Wo, P, ob + r0 * g.Wo, P, 0.0f);
      } else {
        vol2col(col.get(), xb, g, r0, r1);
        gemm(false, false, g.Cout, n, K, w, K, col.get(), n, ob + r0 * g.Wo, P, 0.0f);
      }
    }
    if (bs)
      parallel_for(0, g.Cout, 4, [&](int64_t c0, int64_t c1) {
        for (int64_t co = c0; co < c1; ++co) {
          float* o = ob + co * P;
          const float v = bs[co];
          for (int64_t i = 0; i < P; ++i) o[i] += v;
        }
      });
  }
}

void conv3d_backward(Tensor& dinp_t, Tensor& dweight_t, Tensor& dbias_t, const Tensor& dout_t, const Tensor& inp,
                     const Tensor& weight, const Conv3dGeometry& g) {
  float* dinp = dinp_t.defined() ? dinp_t.data<float>() : nullptr;
  float* dweight = dweight_t.defined() ? dweight_t.data<float>() : nullptr;
  float* dbias = dbias_t.defined() ? dbias_t.data<float>() : nullptr;
  const float* dout = dout_t.data<float>();
  const float* x = inp.data<float>();
  const float* w = weight.data<float>();
  if (reference_kernels()) return backward_reference(dinp, dweight, dbias, dout, x, w, g);

  const int64_t K = g.K(), P = g.P(), rows = g.To * g.Ho, in_item = g.Cin * g.T * g.H * g.W;
  if (dbias) {
    parallel_for(0, g.Cout, 4, [&](int64_t c0, int64_t c1) {
      for (int64_t co = c0; co < c1; ++co) {
        double acc = 0;
        for (int64_t b = 0; b < g.B; ++b) {
          const float* d = dout + (b * g.Cout + co) * P;
          float part = 0;  // float partial sums per row of P, double across rows
          for (int64_t i = 0; i < P; ++i) part += d[i];
          acc += part;
        }
        dbias[co] = static_cast<float>(acc);
      }
    });
  }
  if (!dinp && !dweight) return;
  if (dweight && (g.B == 0 || P == 0)) std::memset(dweight, 0, static_cast<size_t>(g.Cout * K) * sizeof(float));
  if (dinp) std::memset(dinp, 0, static_cast<size_t>(g.B * in_item) * sizeof(float));

  const bool direct = pointwise(g);
  const int64_t rc = rows_per_chunk(g);
  FloatBuffer col(dweight && !direct ? K * rc * g.Wo : 0);
  FloatBuffer dcol(dinp && !direct ? K * rc * g.Wo : 0);
  bool first = true;
  for (int64_t b = 0; b < g.B; ++b) {
    const float* xb = x + b * in_item;
    const float* db = dout + b * g.Cout * P;
    float* dxb = dinp ? dinp + b * in_item : nullptr;
    for (int64_t r0 = 0; r0 < rows; r0 += rc) {
      int64_t r1 = std::min(rows, r0 + rc), n = (r1 - r0) * g.Wo;
      const float* dchunk = db + r0 * g.Wo;  // [Cout, n] with leading dim P
      if (dweight) {
        const float* c = xb + r0 * g.Wo;
        int64_t ldc = P;
        if (!direct) {
          vol2col(col.get(), xb, g, r0, r1);
          c = col.get();
          ldc = n;
        }
        gemm(false, true, g.Cout, K, n, dchunk, P, c, ldc, dweight, K, first ? 0.0f : 1.0f);
        first = false;
      }
      if (dinp) {
        if (direct) {
          // dx[:, chunk] = weight^T @ dout[:, chunk], written in place.
          gemm(true, false, K, n, g.Cout, w, K, dchunk, P, dxb + r0 * g.Wo, P, 0.0f);
        } else {
          gemm(true, false, K, n, g.Cout, w, K, dchunk, P, dcol.get(), n, 0.0f);
          col2im(dxb, dcol.get(), g, r0, r1);
        }
      }
    }
  }
}

}  // namespace cpu
}  // namespace ts
