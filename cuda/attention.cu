// tessera CUDA backend: flash attention (FlashAttention-2 structure), forward and
// backward side by side. Dimension letters: B, Nq, Nk, H, D, S (see attention.cuh).
// Positions i (query) and j (key) are local to their sequence: packed batches
// (cu_seqlens) give each sequence s queries [cq[s], cq[s+1]) and keys [ck[s], ck[s+1])
// of batch row 0; causal hides j > i (top-left aligned, as the CPU).
//
// Tensor-core kernels (bf16 operands, float32 accumulate; D = 64 or 128):
//   forward  grid (query tiles of 128, H, B or S), 8 warps; a warp owns 16 query rows,
//            its Q fragments stay in registers. K/V tiles of 64 keys stream through a
//            2-stage cp.async pipeline; S = Q K^T and O += P V on mma.sync m16n8k16;
//            online softmax in base 2 with the row max and sum in registers (the four
//            threads of a quad hold a row); P goes from the accumulators straight into
//            A fragments (no shared memory). Causal tiles above the diagonal are
//            skipped, masks applied only on edge tiles; query tiles run longest first.
//   backward grid (key tiles of 64, H, B or S), 8 warps; K and V stay in shared memory
//            while 64-row query tiles (Q, dO, lse, Dvec) stream through 2 stages. Per
//            tile: S = Q K^T and dP = dO V^T (warp tile 16 x 32), P = exp2(S - lse),
//            dS = P (dP - Dvec) written to shared memory as bf16, then dV += P^T dO and
//            dK += dS^T Q (warp tile 16 keys x D/2, accumulators in registers for the
//            whole sequence) and dQ += dS K (atomicAdd of float32 into dq).
//            Dvec_i = rowsum(dO_i * O_i) comes from a preprocessing kernel.
// Float32 kernels (FFMA, any D that fits shared memory):
//   forward  16 query rows per block (4 per warp), 32-key tiles; lane j scores key j,
//            warp reductions for the online softmax, O accumulates in shared memory.
//   backward one warp per 32-key tile walks the query rows: lane j recomputes p_ij,
//            accumulates its rows of dK and dV in shared memory; dq by atomicAdd.
// Grids whose z (B or S) passes 65,535 are launched in slabs along z.
// Memory contract: out, lse, dk, dv overwritten; dq zeroed, then accumulated by atomics
// (so dq's rounding can vary between runs in its last bits; dk, dv, out do not).
#include <cmath>
#include <limits>

#include "attention.cuh"
#include "common.cuh"
#include "core/precision.h"
#include "elementwise.cuh"
#include "mma.cuh"

namespace ts {
namespace cuda {

namespace {

constexpr const char* kOp = "scaledDotProductAttention";
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

using mma::bf16;

// One sequence of the batch: batch row b, queries [q0, q0 + nq), keys [k0, k0 + nk).
struct Seq {
  int b, q0, nq, k0, nk;
};
__device__ __forceinline__ Seq sequence(const int32_t* cu_q, const int32_t* cu_k, int Nq, int Nk, int z) {
  if (cu_q) return {0, cu_q[z], cu_q[z + 1] - cu_q[z], cu_k[z], cu_k[z + 1] - cu_k[z]};
  return {z, 0, Nq, 0, Nk};
}

// Strides (elements) of the four [B, N, H, D] operands and the outputs.
struct Layout {
  int64_t q_sb, q_sn, q_sh, k_sb, k_sn, k_sh, v_sb, v_sn, v_sh, o_sb, o_sn, o_sh;
};

// =====================================================================================
// Dvec_i = sum_d dO[i, d] * O[i, d] for every (b, i, h), one warp per row. Dv [B, H, Nq].
// =====================================================================================
template <typename T>
__device__ __forceinline__ float to_f(T x);
template <>
__device__ __forceinline__ float to_f<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ float to_f<bf16>(bf16 x) {
  return __bfloat162float(x);
}

template <typename T>
__global__ void k_dvec(float* __restrict__ dv, const T* __restrict__ dout, int64_t g_sb, int64_t g_sn, int64_t g_sh,
                       const T* __restrict__ out, int64_t o_sb, int64_t o_sn, int64_t o_sh, int B, int Nq, int H,
                       int D) {
  int lane = threadIdx.x & 31;
  int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x >> 5) + (threadIdx.x >> 5);
  int64_t rows = static_cast<int64_t>(B) * Nq * H;
  if (row >= rows) return;
  int64_t h = row % H, i = (row / H) % Nq, b = row / (static_cast<int64_t>(H) * Nq);
  const T* g = dout + b * g_sb + i * g_sn + h * g_sh;
  const T* o = out + b * o_sb + i * o_sn + h * o_sh;
  float acc = 0;
  for (int d = lane; d < D; d += 32) acc += to_f(g[d]) * to_f(o[d]);
  acc = warp_sum(acc);
  if (lane == 0) dv[(b * H + h) * Nq + i] = acc;
}

// =====================================================================================
// Float32 forward: block = 4 warps x 4 rows = 16 query rows; 32-key tiles.
// Shared (floats): Ks[32][D+1] Vs[32][D] Qs[16][D] Os[16][D] Ps[4][32].
// =====================================================================================
constexpr int kF32Rows = 16, kF32Keys = 32;

size_t f32_fwd_smem(int D) {
  return sizeof(float) * (static_cast<size_t>(kF32Keys) * (D + 1) + static_cast<size_t>(kF32Keys) * D +
                          2 * static_cast<size_t>(kF32Rows) * D + 4 * 32);
}

__global__ void __launch_bounds__(128) k_attn_fwd_f32(float* __restrict__ out, float* __restrict__ lse,
                                                      const float* __restrict__ q, const float* __restrict__ k,
                                                      const float* __restrict__ v, Layout L, const int32_t* cu_q,
                                                      const int32_t* cu_k, int Nq, int Nk, int H, int D, float scale,
                                                      bool causal, int z0) {
  extern __shared__ float sm[];
  float* Ks = sm;
  float* Vs = Ks + kF32Keys * (D + 1);
  float* Qs = Vs + kF32Keys * D;
  float* Os = Qs + kF32Rows * D;
  float* Ps = Os + kF32Rows * D;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int h = blockIdx.y;
  Seq sq = sequence(cu_q, cu_k, Nq, Nk, z0 + blockIdx.z);
  const int64_t i0 = static_cast<int64_t>(blockIdx.x) * kF32Rows;
  if (i0 >= sq.nq) return;
  const float* qb = q + sq.b * L.q_sb + sq.q0 * L.q_sn + h * L.q_sh;
  const float* kb = k + sq.b * L.k_sb + sq.k0 * L.k_sn + h * L.k_sh;
  const float* vb = v + sq.b * L.v_sb + sq.k0 * L.v_sn + h * L.v_sh;
  for (int e = tid; e < kF32Rows * D; e += blockDim.x) {
    int r = e / D, d = e - r * D;
    Qs[e] = i0 + r < sq.nq ? qb[(i0 + r) * L.q_sn + d] : 0.0f;
    Os[e] = 0.0f;
  }
  float m[4], l[4];
#pragma unroll
  for (int rr = 0; rr < 4; ++rr) m[rr] = -INFINITY, l[rr] = 0.0f;
  int64_t kend = sq.nk;
  if (causal) kend = min(kend, min(i0 + kF32Rows, static_cast<int64_t>(sq.nq)));
  for (int64_t kbase = 0; kbase < kend; kbase += kF32Keys) {
    __syncthreads();  // previous tile fully used (and Q/O initialized)
    for (int e = tid; e < kF32Keys * D; e += blockDim.x) {
      int j = e / D, d = e - j * D;
      bool ok = kbase + j < sq.nk;
      Ks[j * (D + 1) + d] = ok ? kb[(kbase + j) * L.k_sn + d] : 0.0f;
      Vs[j * D + d] = ok ? vb[(kbase + j) * L.v_sn + d] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int rr = 0; rr < 4; ++rr) {
      int row = warp * 4 + rr;
      int64_t i = i0 + row;
      if (i >= sq.nq) continue;  // warp-uniform
      int64_t key = kbase + lane;
      float s = -INFINITY;
      if (key < sq.nk && !(causal && key > i)) {
        const float* qr = Qs + row * D;
        const float* kr = Ks + lane * (D + 1);
        float dot = 0;
        for (int d = 0; d < D; ++d) dot += qr[d] * kr[d];
        s = dot * scale;
      }
      float mx = warp_max(s);
      float m_new = fmaxf(m[rr], mx);
      float m_use = m_new == -INFINITY ? 0.0f : m_new;
      float alpha = expf(m[rr] - m_use);
      float p = expf(s - m_use);
      l[rr] = l[rr] * alpha + warp_sum(p);
      m[rr] = m_new;
      Ps[warp * 32 + lane] = p;
      __syncwarp();
      for (int d = lane; d < D; d += 32) {
        float acc = Os[row * D + d] * alpha;
        for (int jj = 0; jj < kF32Keys; ++jj) acc += Ps[warp * 32 + jj] * Vs[jj * D + d];
        Os[row * D + d] = acc;
      }
      __syncwarp();
    }
  }
  __syncthreads();  // Os was zeroed by all threads (no key tile may have run)
#pragma unroll
  for (int rr = 0; rr < 4; ++rr) {
    int row = warp * 4 + rr;
    int64_t i = i0 + row;
    if (i >= sq.nq) continue;
    float inv = l[rr] > 0 ? 1.0f / l[rr] : 0.0f;
    float* orow = out + sq.b * L.o_sb + (sq.q0 + i) * L.o_sn + h * L.o_sh;
    for (int d = lane; d < D; d += 32) orow[d] = Os[row * D + d] * inv;
    if (lane == 0) lse[(static_cast<int64_t>(sq.b) * H + h) * Nq + sq.q0 + i] = l[rr] > 0 ? m[rr] + logf(l[rr]) : -INFINITY;
  }
}

// =====================================================================================
// Float32 backward: one warp per 32-key tile. Shared (floats): Ks, Vs, dKs, dVs each
// [32][D+1]; qrow[D], grow[D]; ds[32].
// =====================================================================================
size_t f32_bwd_smem(int D) {
  return sizeof(float) * (4 * static_cast<size_t>(kF32Keys) * (D + 1) + 2 * static_cast<size_t>(D) + 32);
}

__global__ void __launch_bounds__(32) k_attn_bwd_f32(float* __restrict__ dq, float* __restrict__ dk,
                                                     float* __restrict__ dv, const float* __restrict__ dout,
                                                     int64_t g_sb, int64_t g_sn, int64_t g_sh,
                                                     const float* __restrict__ q, const float* __restrict__ k,
                                                     const float* __restrict__ v, Layout L,
                                                     const float* __restrict__ lse, const float* __restrict__ dvec,
                                                     const int32_t* cu_q, const int32_t* cu_k, int Nq, int Nk, int H,
                                                     int D, float scale, bool causal, int z0) {
  extern __shared__ float sm[];
  const int ld = D + 1;
  float* Ks = sm;
  float* Vs = Ks + kF32Keys * ld;
  float* dKs = Vs + kF32Keys * ld;
  float* dVs = dKs + kF32Keys * ld;
  float* qrow = dVs + kF32Keys * ld;
  float* grow = qrow + D;
  float* dss = grow + D;
  const int lane = threadIdx.x;
  const int h = blockIdx.y;
  Seq sq = sequence(cu_q, cu_k, Nq, Nk, z0 + blockIdx.z);
  const int64_t kbase = static_cast<int64_t>(blockIdx.x) * kF32Keys;
  if (kbase >= sq.nk) return;
  const float* qb = q + sq.b * L.q_sb + sq.q0 * L.q_sn + h * L.q_sh;
  const float* gb = dout + sq.b * g_sb + sq.q0 * g_sn + h * g_sh;
  const float* kb = k + sq.b * L.k_sb + sq.k0 * L.k_sn + h * L.k_sh;
  const float* vb = v + sq.b * L.v_sb + sq.k0 * L.v_sn + h * L.v_sh;
  for (int e = lane; e < kF32Keys * D; e += 32) {
    int j = e / D, d = e - j * D;
    bool ok = kbase + j < sq.nk;
    Ks[j * ld + d] = ok ? kb[(kbase + j) * L.k_sn + d] : 0.0f;
    Vs[j * ld + d] = ok ? vb[(kbase + j) * L.v_sn + d] : 0.0f;
    dKs[j * ld + d] = 0.0f;
    dVs[j * ld + d] = 0.0f;
  }
  __syncwarp();
  const int64_t key = kbase + lane;
  const bool key_ok = key < sq.nk;
  const int64_t istart = causal ? kbase : 0;
  const float* lrow = lse + (static_cast<int64_t>(sq.b) * H + h) * Nq + sq.q0;
  const float* drow = dvec + (static_cast<int64_t>(sq.b) * H + h) * Nq + sq.q0;
  for (int64_t i = istart; i < sq.nq; ++i) {
    for (int d = lane; d < D; d += 32) {
      qrow[d] = qb[i * L.q_sn + d];
      grow[d] = gb[i * g_sn + d];
    }
    __syncwarp();
    float p = 0.0f, ds = 0.0f;
    if (key_ok && !(causal && key > i)) {
      const float* kr = Ks + lane * ld;
      const float* vr = Vs + lane * ld;
      float s = 0, dp = 0;
      for (int d = 0; d < D; ++d) s += qrow[d] * kr[d], dp += grow[d] * vr[d];
      p = expf(s * scale - lrow[i]);
      ds = p * (dp - drow[i]);
      float* dkr = dKs + lane * ld;
      float* dvr = dVs + lane * ld;
      for (int d = 0; d < D; ++d) dvr[d] += p * grow[d], dkr[d] += ds * qrow[d];
    }
    dss[lane] = ds;
    __syncwarp();
    float* dqr = dq + (static_cast<int64_t>(sq.b) * Nq + sq.q0 + i) * H * D + static_cast<int64_t>(h) * D;
    for (int d = lane; d < D; d += 32) {
      float acc = 0;
      for (int jj = 0; jj < kF32Keys; ++jj) acc += dss[jj] * Ks[jj * ld + d];
      if (acc != 0.0f) atomicAdd(dqr + d, acc * scale);
    }
    __syncwarp();
  }
  for (int e = lane; e < kF32Keys * D; e += 32) {
    int j = e / D, d = e - j * D;
    if (kbase + j >= sq.nk) continue;
    int64_t o = ((static_cast<int64_t>(sq.b) * Nk + sq.k0 + kbase + j) * H + h) * D + d;
    dk[o] = dKs[j * ld + d] * scale;
    dv[o] = dVs[j * ld + d];
  }
}

// =====================================================================================
// Tensor-core forward. BQ = 128 query rows (8 warps x 16), BK = 64 keys, D = 64 | 128.
// Shared (bf16): Qs[BQ][D+8], Ks[2][BK][D+8], Vs[2][BK][D+8].
// =====================================================================================
constexpr int kTcWarps = 8, kTcThreads = kTcWarps * 32;
constexpr int kFwdBQ = 16 * kTcWarps, kFwdBK = 64;

template <int D>
constexpr size_t tc_fwd_smem() {
  return sizeof(bf16) * static_cast<size_t>(D + 8) * (kFwdBQ + 4 * kFwdBK);
}

struct TcArgs {
  const bf16* q;
  const bf16* k;
  const bf16* v;
  Layout L;
  const int32_t* cu_q;
  const int32_t* cu_k;
  int Nq, Nk, H;
  int z0;            // sequence index of grid.z = 0 (launches go in slabs of 65,535 along z)
  float scale_log2;  // softmax scale * log2(e)
  float scale;
  bool causal;
};

// Copies rows [r0, r0 + R) of a [N, D] bf16 operand (row stride sn) into a shared tile
// (row stride D + 8); rows >= n are zero-filled.
template <int D, int R>
__device__ __forceinline__ void load_rows(bf16* tile, const bf16* base, int64_t sn, int r0, int n) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  for (int c = threadIdx.x; c < R * kChunks; c += kTcThreads) {
    int r = c / kChunks, col = (c - r * kChunks) * 8;
    bool ok = r0 + r < n;
    const bf16* src = ok ? base + static_cast<int64_t>(r0 + r) * sn + col : base;
    mma::cp_async16(tile + r * (D + 8) + col, src, ok);
  }
}

template <int D, typename OutT>
__device__ __forceinline__ void store_pair(OutT* p, float a, float b);
template <>
__device__ __forceinline__ void store_pair<64, float>(float* p, float a, float b) {
  *reinterpret_cast<float2*>(p) = make_float2(a, b);
}
template <>
__device__ __forceinline__ void store_pair<128, float>(float* p, float a, float b) {
  *reinterpret_cast<float2*>(p) = make_float2(a, b);
}
template <>
__device__ __forceinline__ void store_pair<64, bf16>(bf16* p, float a, float b) {
  *reinterpret_cast<uint32_t*>(p) = mma::pack_bf16(a, b);
}
template <>
__device__ __forceinline__ void store_pair<128, bf16>(bf16* p, float a, float b) {
  *reinterpret_cast<uint32_t*>(p) = mma::pack_bf16(a, b);
}

template <int D, typename OutT>
__global__ void __launch_bounds__(kTcThreads, 1) k_attn_fwd_tc(OutT* __restrict__ out, float* __restrict__ lse,
                                                              TcArgs a) {
  constexpr int LD = D + 8, KSTEPS = D / 16, SN = kFwdBK / 8, ON = D / 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* Qs = reinterpret_cast<bf16*>(smem_raw);
  bf16* Ks = Qs + kFwdBQ * LD;  // [2][BK][LD]
  bf16* Vs = Ks + 2 * kFwdBK * LD;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  const int h = blockIdx.y;
  Seq sq = sequence(a.cu_q, a.cu_k, a.Nq, a.Nk, a.z0 + blockIdx.z);
  const int tile = gridDim.x - 1 - blockIdx.x;  // longest (causal) tiles first
  const int i0 = tile * kFwdBQ;
  if (i0 >= sq.nq) return;
  const bf16* qb = a.q + sq.b * a.L.q_sb + sq.q0 * a.L.q_sn + h * a.L.q_sh;
  const bf16* kb = a.k + sq.b * a.L.k_sb + sq.k0 * a.L.k_sn + h * a.L.k_sh;
  const bf16* vb = a.v + sq.b * a.L.v_sb + sq.k0 * a.L.v_sn + h * a.L.v_sh;

  int kend = sq.nk;
  if (a.causal) kend = min(kend, min(i0 + kFwdBQ, sq.nq));
  const int ntiles = (kend + kFwdBK - 1) / kFwdBK;

  load_rows<D, kFwdBQ>(Qs, qb, a.L.q_sn, i0, sq.nq);
  mma::cp_async_commit();
  if (ntiles > 0) {
    load_rows<D, kFwdBK>(Ks, kb, a.L.k_sn, 0, sq.nk);
    load_rows<D, kFwdBK>(Vs, vb, a.L.v_sn, 0, sq.nk);
  }
  mma::cp_async_commit();
  mma::cp_async_wait<1>();  // Q landed
  __syncthreads();
  uint32_t qf[KSTEPS][4];
#pragma unroll
  for (int ks = 0; ks < KSTEPS; ++ks) mma::load_a(qf[ks], Qs, LD, warp * 16, ks * 16);

  float o[ON][4];
#pragma unroll
  for (int n = 0; n < ON; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  const int row0 = i0 + warp * 16 + g;  // this thread's rows: row0 and row0 + 8

  for (int j = 0; j < ntiles; ++j) {
    const int st = j & 1;
    if (j + 1 < ntiles) {
      load_rows<D, kFwdBK>(Ks + (st ^ 1) * kFwdBK * LD, kb, a.L.k_sn, (j + 1) * kFwdBK, sq.nk);
      load_rows<D, kFwdBK>(Vs + (st ^ 1) * kFwdBK * LD, vb, a.L.v_sn, (j + 1) * kFwdBK, sq.nk);
      mma::cp_async_commit();
      mma::cp_async_wait<1>();
    } else {
      mma::cp_async_wait<0>();
    }
    __syncthreads();
    const bf16* Kt = Ks + st * kFwdBK * LD;
    const bf16* Vt = Vs + st * kFwdBK * LD;

    float s[SN][4];
#pragma unroll
    for (int n = 0; n < SN; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < KSTEPS; ++ks) {
#pragma unroll
      for (int n2 = 0; n2 < SN / 2; ++n2) {
        uint32_t bfr[4];
        mma::load_b_nk(bfr, Kt, LD, n2 * 16, ks * 16);
        mma::mma_bf16(s[2 * n2], qf[ks], bfr[0], bfr[1]);
        mma::mma_bf16(s[2 * n2 + 1], qf[ks], bfr[2], bfr[3]);
      }
    }
    // scale (base 2), then mask the edge tiles
    const int kbase = j * kFwdBK;
#pragma unroll
    for (int n = 0; n < SN; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[n][e] *= a.scale_log2;
    const bool edge = kbase + kFwdBK > sq.nk || (a.causal && kbase + kFwdBK - 1 > i0 + warp * 16);
    if (edge) {
#pragma unroll
      for (int n = 0; n < SN; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          int col = kbase + n * 8 + 2 * t + (e & 1);
          int row = row0 + (e >> 1) * 8;
          if (col >= sq.nk || (a.causal && col > row)) s[n][e] = -INFINITY;
        }
    }
    // online softmax, rows r = 0 (g) and 1 (g + 8)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = -INFINITY;
#pragma unroll
      for (int n = 0; n < SN; ++n) mx = fmaxf(mx, fmaxf(s[n][2 * r], s[n][2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m[r], mx);
      const float m_use = m_new == -INFINITY ? 0.0f : m_new;
      const float alpha = exp2f(m[r] - m_use);
      float sum = 0.0f;
#pragma unroll
      for (int n = 0; n < SN; ++n) {
        s[n][2 * r] = exp2f(s[n][2 * r] - m_use);
        s[n][2 * r + 1] = exp2f(s[n][2 * r + 1] - m_use);
        sum += s[n][2 * r] + s[n][2 * r + 1];
      }
      l[r] = l[r] * alpha + sum;  // this thread's share; the quad adds at the end
      m[r] = m_new;
#pragma unroll
      for (int n = 0; n < ON; ++n) o[n][2 * r] *= alpha, o[n][2 * r + 1] *= alpha;
    }
    // O += P V, P straight from the accumulators into A fragments
#pragma unroll
    for (int kk = 0; kk < kFwdBK / 16; ++kk) {
      uint32_t pa[4];
      pa[0] = mma::pack_bf16(s[2 * kk][0], s[2 * kk][1]);
      pa[1] = mma::pack_bf16(s[2 * kk][2], s[2 * kk][3]);
      pa[2] = mma::pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      pa[3] = mma::pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
      for (int n2 = 0; n2 < ON / 2; ++n2) {
        uint32_t bfr[4];
        mma::load_b_kn(bfr, Vt, LD, kk * 16, n2 * 16);
        mma::mma_bf16(o[2 * n2], pa, bfr[0], bfr[1]);
        mma::mma_bf16(o[2 * n2 + 1], pa, bfr[2], bfr[3]);
      }
    }
    __syncthreads();  // this stage is refilled two iterations on
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float lr = l[r];
    lr += __shfl_xor_sync(0xffffffffu, lr, 1);
    lr += __shfl_xor_sync(0xffffffffu, lr, 2);
    const int row = row0 + r * 8;
    if (row >= sq.nq) continue;
    const float inv = lr > 0.0f ? 1.0f / lr : 0.0f;
    OutT* orow = out + sq.b * a.L.o_sb + (sq.q0 + row) * a.L.o_sn + h * a.L.o_sh;
#pragma unroll
    for (int n = 0; n < ON; ++n) store_pair<D, OutT>(orow + n * 8 + 2 * t, o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
    if (t == 0) lse[(static_cast<int64_t>(sq.b) * a.H + h) * a.Nq + sq.q0 + row] = lr > 0.0f ? (m[r] + log2f(lr)) * kLn2 : -INFINITY;
  }
}

// =====================================================================================
// Tensor-core backward. BK = 64 keys per block, BQ = 64 query rows per step, 8 warps.
// Shared: Ks[BK][D+8] Vs[BK][D+8] Qs[2][BQ][D+8] Gs[2][BQ][D+8] (dO) Ps[BQ][BK+8]
// dSs[BQ][BK+8] (bf16), then Ls[2][BQ] (lse * log2 e; +inf for absent rows),
// Dvs[2][BQ] (float).
// =====================================================================================
constexpr int kBwdBQ = 64, kBwdBK = 64;

template <int D>
constexpr size_t tc_bwd_smem() {
  return sizeof(bf16) * (static_cast<size_t>(D + 8) * (2 * kBwdBK + 4 * kBwdBQ) +
                         2 * static_cast<size_t>(kBwdBQ) * (kBwdBK + 8)) +
         sizeof(float) * 4 * kBwdBQ;
}

struct TcBwdArgs {
  TcArgs f;
  const bf16* dout;  // strides g_*
  int64_t g_sb, g_sn, g_sh;
  const float* lse;   // [B, H, Nq]
  const float* dvec;  // [B, H, Nq]
  float* dq;          // float32 accumulator [B, Nq, H, D] contiguous (zeroed)
};

template <int D, typename GradT>
__global__ void __launch_bounds__(kTcThreads, 1) k_attn_bwd_tc(GradT* __restrict__ dk, GradT* __restrict__ dv,
                                                              TcBwdArgs a) {
  constexpr int LD = D + 8, PLD = kBwdBK + 8, KSTEPS = D / 16;
  constexpr int HN = D / 16;  // n-blocks of 8 in half of D (phase 2 and 3 warp tiles)
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* Ks = reinterpret_cast<bf16*>(smem_raw);
  bf16* Vs = Ks + kBwdBK * LD;
  bf16* Qs = Vs + kBwdBK * LD;       // [2][BQ][LD]
  bf16* Gs = Qs + 2 * kBwdBQ * LD;   // [2][BQ][LD]
  bf16* Ps = Gs + 2 * kBwdBQ * LD;   // [BQ][PLD]
  bf16* dSs = Ps + kBwdBQ * PLD;     // [BQ][PLD]
  float* Ls = reinterpret_cast<float*>(dSs + kBwdBQ * PLD);  // [2][BQ]
  float* Dvs = Ls + 2 * kBwdBQ;                               // [2][BQ]

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  const int h = blockIdx.y;
  const TcArgs& f = a.f;
  Seq sq = sequence(f.cu_q, f.cu_k, f.Nq, f.Nk, f.z0 + blockIdx.z);
  const int kbase = static_cast<int>(blockIdx.x) * kBwdBK;
  if (kbase >= sq.nk) return;
  const bf16* qb = f.q + sq.b * f.L.q_sb + sq.q0 * f.L.q_sn + h * f.L.q_sh;
  const bf16* gb = a.dout + sq.b * a.g_sb + sq.q0 * a.g_sn + h * a.g_sh;
  const bf16* kb = f.k + sq.b * f.L.k_sb + sq.k0 * f.L.k_sn + h * f.L.k_sh;
  const bf16* vb = f.v + sq.b * f.L.v_sb + sq.k0 * f.L.v_sn + h * f.L.v_sh;
  const float* lrow = a.lse + (static_cast<int64_t>(sq.b) * f.H + h) * f.Nq + sq.q0;
  const float* drow = a.dvec + (static_cast<int64_t>(sq.b) * f.H + h) * f.Nq + sq.q0;

  // warp tiles: phase 1 rows mq (queries) x cols nk0 (keys); phase 2 rows mk (keys) x
  // cols nd0 (d); phase 3 rows mq x cols nd0.
  const int mq = (warp & 3) * 16, nk0 = (warp >> 2) * 32, mk = (warp & 3) * 16, nd0 = (warp >> 2) * (D / 2);

  const int istart = f.causal ? (kbase / kBwdBQ) * kBwdBQ : 0;
  const int nsteps = sq.nq > istart ? (sq.nq - istart + kBwdBQ - 1) / kBwdBQ : 0;

  load_rows<D, kBwdBK>(Ks, kb, f.L.k_sn, kbase, sq.nk);
  load_rows<D, kBwdBK>(Vs, vb, f.L.v_sn, kbase, sq.nk);
  auto prefetch = [&](int step, int st) {
    int r0 = istart + step * kBwdBQ;
    load_rows<D, kBwdBQ>(Qs + st * kBwdBQ * LD, qb, f.L.q_sn, r0, sq.nq);
    load_rows<D, kBwdBQ>(Gs + st * kBwdBQ * LD, gb, a.g_sn, r0, sq.nq);
    for (int r = tid; r < kBwdBQ; r += kTcThreads) {
      bool ok = r0 + r < sq.nq;
      Ls[st * kBwdBQ + r] = ok ? lrow[r0 + r] * kLog2e : INFINITY;
      Dvs[st * kBwdBQ + r] = ok ? drow[r0 + r] : 0.0f;
    }
  };
  if (nsteps > 0) prefetch(0, 0);
  mma::cp_async_commit();

  float dka[HN][4], dva[HN][4];
#pragma unroll
  for (int n = 0; n < HN; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) dka[n][e] = dva[n][e] = 0.0f;

  for (int step = 0; step < nsteps; ++step) {
    const int st = step & 1;
    if (step + 1 < nsteps) {
      prefetch(step + 1, st ^ 1);
      mma::cp_async_commit();
      mma::cp_async_wait<1>();
    } else {
      mma::cp_async_wait<0>();
    }
    __syncthreads();
    const bf16* Qt = Qs + st * kBwdBQ * LD;
    const bf16* Gt = Gs + st * kBwdBQ * LD;
    const float* Lt = Ls + st * kBwdBQ;
    const float* Dt = Dvs + st * kBwdBQ;
    const int qbase = istart + step * kBwdBQ;

    // ---- phase 1: dP = dO V^T, then S = Q K^T in halves of 16 keys (16 x 32 per
    // warp); P = exp2(S scale log2e - lse log2e), dS = P (dP - Dvec) to shared (bf16).
    // S is computed per half so that only 8 of its values are live with dP's 16. ----
    float dp[4][4];
#pragma unroll
    for (int n = 0; n < 4; ++n) dp[n][0] = dp[n][1] = dp[n][2] = dp[n][3] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < KSTEPS; ++ks) {
      uint32_t ag[4];
      mma::load_a(ag, Gt, LD, mq, ks * 16);
#pragma unroll
      for (int n2 = 0; n2 < 2; ++n2) {
        uint32_t bv[4];
        mma::load_b_nk(bv, Vs, LD, nk0 + n2 * 16, ks * 16);
        mma::mma_bf16(dp[2 * n2], ag, bv[0], bv[1]);
        mma::mma_bf16(dp[2 * n2 + 1], ag, bv[2], bv[3]);
      }
    }
#pragma unroll
    for (int n2 = 0; n2 < 2; ++n2) {
      float s[2][4];
#pragma unroll
      for (int n = 0; n < 2; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
      for (int ks = 0; ks < KSTEPS; ++ks) {
        uint32_t aq[4], bk[4];
        mma::load_a(aq, Qt, LD, mq, ks * 16);
        mma::load_b_nk(bk, Ks, LD, nk0 + n2 * 16, ks * 16);
        mma::mma_bf16(s[0], aq, bk[0], bk[1]);
        mma::mma_bf16(s[1], aq, bk[2], bk[3]);
      }
#pragma unroll
      for (int nn = 0; nn < 2; ++nn)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int n = 2 * n2 + nn;
          const int rl = mq + g + r * 8;       // local query row
          const int cl = nk0 + n * 8 + 2 * t;  // local key column (and cl + 1)
          const int row = qbase + rl;
          float pv[2], dsv[2];
#pragma unroll
          for (int c = 0; c < 2; ++c) {
            const int col = kbase + cl + c;
            float p = exp2f(s[nn][2 * r + c] * f.scale_log2 - Lt[rl]);
            if (col >= sq.nk || row >= sq.nq || (f.causal && col > row)) p = 0.0f;
            pv[c] = p;
            dsv[c] = p * (dp[n][2 * r + c] - Dt[rl]);
          }
          *reinterpret_cast<uint32_t*>(Ps + rl * PLD + cl) = mma::pack_bf16(pv[0], pv[1]);
          *reinterpret_cast<uint32_t*>(dSs + rl * PLD + cl) = mma::pack_bf16(dsv[0], dsv[1]);
        }
    }
    __syncthreads();

    // ---- phase 2: dV += P^T dO, dK += dS^T Q (16 keys x D/2 per warp) ----
#pragma unroll 1
    for (int ks = 0; ks < kBwdBQ / 16; ++ks) {
      uint32_t ap[4], ads[4];
      mma::load_a_trans(ap, Ps, PLD, mk, ks * 16);
      mma::load_a_trans(ads, dSs, PLD, mk, ks * 16);
#pragma unroll
      for (int n2 = 0; n2 < HN / 2; ++n2) {
        uint32_t bg[4], bq[4];
        mma::load_b_kn(bg, Gt, LD, ks * 16, nd0 + n2 * 16);
        mma::load_b_kn(bq, Qt, LD, ks * 16, nd0 + n2 * 16);
        mma::mma_bf16(dva[2 * n2], ap, bg[0], bg[1]);
        mma::mma_bf16(dva[2 * n2 + 1], ap, bg[2], bg[3]);
        mma::mma_bf16(dka[2 * n2], ads, bq[0], bq[1]);
        mma::mma_bf16(dka[2 * n2 + 1], ads, bq[2], bq[3]);
      }
    }

    // ---- phase 3: dQ += scale dS K (16 queries x D/2 per warp), float32 atomics ----
    {
      float dqa[HN][4];
#pragma unroll
      for (int n = 0; n < HN; ++n) dqa[n][0] = dqa[n][1] = dqa[n][2] = dqa[n][3] = 0.0f;
#pragma unroll
      for (int ks = 0; ks < kBwdBK / 16; ++ks) {
        uint32_t ads[4];
        mma::load_a(ads, dSs, PLD, mq, ks * 16);
#pragma unroll
        for (int n2 = 0; n2 < HN / 2; ++n2) {
          uint32_t bk[4];
          mma::load_b_kn(bk, Ks, LD, ks * 16, nd0 + n2 * 16);
          mma::mma_bf16(dqa[2 * n2], ads, bk[0], bk[1]);
          mma::mma_bf16(dqa[2 * n2 + 1], ads, bk[2], bk[3]);
        }
      }
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int row = qbase + mq + g + r * 8;
        if (row >= sq.nq) continue;
        float* dqr = a.dq + ((static_cast<int64_t>(sq.b) * f.Nq + sq.q0 + row) * f.H + h) * D + nd0 + 2 * t;
#pragma unroll
        for (int n = 0; n < HN; ++n) {
          atomicAdd(dqr + n * 8, dqa[n][2 * r] * f.scale);
          atomicAdd(dqr + n * 8 + 1, dqa[n][2 * r + 1] * f.scale);
        }
      }
    }
    __syncthreads();  // P, dS and this stage are rewritten next
  }
  mma::cp_async_wait<0>();  // nothing in flight at exit (no query steps: K/V only)

  // dK, dV rows kbase + mk + g (+ 8), columns nd0 + n*8 + 2t (+ 1)
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int key = kbase + mk + g + r * 8;
    if (key >= sq.nk) continue;
    const int64_t o = ((static_cast<int64_t>(sq.b) * f.Nk + sq.k0 + key) * f.H + h) * D + nd0 + 2 * t;
#pragma unroll
    for (int n = 0; n < HN; ++n) {
      store_pair<D, GradT>(dk + o + n * 8, dka[n][2 * r] * f.scale, dka[n][2 * r + 1] * f.scale);
      store_pair<D, GradT>(dv + o + n * 8, dva[n][2 * r], dva[n][2 * r + 1]);
    }
  }
}

// ---- host side -------------------------------------------------------------------------

int max_smem_optin(int dev) {
  int v = 0;
  check(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), kOp);
  return v;
}

template <typename K>
void allow_smem(K kernel, size_t bytes, int dev) {
  if (bytes > static_cast<size_t>(max_smem_optin(dev)))
    fail(kOp, "not supported on cuda for this head dim (needs ", bytes, " bytes of shared memory per block)");
  if (bytes > 48 * 1024)
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)), kOp);
}

Layout layout_of(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out) {
  Layout L;
  L.q_sb = q.strides()[0], L.q_sn = q.strides()[1], L.q_sh = q.strides()[2];
  L.k_sb = k.strides()[0], L.k_sn = k.strides()[1], L.k_sh = k.strides()[2];
  L.v_sb = v.strides()[0], L.v_sn = v.strides()[1], L.v_sh = v.strides()[2];
  L.o_sb = out.strides()[0], L.o_sn = out.strides()[1], L.o_sh = out.strides()[2];
  return L;
}

const int32_t* cu_ptr(const Tensor& t) { return t.defined() ? t.data<int32_t>() : nullptr; }

bool use_tensor_cores(int64_t D) {
  return float32_matmul_precision() == MatmulPrecision::Medium && (D == 64 || D == 128);
}

// A [B, N, H, D] float32 tensor as contiguous bf16.
Tensor to_bf16(const Tensor& x) {
  Tensor y = Tensor::empty(x.shape(), DType::BFloat16, x.device(), kOp);
  cuda::copy(y, x);
  return y;
}

// Grids are (tiles, H, Z) with Z = B or the number of packed sequences. Z may pass the
// 65,535 limit of grid.z: launches go in slabs of at most kMaxGridZ sequences, each
// kernel adding its slab's first index z0. H (grid.y) has the same limit.
constexpr int kMaxGridZ = 65535;

void check_heads(int H) {
  if (H > 65535) fail(kOp, "not supported on cuda for more than 65535 heads, got H = ", H);
}

// Runs the tensor-core forward kernel for D (64 | 128).
template <int D, typename OutT>
void tc_forward(const TcArgs& args, OutT* out, float* lse, int grid_x, int H, int Z, cudaStream_t s, int dev) {
  size_t smem = tc_fwd_smem<D>();
  allow_smem(k_attn_fwd_tc<D, OutT>, smem, dev);
  check_heads(H);
  for (int z0 = 0; z0 < Z; z0 += kMaxGridZ) {
    TcArgs a = args;
    a.z0 = z0;
    dim3 grid(grid_x, H, std::min(Z - z0, kMaxGridZ));
    k_attn_fwd_tc<D, OutT><<<grid, kTcThreads, smem, s>>>(out, lse, a);
    check_launch(kOp);
  }
}

template <int D, typename GradT>
void tc_backward(const TcBwdArgs& args, GradT* dk, GradT* dv, int grid_x, int H, int Z, cudaStream_t s, int dev) {
  size_t smem = tc_bwd_smem<D>();
  allow_smem(k_attn_bwd_tc<D, GradT>, smem, dev);
  check_heads(H);
  for (int z0 = 0; z0 < Z; z0 += kMaxGridZ) {
    TcBwdArgs a = args;
    a.f.z0 = z0;
    dim3 grid(grid_x, H, std::min(Z - z0, kMaxGridZ));
    k_attn_bwd_tc<D, GradT><<<grid, kTcThreads, smem, s>>>(dk, dv, a);
    check_launch(kOp);
  }
}

__global__ void k_f32_to_bf16(bf16* __restrict__ dst, const float* __restrict__ src, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dst[i] = __float2bfloat16_rn(src[i]);
}

}  // namespace

// ---- Backend entry points (float32 tensors) -------------------------------------------

void attention_forward(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                       const AttentionParams& p) {
  const int B = static_cast<int>(q.shape()[0]), Nq = static_cast<int>(q.shape()[1]), H = static_cast<int>(q.shape()[2]);
  const int D = static_cast<int>(q.shape()[3]), Nk = static_cast<int>(k.shape()[1]);
  int dev = q.device().index;
  cudaStream_t s = prepare(q);
  const int Z = p.cu_seqlens_q.defined() ? static_cast<int>(p.num_seqs) : B;
  const int maxq = static_cast<int>(p.max_seqlen_q);
  if (maxq == 0 || Z == 0) return;
  if (use_tensor_cores(D)) {
    Tensor qh = to_bf16(q), kh = to_bf16(k), vh = to_bf16(v);
    TcArgs a;
    a.q = qh.data<bf16>(), a.k = kh.data<bf16>(), a.v = vh.data<bf16>();
    a.L = layout_of(qh, kh, vh, out);
    a.cu_q = cu_ptr(p.cu_seqlens_q), a.cu_k = cu_ptr(p.cu_seqlens_k);
    a.Nq = Nq, a.Nk = Nk, a.H = H, a.z0 = 0;
    a.scale = p.scale, a.scale_log2 = p.scale * kLog2e, a.causal = p.causal;
    int gx = (maxq + kFwdBQ - 1) / kFwdBQ;
    if (D == 64)
      tc_forward<64, float>(a, out.data<float>(), lse.data<float>(), gx, H, Z, s, dev);
    else
      tc_forward<128, float>(a, out.data<float>(), lse.data<float>(), gx, H, Z, s, dev);
    return;
  }
  size_t smem = f32_fwd_smem(D);
  allow_smem(k_attn_fwd_f32, smem, dev);
  check_heads(H);
  for (int z0 = 0; z0 < Z; z0 += kMaxGridZ) {
    dim3 grid((maxq + kF32Rows - 1) / kF32Rows, H, std::min(Z - z0, kMaxGridZ));
    k_attn_fwd_f32<<<grid, 128, smem, s>>>(out.data<float>(), lse.data<float>(), q.data<float>(), k.data<float>(),
                                           v.data<float>(), layout_of(q, k, v, out), cu_ptr(p.cu_seqlens_q),
                                           cu_ptr(p.cu_seqlens_k), Nq, Nk, H, D, p.scale, p.causal, z0);
    check_launch(kOp);
  }
}

void attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q, const Tensor& k,
                        const Tensor& v, const Tensor& out, const Tensor& lse, const AttentionParams& p) {
  const int B = static_cast<int>(q.shape()[0]), Nq = static_cast<int>(q.shape()[1]), H = static_cast<int>(q.shape()[2]);
  const int D = static_cast<int>(q.shape()[3]), Nk = static_cast<int>(k.shape()[1]);
  int dev = q.device().index;
  cudaStream_t s = prepare(q);
  if (dq.numel()) check(cudaMemsetAsync(dq.raw(), 0, dq.nbytes(), s), kOp);
  const int Z = p.cu_seqlens_q.defined() ? static_cast<int>(p.num_seqs) : B;
  const int maxk = static_cast<int>(p.max_seqlen_k);
  if (Nk == 0 || maxk == 0 || Z == 0) return;  // no keys (or no sequences): dq = 0, dk and dv are empty
  // Dvec = rowsum(dO * O) in float32 from the float32 tensors
  Tensor dvec = workspace(std::max<int64_t>(1, static_cast<int64_t>(B) * H * Nq), DType::Float32, dev, kOp);
  if (Nq > 0) {
    int64_t rows = static_cast<int64_t>(B) * Nq * H;
    k_dvec<float><<<blocks_for(rows * 32), kThreads, 0, s>>>(
        dvec.data<float>(), dout.data<float>(), dout.strides()[0], dout.strides()[1], dout.strides()[2],
        out.data<float>(), out.strides()[0], out.strides()[1], out.strides()[2], B, Nq, H, D);
    check_launch(kOp);
  }
  if (use_tensor_cores(D)) {
    Tensor qh = to_bf16(q), kh = to_bf16(k), vh = to_bf16(v), gh = to_bf16(dout);
    TcBwdArgs a;
    a.f.q = qh.data<bf16>(), a.f.k = kh.data<bf16>(), a.f.v = vh.data<bf16>();
    a.f.L = layout_of(qh, kh, vh, qh);
    a.f.cu_q = cu_ptr(p.cu_seqlens_q), a.f.cu_k = cu_ptr(p.cu_seqlens_k);
    a.f.Nq = Nq, a.f.Nk = Nk, a.f.H = H, a.f.z0 = 0;
    a.f.scale = p.scale, a.f.scale_log2 = p.scale * kLog2e, a.f.causal = p.causal;
    a.dout = gh.data<bf16>(), a.g_sb = gh.strides()[0], a.g_sn = gh.strides()[1], a.g_sh = gh.strides()[2];
    a.lse = lse.data<float>(), a.dvec = dvec.data<float>(), a.dq = dq.data<float>();
    int gx = (maxk + kBwdBK - 1) / kBwdBK;
    if (D == 64)
      tc_backward<64, float>(a, dk.data<float>(), dv.data<float>(), gx, H, Z, s, dev);
    else
      tc_backward<128, float>(a, dk.data<float>(), dv.data<float>(), gx, H, Z, s, dev);
    return;
  }
  size_t smem = f32_bwd_smem(D);
  allow_smem(k_attn_bwd_f32, smem, dev);
  check_heads(H);
  for (int z0 = 0; z0 < Z; z0 += kMaxGridZ) {
    dim3 grid((maxk + kF32Keys - 1) / kF32Keys, H, std::min(Z - z0, kMaxGridZ));
    k_attn_bwd_f32<<<grid, 32, smem, s>>>(dq.data<float>(), dk.data<float>(), dv.data<float>(), dout.data<float>(),
                                          dout.strides()[0], dout.strides()[1], dout.strides()[2], q.data<float>(),
                                          k.data<float>(), v.data<float>(), layout_of(q, k, v, q), lse.data<float>(),
                                          dvec.data<float>(), cu_ptr(p.cu_seqlens_q), cu_ptr(p.cu_seqlens_k), Nq, Nk,
                                          H, D, p.scale, p.causal, z0);
    check_launch(kOp);
  }
}

// ---- raw bf16 entry points ---------------------------------------------------------------

namespace {
TcArgs raw_args(const FlashShape& sh, Rows4 q, Rows4 k, Rows4 v) {
  TcArgs a;
  a.q = static_cast<const bf16*>(q.p), a.k = static_cast<const bf16*>(k.p), a.v = static_cast<const bf16*>(v.p);
  a.L.q_sb = q.sb, a.L.q_sn = q.sn, a.L.q_sh = q.sh;
  a.L.k_sb = k.sb, a.L.k_sn = k.sn, a.L.k_sh = k.sh;
  a.L.v_sb = v.sb, a.L.v_sn = v.sn, a.L.v_sh = v.sh;
  a.L.o_sb = static_cast<int64_t>(sh.Nq) * sh.H * sh.D, a.L.o_sn = static_cast<int64_t>(sh.H) * sh.D, a.L.o_sh = sh.D;
  a.cu_q = sh.cu_q, a.cu_k = sh.cu_k;
  a.Nq = sh.Nq, a.Nk = sh.Nk, a.H = sh.H, a.z0 = 0;
  a.scale = sh.scale, a.scale_log2 = sh.scale * kLog2e, a.causal = sh.causal;
  if (sh.D != 64 && sh.D != 128) fail(kOp, "the bf16 kernels take D = 64 or 128, got ", sh.D);
  return a;
}
}  // namespace

void flash_forward_bf16(const FlashShape& sh, Rows4 q, Rows4 k, Rows4 v, void* out, float* lse, void* stream) {
  TcArgs a = raw_args(sh, q, k, v);
  int dev = 0;
  check(cudaGetDevice(&dev), kOp);
  int Z = sh.cu_q ? sh.num_seqs : sh.B, maxq = sh.cu_q ? sh.max_q : sh.Nq;
  int gx = (maxq + kFwdBQ - 1) / kFwdBQ;
  if (gx == 0) return;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (sh.D == 64)
    tc_forward<64, bf16>(a, static_cast<bf16*>(out), lse, gx, sh.H, Z, s, dev);
  else
    tc_forward<128, bf16>(a, static_cast<bf16*>(out), lse, gx, sh.H, Z, s, dev);
}

size_t flash_backward_workspace_bytes(const FlashShape& sh) {
  size_t rows = static_cast<size_t>(sh.B) * sh.Nq * sh.H;
  return rows * sh.D * sizeof(float) + rows * sizeof(float) + 256;
}

void flash_backward_bf16(const FlashShape& sh, Rows4 q, Rows4 k, Rows4 v, const void* out, const void* dout,
                         const float* lse, void* dq, void* dk, void* dv, void* workspace, void* stream) {
  TcBwdArgs a;
  a.f = raw_args(sh, q, k, v);
  int dev = 0;
  check(cudaGetDevice(&dev), kOp);
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  size_t rows = static_cast<size_t>(sh.B) * sh.Nq * sh.H;
  float* dq_acc = static_cast<float*>(workspace);
  float* dvec = dq_acc + rows * sh.D;
  check(cudaMemsetAsync(dq_acc, 0, rows * sh.D * sizeof(float), s), kOp);
  int64_t osb = static_cast<int64_t>(sh.Nq) * sh.H * sh.D, osn = static_cast<int64_t>(sh.H) * sh.D;
  if (rows) {
    k_dvec<bf16><<<blocks_for(static_cast<int64_t>(rows) * 32), kThreads, 0, s>>>(
        dvec, static_cast<const bf16*>(dout), osb, osn, sh.D, static_cast<const bf16*>(out), osb, osn, sh.D, sh.B,
        sh.Nq, sh.H, sh.D);
    check_launch(kOp);
  }
  a.dout = static_cast<const bf16*>(dout), a.g_sb = osb, a.g_sn = osn, a.g_sh = sh.D;
  a.lse = lse, a.dvec = dvec, a.dq = dq_acc;
  int Z = sh.cu_q ? sh.num_seqs : sh.B, maxk = sh.cu_q ? sh.max_k : sh.Nk;
  int gx = (maxk + kBwdBK - 1) / kBwdBK;
  if (gx > 0) {
    if (sh.D == 64)
      tc_backward<64, bf16>(a, static_cast<bf16*>(dk), static_cast<bf16*>(dv), gx, sh.H, Z, s, dev);
    else
      tc_backward<128, bf16>(a, static_cast<bf16*>(dk), static_cast<bf16*>(dv), gx, sh.H, Z, s, dev);
  }
  int64_t n = static_cast<int64_t>(rows) * sh.D;
  if (n) {
    k_f32_to_bf16<<<grid_for(n), kThreads, 0, s>>>(static_cast<bf16*>(dq), dq_acc, n);
    check_launch(kOp);
  }
}

}  // namespace cuda
}  // namespace ts
