// tessera C++ tests: the optimized GEMM against its reference loop under blockings that
// exercise every path (several K slabs, column chunks, packed-B passes, row/column
// thread splits, transposed packing tails), strided operands, and thread-count
// independence (results bitwise equal for 1 and 2 threads).
#include <vector>

#include "check.h"
#include "core/parallel.h"
#include "cpu/cpu.h"

using namespace ts;

namespace {
std::vector<float> random_floats(size_t n, uint64_t seed) {
  std::vector<float> v(n);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& x : v) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    x = static_cast<float>(static_cast<int64_t>(s % 2001) - 1000) / 1000.0f;
  }
  return v;
}

// Normalized squared error of gemm vs gemm_reference for one case; C has row stride ldc.
double gemm_error(bool ta, bool tb, int64_t M, int64_t N, int64_t K, int64_t pad, float beta, std::vector<float>* out) {
  const int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
  auto A = random_floats(static_cast<size_t>((ta ? K : M) * lda), 1 + M);
  auto B = random_floats(static_cast<size_t>((tb ? N : K) * ldb), 2 + N);
  auto C1 = random_floats(static_cast<size_t>(M * ldc), 3 + K);
  auto C2 = C1;
  cpu::gemm(ta, tb, M, N, K, A.data(), lda, B.data(), ldb, C1.data(), ldc, beta);
  cpu::gemm_reference(ta, tb, M, N, K, A.data(), lda, B.data(), ldb, C2.data(), ldc, beta);
  double err = 0, ref = 0;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < ldc; ++n) {
      double d = C1[m * ldc + n] - C2[m * ldc + n];
      if (n >= N && d != 0) return 1e30;  // wrote outside the [M, N] block
      err += d * d;
      ref += static_cast<double>(C2[m * ldc + n]) * C2[m * ldc + n];
    }
  if (out) *out = C1;
  return err / (ref + 1e-30);
}

struct BlockingScope {
  cpu::GemmBlocking saved = cpu::gemm_blocking();
  explicit BlockingScope(cpu::GemmBlocking b) { cpu::set_gemm_blocking(b); }
  ~BlockingScope() { cpu::set_gemm_blocking(saved); }
};
struct ThreadScope {
  int saved = num_threads();
  explicit ThreadScope(int n) { set_num_threads(n); }
  ~ThreadScope() { set_num_threads(saved); }
};
}  // namespace

TEST(gemm_small_blocking_matches_reference) {
  // kc 20 (not a multiple of the 16-wide transposes), mc 30, chunks of 40 columns,
  // packed B of 3000 floats: many slabs, chunks and column passes even for small shapes.
  BlockingScope scope({20, 30, 40, 3000});
  const int64_t shapes[][3] = {{1, 1, 1}, {5, 7, 13}, {13, 33, 5}, {37, 100, 45}, {100, 37, 64}, {3, 200, 41}, {61, 65, 17}};
  for (int threads : {1, 2}) {
    ThreadScope ts_(threads);
    for (auto& s : shapes)
      for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb)
          for (float beta : {0.0f, 1.0f})
            for (int64_t pad : {0, 3}) {
              double e = gemm_error(ta, tb, s[0], s[1], s[2], pad, beta, nullptr);
              if (!(e <= 1e-10)) {
                std::printf("  M=%lld N=%lld K=%lld ta=%d tb=%d beta=%g pad=%lld threads=%d: nmse %g\n",
                            (long long)s[0], (long long)s[1], (long long)s[2], ta, tb, beta, (long long)pad, threads, e);
              }
              EXPECT(e <= 1e-10);
            }
  }
}

TEST(gemm_default_blocking_matches_reference) {
  const int64_t shapes[][3] = {{300, 70, 600}, {50, 520, 270}, {260, 1100, 33}};
  for (auto& s : shapes)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) EXPECT(gemm_error(ta, tb, s[0], s[1], s[2], 1, 1.0f, nullptr) <= 1e-10);
}

// C = A' B' + bias (each row): the bias starts each tile of the first K slab, so check it
// under blockings with several slabs, chunks, packed-B passes and row/column splits.
TEST(gemm_bias_rows_match_reference) {
  for (auto b : {cpu::GemmBlocking{20, 30, 40, 3000}, cpu::GemmBlocking{0, 0, 0, 0}}) {
    BlockingScope scope(b);
    const int64_t shapes[][3] = {{1, 1, 1}, {5, 7, 13}, {61, 65, 17}, {3, 200, 41}, {300, 70, 600}, {7, 33, 0}};
    for (int threads : {1, 2}) {
      ThreadScope t(threads);
      for (auto& s : shapes)
        for (int tb = 0; tb < 2; ++tb) {
          const int64_t M = s[0], N = s[1], K = s[2], ldc = N + 2;
          auto A = random_floats(static_cast<size_t>(M * std::max<int64_t>(K, 1)), 11 + M);
          auto B = random_floats(static_cast<size_t>(N * std::max<int64_t>(K, 1)), 12 + N);
          auto bias = random_floats(static_cast<size_t>(N), 13 + K);
          std::vector<float> C1(static_cast<size_t>(M * ldc), -7.0f), C2 = C1;
          cpu::gemm(false, tb, M, N, K, A.data(), K, B.data(), tb ? K : N, C1.data(), ldc, 0.0f, bias.data());
          cpu::gemm_reference(false, tb, M, N, K, A.data(), K, B.data(), tb ? K : N, C2.data(), ldc, 0.0f);
          double err = 0, ref = 0;
          bool outside = false;
          for (int64_t m = 0; m < M; ++m)
            for (int64_t n = 0; n < ldc; ++n) {
              float got = C1[m * ldc + n];
              if (n >= N) {
                outside = outside || got != -7.0f;  // the padding columns stay untouched
                continue;
              }
              double want = (K > 0 ? static_cast<double>(C2[m * ldc + n]) : 0.0) + bias[n];
              err += (got - want) * (got - want);
              ref += want * want;
            }
          EXPECT(!outside);
          EXPECT(err / (ref + 1e-30) <= 1e-10);
        }
    }
  }
}

TEST(gemm_is_independent_of_the_thread_count) {
  for (auto b : {cpu::GemmBlocking{20, 30, 40, 3000}, cpu::GemmBlocking{0, 0, 0, 0}}) {
    BlockingScope scope(b);
    for (auto dims : {std::vector<int64_t>{97, 131, 300}, std::vector<int64_t>{7, 300, 50}}) {
      std::vector<float> one, two;
      {
        ThreadScope t(1);
        gemm_error(false, true, dims[0], dims[1], dims[2], 0, 0.0f, &one);
      }
      {
        ThreadScope t(2);
        gemm_error(false, true, dims[0], dims[1], dims[2], 0, 0.0f, &two);
      }
      EXPECT(one == two);
    }
  }
}

TEST_MAIN
