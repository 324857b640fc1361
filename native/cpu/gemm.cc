// tessera CPU: single-precision GEMM, row-major. C = A' B' (+ C when beta = 1), with
// A' = A or A^T ([M, K]) and B' = B or B^T ([K, N]).
// Optimized path (BLIS/GotoBLAS-style):
//   - B' is packed once per call (while K x N fits the pack budget; else per block of
//     columns) into panels [K slab][column panel][kc][NR], shared by the threads;
//   - tasks (blocks of rows of C, split by columns too when M is short) are taken
//     from a shared counter; each packs its rows of A' per K slab into panels
//     [row panel][kc][MR];
//   - a register-blocked micro-kernel (AVX-512 12x32, AVX2 6x16 or scalar 4x8, chosen
//     at run time) computes MR x NR tiles of C: one MR-row panel of A (12 KiB, in L1)
//     sweeps an L2-sized chunk of B panels (B streams from L2 with software prefetch).
// Every C element is summed by one thread in slab order, so results are deterministic
// and do not depend on the thread count. The reference loop stays for checking.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "../core/parallel.h"
#include "cpu.h"
#include "scratch.h"

namespace ts {
namespace cpu {

void gemm_reference(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                    int64_t ldb, float* C, int64_t ldc, float beta) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) {
        float a = ta ? A[k * lda + m] : A[m * lda + k];
        float b = tb ? B[n * ldb + k] : B[k * ldb + n];
        acc += static_cast<double>(a) * b;
      }
      float prev = beta != 0.0f ? C[m * ldc + n] * beta : 0.0f;
      C[m * ldc + n] = static_cast<float>(acc) + prev;
    }
}

namespace {

// Blocking in floats, tuned for 48 KiB L1d / 2 MiB L2 per core (see the file header):
//   kc           K slab: an A panel is kc x MR (12 KiB at 256), a B panel kc x NR (32 KiB);
//   mc           rows of A packed per block (mc x kc, 240 KiB, stays in L2 across chunks);
//   nc_chunk     B columns an A panel sweeps before the next one (kc x nc_chunk = 1 MiB in L2);
//   pack_budget  packed B floats (16 MiB): B is packed once while K x N fits.
GemmBlocking g_blocking{256, 240, 1024, int64_t{4} << 20};
constexpr GemmBlocking kDefaultBlocking{256, 240, 1024, int64_t{4} << 20};

// ---- packing ----------------------------------------------------------------------------

// dst[k * dld + r] = src[r * ld + k] for r < rows, k < cols (rows, cols <= 16); lanes
// r in [rows, width) of each written dst row are zero, lanes from width on untouched.
// One 16 x 16 transpose in registers: each source row is read as one vector, so the
// strided rows cost one cache line per 16 values instead of one per value.
// (GCC 12 warns that the masked intrinsics' pass-through operand may be uninitialized.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
__attribute__((target("avx512f"))) inline void transpose_16(const float* src, int64_t ld, int rows, int cols,
                                                            float* dst, int64_t dld, int width) {
  const __mmask16 cm = static_cast<__mmask16>((1u << cols) - 1), wm = static_cast<__mmask16>((1u << width) - 1);
  __m512 r[16];
  for (int i = 0; i < 16; ++i) r[i] = i < rows ? _mm512_maskz_loadu_ps(cm, src + i * ld) : _mm512_setzero_ps();
  // Stage 1: interleave pairs of rows (32-bit), stage 2: 64-bit, stages 3-4: 128-bit lanes.
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4)
    for (int j = 0; j < 2; ++j) {
      r[i + j] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + j]), _mm512_castps_pd(t[i + j + 2])));
      r[i + j + 2] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + j]), _mm512_castps_pd(t[i + j + 2])));
    }
  for (int i = 0; i < 16; i += 8)
    for (int j = 0; j < 4; ++j) {
      t[i + j] = _mm512_shuffle_f32x4(r[i + j], r[i + j + 4], 0x88);
      t[i + j + 4] = _mm512_shuffle_f32x4(r[i + j], r[i + j + 4], 0xdd);
    }
  for (int j = 0; j < 8; ++j) {
    r[j] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0x88);
    r[j + 8] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0xdd);
  }
  // r[j] now holds source column col_of[j]: the 64-bit stage leaves columns (0, 2, 1, 3)
  // of each group of four in order j, and the 128-bit stages keep that order.
  static const int col_of[16] = {0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15};
  for (int j = 0; j < 16; ++j)
    if (col_of[j] < cols) _mm512_mask_storeu_ps(dst + col_of[j] * dld, wm, r[j]);
}
#pragma GCC diagnostic pop

// A' = A^T: row k of the panels is mc contiguous floats of A's row k (src + k lda), cut
// into MR-wide pieces, one per panel, zero padded to MR. Row by row, each row read once
// (a masked vector load and store per piece), fetched 16 rows ahead: A's rows are lda
// floats apart, a page or more for a linear layer's dout, where the hardware prefetcher
// does not follow. Panel by panel with a scalar copy, this was 24% of a linear layer's
// weight gradient (dout^T x, [1024, 5120] x [5120, 256]; Xeon).
// The loop both ISAs share (a macro: the piece copy's intrinsics need the caller's target).
// PIECE(d, s, rows) writes `rows` floats from s to d, zero padded to MR.
#define TS_PACK_A_TRANS(PIECE)                                                                                      \
  for (int64_t k = 0; k < kc; ++k) {                                                                               \
    const float* row = src + k * lda;                                                                              \
    if (k + 16 < kc)                                                                                               \
      for (int64_t c = 0; c < mc; c += 16) _mm_prefetch(reinterpret_cast<const char*>(row + 16 * lda + c), _MM_HINT_T0); \
    for (int64_t ip = 0; ip < mc; ip += MR)                                                                        \
      PIECE(out + ip * kc + k * MR, row + ip, static_cast<int>(std::min<int64_t>(MR, mc - ip)));                   \
  }
__attribute__((target("avx512f"))) void pack_a_trans_avx512(const float* src, int64_t lda, int64_t mc, int MR,
                                                             int64_t kc, float* out) {
  const __mmask16 sm = static_cast<__mmask16>((1u << MR) - 1);
#define TS_PIECE(d, s, rows) _mm512_mask_storeu_ps(d, sm, _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << (rows)) - 1), s))
  TS_PACK_A_TRANS(TS_PIECE)
#undef TS_PIECE
}
__attribute__((target("avx2"))) void pack_a_trans_avx2(const float* src, int64_t lda, int64_t mc, int MR, int64_t kc,
                                                       float* out) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i sm = _mm256_cmpgt_epi32(_mm256_set1_epi32(MR), lane);
#define TS_PIECE(d, s, rows) _mm256_maskstore_ps(d, sm, _mm256_maskload_ps(s, _mm256_cmpgt_epi32(_mm256_set1_epi32(rows), lane)))
  TS_PACK_A_TRANS(TS_PIECE)
#undef TS_PIECE
}
#undef TS_PACK_A_TRANS

// Packs rows [i0, i0+mc) x cols [k0, k0+kc) of A' into panels of MR rows: [panel][k][MR].
void pack_a(int MR, bool ta, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* out) {
  if (ta && MR <= 16 && features().avx512f) return pack_a_trans_avx512(A + k0 * lda + i0, lda, mc, MR, kc, out);
  if (ta && MR <= 8 && features().avx2) return pack_a_trans_avx2(A + k0 * lda + i0, lda, mc, MR, kc, out);
  for (int64_t ip = 0; ip < mc; ip += MR) {
    const int64_t rows = std::min<int64_t>(MR, mc - ip);
    float* dst = out + ip * kc;
    if (!ta) {
      const float* src = A + (i0 + ip) * lda + k0;
      if (MR <= 16 && features().avx512f) {
        for (int64_t k = 0; k < kc; k += 16)
          transpose_16(src + k, lda, static_cast<int>(rows), static_cast<int>(std::min<int64_t>(16, kc - k)),
                       dst + k * MR, MR, MR);
      } else {
        for (int64_t k = 0; k < kc; ++k) {
          for (int64_t r = 0; r < rows; ++r) dst[k * MR + r] = src[r * lda + k];
          for (int64_t r = rows; r < MR; ++r) dst[k * MR + r] = 0.0f;
        }
      }
    } else {
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = A + (k0 + k) * lda + i0 + ip;
        for (int64_t r = 0; r < rows; ++r) dst[k * MR + r] = src[r];
        for (int64_t r = rows; r < MR; ++r) dst[k * MR + r] = 0.0f;
      }
    }
  }
}

// Packs rows [k0, k0+kc) x cols [col0, col0+cols) of B' into one panel [k][NR], zero padded.
void pack_b_panel(int NR, bool tb, const float* B, int64_t ldb, int64_t k0, int64_t kc, int64_t col0, int64_t cols,
                  float* dst) {
  if (!tb) {
    for (int64_t k = 0; k < kc; ++k) {
      const float* src = B + (k0 + k) * ldb + col0;
      float* d = dst + k * NR;
      int64_t c = 0;
      for (; c < cols; ++c) d[c] = src[c];
      for (; c < NR; ++c) d[c] = 0.0f;
    }
  } else if (NR % 16 == 0 && features().avx512f) {
    // B is [N, K]: 16 of its rows at a time become 16 lanes of the panel.
    const float* src = B + col0 * ldb + k0;
    for (int64_t c = 0; c < NR; c += 16) {
      const int rows = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(16, cols - c)));
      for (int64_t k = 0; k < kc; k += 16)
        transpose_16(src + c * ldb + k, ldb, rows, static_cast<int>(std::min<int64_t>(16, kc - k)), dst + k * NR + c,
                     NR, 16);
    }
  } else {
    const float* src = B + col0 * ldb + k0;
    for (int64_t k = 0; k < kc; ++k) {
      float* d = dst + k * NR;
      int64_t c = 0;
      for (; c < cols; ++c) d[c] = src[c * ldb + k];
      for (; c < NR; ++c) d[c] = 0.0f;
    }
  }
}

// ---- micro-kernels ----------------------------------------------------------------------

// Writes an MR x NR accumulator tile held in `tile` into C (valid mr x nr), adding when acc.
inline void store_tile(const float* tile, int NR, float* C, int64_t ldc, int mr, int nr, bool acc) {
  for (int r = 0; r < mr; ++r)
    for (int c = 0; c < nr; ++c) C[r * ldc + c] = tile[r * NR + c] + (acc ? C[r * ldc + c] : 0.0f);
}

// The AVX-512 tile: ROWS (12, 8 or 4) rows of an A panel packed 12 wide x 32 columns.
// A tail panel of mr <= 8 (or <= 4) rows runs the narrower instance instead of a full
// 12-row one, so e.g. 64 output channels cost 5 x 12 + 1 x 4 rows, not 6 x 12.
// Columns past nr are masked on the C side (the packed B is zero-padded to 32).
// OFFS: B row p is two 16-float halves read in place, lanes 0-15 at b + off[p] and
// lanes 16-31 at b1 + off[p] (any alignment: the offset form, MicroKernel::offsets),
// instead of row p of the packed panel b. PF > 0: those rows are prefetched PF steps
// ahead (they come from L2: a padded window's rows, one cache line or two apart).
template <int ROWS, bool OFFS = false, int PF = 0>
__attribute__((target("avx512f,fma"), always_inline)) inline void ukernel_avx512_rows(int64_t kc, const float* a,
                                                                                     const float* b, float* C,
                                                                                     int64_t ldc, int mr, int nr,
                                                                                     bool acc, const float* b1 = nullptr,
                                                                                     const int32_t* off = nullptr) {
  constexpr int MR = 12;  // panel stride of the packed A
  __m512 c0[ROWS], c1[ROWS];
  // Start fetching the C tile now; it is read (acc) or written only after the k loop.
  for (int r = 0; r < mr; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc + 31), _MM_HINT_T0);
  }
#pragma GCC unroll 12
  for (int r = 0; r < ROWS; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
  // B streams from L2 (one A panel sweeps a chunk of B panels): fetch it 16 steps
  // (2 KiB) ahead, which also runs into the next panel of the chunk.
  for (int64_t p = 0; p < kc; ++p) {
    __m512 v0, v1;
    if (OFFS) {
      v0 = _mm512_loadu_ps(b + off[p]);
      v1 = _mm512_loadu_ps(b1 + off[p]);
      if (PF > 0) {
        _mm_prefetch(reinterpret_cast<const char*>(b + off[p + PF]), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(b1 + off[p + PF]), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(b1 + off[p + PF] + 15), _MM_HINT_T0);
      }
    } else {
      v0 = _mm512_load_ps(b);
      v1 = _mm512_load_ps(b + 16);
      _mm_prefetch(reinterpret_cast<const char*>(b + 16 * 32), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(b + 16 * 32 + 16), _MM_HINT_T0);
    }
#pragma GCC unroll 12
    for (int r = 0; r < ROWS; ++r) {
      __m512 av = _mm512_set1_ps(a[r]);
      c0[r] = _mm512_fmadd_ps(av, v0, c0[r]);
      c1[r] = _mm512_fmadd_ps(av, v1, c1[r]);
    }
    a += MR;
    if (!OFFS) b += 32;
  }
  const __mmask16 m0 = nr >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << nr) - 1);
  const __mmask16 m1 = nr >= 32 ? 0xFFFF : nr <= 16 ? 0 : static_cast<__mmask16>((1u << (nr - 16)) - 1);
#pragma GCC unroll 12
  for (int r = 0; r < ROWS; ++r) {
    if (r >= mr) break;
    float* cr = C + r * ldc;
    if (acc) {
      c0[r] = _mm512_add_ps(c0[r], _mm512_maskz_loadu_ps(m0, cr));
      c1[r] = _mm512_add_ps(c1[r], _mm512_maskz_loadu_ps(m1, cr + 16));
    }
    _mm512_mask_storeu_ps(cr, m0, c0[r]);
    _mm512_mask_storeu_ps(cr + 16, m1, c1[r]);
  }
}

__attribute__((target("avx512f,fma"))) void ukernel_avx512(int64_t kc, const float* a, const float* b, float* C,
                                                             int64_t ldc, int mr, int nr, bool acc) {
  if (mr > 8) return ukernel_avx512_rows<12>(kc, a, b, C, ldc, mr, nr, acc);
  if (mr > 4) return ukernel_avx512_rows<8>(kc, a, b, C, ldc, mr, nr, acc);
  ukernel_avx512_rows<4>(kc, a, b, C, ldc, mr, nr, acc);
}

// Offset-form prefetch distance in steps. Xeon (AVX-512), conv3d 3x3x3 in one process
// alternating with 0, 16, 24 and 32: 24 took the 16-channel 64x64 forward from 4.99 to
// 4.60 ms and its input gradient from 5.2 to 4.7 ms (32 channels at 32x32: -4%, 64 at
// 16x16: level); 16 gained about half of that and 32 the same as 24.
constexpr int kOffsetPrefetch = 24;
static_assert(kOffsetPrefetch <= MicroKernel::kOffsetSlack, "off[] must be readable that far ahead");

__attribute__((target("avx512f,fma"))) void ukernel_offsets_avx512(int64_t kc, const float* a, const float* base,
                                                                  const float* base1, const int32_t* off, float* C,
                                                                  int64_t ldc, int mr, int nr, bool acc) {
  if (mr > 8) return ukernel_avx512_rows<12, true, kOffsetPrefetch>(kc, a, base, C, ldc, mr, nr, acc, base1, off);
  if (mr > 4) return ukernel_avx512_rows<8, true, kOffsetPrefetch>(kc, a, base, C, ldc, mr, nr, acc, base1, off);
  ukernel_avx512_rows<4, true, kOffsetPrefetch>(kc, a, base, C, ldc, mr, nr, acc, base1, off);
}

// One row of an AVX2 tile into C (columns under the masks when not full; adds C when acc).
__attribute__((target("avx2,fma"), always_inline)) inline void avx2_store_row(bool full, bool acc, __m256i m0,
                                                                            __m256i m1, float* cr, __m256 v0,
                                                                            __m256 v1) {
  if (full) {
    if (acc) {
      v0 = _mm256_add_ps(v0, _mm256_loadu_ps(cr));
      v1 = _mm256_add_ps(v1, _mm256_loadu_ps(cr + 8));
    }
    _mm256_storeu_ps(cr, v0);
    _mm256_storeu_ps(cr + 8, v1);
  } else {
    if (acc) {
      v0 = _mm256_add_ps(v0, _mm256_maskload_ps(cr, m0));
      v1 = _mm256_add_ps(v1, _mm256_maskload_ps(cr + 8, m1));
    }
    _mm256_maskstore_ps(cr, m0, v0);
    _mm256_maskstore_ps(cr + 8, m1, v1);
  }
}

// The AVX2 tile: ROWS (6, 4 or 2) rows of an A panel packed 6 wide x 16 columns. The
// accumulators are named registers, not an array: GCC can keep an accumulator array on
// the stack and store all twelve every step, and the FMAs then wait on those stores
// (the cpu_kernel_spills test checks for it; the figures are in benchmarks/RESULTS.md,
// "Kernel notes"). Columns past nr are masked on the C side.
// OFFS: B row p is the 16 floats at b + off[p] (any alignment, read in place: the
// offset form, MicroKernel::offsets) instead of row p of the packed panel b.
template <int ROWS, bool OFFS>
__attribute__((target("avx2,fma"), always_inline)) inline void ukernel_avx2_rows(int64_t kc, const float* a,
                                                                               const float* b, const int32_t* off,
                                                                               float* C, int64_t ldc, int mr, int nr,
                                                                               bool acc) {
  constexpr int MR = 6;  // panel stride of the packed A
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int r = 0; r < mr; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc + 15), _MM_HINT_T0);
  }
  for (int64_t p = 0; p < kc; ++p) {
    __m256 b0, b1;
    if (OFFS) {
      const float* br = b + off[p];
      b0 = _mm256_loadu_ps(br);
      b1 = _mm256_loadu_ps(br + 8);
    } else {
      b0 = _mm256_load_ps(b);
      b1 = _mm256_load_ps(b + 8);
      _mm_prefetch(reinterpret_cast<const char*>(b + 16 * 16), _MM_HINT_T0);
    }
    __m256 av = _mm256_broadcast_ss(a);
    c00 = _mm256_fmadd_ps(av, b0, c00);
    c01 = _mm256_fmadd_ps(av, b1, c01);
    av = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(av, b0, c10);
    c11 = _mm256_fmadd_ps(av, b1, c11);
    if (ROWS > 2) {
      av = _mm256_broadcast_ss(a + 2);
      c20 = _mm256_fmadd_ps(av, b0, c20);
      c21 = _mm256_fmadd_ps(av, b1, c21);
      av = _mm256_broadcast_ss(a + 3);
      c30 = _mm256_fmadd_ps(av, b0, c30);
      c31 = _mm256_fmadd_ps(av, b1, c31);
    }
    if (ROWS > 4) {
      av = _mm256_broadcast_ss(a + 4);
      c40 = _mm256_fmadd_ps(av, b0, c40);
      c41 = _mm256_fmadd_ps(av, b1, c41);
      av = _mm256_broadcast_ss(a + 5);
      c50 = _mm256_fmadd_ps(av, b0, c50);
      c51 = _mm256_fmadd_ps(av, b1, c51);
    }
    a += MR;
    if (!OFFS) b += 16;
  }
  // Lane masks for the columns < nr of each half (maskload/maskstore read the sign bit).
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), lane);
  const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr - 8), lane);
  const bool full = nr == 16;
  avx2_store_row(full, acc, m0, m1, C, c00, c01);
  if (mr > 1) avx2_store_row(full, acc, m0, m1, C + ldc, c10, c11);
  if (ROWS > 2 && mr > 2) avx2_store_row(full, acc, m0, m1, C + 2 * ldc, c20, c21);
  if (ROWS > 2 && mr > 3) avx2_store_row(full, acc, m0, m1, C + 3 * ldc, c30, c31);
  if (ROWS > 4 && mr > 4) avx2_store_row(full, acc, m0, m1, C + 4 * ldc, c40, c41);
  if (ROWS > 4 && mr > 5) avx2_store_row(full, acc, m0, m1, C + 5 * ldc, c50, c51);
}

__attribute__((target("avx2,fma"))) void ukernel_avx2(int64_t kc, const float* a, const float* b, float* C,
                                                        int64_t ldc, int mr, int nr, bool acc) {
  if (mr > 4) return ukernel_avx2_rows<6, false>(kc, a, b, nullptr, C, ldc, mr, nr, acc);
  if (mr > 2) return ukernel_avx2_rows<4, false>(kc, a, b, nullptr, C, ldc, mr, nr, acc);
  ukernel_avx2_rows<2, false>(kc, a, b, nullptr, C, ldc, mr, nr, acc);
}

__attribute__((target("avx2,fma"))) void ukernel_offsets_avx2(int64_t kc, const float* a, const float* base,
                                                                const float* /*base1: one 16-lane segment*/,
                                                                const int32_t* off, float* C, int64_t ldc, int mr,
                                                                int nr, bool acc) {
  if (mr > 4) return ukernel_avx2_rows<6, true>(kc, a, base, off, C, ldc, mr, nr, acc);
  if (mr > 2) return ukernel_avx2_rows<4, true>(kc, a, base, off, C, ldc, mr, nr, acc);
  ukernel_avx2_rows<2, true>(kc, a, base, off, C, ldc, mr, nr, acc);
}

void ukernel_scalar(int64_t kc, const float* a, const float* b, float* C, int64_t ldc, int mr, int nr, bool acc) {
  constexpr int MR = 4, NR = 8;
  float tile[MR * NR] = {0};
  for (int64_t p = 0; p < kc; ++p) {
    for (int r = 0; r < MR; ++r)
      for (int c = 0; c < NR; ++c) tile[r * NR + c] += a[r] * b[c];
    a += MR;
    b += NR;
  }
  store_tile(tile, NR, C, ldc, mr, nr, acc);
}

using UKernel = void (*)(int64_t, const float*, const float*, float*, int64_t, int, int, bool);
struct KernelChoice {
  UKernel fn;
  int MR, NR;
};
KernelChoice choose_kernel() {
  const Features& f = features();
  if (f.avx512f && f.fma) return {ukernel_avx512, 12, 32};
  if (f.avx2 && f.fma) return {ukernel_avx2, 6, 16};
  return {ukernel_scalar, 4, 8};
}

}  // namespace

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
          float* C, int64_t ldc, float beta, const float* bias) {
  if (M == 0 || N == 0) return;
  if (bias && beta != 0.0f) fail("matmul", "internal: a GEMM bias needs beta = 0, got ", beta);
  if (reference_kernels() || K == 0) {
    if (K > 0) gemm_reference(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, beta);
    else if (beta == 0.0f)
      for (int64_t m = 0; m < M; ++m) std::memset(C + m * ldc, 0, static_cast<size_t>(N) * sizeof(float));
    if (bias)
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) C[m * ldc + n] += bias[n];
    return;
  }
  static const KernelChoice kc_choice = choose_kernel();
  const int MR = kc_choice.MR, NR = kc_choice.NR;
  const UKernel uk = kc_choice.fn;
  const GemmBlocking bl = g_blocking;
  const int64_t nt = num_threads();
  const int64_t KC = bl.kc, MC = std::max<int64_t>(MR, bl.mc / MR * MR);
  // Rows per task: MC, or fewer (down to 4 panels) so that there are ~6 tasks per thread.
  const int64_t mc_max = std::min(MC, std::max<int64_t>(4 * MR, ((M + 6 * nt - 1) / (6 * nt) + MR - 1) / MR * MR));
  const int64_t mblocks = (M + mc_max - 1) / mc_max;
  const int64_t chunk_panels = std::max<int64_t>(1, bl.nc_chunk / NR);
  const int64_t nslabs = (K + KC - 1) / KC;
  // Columns packed per pass: all K slabs of nc columns (a multiple of NR) within the budget.
  const int64_t Np = (N + NR - 1) / NR * NR;
  const int64_t nc = std::min(Np, std::max<int64_t>(NR, bl.pack_budget / K / NR * NR));
  // Packed B [slab][panel][kc][NR] in the caller's scratch (slab s starts at s*KC*npanels*NR).
  float* bpack = scratch_as<float>(0, static_cast<size_t>(K * nc));

  for (int64_t jc = 0; jc < N; jc += nc) {
    const int64_t ncj = std::min(nc, N - jc), npanels = (ncj + NR - 1) / NR;
    parallel_for(0, nslabs * npanels, 4, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) {
        const int64_t s = t / npanels, jp = t % npanels, k0 = s * KC, kc = std::min(KC, K - k0);
        pack_b_panel(NR, tb, B, ldb, k0, kc, jc + jp * NR, std::min<int64_t>(NR, ncj - jp * NR),
                     bpack + k0 * npanels * NR + jp * kc * NR);
      }
    });
    // Tasks: blocks of mc rows x parts of the column panels (more than one part only
    // when M is short), taken from a shared counter, so a thread that the OS delays
    // does not hold the others up. Every C element is summed by one task in slab
    // order, so results do not depend on which thread ran it, nor on the thread count.
    const int64_t nparts = std::min(npanels, std::max<int64_t>(1, (4 * nt + mblocks - 1) / mblocks));
    const int64_t ntasks = mblocks * nparts;
    std::atomic<int64_t> next{0};
    parallel_for(0, std::min(nt, ntasks), 1, [&](int64_t, int64_t) {
      float* ap = scratch_as<float>(1, static_cast<size_t>(mc_max * KC));
      for (int64_t task; (task = next.fetch_add(1, std::memory_order_relaxed)) < ntasks;) {
        const int64_t ic = task / nparts * mc_max, mc = std::min(mc_max, M - ic), part = task % nparts;
        const int64_t p0 = npanels * part / nparts, p1 = npanels * (part + 1) / nparts;
        for (int64_t s = 0; s < nslabs; ++s) {
          const int64_t k0 = s * KC, kc = std::min(KC, K - k0);
          const bool acc = s > 0 || beta != 0.0f;
          pack_a(MR, ta, A, lda, ic, mc, k0, kc, ap);
          const float* bs = bpack + k0 * npanels * NR;
          // One A panel (L1) sweeps a chunk of B panels (L2), then the next A panel.
          for (int64_t q0 = p0; q0 < p1; q0 += chunk_panels) {
            const int64_t q1 = std::min(p1, q0 + chunk_panels);
            for (int64_t ir = 0; ir < mc; ir += MR) {
              const int mr = static_cast<int>(std::min<int64_t>(MR, mc - ir));
              float* ci = C + (ic + ir) * ldc + jc;
              for (int64_t jp = q0; jp < q1; ++jp) {
                const int nr = static_cast<int>(std::min<int64_t>(NR, ncj - jp * NR));
                float* ct = ci + jp * NR;
                if (bias && s == 0) {
                  // The first slab starts the tile from the bias (written into L1 just now).
                  const float* bv = bias + jc + jp * NR;
                  for (int r = 0; r < mr; ++r) std::memcpy(ct + r * ldc, bv, static_cast<size_t>(nr) * sizeof(float));
                  uk(kc, ap + ir * kc, bs + jp * kc * NR, ct, ldc, mr, nr, true);
                } else {
                  uk(kc, ap + ir * kc, bs + jp * kc * NR, ct, ldc, mr, nr, acc);
                }
              }
            }
          }
        }
      }
    });
  }
}

GemmBlocking gemm_blocking() { return g_blocking; }
void set_gemm_blocking(const GemmBlocking& b) {
  g_blocking.kc = b.kc > 0 ? b.kc : kDefaultBlocking.kc;
  g_blocking.mc = b.mc > 0 ? b.mc : kDefaultBlocking.mc;
  g_blocking.nc_chunk = b.nc_chunk > 0 ? b.nc_chunk : kDefaultBlocking.nc_chunk;
  g_blocking.pack_budget = b.pack_budget > 0 ? b.pack_budget : kDefaultBlocking.pack_budget;
}

// ---- building blocks for fused GEMM-shaped kernels (conv3d's implicit GEMM) ----------

const MicroKernel& micro_kernel() {
  static const MicroKernel k = [] {
    KernelChoice c = choose_kernel();
    return MicroKernel{c.fn, c.MR, c.NR,
                       c.fn == ukernel_avx512 ? ukernel_offsets_avx512 : c.fn == ukernel_avx2 ? ukernel_offsets_avx2 : nullptr};
  }();
  return k;
}

void gemm_pack_a(int MR, bool ta, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t k0, int64_t kc,
                 float* out) {
  pack_a(MR, ta, A, lda, i0, mc, k0, kc, out);
}

}  // namespace cpu
}  // namespace ts
