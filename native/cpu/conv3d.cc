// tessera CPU: conv3d forward and backward (PyTorch layouts, see core/conv.h).
// Dimension letters: B batch, Cin/Cout channels, T frames, H height, W width;
// kt, kh, kw kernel; T', H', W' (To, Ho, Wo) output; K = Cin*kt*kh*kw the GEMM
// reduction length; P = To*Ho*Wo output positions of one (b, cout).
//
// Two paths, forward and backward side by side:
// - reference: plain loops over every output and tap, double accumulation, one
//   thread (used when cpu::reference_kernels() is true; the truth in tests).
// - optimized, all GEMM-shaped on register-tiled AVX-512 / AVX2 micro-kernels (chosen
//   at run time; the forward and dinp use cpu::gemm's own):
//     forward  out[b] [Cout, P] = weight [Cout, K] @ col [K, P] as an implicit GEMM
//              (on AVX-512 with 16 | W', few taps or few output channels go by taps
//              instead: forward_taps, broadcast weights times input rows in place):
//              col panels are packed straight from the input per block of output
//              positions and K slice; no column buffer (forward_implicit). With a unit
//              W stride and 16 | W' (AVX-512 and AVX2), the panels are not even packed:
//              the input is padded once, window by window of output frames, and the
//              rows are read in place at fixed offsets from a base per 16-wide output
//              row segment (pad_window, MicroKernel::offsets). (AVX-512 once read the
//              rows straight from the unpadded input through per-panel tables of row
//              pointers and lane masks; building the tables cost up to 27% of a
//              16-channel forward, and the offset path measured 6-17% faster on every
//              suite shape.) Each block of outputs sums in a small per-thread
//              accumulator, copied out once.
//     dinp     unit stride, zero padding p <= k - 1: a convolution of dout with the
//              flipped, transposed weight, on forward_implicit (dinp_conv); otherwise
//              dcol = weight^T @ dout per chunk of output rows (cpu::gemm) and col2im
//              scatters it back (dinp_col2im).
//     dweight  dweight^T [K, Cout] += col [K, n] @ dout[:, chunk]^T per chunk of
//              ~256 output positions, one tap panel (MR col rows) at a time, by a row
//              micro-kernel that reads the col rows in place: from the padded window
//              with unit W stride (as the forward's offset path; AVX-512 and AVX2),
//              else from vol2col's MR x n buffer; then one transpose (dweight_rows).
//              With unit W stride and few output channels (<= 4; <= 8 on AVX-512):
//              per-tap dot products over the positions, read in place from the padded
//              window (dweight_taps).
//     dbias    row sums of dout.
//   Chunks of output rows (t', h') keep the column buffers near conv3d_column_budget()
//   floats. Threads: over position blocks, handed out dynamically (implicit GEMM),
//   over tap panels (dweight),
//   inside cpu::gemm, over Cin (col2im), over Cout (bias sums).
// Padding: a padded coordinate i (0-based in the padded input) maps to input index
// i - pad_before; outside [0, n) it reads zero (PadMode::Zeros) or the clamped edge
// element (PadMode::Replicate), whose gradient then lands on that edge element.
// Memory contract: out, dinp, dweight and dbias are overwritten (=), not accumulated.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <vector>

#include "../core/parallel.h"
#include "../core/allocator.h"
#include "cpu.h"
#include "kernel_device.h"
#include "vec.h"

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

// ---- optimized path: shared pieces --------------------------------------------------

// A 64-byte aligned float buffer from the tensor allocator, so the megabytes of a
// padded item or packed weight come from its block cache call after call instead of
// fresh (page-faulting) pages; counted in memory() while the kernel runs.
struct FloatBuffer {
  float* p = nullptr;
  size_t bytes = 0;
  Device dev;  // the device the kernel runs for (host memory: cpu or a simulated cpu:N)
  explicit FloatBuffer(int64_t n, Device d = kernel_device()) : dev(d) {
    if (n <= 0) return;
    bytes = static_cast<size_t>(n) * sizeof(float);
    p = static_cast<float*>(raw_alloc(bytes, dev, "conv3d"));
  }
  FloatBuffer(FloatBuffer&& o) noexcept : p(o.p), bytes(o.bytes), dev(o.dev) { o.p = nullptr; }
  FloatBuffer(const FloatBuffer&) = delete;
  FloatBuffer& operator=(const FloatBuffer&) = delete;
  FloatBuffer& operator=(FloatBuffer&&) = delete;
  ~FloatBuffer() {
    if (p) raw_free(p, bytes, dev);
  }
  float* get() const { return p; }
};

// ---- column buffers (dweight, and dinp when it is not a convolution itself) -----------
// Column buffer target in floats (default 4 MiB): large enough that each GEMM has a
// long N, small enough that each thread's share of it (dweight splits its rows between
// the threads) stays in L2 until the row kernel has read it; bounded for any video size.
constexpr int64_t kDefaultColumnBudget = int64_t{1} << 20;
std::atomic<bool> g_direct_enabled{true};  // test hook: set_conv3d_direct
std::atomic<int64_t> g_column_budget{kDefaultColumnBudget};

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

// Rows [k0, k1) of col [K, (r1-r0)*Wo] (at col + (k - k0) * n) for output rows
// r = t'*Ho + h' in [r0, r1) of one batch item x [Cin, T, H, W]. One thread.
void vol2col(float* col, const float* x, const Conv3dGeometry& g, int64_t r0, int64_t r1, int64_t k0, int64_t k1) {
  const int64_t n = (r1 - r0) * g.Wo, taps = g.kt * g.kh * g.kw;
  for (int64_t k = k0; k < k1; ++k) {
    int64_t ci = k / taps, rem = k % taps;
    int64_t a = rem / (g.kh * g.kw), p = (rem / g.kw) % g.kh, q = rem % g.kw;
    int64_t lo, hi;
    valid_cols(g, q, &lo, &hi);
    const float* xc = x + ci * g.T * g.H * g.W;
    float* dst = col + (k - k0) * n;
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

// ---- forward: implicit GEMM -------------------------------------------------------------
// out[b] [Cout, P] = weight [Cout, K] @ col [K, P] without a column buffer: weight is
// packed once into micro-kernel panels [Cout panel][k][MR]; each thread takes blocks of
// kBlockPanels * NR output positions and, per slice of kSliceK taps, packs that block's
// columns straight from the input into panels [position panel][k][NR], then runs the
// micro-kernel over every (Cout panel, position panel) tile.
constexpr int64_t kSliceK = 256;      // taps per K slice: one NR = 32 wide panel is 32 KiB (L1)
constexpr int64_t kBlockPanels = 8;   // position panels per block (packed block 256 KiB: L2)

// Columns for output positions [p0, p0 + np) of one batch item x [Cin, T, H, W] and
// taps [k0, k0 + kc), as panels dst[panel][k][NR]; positions past np are zero.
// Compiled for AVX-512 / AVX2 / baseline, chosen at load time (the copies vectorize).
__attribute__((target_clones("avx512f", "avx2", "default"))) void pack_positions(
    float* dst, int NR, const float* x, const Conv3dGeometry& g, const int64_t* lo, const int64_t* hi, int64_t p0,
    int64_t np, int64_t k0, int64_t kc) {
  const int64_t khw = g.kh * g.kw, taps = g.kt * khw;
  int64_t j = 0;  // position within the block
  while (j < np) {
    const int64_t p = p0 + j, row = p / g.Wo, wo0 = p % g.Wo;
    const int64_t pan = j / NR, col = j % NR;
    const int64_t len = std::min({g.Wo - wo0, NR - col, np - j});  // one output row, one panel
    const int64_t wend = wo0 + len, to = row / g.Ho, ho = row % g.Ho;
    float* d = dst + pan * kc * NR + col;
    int64_t ci = k0 / taps, a = (k0 % taps) / khw, pp = (k0 % khw) / g.kw, q = k0 % g.kw;
    const float* src = nullptr;  // input row of (ci, a, pp), or nullptr in zero padding
    bool fresh = true;
    for (int64_t kk = 0; kk < kc; ++kk, d += NR) {
      if (fresh) {
        int64_t t = src_index(to * g.st - g.pt0 + a, g.T, g.replicate);
        int64_t h = src_index(ho * g.sh - g.ph + pp, g.H, g.replicate);
        src = t < 0 || h < 0 ? nullptr : x + ((ci * g.T + t) * g.H + h) * g.W;
        fresh = false;
      }
      if (!src) {
        for (int64_t i = 0; i < len; ++i) d[i] = 0.0f;
      } else {
        const int64_t l = std::min(std::max(lo[q], wo0), wend), r = std::max(std::min(hi[q], wend), l);
        const float left = g.replicate ? src[0] : 0.0f, right = g.replicate ? src[g.W - 1] : 0.0f;
        float* o = d - wo0;
        for (int64_t wo = wo0; wo < l; ++wo) o[wo] = left;
        const float* s = src - g.pw + q;
        if (g.sw == 1) {
          for (int64_t wo = l; wo < r; ++wo) o[wo] = s[wo];
        } else {
          for (int64_t wo = l; wo < r; ++wo) o[wo] = s[wo * g.sw];
        }
        for (int64_t wo = r; wo < wend; ++wo) o[wo] = right;
      }
      if (++q == g.kw) {
        q = 0;
        fresh = true;
        if (++pp == g.kh) {
          pp = 0;
          if (++a == g.kt) a = 0, ++ci;
        }
      }
    }
    j += len;
  }
  // zero the unused columns of the last panel
  const int64_t tail = np % NR;
  if (tail) {
    float* d = dst + (np / NR) * kc * NR;
    for (int64_t kk = 0; kk < kc; ++kk)
      std::memset(d + kk * NR + tail, 0, static_cast<size_t>(NR - tail) * sizeof(float));
  }
}

// The offset path (MicroKernel::offsets): the input is first copied, padded, into
// xp [Cin, Tw, Hp, Wp] (Hp = H + 2 ph, Wp = W + 2 pw; zeros or the replicated edge), one
// window of output frames [to0, to1) at a time: xp's frame f is padded frame to0 st + f,
// Tw = (wf - 1) st + kt frames for a window of up to wf output frames. Every row of
// every column panel then lies inside xp: row k = (ci, a, pp, q) of the panel for output
// positions [p0, p0 + 16) (one output row segment; 16 divides W') is xp + base(p0) +
// off[k], off[k] = ((ci Tw + a) Hp + pp) Wp + q for all panels alike. Nothing is packed
// per panel, and the padding is paid once (one pass over the input) instead of in every
// panel. Windows keep xp near the column budget (at least one output frame), so the
// extra memory stays bounded for any video length.
struct PaddedDims {
  int64_t wf, Tw, Hp, Wp;  // output frames per window, and xp's dimensions
  int64_t size(int64_t Cin) const { return Cin * Tw * Hp * Wp; }
};
PaddedDims padded_dims(const Conv3dGeometry& g) {
  const int64_t Hp = g.H + 2 * g.ph, Wp = g.W + 2 * g.pw, frame = g.Cin * Hp * Wp;
  // frames for wf output frames: (wf - 1) st + kt <= budget / frame
  const int64_t fit = g_column_budget.load() / std::max<int64_t>(frame, 1);
  const int64_t wf = std::max<int64_t>(1, std::min(g.To, fit < g.kt ? 1 : (fit - g.kt) / g.st + 1));
  return {wf, (wf - 1) * g.st + g.kt, Hp, Wp};
}

// xp = frames [to0 st, to0 st + Tw) of item x [Cin, T, H, W] padded (frames past the
// padded input, in a last short window, are left unwritten: no output reads them);
// threads split the (ci, frame) planes.
void pad_window(float* xp, const float* x, const Conv3dGeometry& g, const PaddedDims& d, int64_t to0) {
  const int64_t tp0 = to0 * g.st, frames = std::min(d.Tw, g.pt0 + g.T + g.pt1 - tp0);
  parallel_for(0, g.Cin * frames, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t cf = lo; cf < hi; ++cf) {
      const int64_t ci = cf / frames, f = cf % frames, t = src_index(tp0 + f - g.pt0, g.T, g.replicate);
      float* plane = xp + (ci * d.Tw + f) * d.Hp * d.Wp;
      for (int64_t hp = 0; hp < d.Hp; ++hp) {
        float* o = plane + hp * d.Wp;
        const int64_t h = t < 0 ? -1 : src_index(hp - g.ph, g.H, g.replicate);
        if (h < 0) {
          std::memset(o, 0, static_cast<size_t>(d.Wp) * sizeof(float));
          continue;
        }
        const float* in = x + ((ci * g.T + t) * g.H + h) * g.W;
        const float left = g.replicate ? in[0] : 0.0f, right = g.replicate ? in[g.W - 1] : 0.0f;
        for (int64_t w = 0; w < g.pw; ++w) o[w] = left;
        std::memcpy(o + g.pw, in, static_cast<size_t>(g.W) * sizeof(float));
        for (int64_t w = g.pw + g.W; w < d.Wp; ++w) o[w] = right;
      }
    }
  });
}

// Whether the offset path can read this convolution's columns from a padded window:
// unit W stride (a column row is then contiguous), and the window's offsets fit the
// int32 offset table (a one-frame window of over 2^31 floats packs instead).
bool padded_columns(const Conv3dGeometry& g) {
  return g_direct_enabled.load() && g.sw == 1 &&
         padded_dims(g).size(g.Cin) <= int64_t{std::numeric_limits<int32_t>::max()};
}
// Whether the forward takes the offset path: padded columns and 16 | W' (a panel is
// then one or two 16-wide output row segments).
bool offset_panels(const MicroKernel& mk, const Conv3dGeometry& g) {
  return mk.offsets && padded_columns(g) && g.Wo % MicroKernel::kOffsetLanes == 0;
}
// Offset in the padded window of tap k = (ci, a, pp, q) for k < K, 0 for K <= k < n,
// then MicroKernel::kOffsetSlack zeros (the kernels read offsets ahead to prefetch).
std::vector<int32_t> tap_offsets(const Conv3dGeometry& g, const PaddedDims& d, int64_t n) {
  std::vector<int32_t> off(n + MicroKernel::kOffsetSlack, 0);
  for (int64_t k = 0; k < std::min(n, g.K()); ++k) {
    const int64_t ci = k / (g.kt * g.kh * g.kw), a = k / (g.kh * g.kw) % g.kt, pp = k / g.kw % g.kh, q = k % g.kw;
    off[k] = static_cast<int32_t>(((ci * d.Tw + a) * d.Hp + pp) * d.Wp + q);
  }
  return off;
}

// ---- forward by taps: few output channels or few taps (AVX-512) ------------------------
// out[b, co, p] = bias[co] + sum_k w[co, k] xp[segment(p) + off[k]]: for each tap, CO
// broadcast weights times NV 16-wide vectors of one output row read in place from the
// padded window (CO x NV accumulators; the weights stay in L1). For the layers the
// 12 x 32 GEMM tile serves badly: Cout <= 4 (a VAE's conv to the image: 1 live row of 12)
// and K <= 32 taps (its conv from the image, Cin = 1, and that conv's input gradient:
// a K slice of 27 steps per load and store of the C tile). Chosen by forward_by_taps.
template <int CO, int NV>
__attribute__((target("avx512f,fma"))) void fwd_taps_row_avx512(float* out, int64_t P, const float* w, int64_t K,
                                                                 const float* bias, const float* xr,
                                                                 const int32_t* off, int64_t Wo) {
  for (int64_t wo = 0; wo < Wo; wo += 16 * NV) {
    __m512 acc[CO][NV];
    for (int c = 0; c < CO; ++c)
      for (int v = 0; v < NV; ++v) acc[c][v] = _mm512_set1_ps(bias ? bias[c] : 0.0f);
    const float* xb = xr + wo;
    for (int64_t k = 0; k < K; ++k) {
      const float* xk = xb + off[k];
      __m512 xv[NV];
      for (int v = 0; v < NV; ++v) xv[v] = _mm512_loadu_ps(xk + 16 * v);
      for (int c = 0; c < CO; ++c) {
        const __m512 wv = _mm512_set1_ps(w[c * K + k]);
        for (int v = 0; v < NV; ++v) acc[c][v] = _mm512_fmadd_ps(wv, xv[v], acc[c][v]);
      }
    }
    for (int c = 0; c < CO; ++c)
      for (int v = 0; v < NV; ++v) _mm512_storeu_ps(out + c * P + wo + 16 * v, acc[c][v]);
  }
}

using FwdTapsFn = void (*)(float*, int64_t, const float*, int64_t, const float*, const float*, const int32_t*, int64_t);
template <int CO>
FwdTapsFn fwd_taps_pick(int nv) {
  return nv == 4 ? fwd_taps_row_avx512<CO, 4> : nv == 2 ? fwd_taps_row_avx512<CO, 2> : fwd_taps_row_avx512<CO, 1>;
}
// The instance for a group of co <= 8 channels on rows of Wo (16 | Wo): NV vectors a step,
// at most 16 accumulators.
FwdTapsFn fwd_taps_kernel(int co, int64_t Wo) {
  const int64_t segs = Wo / 16;
  const int cap = co <= 4 ? 4 : 2;
  const int nv = cap >= 4 && segs % 4 == 0 ? 4 : cap >= 2 && segs % 2 == 0 ? 2 : 1;
  switch (co) {
    case 1: return fwd_taps_pick<1>(nv);
    case 2: return fwd_taps_pick<2>(nv);
    case 3: return fwd_taps_pick<3>(nv);
    case 4: return fwd_taps_pick<4>(nv);
    case 5: return fwd_taps_pick<5>(nv);
    case 6: return fwd_taps_pick<6>(nv);
    case 7: return fwd_taps_pick<7>(nv);
    default: return fwd_taps_pick<8>(nv);
  }
}

// Where the forward goes by taps (Xeon, AVX-512, against the implicit GEMM, medians of 15,
// two rounds): K <= 32 (Cin = 1 to 16 channels at 64x64: 0.70 -> 0.30 ms; the conv to
// the image's input gradient, 0.90 -> 0.30; 1x1x1 16 -> 32 at 32x32: 0.22 -> 0.11); few
// output channels on rows of 4 or 2 vectors (16 -> 1 at 64x64: 1.77 -> 0.95 ms, 16 -> 4:
// 1.84 -> 1.32; 32 -> 1 at 32x32: 0.49 -> 0.37; 32 -> 4 at 32x32 level; 64 -> 4 at 16x16,
// one vector a step, 0.25 -> 0.40: stays on the GEMM).
bool forward_by_taps(const Conv3dGeometry& g) {
  if (simd_width() != 16 || !padded_columns(g) || g.Wo % 16 != 0) return false;
  return g.K() <= 32 || (g.Cout <= 4 && g.Wo % 64 == 0) || (g.Cout <= 2 && g.Wo % 32 == 0);
}

void forward_taps(float* out, const float* x, const float* w, const float* bias, const Conv3dGeometry& g) {
  const int64_t K = g.K(), P = g.P(), in_item = g.Cin * g.T * g.H * g.W;
  const PaddedDims pd = padded_dims(g);
  FloatBuffer xp(pd.size(g.Cin));
  const std::vector<int32_t> off = tap_offsets(g, pd, K);
  const int64_t groups = (g.Cout + 7) / 8;  // of up to 8 output channels
  // the kernels of a full group and of the last one
  const FwdTapsFn full = fwd_taps_kernel(static_cast<int>(std::min<int64_t>(8, g.Cout)), g.Wo);
  const FwdTapsFn last = fwd_taps_kernel(static_cast<int>(g.Cout - (groups - 1) * 8), g.Wo);
  // Window by window of output frames (as forward_implicit): pad it, then its output rows
  // x channel groups, split between the threads.
  for (int64_t b = 0; b < g.B; ++b)
    for (int64_t to0 = 0; to0 < g.To; to0 += pd.wf) {
      const int64_t r0 = to0 * g.Ho, r1 = std::min(g.To, to0 + pd.wf) * g.Ho, tp0 = to0 * g.st;
      pad_window(xp.get(), x + b * in_item, g, pd, to0);
      float* ob = out + b * g.Cout * P;
      parallel_for(0, (r1 - r0) * groups, std::max<int64_t>(1, 2048 / g.Wo), [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) {
          const int64_t r = r0 + i / groups, grp = i % groups, c0 = grp * 8;
          const float* xr = xp.get() + ((r / g.Ho * g.st - tp0) * pd.Hp + (r % g.Ho) * g.sh) * pd.Wp;
          (grp == groups - 1 ? last : full)(ob + c0 * P + r * g.Wo, P, w + c0 * K, K, bias ? bias + c0 : nullptr, xr,
                                            off.data(), g.Wo);
        }
      });
    }
}

void forward_implicit(float* out, const float* x, const float* w, const float* bias, const Conv3dGeometry& g) {
  if (forward_by_taps(g)) return forward_taps(out, x, w, bias, g);
  const MicroKernel& mk = micro_kernel();
  const int MR = mk.MR, NR = mk.NR;
  const int64_t K = g.K(), P = g.P(), in_item = g.Cin * g.T * g.H * g.W;
  const int64_t Mp = (g.Cout + MR - 1) / MR * MR, nslices = (K + kSliceK - 1) / kSliceK;
  // Packed weight: the slice of taps [k0, k0 + kc) sits at apack + Mp * k0.
  FloatBuffer apack(Mp * K);
  parallel_for(0, nslices, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      int64_t k0 = s * kSliceK, kc = std::min(kSliceK, K - k0);
      gemm_pack_a(MR, false, w, K, 0, g.Cout, k0, kc, apack.get() + Mp * k0);
    }
  });
  std::vector<int64_t> lo(g.kw), hi(g.kw);
  for (int64_t q = 0; q < g.kw; ++q) valid_cols(g, q, &lo[q], &hi[q]);
  const bool offs = offset_panels(mk, g);
  const PaddedDims pd = padded_dims(g);  // the offset path's padded window (see pad_window)
  // Blocks of kBlockPanels position panels, fewer where that leaves under 4 blocks per
  // thread to hand out (a small layer, e.g. 64 channels at 3 x 16 x 16: 3 blocks of 8
  // panels per window on 2 threads would leave one idle a third of the time).
  const int64_t panels = offs ? (std::min(P, pd.wf * g.Ho * g.Wo) + NR - 1) / NR : g.B * ((P + NR - 1) / NR);
  const int64_t bp = std::clamp<int64_t>((panels + 4 * num_threads() - 1) / (4 * num_threads()), 1, kBlockPanels);
  const int64_t block = bp * NR, nblocks = (P + block - 1) / block;
  // Position blocks are handed out dynamically; each worker packs into its own buffer
  // (unless it reads the padded window in place) and sums its block of outputs in its own accumulator [Mp][block], copied out (with the
  // bias) once per block. Summing in place in out instead would revisit, on every K
  // slice, tile rows P floats apart: with P a power of two (8 x 32 x 32) they all fall
  // in a few cache sets, and the 64 KiB block thrashes L1 and L2.
  const int64_t workers = std::min<int64_t>(num_threads(), offs ? nblocks : g.B * nblocks);
  std::vector<FloatBuffer> bpacks, accs;
  for (int64_t w = 0; w < workers; ++w) {
    accs.emplace_back(Mp * block);
    if (!offs) bpacks.emplace_back(kSliceK * block);
  }
  // Offset path: the padded window and the row offsets of every tap (see pad_window).
  FloatBuffer xp(offs ? pd.size(g.Cin) : 0);
  const std::vector<int32_t> off = offs ? tap_offsets(g, pd, K) : std::vector<int32_t>();
  int64_t tp0 = 0;  // first padded frame in xp (the window's)
  // One block of positions [p0, p0 + np), np <= block, p0 + np <= p1, of batch item b:
  // out[b, :, p0 .. p0 + np).
  auto run_block = [&](int64_t worker, int64_t b, int64_t p0, int64_t p1) {
    const int64_t np = std::min(block, p1 - p0);
    const float* xb = x + b * in_item;
    float* acc = accs[worker].get();  // [Mp, block]: row co holds out[b, co, p0 .. p0 + np)
    for (int64_t s = 0; s < nslices; ++s) {
      const int64_t k0 = s * kSliceK, kc = std::min(kSliceK, K - k0);
      const float* as = apack.get() + Mp * k0;
      if (offs) {
        // Output positions [p, p + 16) lie in one output row (16 | W', p0 and np are
        // multiples of 16): their column row k is 16 floats at segment(p) + off[k].
        auto segment = [&](int64_t p) {
          const int64_t row = p / g.Wo, wo0 = p % g.Wo, to = row / g.Ho, ho = row % g.Ho;
          return xp.get() + ((to * g.st - tp0) * pd.Hp + ho * g.sh) * pd.Wp + wo0;
        };
        constexpr int64_t kSeg = MicroKernel::kOffsetLanes;
        for (int64_t j = 0; j < np; j += NR) {
          const int nr = static_cast<int>(std::min<int64_t>(NR, np - j));
          // a second segment where NR is 32 (AVX-512); a half panel repeats the first
          const float* base = segment(p0 + j);
          const float* base1 = NR > kSeg && nr > kSeg ? segment(p0 + j + kSeg) : base;
          for (int64_t i = 0; i < g.Cout; i += MR) {
            const int mr = static_cast<int>(std::min<int64_t>(MR, g.Cout - i));
            mk.offsets(kc, as + i * kc, base, base1, off.data() + k0, acc + i * block + j, block, mr, nr, s > 0);
          }
        }
        continue;
      }
      FloatBuffer& bpack = bpacks[worker];
      pack_positions(bpack.get(), NR, xb, g, lo.data(), hi.data(), p0, np, k0, kc);
      for (int64_t j = 0; j < np; j += NR) {
        const int nr = static_cast<int>(std::min<int64_t>(NR, np - j));
        const float* bp = bpack.get() + (j / NR) * kc * NR;
        for (int64_t i = 0; i < g.Cout; i += MR) {
          const int mr = static_cast<int>(std::min<int64_t>(MR, g.Cout - i));
          mk.fn(kc, as + i * kc, bp, acc + i * block + j, block, mr, nr, s > 0);
        }
      }
    }
    float* ob = out + b * g.Cout * P + p0;  // [Cout, np] with row stride P
    for (int64_t co = 0; co < g.Cout; ++co) {
      const float* a = acc + co * block;
      float* o = ob + co * P;
      if (bias) {
        const float v = bias[co];
        for (int64_t j = 0; j < np; ++j) o[j] = a[j] + v;
      } else {
        std::memcpy(o, a, static_cast<size_t>(np) * sizeof(float));
      }
    }
  };
  if (offs) {
    // Window by window: pad it (all threads), then the blocks of its output frames.
    const int64_t frame = g.Ho * g.Wo;
    for (int64_t b = 0; b < g.B; ++b)
      for (int64_t to0 = 0; to0 < g.To; to0 += pd.wf) {
        const int64_t q0 = to0 * frame, q1 = std::min(g.To, to0 + pd.wf) * frame;
        tp0 = to0 * g.st;
        pad_window(xp.get(), x + b * in_item, g, pd, to0);
        parallel_tasks((q1 - q0 + block - 1) / block,
                       [&](int64_t worker, int64_t task) { run_block(worker, b, q0 + task * block, q1); });
      }
  } else {
    parallel_tasks(g.B * nblocks, [&](int64_t worker, int64_t task) {
      run_block(worker, task / nblocks, (task % nblocks) * block, P);
    });
  }
}

// ---- dinp -------------------------------------------------------------------------------
// With unit strides, padding p <= k - 1 and zero padding, dinp is itself a convolution:
// dout convolved with the weight flipped in (t, h, w) and transposed in (Cout, Cin),
// padded by k - 1 - p (a causal conv's input gradient is anti-causal: kt - 1 frames
// after, none before). That runs on forward_implicit. Otherwise: dcol = weight^T @ dout
// per chunk of output rows (cpu::gemm), and col2im scatters dcol into dinp.
bool dinp_as_conv(const Conv3dGeometry& g) {
  bool no_pad = g.pt0 == 0 && g.pt1 == 0 && g.ph == 0 && g.pw == 0;
  return g.st == 1 && g.sh == 1 && g.sw == 1 && (!g.replicate || no_pad) && g.pt0 < g.kt && g.pt1 < g.kt &&
         g.ph < g.kh && g.pw < g.kw;
}

void dinp_conv(float* dinp, const float* dout, const float* w, const Conv3dGeometry& g) {
  Conv3dGeometry t = g;
  t.Cin = g.Cout, t.Cout = g.Cin;
  t.T = g.To, t.H = g.Ho, t.W = g.Wo;
  t.To = g.T, t.Ho = g.H, t.Wo = g.W;
  t.pt0 = g.kt - 1 - g.pt0, t.pt1 = g.kt - 1 - g.pt1, t.ph = g.kh - 1 - g.ph, t.pw = g.kw - 1 - g.pw;
  t.replicate = false;
  // wt [Cin, Cout, kt, kh, kw] = weight [Cout, Cin] flipped in every kernel dim
  const int64_t taps = g.kt * g.kh * g.kw;
  FloatBuffer wt(g.Cin * g.Cout * taps);
  parallel_for(0, g.Cin, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t ci = c0; ci < c1; ++ci)
      for (int64_t co = 0; co < g.Cout; ++co) {
        const float* src = w + (co * g.Cin + ci) * taps;
        float* dst = wt.get() + (ci * g.Cout + co) * taps;
        for (int64_t k = 0; k < taps; ++k) dst[k] = src[taps - 1 - k];
      }
  });
  forward_implicit(dinp, dout, wt.get(), nullptr, t);
}

void dinp_col2im(float* dinp, const float* dout, const float* w, const Conv3dGeometry& g) {
  const int64_t K = g.K(), P = g.P(), rows = g.To * g.Ho, in_item = g.Cin * g.T * g.H * g.W;
  std::memset(dinp, 0, static_cast<size_t>(g.B * in_item) * sizeof(float));
  const int64_t rc = rows_per_chunk(g);
  FloatBuffer dcol(K * rc * g.Wo);
  for (int64_t b = 0; b < g.B; ++b)
    for (int64_t r0 = 0; r0 < rows; r0 += rc) {
      const int64_t r1 = std::min(rows, r0 + rc), n = (r1 - r0) * g.Wo;
      gemm(true, false, K, n, g.Cout, w, K, dout + b * g.Cout * P + r0 * g.Wo, P, dcol.get(), n, 0.0f);
      col2im(dinp + b * in_item, dcol.get(), g, r0, r1);
    }
}

// ---- dweight ----------------------------------------------------------------------------
// dweight^T [K, Cout] = sum over b and positions p of col [K, p] * dout^T [p, Cout]: per
// chunk of output rows, dout's chunk is transposed to doutT [n, Coutp] (Coutp = Cout
// rounded up to NR, extra columns zero), and each thread takes its own tap panels (Kp = K
// rounded up to MR, extra rows zero). A row micro-kernel keeps an MR x NR tile of
// dweight^T in registers over a block of positions: per position it broadcasts one
// element of each of MR consecutive col rows (read in place: from the padded window on
// the offset path, else from vol2col's panel buffer) and multiplies by NR entries of
// doutT. One transpose at the end gives dweight [Cout, K].
constexpr int64_t kPositionBlock = 256;  // positions per micro-kernel call (doutT block in L1/L2)

// C [mr, nr] (+)= sum_{p < n} a[i * lda + p] * b[p * ldb + j] for i < MR, j < NR; rows
// i >= mr of a must be readable (their results are dropped).
using RowKernel = void (*)(int64_t n, const float* a, int64_t lda, const float* b, int64_t ldb, float* C, int64_t ldc,
                           int mr, int nr, bool acc);

inline void store_rows_tile(const float* tile, int NR, float* C, int64_t ldc, int mr, int nr, bool acc) {
  for (int r = 0; r < mr; ++r)
    for (int c = 0; c < nr; ++c) C[r * ldc + c] = tile[r * NR + c] + (acc ? C[r * ldc + c] : 0.0f);
}

// SEG (as row_kernel_avx2_impl below): the positions come as nseg segments of len, row r
// of segment s read at a + segbase[s] + off[r] (the offset path: a is the padded input
// item, nothing is built); otherwise one segment of n = len positions, row r at a + r * lda.
template <bool SEG>
__attribute__((target("avx512f,fma"), always_inline)) inline void row_kernel_avx512_impl(
    int64_t nseg, int64_t len, const float* a, int64_t lda, const int64_t* segbase, const int32_t* off, const float* b,
    int64_t ldb, float* C, int64_t ldc, int mr, int nr, bool acc) {
  constexpr int MR = 12;
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 12
  for (int r = 0; r < MR; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
  for (int64_t s = 0; s < nseg; ++s) {
    const float* base = SEG ? a + segbase[s] : a;
    // two bases (rows 0-5 and 6-11) with row offsets keep the addresses in registers
    const float* a0 = base + (SEG ? off[0] : 0);
    const float* a6 = base + (SEG ? off[6] : 6 * lda);
    int64_t ro[MR];
#pragma GCC unroll 12
    for (int r = 0; r < MR; ++r) ro[r] = SEG ? off[r] - off[r < 6 ? 0 : 6] : (r % 6) * lda;
    for (int64_t p = 0; p < len; ++p, b += ldb) {
      __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 6
      for (int r = 0; r < 6; ++r) {
        __m512 av = _mm512_set1_ps(a0[ro[r] + p]);
        c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
        c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
        __m512 aw = _mm512_set1_ps(a6[ro[r + 6] + p]);
        c0[r + 6] = _mm512_fmadd_ps(aw, b0, c0[r + 6]);
        c1[r + 6] = _mm512_fmadd_ps(aw, b1, c1[r + 6]);
      }
    }
  }
  alignas(64) float tile[MR * 32];
  for (int r = 0; r < MR; ++r) {
    _mm512_store_ps(tile + r * 32, c0[r]);
    _mm512_store_ps(tile + r * 32 + 16, c1[r]);
  }
  store_rows_tile(tile, 32, C, ldc, mr, nr, acc);
}

__attribute__((target("avx512f,fma"))) void row_kernel_avx512(int64_t n, const float* a, int64_t lda, const float* b,
                                                                int64_t ldb, float* C, int64_t ldc, int mr, int nr,
                                                                bool acc) {
  row_kernel_avx512_impl<false>(1, n, a, lda, nullptr, nullptr, b, ldb, C, ldc, mr, nr, acc);
}

// The offset path's AVX-512 row kernel: col row r of position (segment s, w) is
// xp[segbase[s] + off[r] + w] (off: MR entries, all readable even past mr).
__attribute__((target("avx512f,fma"))) void row_kernel_seg_avx512(int64_t nseg, int64_t len, const float* xp,
                                                                    const int64_t* segbase, const int32_t* off,
                                                                    const float* b, int64_t ldb, float* C, int64_t ldc,
                                                                    int mr, int nr, bool acc) {
  row_kernel_avx512_impl<true>(nseg, len, xp, 0, segbase, off, b, ldb, C, ldc, mr, nr, acc);
}

// The same product with a 24 x 16 tile, for Cout <= 16 (a VAE's 16-channel layers): the
// 12 x 32 tile above would compute 16 zero columns for every 16 real ones. Two row bases,
// twelve rows each; 24 accumulators, one B vector a step. SEG as above.
template <bool SEG>
__attribute__((target("avx512f,fma"), always_inline)) inline void row_kernel_avx512_n16_impl(
    int64_t nseg, int64_t len, const float* a, int64_t lda, const int64_t* segbase, const int32_t* off, const float* b,
    int64_t ldb, float* C, int64_t ldc, int mr, int nr, bool acc) {
  constexpr int MR = 24;
  __m512 c[MR];
#pragma GCC unroll 24
  for (int r = 0; r < MR; ++r) c[r] = _mm512_setzero_ps();
  for (int64_t s = 0; s < nseg; ++s) {
    const float* base = SEG ? a + segbase[s] : a;
    const float* a0 = base + (SEG ? off[0] : 0);
    const float* a12 = base + (SEG ? off[12] : 12 * lda);
    int64_t ro[MR];
#pragma GCC unroll 24
    for (int r = 0; r < MR; ++r) ro[r] = SEG ? off[r] - off[r < 12 ? 0 : 12] : (r % 12) * lda;
    for (int64_t p = 0; p < len; ++p, b += ldb) {
      __m512 b0 = _mm512_loadu_ps(b);
#pragma GCC unroll 12
      for (int r = 0; r < 12; ++r) {
        c[r] = _mm512_fmadd_ps(_mm512_set1_ps(a0[ro[r] + p]), b0, c[r]);
        c[r + 12] = _mm512_fmadd_ps(_mm512_set1_ps(a12[ro[r + 12] + p]), b0, c[r + 12]);
      }
    }
  }
  alignas(64) float tile[MR * 16];
  for (int r = 0; r < MR; ++r) _mm512_store_ps(tile + r * 16, c[r]);
  store_rows_tile(tile, 16, C, ldc, mr, nr, acc);
}

__attribute__((target("avx512f,fma"))) void row_kernel_avx512_n16(int64_t n, const float* a, int64_t lda,
                                                                    const float* b, int64_t ldb, float* C, int64_t ldc,
                                                                    int mr, int nr, bool acc) {
  row_kernel_avx512_n16_impl<false>(1, n, a, lda, nullptr, nullptr, b, ldb, C, ldc, mr, nr, acc);
}
__attribute__((target("avx512f,fma"))) void row_kernel_seg_avx512_n16(int64_t nseg, int64_t len, const float* xp,
                                                                        const int64_t* segbase, const int32_t* off,
                                                                        const float* b, int64_t ldb, float* C,
                                                                        int64_t ldc, int mr, int nr, bool acc) {
  row_kernel_avx512_n16_impl<true>(nseg, len, xp, 0, segbase, off, b, ldb, C, ldc, mr, nr, acc);
}

// Named accumulators, not arrays, for the reason given at gemm.cc's AVX2 tile: GCC can
// keep an accumulator array on the stack and store all of it every step.
// SEG: the positions come as nseg segments of len; row r of segment s is read at
// a + segbase[s] + off[r] (the offset path: a is the padded input item); otherwise one
// segment of n = len positions, row r at a + r * lda.
template <bool SEG>
__attribute__((target("avx2,fma"), always_inline)) inline void row_kernel_avx2_impl(
    int64_t nseg, int64_t len, const float* a, int64_t lda, const int64_t* segbase, const int32_t* off, const float* b,
    int64_t ldb, float* C, int64_t ldc, int mr, int nr, bool acc) {
  constexpr int MR = 6;
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int64_t s = 0; s < nseg; ++s) {
    const float* base = SEG ? a + segbase[s] : a;
    const float *a0 = base + (SEG ? off[0] : 0), *a1 = base + (SEG ? off[1] : lda),
                *a2 = base + (SEG ? off[2] : 2 * lda), *a3 = base + (SEG ? off[3] : 3 * lda),
                *a4 = base + (SEG ? off[4] : 4 * lda), *a5 = base + (SEG ? off[5] : 5 * lda);
    for (int64_t p = 0; p < len; ++p, b += ldb) {
      const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
      __m256 av = _mm256_broadcast_ss(a0 + p);
      c00 = _mm256_fmadd_ps(av, b0, c00);
      c01 = _mm256_fmadd_ps(av, b1, c01);
      av = _mm256_broadcast_ss(a1 + p);
      c10 = _mm256_fmadd_ps(av, b0, c10);
      c11 = _mm256_fmadd_ps(av, b1, c11);
      av = _mm256_broadcast_ss(a2 + p);
      c20 = _mm256_fmadd_ps(av, b0, c20);
      c21 = _mm256_fmadd_ps(av, b1, c21);
      av = _mm256_broadcast_ss(a3 + p);
      c30 = _mm256_fmadd_ps(av, b0, c30);
      c31 = _mm256_fmadd_ps(av, b1, c31);
      av = _mm256_broadcast_ss(a4 + p);
      c40 = _mm256_fmadd_ps(av, b0, c40);
      c41 = _mm256_fmadd_ps(av, b1, c41);
      av = _mm256_broadcast_ss(a5 + p);
      c50 = _mm256_fmadd_ps(av, b0, c50);
      c51 = _mm256_fmadd_ps(av, b1, c51);
    }
  }
  alignas(32) float tile[MR * 16];
  _mm256_store_ps(tile, c00), _mm256_store_ps(tile + 8, c01);
  _mm256_store_ps(tile + 16, c10), _mm256_store_ps(tile + 24, c11);
  _mm256_store_ps(tile + 32, c20), _mm256_store_ps(tile + 40, c21);
  _mm256_store_ps(tile + 48, c30), _mm256_store_ps(tile + 56, c31);
  _mm256_store_ps(tile + 64, c40), _mm256_store_ps(tile + 72, c41);
  _mm256_store_ps(tile + 80, c50), _mm256_store_ps(tile + 88, c51);
  store_rows_tile(tile, 16, C, ldc, mr, nr, acc);
}

__attribute__((target("avx2,fma"))) void row_kernel_avx2(int64_t n, const float* a, int64_t lda, const float* b,
                                                            int64_t ldb, float* C, int64_t ldc, int mr, int nr,
                                                            bool acc) {
  row_kernel_avx2_impl<false>(1, n, a, lda, nullptr, nullptr, b, ldb, C, ldc, mr, nr, acc);
}

// The offset path's row kernel: col row r of position (segment s, w) is
// xp[segbase[s] + off[r] + w] (off: MR entries, all readable even past mr).
__attribute__((target("avx2,fma"))) void row_kernel_seg_avx2(int64_t nseg, int64_t len, const float* xp,
                                                                const int64_t* segbase, const int32_t* off,
                                                                const float* b, int64_t ldb, float* C, int64_t ldc,
                                                                int mr, int nr, bool acc) {
  row_kernel_avx2_impl<true>(nseg, len, xp, 0, segbase, off, b, ldb, C, ldc, mr, nr, acc);
}

void row_kernel_scalar(int64_t n, const float* a, int64_t lda, const float* b, int64_t ldb, float* C, int64_t ldc,
                       int mr, int nr, bool acc) {
  constexpr int MR = 4, NR = 8;
  float tile[MR * NR] = {0};
  for (int64_t p = 0; p < n; ++p, b += ldb)
    for (int r = 0; r < MR; ++r)
      for (int c = 0; c < NR; ++c) tile[r * NR + c] += a[r * lda + p] * b[c];
  store_rows_tile(tile, NR, C, ldc, mr, nr, acc);
}

// The row kernel with the tile shape of gemm's micro-kernel on this CPU.
RowKernel row_kernel(const MicroKernel& mk) {
  if (mk.MR == 12 && mk.NR == 32) return row_kernel_avx512;
  if (mk.MR == 6 && mk.NR == 16) return row_kernel_avx2;
  return row_kernel_scalar;
}

void dweight_rows(float* dweight, const float* dout, const float* x, const Conv3dGeometry& g) {
  const MicroKernel& mk = micro_kernel();
  RowKernel kernel = row_kernel(mk);
  int MR = mk.MR, NR = mk.NR;
  if (kernel == row_kernel_avx512 && g.Cout <= 16) kernel = row_kernel_avx512_n16, MR = 24, NR = 16;  // no empty columns
  const int64_t K = g.K(), P = g.P(), rows = g.To * g.Ho, in_item = g.Cin * g.T * g.H * g.W;
  const int64_t Kp = (K + MR - 1) / MR * MR, Coutp = (g.Cout + NR - 1) / NR * NR;
  const int64_t rc = rows_per_chunk(g);
  if (g.B == 0) {
    std::memset(dweight, 0, static_cast<size_t>(g.Cout * K) * sizeof(float));
    return;
  }
  FloatBuffer dwt(Kp * Coutp);
  // Each thread owns a range of tap panels (rows of dweight^T); for each chunk of
  // ~kPositionBlock positions (dout^T's rows for it: L2), per panel it reads
  // that panel's MR col rows for the chunk, and the row kernel runs over them at once:
  // on the offset path (AVX2, padded_columns) straight from the padded window, else built
  // by vol2col into an MR x n buffer (L1). (Building a whole chunk of col, K x n, first
  // would send it out to memory and back.)
  const int64_t rcw = std::min(rc, std::max<int64_t>(1, kPositionBlock / g.Wo)), nw = rcw * g.Wo;
  const bool seg =
      (kernel == row_kernel_avx2 || kernel == row_kernel_avx512 || kernel == row_kernel_avx512_n16) && padded_columns(g);
  const PaddedDims pd = padded_dims(g);
  FloatBuffer xp(seg ? pd.size(g.Cin) : 0);
  const std::vector<int32_t> off = seg ? tap_offsets(g, pd, Kp) : std::vector<int32_t>();
  // dout^T for up to kDoutTBudget floats of positions (a multiple of rcw rows), made
  // once by all threads (in 16-position blocks: 16 contiguous reads per channel) and
  // shared by them, instead of each thread transposing its own copy row by row.
  constexpr int64_t kDoutTBudget = int64_t{1} << 20;
  // (The column-budget test hook shrinks it too, so tests cover several chunks.)
  const int64_t tbudget = std::min(kDoutTBudget, g_column_budget.load());
  const int64_t rT = std::max<int64_t>(rcw, std::min(rows, tbudget / (g.Wo * Coutp)) / rcw * rcw);
  FloatBuffer doutT(rT * g.Wo * Coutp);
  // On the offset path, window by window of output frames (pad_window); else one window.
  const int64_t wf = seg ? pd.wf : g.To;
  for (int64_t b = 0; b < g.B; ++b)
    for (int64_t to0 = 0; to0 < g.To; to0 += wf) {
      const int64_t w0 = to0 * g.Ho, w1 = std::min(g.To, to0 + wf) * g.Ho, tp0 = to0 * g.st;  // output rows, frame
      if (seg) pad_window(xp.get(), x + b * in_item, g, pd, to0);
      for (int64_t t0 = w0; t0 < w1; t0 += rT) {
        const int64_t t1 = std::min(w1, t0 + rT), nT = (t1 - t0) * g.Wo;
        const float* d = dout + b * g.Cout * P + t0 * g.Wo;  // [Cout, nT], row stride P
        parallel_for(0, (nT + 15) / 16, 16, [&](int64_t q0, int64_t q1) {
          for (int64_t q = q0; q < q1; ++q) {
            const int64_t p0 = q * 16, np = std::min<int64_t>(16, nT - p0);
            float* dst = doutT.get() + p0 * Coutp;
            for (int64_t co = 0; co < g.Cout; ++co)
              for (int64_t i = 0; i < np; ++i) dst[i * Coutp + co] = d[co * P + p0 + i];
            for (int64_t i = 0; i < np; ++i)
              for (int64_t co = g.Cout; co < Coutp; ++co) dst[i * Coutp + co] = 0.0f;
          }
        });
        parallel_for(0, Kp / MR, 1, [&](int64_t i0, int64_t i1) {
          FloatBuffer col(seg ? 0 : MR * nw);
          std::vector<int64_t> segbase(rcw);
          for (int64_t r0 = t0; r0 < t1; r0 += rcw) {
            const int64_t r1 = std::min(t1, r0 + rcw), n = (r1 - r0) * g.Wo;
            const bool acc = b > 0 || r0 > 0;
            const float* dT = doutT.get() + (r0 - t0) * g.Wo * Coutp;  // [n, Coutp]
            for (int64_t r = r0; r < r1; ++r)
              segbase[r - r0] = ((r / g.Ho * g.st - tp0) * pd.Hp + (r % g.Ho) * g.sh) * pd.Wp;
            for (int64_t i = i0; i < i1; ++i) {
              const int64_t ka = i * MR, kb = std::min(K, ka + MR);
              const int mr = static_cast<int>(kb - ka);
              if (!seg) {
                vol2col(col.get(), x + b * in_item, g, r0, r1, ka, kb);
                if (mr < MR) std::memset(col.get() + mr * n, 0, static_cast<size_t>((MR - mr) * n) * sizeof(float));
              }
              for (int64_t j = 0; j < g.Cout; j += NR) {
                const int nr = static_cast<int>(std::min<int64_t>(NR, g.Cout - j));
                float* c = dwt.get() + i * MR * Coutp + j;
                if (seg)
                  (kernel == row_kernel_avx512       ? row_kernel_seg_avx512
                   : kernel == row_kernel_avx512_n16 ? row_kernel_seg_avx512_n16
                                                     : row_kernel_seg_avx2)(
                      r1 - r0, g.Wo, xp.get(), segbase.data(), off.data() + ka, dT + j, Coutp, c, Coutp, mr, nr, acc);
                else
                  kernel(n, col.get(), n, dT + j, Coutp, c, Coutp, mr, nr, acc);
              }
            }
          }
        });
      }
    }
  parallel_for(0, g.Cout, 4, [&](int64_t c0, int64_t c1) {
    for (int64_t co = c0; co < c1; ++co)
      for (int64_t k = 0; k < K; ++k) dweight[co * K + k] = dwt.get()[k * Coutp + co];
  });
}

// ---- weight gradient for few output channels -----------------------------------------
// With Cout <= 4 (a VAE's last conv to the image, or a tiny head) the tiles of the row
// kernel above are nearly empty (Cout fills NR = 32 or 16 columns): it ran at a few
// GFLOP/s. With up to 32 channels on AVX-512 it still builds every col panel with
// vol2col. Here each tap's gradient is a dot product over the positions instead, output
// channels in groups of 4:
//   dW[co, k] = sum over (b, r, wo) of dout[b, co, r, wo] * xp_b[segbase(r) + off[k] + wo]
// (unit W stride, read in place from the padded window), TB taps x Cout vector
// accumulators per pass over a chunk of rows, chunk sums added in double. Threads split
// the (channel group, tap block) pairs, so every sum runs in one order whatever the
// thread count.
constexpr int64_t kTapChunkPositions = 2048;  // positions summed in float lanes before the double total

template <int W, int CO, int TB>
TS_INLINE void taps_dot(double* tot, const float* xp, const int32_t* off, int ntaps, const float* d, int64_t P,
                        const int64_t* segbase, int64_t r0, int64_t r1, int64_t Wo) {
  using F = typename Vec<W>::F;
  F acc[TB][CO];
  for (int t = 0; t < TB; ++t)
    for (int c = 0; c < CO; ++c) acc[t][c] = F{};
  double tail[TB][CO] = {};
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = xp + segbase[r - r0];
    const float* dr = d + r * Wo;
    int64_t wo = 0;
    for (; wo + W <= Wo; wo += W) {
      F dv[CO];
      for (int c = 0; c < CO; ++c) dv[c] = vload<W>(dr + c * P + wo);
      for (int t = 0; t < TB; ++t) {
        if (t >= ntaps) break;
        const F xv = vload<W>(xr + off[t] + wo);
        for (int c = 0; c < CO; ++c) acc[t][c] += xv * dv[c];
      }
    }
    for (; wo < Wo; ++wo)
      for (int t = 0; t < ntaps; ++t)
        for (int c = 0; c < CO; ++c) tail[t][c] += static_cast<double>(xr[off[t] + wo]) * dr[c * P + wo];
  }
  for (int t = 0; t < ntaps; ++t)
    for (int c = 0; c < CO; ++c) tot[t * CO + c] += static_cast<double>(hsum<W>(acc[t][c])) + tail[t][c];
}

// One pass of taps [k0, k0 + ntaps) over rows [r0, r1) of item b; tot [ntaps][Cout].
using TapsFn = void (*)(double* tot, const float* xp, const int32_t* off, int ntaps, const float* d, int64_t P,
                        const int64_t* segbase, int64_t r0, int64_t r1, int64_t Wo, int co);

template <int W, int TB>
TS_INLINE void taps_dot_any(double* tot, const float* xp, const int32_t* off, int ntaps, const float* d, int64_t P,
                            const int64_t* segbase, int64_t r0, int64_t r1, int64_t Wo, int co) {
  switch (co) {
    case 1: return taps_dot<W, 1, TB>(tot, xp, off, ntaps, d, P, segbase, r0, r1, Wo);
    case 2: return taps_dot<W, 2, TB / 2>(tot, xp, off, ntaps, d, P, segbase, r0, r1, Wo);
    case 3: return taps_dot<W, 3, TB / 3>(tot, xp, off, ntaps, d, P, segbase, r0, r1, Wo);
    default: return taps_dot<W, 4, TB / 4>(tot, xp, off, ntaps, d, P, segbase, r0, r1, Wo);
  }
}

// Accumulator registers: TB taps x Cout vectors plus Cout dout rows and one x row.
__attribute__((target("avx512f,fma"))) void taps_avx512(double* tot, const float* xp, const int32_t* off, int ntaps,
                                                       const float* d, int64_t P, const int64_t* segbase, int64_t r0,
                                                       int64_t r1, int64_t Wo, int co) {
  taps_dot_any<16, 24>(tot, xp, off, ntaps, d, P, segbase, r0, r1, Wo, co);
}
__attribute__((target("avx2,fma"))) void taps_avx2(double* tot, const float* xp, const int32_t* off, int ntaps,
                                                  const float* d, int64_t P, const int64_t* segbase, int64_t r0,
                                                  int64_t r1, int64_t Wo, int co) {
  taps_dot_any<8, 12>(tot, xp, off, ntaps, d, P, segbase, r0, r1, Wo, co);
}
void taps_portable(double* tot, const float* xp, const int32_t* off, int ntaps, const float* d, int64_t P,
                   const int64_t* segbase, int64_t r0, int64_t r1, int64_t Wo, int co) {
  taps_dot_any<4, 12>(tot, xp, off, ntaps, d, P, segbase, r0, r1, Wo, co);
}

// Taps per pass for a Cout (the instances' TB / Cout, as taps_dot_any divides it).
int taps_per_pass(int width, int64_t cout) {
  const int tb = width == 16 ? 24 : 12;
  return std::max(1, tb / static_cast<int>(cout));
}

// Up to 8 output channels on AVX-512, 4 elsewhere. Xeon (AVX-512) against the row
// kernels reading the padded window (12 x 32, and 24 x 16 for Cout <= 16): the row
// kernel takes 0.67-0.83 of this path's time at Cout 32, 0.73-0.94 at 16; at 8, 1.0 at
// 16x16 and 1.6 at 64x64 (so 8 stays here). AVX2: not measured against its row kernel.
bool few_cout_dweight(const Conv3dGeometry& g) {
  return g.Cout <= (simd_width() == 16 ? 8 : 4) && padded_columns(g);
}

void dweight_taps(float* dweight, const float* dout, const float* x, const Conv3dGeometry& g) {
  const int64_t K = g.K(), P = g.P(), rows = g.To * g.Ho, in_item = g.Cin * g.T * g.H * g.W;
  const int width = simd_width();
  const TapsFn fn = width == 16 ? taps_avx512 : width == 8 ? taps_avx2 : taps_portable;
  // Output channels in groups of up to 4 (each group its own dot products).
  const int64_t groups = (g.Cout + 3) / 4, gco = std::min<int64_t>(4, g.Cout);
  const int tb = taps_per_pass(width, gco);
  const PaddedDims pd = padded_dims(g);
  FloatBuffer xp(pd.size(g.Cin));
  const std::vector<int32_t> off = tap_offsets(g, pd, K);
  // [group][K][channel in group]: group grp at grp * K * gco, its row stride its channels
  std::vector<double> tot(static_cast<size_t>(groups * K * gco), 0.0);
  const int64_t rchunk = std::max<int64_t>(1, kTapChunkPositions / std::max<int64_t>(g.Wo, 1));
  const int64_t blocks = (K + tb - 1) / tb;
  for (int64_t b = 0; b < g.B; ++b)
    for (int64_t to0 = 0; to0 < g.To; to0 += pd.wf) {
      const int64_t w0 = to0 * g.Ho, w1 = std::min(g.To, to0 + pd.wf) * g.Ho, tp0 = to0 * g.st;
      pad_window(xp.get(), x + b * in_item, g, pd, to0);
      const float* d = dout + b * g.Cout * P;
      parallel_for(0, groups * blocks, 1, [&](int64_t i0, int64_t i1) {
        std::vector<int64_t> segbase(static_cast<size_t>(rchunk));
        for (int64_t r0 = w0; r0 < w1; r0 += rchunk) {
          const int64_t r1 = std::min(w1, r0 + rchunk);
          for (int64_t r = r0; r < r1; ++r)
            segbase[r - r0] = ((r / g.Ho * g.st - tp0) * pd.Hp + (r % g.Ho) * g.sh) * pd.Wp;
          for (int64_t i = i0; i < i1; ++i) {
            const int64_t grp = i / blocks, k0 = i % blocks * tb, n = std::min<int64_t>(tb, K - k0);
            const int64_t c0 = grp * 4, nc = std::min<int64_t>(4, g.Cout - c0);
            fn(tot.data() + grp * K * gco + k0 * nc, xp.get(), off.data() + k0, static_cast<int>(n), d + c0 * P, P,
               segbase.data(), r0, r1, g.Wo, static_cast<int>(nc));
          }
        }
      });
    }
  (void)rows;
  for (int64_t co = 0; co < g.Cout; ++co)
    for (int64_t k = 0; k < K; ++k) {
      const int64_t grp = co / 4, nc = std::min<int64_t>(4, g.Cout - grp * 4);
      dweight[co * K + k] = static_cast<float>(tot[grp * K * gco + k * nc + co % 4]);
    }
}

}  // namespace

int64_t conv3d_column_budget() { return g_column_budget.load(); }
bool set_conv3d_direct(bool on) { return g_direct_enabled.exchange(on); }
void set_conv3d_column_budget(int64_t floats) { g_column_budget = floats > 0 ? floats : kDefaultColumnBudget; }

void conv3d_forward(Tensor& out_t, const Tensor& inp, const Tensor& weight, const Tensor& bias,
                    const Conv3dGeometry& g) {
  KernelDeviceScope on(out_t.device());  // workspace counts on the device the call is for
  float* out = out_t.data<float>();
  const float* x = inp.data<float>();
  const float* w = weight.data<float>();
  const float* bs = bias.defined() ? bias.data<float>() : nullptr;
  if (out_t.numel() == 0) return;
  if (reference_kernels()) return forward_reference(out, x, w, bs, g);
  forward_implicit(out, x, w, bs, g);
}

void conv3d_backward(Tensor& dinp_t, Tensor& dweight_t, Tensor& dbias_t, const Tensor& dout_t, const Tensor& inp,
                     const Tensor& weight, const Conv3dGeometry& g) {
  KernelDeviceScope on(dout_t.device());
  float* dinp = dinp_t.defined() ? dinp_t.data<float>() : nullptr;
  float* dweight = dweight_t.defined() ? dweight_t.data<float>() : nullptr;
  float* dbias = dbias_t.defined() ? dbias_t.data<float>() : nullptr;
  const float* dout = dout_t.data<float>();
  const float* x = inp.data<float>();
  const float* w = weight.data<float>();
  if (reference_kernels()) return backward_reference(dinp, dweight, dbias, dout, x, w, g);

  const int64_t P = g.P();
  if (dbias)
    parallel_for(0, g.Cout, 4, [&](int64_t c0, int64_t c1) {
      for (int64_t co = c0; co < c1; ++co) {
        double acc = 0;
        for (int64_t b = 0; b < g.B; ++b) {
          const float* d = dout + (b * g.Cout + co) * P;
          // float sums within one (b, co) in 16 independent lanes (they vectorize: one
          // running sum was a chain of dependent adds; dbias of [2,16,9,64,64] on the
          // Xeon: 0.35 -> 0.07 ms), double across lanes and items
          float lane[16] = {};
          int64_t i = 0;
          for (; i + 16 <= P; i += 16)
            for (int j = 0; j < 16; ++j) lane[j] += d[i + j];
          double part = 0;
          for (int j = 0; j < 16; ++j) part += lane[j];
          for (; i < P; ++i) part += d[i];
          acc += part;
        }
        dbias[co] = static_cast<float>(acc);
      }
    });
  if (dinp && g.B > 0) {
    if (dinp_as_conv(g))
      dinp_conv(dinp, dout, w, g);
    else
      dinp_col2im(dinp, dout, w, g);
  }
  if (dweight) {
    if (g.B == 0) std::memset(dweight, 0, static_cast<size_t>(g.Cout * g.K()) * sizeof(float));
    else if (few_cout_dweight(g)) dweight_taps(dweight, dout, x, g);
    else dweight_rows(dweight, dout, x, g);
  }
}

}  // namespace cpu
}  // namespace ts
