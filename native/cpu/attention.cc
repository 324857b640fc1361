// tessera CPU: scaled dot-product attention, forward and backward (flash-style).
// Dimension letters: B batch, Nq / Nk query / key tokens, H heads, D head dim, S packed
// sequences; q [B, Nq, H, D], k, v [B, Nk, H, D], out [B, Nq, H, D], lse [B, H, Nq]
// (masks and packing: core/attention.h). Positions i (query) and j (key) below are
// local to their sequence.
//
// Optimized path (FlashAttention-2 on the CPU). No Nq x Nk matrix exists anywhere:
//  forward, one work item per (b, sequence, h, block of kBq queries): the scaled,
//    transposed query block stays in L1/L2 while blocks of kBk keys stream past it:
//    S^T = K (scale Q)^T (kBk x kBq, A operand read in place from k), online softmax
//    (running max m and sum l per query, the output accumulator rescaled by
//    exp(m_old - m_new)), O += P V (v rows read in place). It writes out = O / l and
//    lse = m + log l.
//  backward, one work item per (b, sequence, h, group of key blocks): for each key
//    block it recomputes P = exp(scale Q K^T - lse) block by block over the query
//    blocks and accumulates dV += P^T dO, dP = dO V^T, dS = scale P (dP - Dvec) with
//    Dvec_i = rowsum(dO_i * O_i) (precomputed), dK += dS^T Q in a tile, and
//    dQ += dS K into the rows of dq. A key block belongs to exactly one item, so
//    dk/dv need no reduction; dq rows are shared between the groups of one (b, s, h),
//    so with G > 1 groups each group writes its own partial dq and the partials are
//    summed in group order afterwards. G depends only on the sizes and the thread
//    count, so results are deterministic for a fixed thread count (and do not depend
//    on scheduling: items run with OpenMP dynamic scheduling).
//  The block products use one register-blocked micro-kernel (C = A B with B rows of
//  vector width W) written once with GCC vector extensions and compiled three times:
//  AVX-512 (W = 16), AVX2 + FMA (W = 8) and a portable fallback (W = 4 generic vectors,
//  which the compiler lowers to SSE2 on x86-64 or to scalar code), picked at run time
//  by cpu::features().
// Reference path (cpu::reference_kernels()): plain loops in double that materialize
// the scores of one query row at a time; single-threaded.
// Memory contract: out, lse, dq, dk, dv are overwritten (activation gradients).
// Workspaces (per-thread tiles, Dvec, dq partials) are tensors, so memory() sees them.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "../core/parallel.h"
#include "cpu.h"
#include "vec.h"

namespace ts {
namespace cpu {

namespace {

constexpr int64_t kBq = 64;  // queries per block
constexpr int64_t kBk = 64;  // keys per block (a multiple of every vector width)
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// One sequence of one batch row: queries [q0, q0 + nq), keys [k0, k0 + nk).
struct Seg {
  int64_t b, q0, nq, k0, nk;
};

std::vector<Seg> segments(const AttentionParams& p, int64_t B, int64_t Nq, int64_t Nk) {
  std::vector<Seg> segs;
  if (!p.cu_seqlens_q.defined()) {
    for (int64_t b = 0; b < B; ++b) segs.push_back({b, 0, Nq, 0, Nk});
    return segs;
  }
  const int32_t* cq = p.cu_seqlens_q.data<int32_t>();
  const int32_t* ck = p.cu_seqlens_k.data<int32_t>();
  for (int64_t s = 0; s < p.num_seqs; ++s) segs.push_back({0, cq[s], cq[s + 1] - cq[s], ck[s], ck[s + 1] - ck[s]});
  return segs;
}

// A [B, N, H, D] operand with unit stride on D.
struct Rows {
  const float* base;
  int64_t sb, sn, sh;
  explicit Rows(const Tensor& t)
      : base(t.data<float>()), sb(t.strides()[0]), sn(t.strides()[1]), sh(t.strides()[2]) {}
  const float* row(int64_t b, int64_t n, int64_t h) const { return base + b * sb + n * sn + h * sh; }
};

// Number of keys (from the sequence start) that local query i may see, of nk.
inline int64_t visible_keys(bool causal, int64_t i, int64_t nk) { return causal ? std::min(nk, i + 1) : nk; }

// ---- reference loops ------------------------------------------------------------------

void forward_reference(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                       const AttentionParams& p) {
  const int64_t B = q.shape()[0], Nq = q.shape()[1], H = q.shape()[2], D = q.shape()[3], Nk = k.shape()[1];
  Rows Q(q), K(k), V(v);
  float* O = out.data<float>();
  float* L = lse.data<float>();
  std::vector<double> s, acc(D);
  for (const Seg& sg : segments(p, B, Nq, Nk))
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < sg.nq; ++i) {
        const float* qi = Q.row(sg.b, sg.q0 + i, h);
        int64_t nvis = visible_keys(p.causal, i, sg.nk);
        s.assign(nvis, 0.0);  // the scores of this query row
        double m = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < nvis; ++j) {
          const float* kj = K.row(sg.b, sg.k0 + j, h);
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += static_cast<double>(qi[d]) * kj[d];
          s[j] = dot * p.scale;
          m = std::max(m, s[j]);
        }
        double l = 0;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = 0; j < nvis; ++j) {
          double e = std::exp(s[j] - m);
          l += e;
          const float* vj = V.row(sg.b, sg.k0 + j, h);
          for (int64_t d = 0; d < D; ++d) acc[d] += e * vj[d];
        }
        float* oi = O + ((sg.b * Nq + sg.q0 + i) * H + h) * D;
        for (int64_t d = 0; d < D; ++d) oi[d] = l > 0 ? static_cast<float>(acc[d] / l) : 0.0f;
        L[(sg.b * H + h) * Nq + sg.q0 + i] = l > 0 ? static_cast<float>(m + std::log(l)) : kNegInf;
      }
}

// Recomputes each softmax row from scratch (it reads neither out nor lse), so it
// checks the optimized backward independently of the saved statistics.
void backward_reference(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q, const Tensor& k,
                        const Tensor& v, const AttentionParams& p) {
  const int64_t B = q.shape()[0], Nq = q.shape()[1], H = q.shape()[2], D = q.shape()[3], Nk = k.shape()[1];
  Rows Q(q), K(k), V(v), dO(dout);
  std::memset(dq.data<float>(), 0, dq.nbytes());
  std::vector<double> s, dp, dkacc, dvacc, dqi(D);
  for (const Seg& sg : segments(p, B, Nq, Nk))
    for (int64_t h = 0; h < H; ++h) {
      dkacc.assign(sg.nk * D, 0.0);
      dvacc.assign(sg.nk * D, 0.0);
      for (int64_t i = 0; i < sg.nq; ++i) {
        const float* qi = Q.row(sg.b, sg.q0 + i, h);
        const float* gi = dO.row(sg.b, sg.q0 + i, h);
        int64_t nvis = visible_keys(p.causal, i, sg.nk);
        s.assign(nvis, 0.0);
        dp.assign(nvis, 0.0);
        double m = -std::numeric_limits<double>::infinity(), l = 0;
        for (int64_t j = 0; j < nvis; ++j) {
          const float* kj = K.row(sg.b, sg.k0 + j, h);
          const float* vj = V.row(sg.b, sg.k0 + j, h);
          double dot = 0, gdot = 0;
          for (int64_t d = 0; d < D; ++d) dot += static_cast<double>(qi[d]) * kj[d], gdot += static_cast<double>(gi[d]) * vj[d];
          s[j] = dot * p.scale;
          dp[j] = gdot;
          m = std::max(m, s[j]);
        }
        for (int64_t j = 0; j < nvis; ++j) l += std::exp(s[j] - m);
        double Di = 0;  // sum_j P_ij dP_ij (= rowsum(dO_i * O_i))
        for (int64_t j = 0; j < nvis; ++j) {
          s[j] = std::exp(s[j] - m) / l;  // P_ij
          Di += s[j] * dp[j];
        }
        std::fill(dqi.begin(), dqi.end(), 0.0);
        for (int64_t j = 0; j < nvis; ++j) {
          double ds = s[j] * (dp[j] - Di) * p.scale;
          const float* kj = K.row(sg.b, sg.k0 + j, h);
          for (int64_t d = 0; d < D; ++d) {
            dqi[d] += ds * kj[d];
            dkacc[j * D + d] += ds * qi[d];
            dvacc[j * D + d] += s[j] * gi[d];
          }
        }
        float* dst = dq.data<float>() + ((sg.b * Nq + sg.q0 + i) * H + h) * D;
        for (int64_t d = 0; d < D; ++d) dst[d] = static_cast<float>(dqi[d]);
      }
      for (int64_t j = 0; j < sg.nk; ++j) {
        float* dkj = dk.data<float>() + ((sg.b * Nk + sg.k0 + j) * H + h) * D;
        float* dvj = dv.data<float>() + ((sg.b * Nk + sg.k0 + j) * H + h) * D;
        for (int64_t d = 0; d < D; ++d) dkj[d] = static_cast<float>(dkacc[j * D + d]), dvj[d] = static_cast<float>(dvacc[j * D + d]);
      }
    }
}

// Vector helpers (Vec<W>, vload/vstore/vset, hmax/hsum, vexp): vec.h.

// ---- the block micro-kernel ---------------------------------------------------------------
// C[M, N] (= or +=) A[M, K] B[K, N]. A(i, k) = A[i * ars + k * acs] (row-major A, or a
// transposed view of one); B row-major with leading dim ldb; C row-major (ldc);
// N a multiple of W. Register tile MR rows x NV vectors of W.

template <int W, int MR, int NV>
TS_INLINE void tile(int64_t K, const float* A, int64_t ars, int64_t acs, const float* B, int64_t ldb, float* C,
                    int64_t ldc, bool acc) {
  using F = typename Vec<W>::F;
  F c[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) c[r][v] = F{};
  for (int64_t k = 0; k < K; ++k) {
    F b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = vload<W>(B + k * ldb + v * W);
    const float* a = A + k * acs;
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      F av = vset<W>(a[r * ars]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) c[r][v] += av * b[v];
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      float* p = C + r * ldc + v * W;
      vstore<W>(p, acc ? vload<W>(p) + c[r][v] : c[r][v]);
    }
}

template <int W>
constexpr int kMaxNV = W == 16 ? 4 : 2;  // 6 x 4 zmm accumulators, or 6 x 2 ymm / xmm

template <int W, int MR>
TS_INLINE void tile_nv(int nv, int64_t K, const float* A, int64_t ars, int64_t acs, const float* B, int64_t ldb,
                       float* C, int64_t ldc, bool acc) {
  switch (nv) {
    case 1: return tile<W, MR, 1>(K, A, ars, acs, B, ldb, C, ldc, acc);
    case 2: return tile<W, MR, 2>(K, A, ars, acs, B, ldb, C, ldc, acc);
    default:
      if constexpr (kMaxNV<W> >= 4) {
        if (nv == 3) return tile<W, MR, 3>(K, A, ars, acs, B, ldb, C, ldc, acc);
        return tile<W, MR, 4>(K, A, ars, acs, B, ldb, C, ldc, acc);
      }
  }
}

template <int W>
TS_INLINE void block_gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t ars, int64_t acs, const float* B,
                          int64_t ldb, float* C, int64_t ldc, bool acc) {
  constexpr int MR = 6;
  for (int64_t n0 = 0; n0 < N; n0 += kMaxNV<W> * W) {
    int nv = static_cast<int>(std::min<int64_t>(kMaxNV<W>, (N - n0) / W));
    const float* Bn = B + n0;
    float* Cn = C + n0;
    int64_t i = 0;
    for (; i + MR <= M; i += MR) tile_nv<W, MR>(nv, K, A + i * ars, ars, acs, Bn, ldb, Cn + i * ldc, ldc, acc);
    const float* Ai = A + i * ars;
    float* Ci = Cn + i * ldc;
    switch (M - i) {
      case 1: tile_nv<W, 1>(nv, K, Ai, ars, acs, Bn, ldb, Ci, ldc, acc); break;
      case 2: tile_nv<W, 2>(nv, K, Ai, ars, acs, Bn, ldb, Ci, ldc, acc); break;
      case 3: tile_nv<W, 3>(nv, K, Ai, ars, acs, Bn, ldb, Ci, ldc, acc); break;
      case 4: tile_nv<W, 4>(nv, K, Ai, ars, acs, Bn, ldb, Ci, ldc, acc); break;
      case 5: tile_nv<W, 5>(nv, K, Ai, ars, acs, Bn, ldb, Ci, ldc, acc); break;
      default: break;
    }
  }
}

#define TS_GEMM_ARGS                                                                                           \
  int64_t M, int64_t N, int64_t K, const float *A, int64_t ars, int64_t acs, const float *B, int64_t ldb, float *C, \
      int64_t ldc, bool acc
__attribute__((target("avx512f,fma"))) void block_gemm_avx512(TS_GEMM_ARGS) {
  block_gemm<16>(M, N, K, A, ars, acs, B, ldb, C, ldc, acc);
}
__attribute__((target("avx2,fma"))) void block_gemm_avx2(TS_GEMM_ARGS) {
  block_gemm<8>(M, N, K, A, ars, acs, B, ldb, C, ldc, acc);
}
void block_gemm_portable(TS_GEMM_ARGS) { block_gemm<4>(M, N, K, A, ars, acs, B, ldb, C, ldc, acc); }
#undef TS_GEMM_ARGS

template <int W>
TS_INLINE void gemm_w(int64_t M, int64_t N, int64_t K, const float* A, int64_t ars, int64_t acs, const float* B,
                      int64_t ldb, float* C, int64_t ldc, bool acc) {
  if (M <= 0 || N <= 0) return;
  if constexpr (W == 16) block_gemm_avx512(M, N, K, A, ars, acs, B, ldb, C, ldc, acc);
  else if constexpr (W == 8) block_gemm_avx2(M, N, K, A, ars, acs, B, ldb, C, ldc, acc);
  else block_gemm_portable(M, N, K, A, ars, acs, B, ldb, C, ldc, acc);
}

// ---- tiles: packing ----------------------------------------------------------------------

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// dst[r][0, Dp) = alpha * src row r (D values), zero padded; rows of ld Dp.
inline void pack_rows(float* dst, int64_t Dp, const Rows& src, int64_t b, int64_t n0, int64_t rows, int64_t h,
                      int64_t D, float alpha) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = src.row(b, n0 + r, h);
    float* d = dst + r * Dp;
    if (alpha == 1.0f) std::memcpy(d, s, D * sizeof(float));
    else
      for (int64_t x = 0; x < D; ++x) d[x] = s[x] * alpha;
    for (int64_t x = D; x < Dp; ++x) d[x] = 0.0f;
  }
}
// Transposed: dst[d][c] = alpha * src row c element d for c < cols, zero for c in
// [cols, np); rows of ld.
inline void pack_cols(float* dst, int64_t ld, const Rows& src, int64_t b, int64_t n0, int64_t cols, int64_t np,
                      int64_t h, int64_t D, float alpha) {
  for (int64_t c = 0; c < cols; ++c) {
    const float* s = src.row(b, n0 + c, h);
    for (int64_t x = 0; x < D; ++x) dst[x * ld + c] = s[x] * alpha;
  }
  for (int64_t x = 0; x < D; ++x)
    for (int64_t c = cols; c < np; ++c) dst[x * ld + c] = 0.0f;
}

// Per-thread workspace carving: each piece rounded up to 64 bytes.
struct Carver {
  float* p;
  float* take(int64_t n) {
    float* r = p;
    p += round_up(n, 16);
    return r;
  }
};

struct Ctx {
  Rows q, k, v;
  int64_t Nq, Nk, H, D;
  float scale;
  bool causal;
};

// ---- forward: one block of queries against all visible keys --------------------------------
// Scores are kept transposed, St [key][query]: S^T = K (scale Q)^T takes its A operand
// straight from the rows of k (no packing per block), and the softmax statistics of
// the block's queries (max, sum, rescale factor) are vectors across queries, so the
// online softmax needs no horizontal reductions. Only Q^T is packed, once per block.

int64_t forward_workspace(int64_t Dp) {
  return round_up(Dp * kBq, 16) + kBk * kBq + round_up(kBq * Dp, 16) + round_up(kBk * Dp, 16) + 3 * kBq + 64;
}

template <int W>
TS_INLINE void forward_block(const Ctx& c, const Seg& sg, int64_t h, int64_t i0, float* out, float* lse, float* ws) {
  using F = typename Vec<W>::F;
  const int64_t D = c.D, Dp = round_up(D, W);
  const int64_t rows = std::min(kBq, sg.nq - i0), nqp = round_up(rows, W);
  Carver cv{ws};
  float* Qt = cv.take(Dp * kBq);   // (scale q)^T [D][kBq], query columns zero padded to nqp
  float* St = cv.take(kBk * kBq);  // scores^T, then probabilities^T [key][query]
  float* O = cv.take(kBq * Dp);    // unnormalized output rows
  float* Vb = cv.take(kBk * Dp);   // v block, packed only when D is not a multiple of W
  float* m = cv.take(kBq);         // running max, sum and last rescale factor per query
  float* l = cv.take(kBq);
  float* alpha = cv.take(kBq);
  pack_cols(Qt, kBq, c.q, sg.b, sg.q0 + i0, rows, nqp, h, D, c.scale);
  std::memset(O, 0, sizeof(float) * rows * Dp);
  for (int64_t x = 0; x < nqp; ++x) m[x] = kNegInf, l[x] = 0.0f;
  const bool v_direct = D % W == 0;  // v rows then serve as the B operand as they are
  // Keys beyond the last query's causal limit are invisible to the whole block.
  const int64_t kend = c.causal ? std::min(sg.nk, i0 + rows) : sg.nk;
  for (int64_t j0 = 0; j0 < kend; j0 += kBk) {
    const int64_t cols = std::min(kBk, kend - j0);
    gemm_w<W>(cols, nqp, D, c.k.row(sg.b, sg.k0 + j0, h), c.k.sn, 1, Qt, kBq, St, kBq, false);  // S^T = K (sQ)^T
    if (c.causal && j0 + cols - 1 > i0)  // key j is hidden from queries i < j
      for (int64_t r = 0; r < cols; ++r) {
        const int64_t hide = std::min(nqp, j0 + r - i0);
        for (int64_t x = 0; x < hide; ++x) St[r * kBq + x] = kNegInf;
      }
    for (int64_t x = 0; x < nqp; x += W) {
      const F mold = vload<W>(m + x);
      F mx = mold;
      for (int64_t r = 0; r < cols; ++r) mx = vmax<W>(mx, vload<W>(St + r * kBq + x));
      const F ninf = vset<W>(kNegInf);
      const F safe = mx == ninf ? F{} : mx;  // a query with nothing visible yet keeps P = 0
      F sum = F{};
      for (int64_t r = 0; r < cols; ++r) {
        F e = vexp<W>(vload<W>(St + r * kBq + x) - safe);
        vstore<W>(St + r * kBq + x, e);
        sum += e;
      }
      const F a = vexp<W>(mold - safe);  // 0 on a query's first visible block
      vstore<W>(l + x, vload<W>(l + x) * a + sum);
      vstore<W>(m + x, mx);
      vstore<W>(alpha + x, a);
    }
    for (int64_t r = 0; r < rows; ++r)
      if (alpha[r] != 1.0f) {
        float* o = O + r * Dp;
        const F ab = vset<W>(alpha[r]);
        for (int64_t x = 0; x < Dp; x += W) vstore<W>(o + x, vload<W>(o + x) * ab);
      }
    const float* vb = Vb;
    int64_t ldv = Dp;
    if (v_direct) vb = c.v.row(sg.b, sg.k0 + j0, h), ldv = c.v.sn;
    else pack_rows(Vb, Dp, c.v, sg.b, sg.k0 + j0, cols, h, D, 1.0f);
    gemm_w<W>(rows, Dp, cols, St, 1, kBq, vb, ldv, O, Dp, true);  // O += P V
  }
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = sg.q0 + i0 + r;
    float* dst = out + ((sg.b * c.Nq + i) * c.H + h) * D;
    const float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f;
    for (int64_t x = 0; x < D; ++x) dst[x] = O[r * Dp + x] * inv;
    lse[(sg.b * c.H + h) * c.Nq + i] = l[r] > 0 ? m[r] + std::log(l[r]) : kNegInf;
  }
}

// ---- backward: one group of key blocks against all queries that see them --------------------

int64_t backward_workspace(int64_t Dp) {
  return 3 * round_up(kBq * Dp, 16) + 5 * round_up(kBk * Dp, 16) + 2 * kBq * kBk + 2 * kBq + 64;
}

struct BwdCtx {
  Ctx c;
  Rows dout;
  const float* lse;   // [B, H, Nq]
  const float* dvec;  // [B, H, Nq]: rowsum(dO * O)
  float* dk;
  float* dv;
};

// A operands are read straight from the strided rows of q, k, dO. B operands need rows
// of a multiple of W: when D is one, the rows of q, k, dO (and of dq, as the output of
// dQ += dS K) are used in place; otherwise they are copied into padded tiles.
template <int W>
TS_INLINE void backward_group(const BwdCtx& bc, const Seg& sg, int64_t h, int64_t kb0, int64_t kb1, float* dq,
                              float* ws) {
  using F = typename Vec<W>::F;
  const Ctx& c = bc.c;
  const int64_t D = c.D, Dp = round_up(D, W);
  const bool direct = D % W == 0;
  Carver cv{ws};
  float* Qp = cv.take(kBq * Dp);   // q rows, padded (when !direct)
  float* Gp = cv.take(kBq * Dp);   // dO rows, padded (when !direct)
  float* dQt = cv.take(kBq * Dp);  // dS K for one query block (when !direct)
  float* Kt = cv.take(Dp * kBk);   // k^T [D][kBk]
  float* Kp = cv.take(kBk * Dp);   // k rows, padded (when !direct)
  float* Vt = cv.take(Dp * kBk);   // v^T [D][kBk]
  float* dK = cv.take(kBk * Dp);   // accumulators for this key block
  float* dV = cv.take(kBk * Dp);
  float* P = cv.take(kBq * kBk);
  float* dS = cv.take(kBq * kBk);
  const float* lse = bc.lse + (sg.b * c.H + h) * c.Nq + sg.q0;
  const float* dvec = bc.dvec + (sg.b * c.H + h) * c.Nq + sg.q0;
  const int64_t ldq = c.H * D;  // row stride of dq
  const F sv = vset<W>(c.scale);
  for (int64_t kb = kb0; kb < kb1; ++kb) {
    const int64_t j0 = kb * kBk, cols = std::min(kBk, sg.nk - j0), np = round_up(cols, W);
    const float* krow = c.k.row(sg.b, sg.k0 + j0, h);
    pack_cols(Kt, kBk, c.k, sg.b, sg.k0 + j0, cols, np, h, D, 1.0f);
    pack_cols(Vt, kBk, c.v, sg.b, sg.k0 + j0, cols, np, h, D, 1.0f);
    const float* kb_ = krow;
    int64_t ldk = c.k.sn;
    if (!direct) pack_rows(Kp, Dp, c.k, sg.b, sg.k0 + j0, cols, h, D, 1.0f), kb_ = Kp, ldk = Dp;
    std::memset(dK, 0, sizeof(float) * cols * Dp);
    std::memset(dV, 0, sizeof(float) * cols * Dp);
    // Causal: query i sees key j0 only when i >= j0; earlier query blocks are skipped.
    for (int64_t i0 = c.causal ? j0 / kBq * kBq : 0; i0 < sg.nq; i0 += kBq) {
      const int64_t rows = std::min(kBq, sg.nq - i0);
      const float* qrow = c.q.row(sg.b, sg.q0 + i0, h);
      const float* grow = bc.dout.row(sg.b, sg.q0 + i0, h);
      const float *qb = qrow, *gb = grow;
      int64_t ldqb = c.q.sn, ldg = bc.dout.sn;
      if (!direct) {
        pack_rows(Qp, Dp, c.q, sg.b, sg.q0 + i0, rows, h, D, 1.0f), qb = Qp, ldqb = Dp;
        pack_rows(Gp, Dp, bc.dout, sg.b, sg.q0 + i0, rows, h, D, 1.0f), gb = Gp, ldg = Dp;
      }
      gemm_w<W>(rows, np, D, qrow, c.q.sn, 1, Kt, kBk, P, kBk, false);  // Q K^T
      for (int64_t r = 0; r < rows; ++r) {                             // P = exp(scale Q K^T - lse)
        float* s = P + r * kBk;
        const int64_t lim = std::clamp<int64_t>(c.causal ? i0 + r - j0 + 1 : cols, 0, cols);
        if (lim == 0) {  // the row sees none of these keys (and its lse may be -inf)
          std::memset(s, 0, sizeof(float) * np);
          continue;
        }
        for (int64_t x = lim; x < np; ++x) s[x] = kNegInf;
        const F lb = vset<W>(lse[i0 + r]);
        for (int64_t x = 0; x < np; x += W) vstore<W>(s + x, vexp<W>(vload<W>(s + x) * sv - lb));
      }
      gemm_w<W>(cols, Dp, rows, P, 1, kBk, gb, ldg, dV, Dp, true);            // dV += P^T dO
      gemm_w<W>(rows, np, D, grow, bc.dout.sn, 1, Vt, kBk, dS, kBk, false);  // dP = dO V^T
      for (int64_t r = 0; r < rows; ++r) {  // dS = scale P (dP - Dvec)
        float* ds = dS + r * kBk;
        const float* pr = P + r * kBk;
        const F db = vset<W>(dvec[i0 + r]);
        for (int64_t x = 0; x < np; x += W) vstore<W>(ds + x, vload<W>(pr + x) * sv * (vload<W>(ds + x) - db));
      }
      gemm_w<W>(cols, Dp, rows, dS, 1, kBk, qb, ldqb, dK, Dp, true);  // dK += dS^T Q
      float* dqrow = dq + ((sg.b * c.Nq + sg.q0 + i0) * c.H + h) * D;
      if (direct) {
        gemm_w<W>(rows, D, cols, dS, kBk, 1, kb_, ldk, dqrow, ldq, true);  // dQ += dS K
      } else {
        gemm_w<W>(rows, Dp, cols, dS, kBk, 1, kb_, ldk, dQt, Dp, false);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t x = 0; x < D; ++x) dqrow[r * ldq + x] += dQt[r * Dp + x];
      }
    }
    for (int64_t j = 0; j < cols; ++j) {
      const int64_t off = ((sg.b * c.Nk + sg.k0 + j0 + j) * c.H + h) * D;
      std::memcpy(bc.dk + off, dK + j * Dp, D * sizeof(float));
      std::memcpy(bc.dv + off, dV + j * Dp, D * sizeof(float));
    }
  }
}

// ---- ISA entry points and dispatch -------------------------------------------------------------

using ForwardFn = void (*)(const Ctx&, const Seg&, int64_t, int64_t, float*, float*, float*);
using BackwardFn = void (*)(const BwdCtx&, const Seg&, int64_t, int64_t, int64_t, float*, float*);

__attribute__((target("avx512f,fma"))) void forward_avx512(const Ctx& c, const Seg& s, int64_t h, int64_t i0,
                                                             float* out, float* lse, float* ws) {
  forward_block<16>(c, s, h, i0, out, lse, ws);
}
__attribute__((target("avx2,fma"))) void forward_avx2(const Ctx& c, const Seg& s, int64_t h, int64_t i0, float* out,
                                                        float* lse, float* ws) {
  forward_block<8>(c, s, h, i0, out, lse, ws);
}
void forward_portable(const Ctx& c, const Seg& s, int64_t h, int64_t i0, float* out, float* lse, float* ws) {
  forward_block<4>(c, s, h, i0, out, lse, ws);
}
__attribute__((target("avx512f,fma"))) void backward_avx512(const BwdCtx& c, const Seg& s, int64_t h, int64_t kb0,
                                                              int64_t kb1, float* dq, float* ws) {
  backward_group<16>(c, s, h, kb0, kb1, dq, ws);
}
__attribute__((target("avx2,fma"))) void backward_avx2(const BwdCtx& c, const Seg& s, int64_t h, int64_t kb0,
                                                         int64_t kb1, float* dq, float* ws) {
  backward_group<8>(c, s, h, kb0, kb1, dq, ws);
}
void backward_portable(const BwdCtx& c, const Seg& s, int64_t h, int64_t kb0, int64_t kb1, float* dq, float* ws) {
  backward_group<4>(c, s, h, kb0, kb1, dq, ws);
}

struct Isa {
  int W;
  ForwardFn fwd;
  BackwardFn bwd;
};
std::atomic<int> g_max_width{0};
Isa isa() {
  const Features& f = features();
  const int cap = g_max_width.load();
  if (f.avx512f && f.fma && (cap == 0 || cap >= 16)) return Isa{16, forward_avx512, backward_avx512};
  if (f.avx2 && f.fma && (cap == 0 || cap >= 8)) return Isa{8, forward_avx2, backward_avx2};
  return Isa{4, forward_portable, backward_portable};
}

// Runs f(item, thread) for item < n on up to num_threads() threads. Items are
// independent (each writes its own outputs), so dynamic scheduling keeps results
// identical whichever thread runs what.
template <typename Fn>
void run_items(int64_t n, int nt, Fn&& f) {
  if (n <= 0) return;
#ifdef _OPENMP
  if (nt > 1 && n > 1) {
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int64_t i = 0; i < n; ++i) f(i, omp_get_thread_num());
    return;
  }
#endif
  for (int64_t i = 0; i < n; ++i) f(i, 0);
}

Ctx make_ctx(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& p) {
  return Ctx{Rows(q), Rows(k), Rows(v), q.shape()[1], k.shape()[1], q.shape()[2], q.shape()[3], p.scale, p.causal};
}

}  // namespace

int attention_set_max_width(int width) {
  g_max_width = width;
  return isa().W;
}

void attention_forward(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                       const AttentionParams& p) {
  if (reference_kernels()) return forward_reference(out, lse, q, k, v, p);
  const Ctx c = make_ctx(q, k, v, p);
  const std::vector<Seg> segs = segments(p, q.shape()[0], c.Nq, c.Nk);
  struct Item {
    int64_t seg, h, i0;
  };
  std::vector<Item> items;
  for (int64_t s = 0; s < static_cast<int64_t>(segs.size()); ++s)
    for (int64_t h = 0; h < c.H; ++h)
      for (int64_t i0 = 0; i0 < segs[s].nq; i0 += kBq) items.push_back({s, h, i0});
  if (c.causal)  // costliest (last) query blocks first, for dynamic scheduling
    std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.i0 > b.i0; });
  const Isa x = isa();
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(num_threads(), items.size())));
  const int64_t wsz = forward_workspace(round_up(c.D, x.W));
  Tensor ws = Tensor::empty({nt, wsz}, DType::Float32, q.device(), "scaledDotProductAttention");
  float* o = out.data<float>();
  float* l = lse.data<float>();
  run_items(static_cast<int64_t>(items.size()), nt, [&](int64_t i, int t) {
    const Item& it = items[i];
    x.fwd(c, segs[it.seg], it.h, it.i0, o, l, ws.data<float>() + t * wsz);
  });
}

void attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q, const Tensor& k,
                        const Tensor& v, const Tensor& out, const Tensor& lse, const AttentionParams& p) {
  if (reference_kernels()) return backward_reference(dq, dk, dv, dout, q, k, v, p);
  const int64_t B = q.shape()[0];
  BwdCtx bc{make_ctx(q, k, v, p), Rows(dout), lse.data<float>(), nullptr, dk.data<float>(), dv.data<float>()};
  const Ctx& c = bc.c;
  const std::vector<Seg> segs = segments(p, B, c.Nq, c.Nk);
  const int T = num_threads();

  // Dvec[b, h, i] = rowsum(dO * O) (FlashAttention-2's D).
  Tensor dvec = Tensor::empty({B, c.H, c.Nq}, DType::Float32, q.device(), "scaledDotProductAttention");
  {
    const Rows O(out);
    float* dvp = dvec.data<float>();
    parallel_for(0, B * c.Nq, std::max<int64_t>(1, 4096 / (c.H * c.D)), [&](int64_t lo, int64_t hi) {
      for (int64_t bi = lo; bi < hi; ++bi) {
        const int64_t b = bi / c.Nq, i = bi % c.Nq;
        for (int64_t h = 0; h < c.H; ++h) {
          const float *g = bc.dout.row(b, i, h), *o = O.row(b, i, h);
          float s = 0;
          for (int64_t x = 0; x < c.D; ++x) s += g[x] * o[x];
          dvp[(b * c.H + h) * c.Nq + i] = s;
        }
      }
    });
    bc.dvec = dvp;
  }

  // Work items: (sequence, head, group of key blocks). Few (b, s, h) pairs for many
  // threads: split each one's key blocks into G groups, each with its own dq partial.
  int64_t max_kb = 0;
  for (const Seg& s : segs) max_kb = std::max(max_kb, (s.nk + kBk - 1) / kBk);
  const int64_t pairs = static_cast<int64_t>(segs.size()) * c.H;
  int64_t G = 1;
  if (T > 1 && pairs < T) G = std::min<int64_t>({(2 * T + pairs - 1) / pairs, max_kb, 8});
  G = std::max<int64_t>(G, 1);
  struct Item {
    int64_t seg, h, g;
  };
  std::vector<Item> items;
  for (int64_t s = 0; s < static_cast<int64_t>(segs.size()); ++s)
    for (int64_t h = 0; h < c.H; ++h)
      for (int64_t g = 0; g < G; ++g) items.push_back({s, h, g});

  // Group 0 accumulates into dq itself, group g > 0 into partial[g - 1].
  const int64_t n = dq.numel();
  Tensor partial;  // [G - 1, B * Nq * H * D] when G > 1
  float* dq0 = dq.data<float>();
  float* parts = nullptr;
  if (G > 1) {
    partial = Tensor::empty({G - 1, n}, DType::Float32, q.device(), "scaledDotProductAttention");
    parts = partial.data<float>();
  }
  auto dq_of = [&](int64_t g) { return g == 0 ? dq0 : parts + (g - 1) * n; };
  parallel_for(0, G * n, 1 << 16, [&](int64_t lo, int64_t hi) {
    for (int64_t e = lo; e < hi;) {  // zero [lo, hi) of the concatenation dq, partials
      const int64_t g = e / n, stop = std::min(hi, (g + 1) * n);
      std::memset(dq_of(g) + (e - g * n), 0, (stop - e) * sizeof(float));
      e = stop;
    }
  });

  const Isa x = isa();
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(T, items.size())));
  const int64_t wsz = backward_workspace(round_up(c.D, x.W));
  Tensor ws = Tensor::empty({nt, wsz}, DType::Float32, q.device(), "scaledDotProductAttention");
  run_items(static_cast<int64_t>(items.size()), nt, [&](int64_t i, int t) {
    const Item& it = items[i];
    const Seg& sg = segs[it.seg];
    const int64_t nkb = (sg.nk + kBk - 1) / kBk;
    x.bwd(bc, sg, it.h, nkb * it.g / G, nkb * (it.g + 1) / G, dq_of(it.g), ws.data<float>() + t * wsz);
  });
  if (G > 1) {  // dq += the partials, in group order
    parallel_for(0, n, 1 << 14, [&](int64_t lo, int64_t hi) {
      for (int64_t e = lo; e < hi; ++e) {
        float s = dq0[e];
        for (int64_t g = 1; g < G; ++g) s += parts[(g - 1) * n + e];
        dq0[e] = s;
      }
    });
  }
}

}  // namespace cpu
}  // namespace ts
