// tessera CUDA backend: conv3d as implicit GEMM, forward, input gradient (dinp) and
// weight gradient (dweight) side by side. Dimension letters as in conv3d.cuh; taps =
// kt*kh*kw; a padded coordinate i maps to input index i - pad_before, outside [0, n)
// reading zero (zeros) or the clamped edge (replicate).
//
// The three GEMMs (rows x cols, reduction):
//   forward  out[b, co, pos]    M = B*P positions  x N = Cout,  K = Cin x taps
//   dinp     dgrid[b, ci, gpos] M = B*Pg positions x N = Cin,   K = Cout x taps:
//            dgrid at padded coordinate i gathers dout[(i - a) / s] over taps a with
//            (i - a) divisible by the stride and in range (any stride); zeros padding
//            computes the input grid directly, replicate the whole padded grid and a
//            fold adds each padded position onto the input element it clamps to
//   dweight  dw[co, (ci, tap)]  M = Cout x N = Cin x taps, K = B*P positions, split
//            over gridDim.z into float32 partials that a second pass adds in order
//   dbias    per-channel sums of dout in double
// Tensor cores (float32_matmul_precision() == Medium): operands converted to bf16
// channels-last (x [B, T, H, W, Cp], dout [B, To, Ho, Wo, Coutp], channels zero-padded
// to multiples of 8, weights [Cout][taps][Cp] and [Cin][taps][Coutp]) so that every
// 16-byte chunk of a GEMM row is 8 channels of one tap: cp.async 3-stage pipelines,
// 128 x 128 x 32 block tiles, 8 warps of 64 x 32, mma.sync m16n8k16 bf16 -> float32.
// Float32 (default): the same GEMMs on 64 x 64 x 16 FFMA tiles (4 x 4 per thread) with
// scalar gathers from the PyTorch layouts (no conversion passes).
// Memory contract: out, dinp, dweight, dbias overwritten (dinp / dweight / dbias only
// when defined).
#include <algorithm>

#include "common.cuh"
#include "conv3d.cuh"
#include "core/precision.h"
#include "mma.cuh"

namespace ts {
namespace cuda {

namespace {

constexpr const char* kOp = "conv3d";
using mma::bf16;

// Geometry on the device. For dinp, (Gt, Gh, Gw) is the grid computed and (ot, oh, ow)
// its offset in padded coordinates.
struct Geo {
  int B, Cin, Cout, T, H, W, kt, kh, kw, st, sh, sw, pt0, ph, pw, To, Ho, Wo;
  int taps, P;  // kt*kh*kw, To*Ho*Wo
  bool replicate;
  int Gt, Gh, Gw, Pg, ot, oh, ow;
};

Geo make_geo(const Conv3dGeometry& g) {
  Geo d;
  d.B = static_cast<int>(g.B), d.Cin = static_cast<int>(g.Cin), d.Cout = static_cast<int>(g.Cout);
  d.T = static_cast<int>(g.T), d.H = static_cast<int>(g.H), d.W = static_cast<int>(g.W);
  d.kt = static_cast<int>(g.kt), d.kh = static_cast<int>(g.kh), d.kw = static_cast<int>(g.kw);
  d.st = static_cast<int>(g.st), d.sh = static_cast<int>(g.sh), d.sw = static_cast<int>(g.sw);
  d.pt0 = static_cast<int>(g.pt0), d.ph = static_cast<int>(g.ph), d.pw = static_cast<int>(g.pw);
  d.To = static_cast<int>(g.To), d.Ho = static_cast<int>(g.Ho), d.Wo = static_cast<int>(g.Wo);
  d.taps = d.kt * d.kh * d.kw;
  d.P = d.To * d.Ho * d.Wo;
  d.replicate = g.replicate;
  if (g.replicate) {  // the whole padded grid, folded afterwards
    d.Gt = static_cast<int>(g.T + g.pt0 + g.pt1), d.Gh = static_cast<int>(g.H + 2 * g.ph),
    d.Gw = static_cast<int>(g.W + 2 * g.pw);
    d.ot = d.oh = d.ow = 0;
  } else {  // the input grid itself
    d.Gt = d.T, d.Gh = d.H, d.Gw = d.W;
    d.ot = d.pt0, d.oh = d.ph, d.ow = d.pw;
  }
  d.Pg = d.Gt * d.Gh * d.Gw;
  return d;
}

// Input index of padded coordinate i (already shifted by the front padding), or -1.
__device__ __forceinline__ int src_index(int i, int n, bool replicate) {
  if (i >= 0 && i < n) return i;
  if (!replicate) return -1;
  return i < 0 ? 0 : n - 1;
}

// Output index reached from padded coordinate i through tap a with stride s, or -1.
__device__ __forceinline__ int dst_index(int i, int a, int s, int n) {
  int v = i - a;
  if (v < 0 || v % s) return -1;
  v /= s;
  return v < n ? v : -1;
}

// =====================================================================================
// Float32 path: C[M][N] = sum_k A(m, k) B(k, n) on 64 x 64 x 16 tiles, 256 threads.
// =====================================================================================
constexpr int kFT = 64, kFK = 16;

// Forward operands: A = x gathered (m: b, to, ho, wo; k: ci, tap), B = weight [Cout][K].
struct FwdF32 {
  const float* x;
  const float* w;
  const float* bias;
  float* out;
  Geo g;
  __device__ int M() const { return g.B * g.P; }
  __device__ int N() const { return g.Cout; }
  __device__ int K() const { return g.Cin * g.taps; }
  __device__ float a(int m, int k) const {
    int b = m / g.P, pos = m - b * g.P;
    int wo = pos % g.Wo, ho = (pos / g.Wo) % g.Ho, to = pos / (g.Wo * g.Ho);
    int ci = k / g.taps, tap = k - ci * g.taps;
    int q = tap % g.kw, p = (tap / g.kw) % g.kh, aa = tap / (g.kw * g.kh);
    int t = src_index(to * g.st - g.pt0 + aa, g.T, g.replicate);
    int h = src_index(ho * g.sh - g.ph + p, g.H, g.replicate);
    int wi = src_index(wo * g.sw - g.pw + q, g.W, g.replicate);
    if (t < 0 || h < 0 || wi < 0) return 0.0f;
    return x[((static_cast<int64_t>(b) * g.Cin + ci) * g.T + t) * g.H * g.W + static_cast<int64_t>(h) * g.W + wi];
  }
  __device__ float bv(int k, int n) const { return w[static_cast<int64_t>(n) * K() + k]; }
  __device__ void store(int m, int n, float v) const {
    int b = m / g.P, pos = m - b * g.P;
    out[(static_cast<int64_t>(b) * g.Cout + n) * g.P + pos] = v + (bias ? bias[n] : 0.0f);
  }
};

// dinp operands: A = dout gathered (m: b, grid position; k: co, tap), B = w[co][ci][tap].
struct DinpF32 {
  const float* dout;
  const float* w;
  float* grid;  // [B, Cin, Pg]
  Geo g;
  __device__ int M() const { return g.B * g.Pg; }
  __device__ int N() const { return g.Cin; }
  __device__ int K() const { return g.Cout * g.taps; }
  __device__ float a(int m, int k) const {
    int b = m / g.Pg, pos = m - b * g.Pg;
    int gw = pos % g.Gw + g.ow, gh = (pos / g.Gw) % g.Gh + g.oh, gt = pos / (g.Gw * g.Gh) + g.ot;
    int co = k / g.taps, tap = k - co * g.taps;
    int q = tap % g.kw, p = (tap / g.kw) % g.kh, aa = tap / (g.kw * g.kh);
    int to = dst_index(gt, aa, g.st, g.To), ho = dst_index(gh, p, g.sh, g.Ho), wo = dst_index(gw, q, g.sw, g.Wo);
    if (to < 0 || ho < 0 || wo < 0) return 0.0f;
    return dout[((static_cast<int64_t>(b) * g.Cout + co) * g.To + to) * g.Ho * g.Wo + static_cast<int64_t>(ho) * g.Wo +
                wo];
  }
  __device__ float bv(int k, int n) const {
    int co = k / g.taps, tap = k - co * g.taps;
    return w[(static_cast<int64_t>(co) * g.Cin + n) * g.taps + tap];
  }
  __device__ void store(int m, int n, float v) const {
    int b = m / g.Pg, pos = m - b * g.Pg;
    grid[(static_cast<int64_t>(b) * g.Cin + n) * g.Pg + pos] = v;
  }
};

// dweight operands: A = dout [Cout][positions of all b], B = x gathered (k: b, pos;
// n: ci, tap). Output: partial sums of split blockIdx.z.
struct DwF32 {
  const float* dout;
  const float* x;
  float* part;  // [splits][Cout][Cin*taps]
  Geo g;
  int kper;     // positions per split
  __device__ int M() const { return g.Cout; }
  __device__ int N() const { return g.Cin * g.taps; }
  __device__ int K() const { return g.B * g.P; }
  __device__ float a(int m, int k) const {
    int b = k / g.P, pos = k - b * g.P;
    return dout[(static_cast<int64_t>(b) * g.Cout + m) * g.P + pos];
  }
  __device__ float bv(int k, int n) const {
    int b = k / g.P, pos = k - b * g.P;
    int wo = pos % g.Wo, ho = (pos / g.Wo) % g.Ho, to = pos / (g.Wo * g.Ho);
    int ci = n / g.taps, tap = n - ci * g.taps;
    int q = tap % g.kw, p = (tap / g.kw) % g.kh, aa = tap / (g.kw * g.kh);
    int t = src_index(to * g.st - g.pt0 + aa, g.T, g.replicate);
    int h = src_index(ho * g.sh - g.ph + p, g.H, g.replicate);
    int wi = src_index(wo * g.sw - g.pw + q, g.W, g.replicate);
    if (t < 0 || h < 0 || wi < 0) return 0.0f;
    return x[((static_cast<int64_t>(b) * g.Cin + ci) * g.T + t) * g.H * g.W + static_cast<int64_t>(h) * g.W + wi];
  }
  __device__ void store(int m, int n, float v) const {
    part[(static_cast<int64_t>(blockIdx.z) * g.Cout + m) * N() + n] = v;
  }
};

// k range of this block: all of K, or split blockIdx.z of `kper` values (dweight).
template <typename Op>
__device__ __forceinline__ void k_range(const Op& op, int* k0, int* k1) {
  *k0 = 0;
  *k1 = op.K();
}
template <>
__device__ __forceinline__ void k_range<DwF32>(const DwF32& op, int* k0, int* k1) {
  *k0 = blockIdx.z * op.kper;
  *k1 = min(op.K(), *k0 + op.kper);
}

template <typename Op>
__global__ void __launch_bounds__(256) k_gemm_f32(Op op) {
  __shared__ float As[kFK][kFT + 4];
  __shared__ float Bs[kFK][kFT + 4];
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  const int m0 = blockIdx.x * kFT, n0 = blockIdx.y * kFT;
  const int M = op.M(), N = op.N();
  int kb, ke;
  k_range(op, &kb, &ke);
  float acc[4][4] = {};
  for (int k0 = kb; k0 < ke; k0 += kFK) {
    for (int e = threadIdx.x; e < kFK * kFT; e += 256) {
      int kk = e / kFT, i = e - kk * kFT;
      int k = k0 + kk;
      As[kk][i] = (m0 + i < M && k < ke) ? op.a(m0 + i, k) : 0.0f;
      Bs[kk][i] = (n0 + i < N && k < ke) ? op.bv(k, n0 + i) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kFK; ++kk) {
      float av[4], bw[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) av[i] = As[kk][ty + 16 * i], bw[i] = Bs[kk][tx + 16 * i];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += av[i] * bw[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      int m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
      if (m < M && n < N) op.store(m, n, acc[i][j]);
    }
}

// =====================================================================================
// Shared passes: replicate fold, bias sums, split-K reduction, layout conversion.
// =====================================================================================

// dx[b, c, t, h, w] = sum of grid[b, c, i, j, k] over the padded coordinates that clamp
// to (t, h, w) (replicate; zeros computed dx directly).
__global__ void k_fold_replicate(float* __restrict__ dx, const float* __restrict__ grid, Geo g, int64_t total) {
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int w = static_cast<int>(e % g.W);
    int h = static_cast<int>((e / g.W) % g.H);
    int t = static_cast<int>((e / (static_cast<int64_t>(g.W) * g.H)) % g.T);
    int64_t bc = e / (static_cast<int64_t>(g.W) * g.H * g.T);
    int t0 = t == 0 ? 0 : t + g.pt0, t1 = t == g.T - 1 ? g.Gt - 1 : t + g.pt0;
    int h0 = h == 0 ? 0 : h + g.ph, h1 = h == g.H - 1 ? g.Gh - 1 : h + g.ph;
    int w0 = w == 0 ? 0 : w + g.pw, w1 = w == g.W - 1 ? g.Gw - 1 : w + g.pw;
    const float* src = grid + bc * g.Pg;
    float s = 0.0f;
    for (int i = t0; i <= t1; ++i)
      for (int j = h0; j <= h1; ++j)
        for (int k = w0; k <= w1; ++k) s += src[(static_cast<int64_t>(i) * g.Gh + j) * g.Gw + k];
    dx[e] = s;
  }
}

// dbias[co] = sum_{b, pos} dout[b, co, pos], one block per channel, double sums.
__global__ void k_bias_grad(float* __restrict__ db, const float* __restrict__ dout, int B, int Cout, int P) {
  __shared__ double sd[32];
  int co = blockIdx.x;
  double acc = 0;
  for (int b = 0; b < B; ++b) {
    const float* p = dout + (static_cast<int64_t>(b) * Cout + co) * P;
    for (int i = threadIdx.x; i < P; i += blockDim.x) acc += p[i];
  }
  acc = block_sum(acc, sd);
  if (threadIdx.x == 0) db[co] = static_cast<float>(acc);
}

// dw[co][ci][tap] = sum over splits of part[s][co][col(ci, tap)], col = ci*taps + tap
// (float32 path) or tap*Cp + ci (tensor-core path, cl = true).
__global__ void k_dw_reduce(float* __restrict__ dw, const float* __restrict__ part, int splits, int Cout, int Cin,
                            int taps, int ncols, int Cp, bool cl) {
  int64_t total = static_cast<int64_t>(Cout) * Cin * taps;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int tap = static_cast<int>(e % taps);
    int ci = static_cast<int>((e / taps) % Cin);
    int co = static_cast<int>(e / (static_cast<int64_t>(taps) * Cin));
    int col = cl ? tap * Cp + ci : ci * taps + tap;
    float s = 0.0f;
    for (int sp = 0; sp < splits; ++sp) s += part[(static_cast<int64_t>(sp) * Cout + co) * ncols + col];
    dw[e] = s;
  }
}

// src float32 [B][C][S] -> dst bf16 [B][S][Cp] (channels zero-padded to Cp), through a
// 32 x 32 shared tile so reads (along S) and writes (along C) are both coalesced. b runs
// along grid.z in a loop (B may pass the 65,535 limit of grid.z).
__global__ void k_to_channels_last(bf16* __restrict__ dst, const float* __restrict__ src, int B, int C, int64_t S,
                                   int Cp) {
  __shared__ float tile[32][33];
  const int64_t s0 = static_cast<int64_t>(blockIdx.x) * 32;
  const int c0 = blockIdx.y * 32;
  const int tx = threadIdx.x, ty = threadIdx.y;  // 32 x 8
  for (int b = blockIdx.z; b < B; b += gridDim.z) {
    for (int i = ty; i < 32; i += 8) {
      int c = c0 + i;
      int64_t s = s0 + tx;
      tile[i][tx] = (c < C && s < S) ? src[(static_cast<int64_t>(b) * C + c) * S + s] : 0.0f;
    }
    __syncthreads();
    for (int i = ty; i < 32; i += 8) {
      int64_t s = s0 + i;
      int c = c0 + tx;
      if (s < S && c < Cp) dst[(static_cast<int64_t>(b) * S + s) * Cp + c] = __float2bfloat16_rn(tile[tx][i]);
    }
    __syncthreads();  // the tile is rewritten for the next b
  }
}

// =====================================================================================
// Tensor-core path. Block tile 128 x 128 x 32, 8 warps (2 along M x 4 along N, warp
// tile 64 x 32), 3 cp.async stages.
// =====================================================================================
constexpr int kBM = 128, kBN = 128, kBK = 32, kStages = 3, kTcThreads = 256;
constexpr int kRowLd = kBK + 8;   // [rows][BK] tiles (forward / dinp)
constexpr int kColLd = kBM + 8;   // [BK][cols] tiles (dweight)
constexpr size_t kSmemRows = sizeof(bf16) * kStages * (kBM + kBN) * kRowLd;
constexpr size_t kSmemCols = sizeof(bf16) * kStages * kBK * (kBM + kBN + 16);

// acc[mi][nj] += A(64 x 32 warp rows) B(32 x 32 warp cols) over one BK slice.
template <bool A_KM, bool B_KN>
__device__ __forceinline__ void mma_slice(float (&acc)[4][4][4], const bf16* As, int lda, const bf16* Bs, int ldb,
                                          int wm, int wn) {
#pragma unroll
  for (int ks = 0; ks < kBK / 16; ++ks) {
    uint32_t af[4][4], bfr[2][4];
#pragma unroll
    for (int mi = 0; mi < 4; ++mi) {
      if (A_KM)
        mma::load_a_trans(af[mi], As, lda, wm + mi * 16, ks * 16);
      else
        mma::load_a(af[mi], As, lda, wm + mi * 16, ks * 16);
    }
#pragma unroll
    for (int nj = 0; nj < 2; ++nj) {
      if (B_KN)
        mma::load_b_kn(bfr[nj], Bs, ldb, ks * 16, wn + nj * 16);
      else
        mma::load_b_nk(bfr[nj], Bs, ldb, wn + nj * 16, ks * 16);
    }
#pragma unroll
    for (int mi = 0; mi < 4; ++mi)
#pragma unroll
      for (int nj = 0; nj < 4; ++nj) mma::mma_bf16(acc[mi][nj], af[mi], bfr[nj >> 1][(nj & 1) * 2], bfr[nj >> 1][(nj & 1) * 2 + 1]);
  }
}

struct TcConv {
  const bf16* act;   // forward: x_cl [B, T, H, W, Ca]; dinp: dout_cl [B, To, Ho, Wo, Ca]
  const bf16* wmat;  // [N][taps * Ca] (forward: w_cl, dinp: wt_cl)
  const float* bias; // forward only
  float* out;        // [B][N][Pm] (forward: out, Pm = P; dinp: grid, Pm = Pg)
  Geo g;
  int Ca;            // padded channels of act (and of the K dim of wmat)
  int N;             // Cout (forward) or Cin (dinp)
};

// Forward (DGRAD = false) and dinp (DGRAD = true): M = positions, N = channels out.
template <bool DGRAD>
__global__ void __launch_bounds__(kTcThreads, 1) k_conv_tc(TcConv p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* As = reinterpret_cast<bf16*>(smem_raw);            // [stages][BM][RowLd]
  bf16* Bs = As + kStages * kBM * kRowLd;                    // [stages][BN][RowLd]
  const Geo& g = p.g;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int Pm = DGRAD ? g.Pg : g.P;
  const int M = g.B * Pm, N = p.N, Ktot = g.taps * p.Ca;
  const int m0 = blockIdx.x * kBM, n0 = blockIdx.y * kBN;
  const int wm = (warp & 1) * 64, wn = (warp >> 1) * 32;

  // This thread's two A rows (row tid/4 and tid/4 + 64) and 16-byte chunk (tid % 4).
  const int kc = (tid & 3) * 8;
  int rb[2], r0t[2], r0h[2], r0w[2];
  bool rvalid[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    int m = m0 + (tid >> 2) + i * 64;
    rvalid[i] = m < M;
    int mm = rvalid[i] ? m : 0;
    int b = mm / Pm, pos = mm - b * Pm;
    rb[i] = b;
    if (DGRAD) {
      r0w[i] = pos % g.Gw + g.ow;
      r0h[i] = (pos / g.Gw) % g.Gh + g.oh;
      r0t[i] = pos / (g.Gw * g.Gh) + g.ot;
    } else {
      r0w[i] = (pos % g.Wo) * g.sw - g.pw;
      r0h[i] = ((pos / g.Wo) % g.Ho) * g.sh - g.ph;
      r0t[i] = (pos / (g.Wo * g.Ho)) * g.st - g.pt0;
    }
  }
  const int ktiles = (Ktot + kBK - 1) / kBK;

  auto load_tile = [&](int kt, int st) {
    const int k = kt * kBK + kc;
    const bool kok = k < Ktot;
    const int tap = kok ? k / p.Ca : 0, c = k - tap * p.Ca;
    const int q = tap % g.kw, pp = (tap / g.kw) % g.kh, a = tap / (g.kw * g.kh);
    bf16* as = As + st * kBM * kRowLd;
    bf16* bs = Bs + st * kBN * kRowLd;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int row = (tid >> 2) + i * 64;
      bool ok = kok && rvalid[i];
      int64_t off = 0;
      if (DGRAD) {
        int to = dst_index(r0t[i], a, g.st, g.To), ho = dst_index(r0h[i], pp, g.sh, g.Ho),
            wo = dst_index(r0w[i], q, g.sw, g.Wo);
        ok = ok && to >= 0 && ho >= 0 && wo >= 0;
        if (ok) off = (((static_cast<int64_t>(rb[i]) * g.To + to) * g.Ho + ho) * g.Wo + wo) * p.Ca + c;
      } else {
        int t = src_index(r0t[i] + a, g.T, g.replicate), h = src_index(r0h[i] + pp, g.H, g.replicate),
            w = src_index(r0w[i] + q, g.W, g.replicate);
        ok = ok && t >= 0 && h >= 0 && w >= 0;
        if (ok) off = (((static_cast<int64_t>(rb[i]) * g.T + t) * g.H + h) * g.W + w) * p.Ca + c;
      }
      mma::cp_async16(as + row * kRowLd + kc, p.act + off, ok);
      const int n = n0 + row;
      const bool bok = kok && n < N;
      mma::cp_async16(bs + row * kRowLd + kc, p.wmat + (bok ? static_cast<int64_t>(n) * Ktot + k : 0), bok);
    }
  };

  float acc[4][4][4];
#pragma unroll
  for (int mi = 0; mi < 4; ++mi)
#pragma unroll
    for (int nj = 0; nj < 4; ++nj) acc[mi][nj][0] = acc[mi][nj][1] = acc[mi][nj][2] = acc[mi][nj][3] = 0.0f;

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < ktiles) load_tile(s, s);
    mma::cp_async_commit();
  }
  for (int kt = 0; kt < ktiles; ++kt) {
    mma::cp_async_wait<kStages - 2>();
    __syncthreads();
    const int next = kt + kStages - 1;
    if (next < ktiles) load_tile(next, next % kStages);
    mma::cp_async_commit();
    const int st = kt % kStages;
    mma_slice<false, false>(acc, As + st * kBM * kRowLd, kRowLd, Bs + st * kBN * kRowLd, kRowLd, wm, wn);
  }
  mma::cp_async_wait<0>();

  // epilogue: out[(b * N + n) * Pm + pos] (+ bias[n])
  const int g8 = lane >> 2, t4 = lane & 3;
#pragma unroll
  for (int mi = 0; mi < 4; ++mi)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int m = m0 + wm + mi * 16 + g8 + r * 8;
      if (m >= M) continue;
      const int b = m / Pm, pos = m - b * Pm;
      float* orow = p.out + static_cast<int64_t>(b) * N * Pm + pos;
#pragma unroll
      for (int nj = 0; nj < 4; ++nj)
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const int n = n0 + wn + nj * 8 + 2 * t4 + c;
          if (n < N) orow[static_cast<int64_t>(n) * Pm] = acc[mi][nj][2 * r + c] + (p.bias ? p.bias[n] : 0.0f);
        }
    }
}

// dweight: M = Cout (dout_cl channels), N = taps * Cxp (x_cl gathered), K = positions.
struct TcDw {
  const bf16* dout_cl;  // [B*P][Coutp]
  const bf16* x_cl;     // [B, T, H, W, Cxp]
  float* part;          // [splits][Cout][taps * Cxp]
  Geo g;
  int Coutp, Cxp, kper;
};

__global__ void __launch_bounds__(kTcThreads, 1) k_conv_dw_tc(TcDw p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* As = reinterpret_cast<bf16*>(smem_raw);  // [stages][BK][BM + 8] (rows: positions, cols: co)
  bf16* Bs = As + kStages * kBK * kColLd;         // [stages][BK][BN + 8] (rows: positions, cols: (tap, ci))
  const Geo& g = p.g;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int M = g.Cout, Ncols = g.taps * p.Cxp, Kall = g.B * g.P;
  const int m0 = blockIdx.x * kBM, n0 = blockIdx.y * kBN;
  const int kb = blockIdx.z * p.kper, ke = min(Kall, kb + p.kper);
  const int wm = (warp & 1) * 64, wn = (warp >> 1) * 32;
  // chunks: 32 rows x 16 chunks of 8 columns per operand; this thread: rows tid/16 and
  // tid/16 + 16, chunk tid % 16.
  const int cc = (tid & 15) * 8;
  // the B column chunk (tap, ci) is fixed for this thread
  const int ncol = n0 + cc;
  const bool ncol_ok = ncol < Ncols;
  const int tap = ncol_ok ? ncol / p.Cxp : 0, ci = ncol - tap * p.Cxp;
  const int q = tap % g.kw, pp = (tap / g.kw) % g.kh, a = tap / (g.kw * g.kh);
  const bool mcol_ok = m0 + cc < p.Coutp;
  const int ktiles = ke > kb ? (ke - kb + kBK - 1) / kBK : 0;

  auto load_tile = [&](int kt, int st) {
    bf16* as = As + st * kBK * kColLd;
    bf16* bs = Bs + st * kBK * kColLd;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int row = (tid >> 4) + i * 16;
      const int k = kb + kt * kBK + row;
      const bool kok = k < ke;
      const bool aok = kok && mcol_ok;
      mma::cp_async16(as + row * kColLd + cc, p.dout_cl + (aok ? static_cast<int64_t>(k) * p.Coutp + m0 + cc : 0), aok);
      bool bok = kok && ncol_ok;
      int64_t off = 0;
      if (bok) {
        int b = k / g.P, pos = k - b * g.P;
        int wo = pos % g.Wo, ho = (pos / g.Wo) % g.Ho, to = pos / (g.Wo * g.Ho);
        int t = src_index(to * g.st - g.pt0 + a, g.T, g.replicate);
        int h = src_index(ho * g.sh - g.ph + pp, g.H, g.replicate);
        int w = src_index(wo * g.sw - g.pw + q, g.W, g.replicate);
        bok = t >= 0 && h >= 0 && w >= 0;
        if (bok) off = (((static_cast<int64_t>(b) * g.T + t) * g.H + h) * g.W + w) * p.Cxp + ci;
      }
      mma::cp_async16(bs + row * kColLd + cc, p.x_cl + off, bok);
    }
  };

  float acc[4][4][4];
#pragma unroll
  for (int mi = 0; mi < 4; ++mi)
#pragma unroll
    for (int nj = 0; nj < 4; ++nj) acc[mi][nj][0] = acc[mi][nj][1] = acc[mi][nj][2] = acc[mi][nj][3] = 0.0f;
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < ktiles) load_tile(s, s);
    mma::cp_async_commit();
  }
  for (int kt = 0; kt < ktiles; ++kt) {
    mma::cp_async_wait<kStages - 2>();
    __syncthreads();
    const int next = kt + kStages - 1;
    if (next < ktiles) load_tile(next, next % kStages);
    mma::cp_async_commit();
    const int st = kt % kStages;
    mma_slice<true, true>(acc, As + st * kBK * kColLd, kColLd, Bs + st * kBK * kColLd, kColLd, wm, wn);
  }
  mma::cp_async_wait<0>();

  const int g8 = lane >> 2, t4 = lane & 3;
  float* base = p.part + static_cast<int64_t>(blockIdx.z) * M * Ncols;
#pragma unroll
  for (int mi = 0; mi < 4; ++mi)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int m = m0 + wm + mi * 16 + g8 + r * 8;
      if (m >= M) continue;
#pragma unroll
      for (int nj = 0; nj < 4; ++nj) {
        const int n = n0 + wn + nj * 8 + 2 * t4;
        if (n + 1 < Ncols) {
          *reinterpret_cast<float2*>(base + static_cast<int64_t>(m) * Ncols + n) =
              make_float2(acc[mi][nj][2 * r], acc[mi][nj][2 * r + 1]);
        } else if (n < Ncols) {
          base[static_cast<int64_t>(m) * Ncols + n] = acc[mi][nj][2 * r];
        }
      }
    }
}

// ---- host helpers --------------------------------------------------------------------

int round8(int c) { return (c + 7) / 8 * 8; }

template <typename K>
void allow_smem(K kernel, size_t bytes) {
  if (bytes > 48 * 1024)
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)), kOp);
}

bool use_tensor_cores() { return float32_matmul_precision() == MatmulPrecision::Medium; }

void check_size(int64_t v, const char* what) {
  if (v > 0x7fffffffLL) fail(kOp, "not supported on cuda for sizes this large (", what, " = ", v, ")");
}

void check_geo(const Conv3dGeometry& g) {
  check_size(g.B * g.To * g.Ho * g.Wo, "B*To*Ho*Wo");
  check_size(g.B * (g.T + g.pt0 + g.pt1) * (g.H + 2 * g.ph) * (g.W + 2 * g.pw), "B*T*H*W (padded)");
  check_size(g.Cout * g.K(), "Cout*K");
  check_size(g.B * g.Cin * g.T * g.H * g.W / std::max<int64_t>(1, g.Cin) * round8(static_cast<int>(g.Cin)),
             "input elements");
}

// float32 [B][C][S] -> bf16 [B][S][Cp] channels-last (zero padded).
Tensor channels_last(const float* src, int B, int C, int64_t S, int Cp, int dev, cudaStream_t s) {
  Tensor t = workspace(std::max<int64_t>(1, static_cast<int64_t>(B) * S * Cp), DType::BFloat16, dev, kOp);
  if (static_cast<int64_t>(B) * S * Cp == 0) return t;
  dim3 grid(static_cast<unsigned>((S + 31) / 32), static_cast<unsigned>((Cp + 31) / 32),
            static_cast<unsigned>(std::min(B, 65535)));
  k_to_channels_last<<<grid, dim3(32, 8), 0, s>>>(t.data<bf16>(), src, B, C, S, Cp);
  check_launch(kOp);
  return t;
}

void fold_or_copy(float* dx, const float* grid, const Geo& gd, int64_t total, cudaStream_t s) {
  k_fold_replicate<<<grid_for(total), kThreads, 0, s>>>(dx, grid, gd, total);
  check_launch(kOp);
}

int dw_splits(int64_t tiles_mn, int64_t K, int sms) {
  // enough blocks to fill the device twice, each split at least 256 positions long
  int64_t want = std::max<int64_t>(1, 2 * sms / std::max<int64_t>(1, tiles_mn));
  int64_t cap = std::max<int64_t>(1, K / 256);
  return static_cast<int>(std::min<int64_t>(std::min(want, cap), 1024));
}

int sm_count(int dev) {
  int v = 0;
  check(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev), kOp);
  return v;
}

// ---- tensor-core launches (shared by the Backend path and the raw entry points) ------

void tc_forward(const Geo& gd, const bf16* x_cl, int Cxp, const bf16* w_cl, const float* bias, float* out,
                cudaStream_t s) {
  TcConv p{x_cl, w_cl, bias, out, gd, Cxp, gd.Cout};
  allow_smem(k_conv_tc<false>, kSmemRows);
  dim3 grid(static_cast<unsigned>((static_cast<int64_t>(gd.B) * gd.P + kBM - 1) / kBM),
            static_cast<unsigned>((gd.Cout + kBN - 1) / kBN));
  k_conv_tc<false><<<grid, kTcThreads, kSmemRows, s>>>(p);
  check_launch(kOp);
}

// dgrid [B][Cin][Pg] from dout_cl and wt_cl; then dx (fold for replicate).
void tc_dinp(const Geo& gd, const bf16* dout_cl, int Coutp, const bf16* wt_cl, float* dx, int dev, cudaStream_t s) {
  Tensor gridbuf;
  float* target = dx;
  if (gd.replicate) {
    gridbuf = workspace(std::max<int64_t>(1, static_cast<int64_t>(gd.B) * gd.Cin * gd.Pg), DType::Float32, dev, kOp);
    target = gridbuf.data<float>();
  }
  TcConv p{dout_cl, wt_cl, nullptr, target, gd, Coutp, gd.Cin};
  allow_smem(k_conv_tc<true>, kSmemRows);
  dim3 grid(static_cast<unsigned>((static_cast<int64_t>(gd.B) * gd.Pg + kBM - 1) / kBM),
            static_cast<unsigned>((gd.Cin + kBN - 1) / kBN));
  k_conv_tc<true><<<grid, kTcThreads, kSmemRows, s>>>(p);
  check_launch(kOp);
  if (gd.replicate) fold_or_copy(dx, target, gd, static_cast<int64_t>(gd.B) * gd.Cin * gd.T * gd.H * gd.W, s);
}

void tc_dweight(const Geo& gd, const bf16* dout_cl, int Coutp, const bf16* x_cl, int Cxp, float* dw, int dev,
                cudaStream_t s) {
  const int ncols = gd.taps * Cxp;
  const int64_t K = static_cast<int64_t>(gd.B) * gd.P;
  const int64_t tiles = static_cast<int64_t>((gd.Cout + kBM - 1) / kBM) * ((ncols + kBN - 1) / kBN);
  int splits = dw_splits(tiles, K, sm_count(dev));
  int kper = static_cast<int>((K + splits - 1) / splits);
  kper = (kper + kBK - 1) / kBK * kBK;
  splits = static_cast<int>((K + kper - 1) / kper);
  Tensor part = workspace(std::max<int64_t>(1, static_cast<int64_t>(splits) * gd.Cout * ncols), DType::Float32, dev,
                          kOp);
  TcDw p{dout_cl, x_cl, part.data<float>(), gd, Coutp, Cxp, kper};
  allow_smem(k_conv_dw_tc, kSmemCols);
  dim3 grid(static_cast<unsigned>((gd.Cout + kBM - 1) / kBM), static_cast<unsigned>((ncols + kBN - 1) / kBN),
            static_cast<unsigned>(splits));
  k_conv_dw_tc<<<grid, kTcThreads, kSmemCols, s>>>(p);
  check_launch(kOp);
  k_dw_reduce<<<grid_for(static_cast<int64_t>(gd.Cout) * gd.Cin * gd.taps), kThreads, 0, s>>>(
      dw, part.data<float>(), splits, gd.Cout, gd.Cin, gd.taps, ncols, Cxp, true);
  check_launch(kOp);
}

}  // namespace

// ---- Backend entry points (float32, PyTorch layouts) -------------------------------

void conv3d_forward(Tensor& out, const Tensor& inp, const Tensor& weight, const Tensor& bias,
                    const Conv3dGeometry& g) {
  if (out.numel() == 0) return;
  check_geo(g);
  int dev = out.device().index;
  cudaStream_t s = prepare(out);
  Geo gd = make_geo(g);
  const float* bp = bias.defined() ? bias.data<float>() : nullptr;
  if (use_tensor_cores()) {
    int Cxp = round8(gd.Cin);
    Tensor xcl = channels_last(inp.data<float>(), gd.B, gd.Cin, static_cast<int64_t>(gd.T) * gd.H * gd.W, Cxp, dev, s);
    Tensor wcl = channels_last(weight.data<float>(), gd.Cout, gd.Cin, gd.taps, Cxp, dev, s);
    tc_forward(gd, xcl.data<bf16>(), Cxp, wcl.data<bf16>(), bp, out.data<float>(), s);
    return;
  }
  FwdF32 op{inp.data<float>(), weight.data<float>(), bp, out.data<float>(), gd};
  dim3 grid(static_cast<unsigned>((static_cast<int64_t>(gd.B) * gd.P + kFT - 1) / kFT),
            static_cast<unsigned>((gd.Cout + kFT - 1) / kFT));
  k_gemm_f32<<<grid, 256, 0, s>>>(op);
  check_launch(kOp);
}

void conv3d_backward(Tensor& dinp, Tensor& dweight, Tensor& dbias, const Tensor& dout, const Tensor& inp,
                     const Tensor& weight, const Conv3dGeometry& g) {
  check_geo(g);
  int dev = inp.device().index;
  cudaStream_t s = prepare(inp);
  Geo gd = make_geo(g);
  if (static_cast<int64_t>(gd.B) * gd.P == 0) {
    // No output positions (B = 0 or an empty output grid): every gradient is a sum over
    // none of them. (The GEMMs below would split zero positions, and launch empty grids.)
    for (Tensor* t : {&dinp, &dweight, &dbias})
      if (t->defined() && t->nbytes()) check(cudaMemsetAsync(t->raw(), 0, t->nbytes(), s), kOp);
    return;
  }
  if (dbias.defined()) {
    k_bias_grad<<<static_cast<unsigned>(gd.Cout), 256, 0, s>>>(dbias.data<float>(), dout.data<float>(), gd.B, gd.Cout,
                                                               gd.P);
    check_launch(kOp);
  }
  if (!dinp.defined() && !dweight.defined()) return;
  if (use_tensor_cores()) {
    int Coutp = round8(gd.Cout), Cxp = round8(gd.Cin);
    Tensor gcl = channels_last(dout.data<float>(), gd.B, gd.Cout, gd.P, Coutp, dev, s);
    if (dinp.defined()) {
      // wt_cl [Cin][taps][Coutp]: w [Cout][Cin * taps] read as [1][Cout][Cin * taps]
      Tensor wt = channels_last(weight.data<float>(), 1, gd.Cout, static_cast<int64_t>(gd.Cin) * gd.taps, Coutp, dev, s);
      tc_dinp(gd, gcl.data<bf16>(), Coutp, wt.data<bf16>(), dinp.data<float>(), dev, s);
    }
    if (dweight.defined()) {
      Tensor xcl =
          channels_last(inp.data<float>(), gd.B, gd.Cin, static_cast<int64_t>(gd.T) * gd.H * gd.W, Cxp, dev, s);
      tc_dweight(gd, gcl.data<bf16>(), Coutp, xcl.data<bf16>(), Cxp, dweight.data<float>(), dev, s);
    }
    return;
  }
  if (dinp.defined()) {
    Tensor gridbuf;
    float* target = dinp.data<float>();
    if (gd.replicate) {
      gridbuf = workspace(std::max<int64_t>(1, static_cast<int64_t>(gd.B) * gd.Cin * gd.Pg), DType::Float32, dev, kOp);
      target = gridbuf.data<float>();
    }
    DinpF32 op{dout.data<float>(), weight.data<float>(), target, gd};
    dim3 grid(static_cast<unsigned>((static_cast<int64_t>(gd.B) * gd.Pg + kFT - 1) / kFT),
              static_cast<unsigned>((gd.Cin + kFT - 1) / kFT));
    k_gemm_f32<<<grid, 256, 0, s>>>(op);
    check_launch(kOp);
    if (gd.replicate)
      fold_or_copy(dinp.data<float>(), target, gd, static_cast<int64_t>(gd.B) * gd.Cin * gd.T * gd.H * gd.W, s);
  }
  if (dweight.defined()) {
    const int ncols = gd.Cin * gd.taps;
    const int64_t K = static_cast<int64_t>(gd.B) * gd.P;
    const int64_t tiles = static_cast<int64_t>((gd.Cout + kFT - 1) / kFT) * ((ncols + kFT - 1) / kFT);
    int splits = dw_splits(tiles, K, sm_count(dev));
    int kper = static_cast<int>((K + splits - 1) / splits);
    splits = static_cast<int>((K + kper - 1) / kper);
    Tensor part =
        workspace(std::max<int64_t>(1, static_cast<int64_t>(splits) * gd.Cout * ncols), DType::Float32, dev, kOp);
    DwF32 op{dout.data<float>(), inp.data<float>(), part.data<float>(), gd, kper};
    dim3 grid(static_cast<unsigned>((gd.Cout + kFT - 1) / kFT), static_cast<unsigned>((ncols + kFT - 1) / kFT),
              static_cast<unsigned>(splits));
    k_gemm_f32<<<grid, 256, 0, s>>>(op);
    check_launch(kOp);
    k_dw_reduce<<<grid_for(static_cast<int64_t>(gd.Cout) * ncols), kThreads, 0, s>>>(
        dweight.data<float>(), part.data<float>(), splits, gd.Cout, gd.Cin, gd.taps, ncols, 0, false);
    check_launch(kOp);
  }
}

// ---- raw bf16 entry points ---------------------------------------------------------------

void conv3d_forward_bf16(const Conv3dGeometry& g, const void* x_cl, const void* w_cl, const float* bias, float* out,
                         void* stream) {
  check_geo(g);
  Geo gd = make_geo(g);
  tc_forward(gd, static_cast<const bf16*>(x_cl), round8(gd.Cin), static_cast<const bf16*>(w_cl), bias, out,
             static_cast<cudaStream_t>(stream));
}

void conv3d_dinp_bf16(const Conv3dGeometry& g, const void* dout_cl, const void* wt_cl, float* dinp, void* stream) {
  check_geo(g);
  int dev = 0;
  check(cudaGetDevice(&dev), kOp);
  Geo gd = make_geo(g);
  tc_dinp(gd, static_cast<const bf16*>(dout_cl), round8(gd.Cout), static_cast<const bf16*>(wt_cl), dinp, dev,
          static_cast<cudaStream_t>(stream));
}

void conv3d_dweight_bf16(const Conv3dGeometry& g, const void* dout_cl, const void* x_cl, float* dweight, void* stream) {
  check_geo(g);
  int dev = 0;
  check(cudaGetDevice(&dev), kOp);
  Geo gd = make_geo(g);
  tc_dweight(gd, static_cast<const bf16*>(dout_cl), round8(gd.Cout), static_cast<const bf16*>(x_cl), round8(gd.Cin),
             dweight, dev, static_cast<cudaStream_t>(stream));
}

}  // namespace cuda
}  // namespace ts
