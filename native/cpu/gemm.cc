// tessera CPU: single-precision GEMM, row-major. C = A' B' (+ C when beta = 1).
// Optimized path (BLIS-style): B is packed into kc x NR panels, A into kc x MR
// panels, and a register-blocked micro-kernel (AVX-512 12x32 or AVX2 6x16, chosen at
// run time) computes each MR x NR tile. Threads split M blocks (and N panels when
// M is short). The reference loop stays for checking.
#include <immintrin.h>

#include <algorithm>
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

constexpr int64_t kKC = 384;
constexpr int64_t kMC = 96;
constexpr int64_t kNC = 3072;

// Packs rows [i0, i0+mc) x cols [k0, k0+kc) of A' into panels of MR rows: [panel][k][MR].
void pack_a(int MR, bool ta, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* out) {
  for (int64_t ip = 0; ip < mc; ip += MR) {
    int64_t rows = std::min<int64_t>(MR, mc - ip);
    float* dst = out + ip * kc;
    if (!ta) {
      for (int64_t r = 0; r < rows; ++r) {
        const float* src = A + (i0 + ip + r) * lda + k0;
        for (int64_t k = 0; k < kc; ++k) dst[k * MR + r] = src[k];
      }
    } else {
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = A + (k0 + k) * lda + i0 + ip;
        for (int64_t r = 0; r < rows; ++r) dst[k * MR + r] = src[r];
      }
    }
    for (int64_t r = rows; r < MR; ++r)
      for (int64_t k = 0; k < kc; ++k) dst[k * MR + r] = 0.0f;
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
  } else {
    for (int64_t c = 0; c < cols; ++c) {
      const float* src = B + (col0 + c) * ldb + k0;
      for (int64_t k = 0; k < kc; ++k) dst[k * NR + c] = src[k];
    }
    for (int64_t c = cols; c < NR; ++c)
      for (int64_t k = 0; k < kc; ++k) dst[k * NR + c] = 0.0f;
  }
}

// Writes an MR x NR accumulator tile held in `tile` into C (valid mr x nr), adding when acc.
inline void store_tile(const float* tile, int NR, float* C, int64_t ldc, int mr, int nr, bool acc) {
  for (int r = 0; r < mr; ++r)
    for (int c = 0; c < nr; ++c) C[r * ldc + c] = tile[r * NR + c] + (acc ? C[r * ldc + c] : 0.0f);
}

__attribute__((target("avx512f,fma"))) void ukernel_avx512(int64_t kc, const float* a, const float* b, float* C,
                                                             int64_t ldc, int mr, int nr, bool acc) {
  constexpr int MR = 12;
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 12
  for (int r = 0; r < MR; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kc; ++p) {
    __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 12
    for (int r = 0; r < MR; ++r) {
      __m512 av = _mm512_set1_ps(a[r]);
      c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
      c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
    }
    a += MR;
    b += 32;
  }
  if (mr == MR && nr == 32) {
#pragma GCC unroll 12
    for (int r = 0; r < MR; ++r) {
      float* cr = C + r * ldc;
      if (acc) {
        c0[r] = _mm512_add_ps(c0[r], _mm512_loadu_ps(cr));
        c1[r] = _mm512_add_ps(c1[r], _mm512_loadu_ps(cr + 16));
      }
      _mm512_storeu_ps(cr, c0[r]);
      _mm512_storeu_ps(cr + 16, c1[r]);
    }
  } else {
    alignas(64) float tile[MR * 32];
    for (int r = 0; r < MR; ++r) {
      _mm512_store_ps(tile + r * 32, c0[r]);
      _mm512_store_ps(tile + r * 32 + 16, c1[r]);
    }
    store_tile(tile, 32, C, ldc, mr, nr, acc);
  }
}

__attribute__((target("avx2,fma"))) void ukernel_avx2(int64_t kc, const float* a, const float* b, float* C,
                                                        int64_t ldc, int mr, int nr, bool acc) {
  constexpr int MR = 6;
  __m256 c0[MR], c1[MR];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) c0[r] = c1[r] = _mm256_setzero_ps();
  for (int64_t p = 0; p < kc; ++p) {
    __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      __m256 av = _mm256_broadcast_ss(a + r);
      c0[r] = _mm256_fmadd_ps(av, b0, c0[r]);
      c1[r] = _mm256_fmadd_ps(av, b1, c1[r]);
    }
    a += MR;
    b += 16;
  }
  if (mr == MR && nr == 16) {
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      float* cr = C + r * ldc;
      if (acc) {
        c0[r] = _mm256_add_ps(c0[r], _mm256_loadu_ps(cr));
        c1[r] = _mm256_add_ps(c1[r], _mm256_loadu_ps(cr + 8));
      }
      _mm256_storeu_ps(cr, c0[r]);
      _mm256_storeu_ps(cr + 8, c1[r]);
    }
  } else {
    alignas(32) float tile[MR * 16];
    for (int r = 0; r < MR; ++r) {
      _mm256_store_ps(tile + r * 16, c0[r]);
      _mm256_store_ps(tile + r * 16 + 8, c1[r]);
    }
    store_tile(tile, 16, C, ldc, mr, nr, acc);
  }
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
          float* C, int64_t ldc, float beta) {
  if (M == 0 || N == 0) return;
  if (reference_kernels()) return gemm_reference(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, beta);
  if (K == 0) {
    if (beta == 0.0f)
      for (int64_t m = 0; m < M; ++m) std::memset(C + m * ldc, 0, static_cast<size_t>(N) * sizeof(float));
    return;
  }
  static const KernelChoice kc_choice = choose_kernel();
  const int MR = kc_choice.MR, NR = kc_choice.NR;
  const UKernel uk = kc_choice.fn;
  const int nt = num_threads();
  int64_t ncmax = std::min<int64_t>(kNC, (N + NR - 1) / NR * NR);
  // Packing buffers: B in the caller's scratch; A in each worker's own scratch.
  float* bpack = scratch_as<float>(0, static_cast<size_t>(kKC * ncmax));

  for (int64_t jc = 0; jc < N; jc += kNC) {
    int64_t nc = std::min<int64_t>(kNC, N - jc);
    int64_t npanels = (nc + NR - 1) / NR;
    for (int64_t pc = 0; pc < K; pc += kKC) {
      int64_t kc = std::min<int64_t>(kKC, K - pc);
      bool acc = pc > 0 || beta != 0.0f;
      float* bp = bpack;
      parallel_for(0, npanels, 4, [&](int64_t lo, int64_t hi) {
        for (int64_t jp = lo; jp < hi; ++jp)
          pack_b_panel(NR, tb, B, ldb, pc, kc, jc + jp * NR, std::min<int64_t>(NR, nc - jp * NR), bp + jp * kc * NR);
      });
      int64_t mblocks = (M + kMC - 1) / kMC;
      int64_t nsplit = std::max<int64_t>(1, std::min<int64_t>(npanels, (2 * nt + mblocks - 1) / mblocks));
      int64_t tasks = mblocks * nsplit;
      int64_t chunks = std::min<int64_t>(nt, tasks);
#ifdef _OPENMP
#pragma omp parallel for num_threads(static_cast<int>(chunks)) schedule(static, 1) if (chunks > 1)
#endif
      for (int64_t ch = 0; ch < chunks; ++ch) {
        float* ap = scratch_as<float>(1, static_cast<size_t>(kMC * kKC));
        int64_t last_mb = -1;
        for (int64_t t = tasks * ch / chunks; t < tasks * (ch + 1) / chunks; ++t) {
          int64_t mb = t / nsplit, part = t % nsplit;
          int64_t ic = mb * kMC, mc = std::min<int64_t>(kMC, M - ic);
          if (mb != last_mb) {
            pack_a(MR, ta, A, lda, ic, mc, pc, kc, ap);
            last_mb = mb;
          }
          int64_t p0 = npanels * part / nsplit, p1 = npanels * (part + 1) / nsplit;
          for (int64_t jp = p0; jp < p1; ++jp) {
            int64_t j = jp * NR;
            int nr = static_cast<int>(std::min<int64_t>(NR, nc - j));
            for (int64_t ir = 0; ir < mc; ir += MR) {
              int mr = static_cast<int>(std::min<int64_t>(MR, mc - ir));
              uk(kc, ap + ir * kc, bp + jp * kc * NR, C + (ic + ir) * ldc + jc + j, ldc, mr, nr, acc);
            }
          }
        }
      }
    }
  }
}

// ---- building blocks for fused GEMM-shaped kernels (conv3d's implicit GEMM) ----------

const MicroKernel& micro_kernel() {
  static const MicroKernel k = [] {
    KernelChoice c = choose_kernel();
    return MicroKernel{c.fn, c.MR, c.NR};
  }();
  return k;
}

void gemm_pack_a(int MR, bool ta, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t k0, int64_t kc,
                 float* out) {
  pack_a(MR, ta, A, lda, i0, mc, k0, kc, out);
}

}  // namespace cpu
}  // namespace ts
