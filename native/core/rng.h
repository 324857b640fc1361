// tessera core: counter-based RNG (Philox 4x32-10, Salmon et al. 2011).
// Element i of a draw is a pure function of (seed, offset, i), so a seed gives the
// same numbers on any backend and any thread count. Each draw advances the offset
// by the number of 128-bit blocks it used.
//   rand:  element i <- block (offset + i/4), word i%4, u24 * 2^-24 in [0, 1)
//   randn: element i <- block (offset + i/2), Box-Muller on words 0, 1 (in double)
#pragma once
#include <cmath>
#include <cstdint>

namespace ts {

struct Philox4x32 {
  uint32_t c[4];
};

#if defined(__CUDACC__)
#define TS_HD __host__ __device__ inline
#else
#define TS_HD inline
#endif

TS_HD Philox4x32 philox4x32_10(uint64_t counter, uint64_t seed) {
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
    uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
    uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4x32{{c0, c1, c2, c3}};
}

TS_HD float philox_uniform(uint64_t seed, uint64_t offset, uint64_t i) {
  Philox4x32 r = philox4x32_10(offset + i / 4, seed);
  return static_cast<float>(r.c[i % 4] >> 8) * (1.0f / 16777216.0f);
}

TS_HD float philox_normal(uint64_t seed, uint64_t offset, uint64_t i) {
  Philox4x32 r = philox4x32_10(offset + i / 2, seed);
  double u1 = (static_cast<double>(r.c[0] >> 8) + 1.0) * (1.0 / 16777216.0);  // (0, 1]
  double u2 = static_cast<double>(r.c[1] >> 8) * (1.0 / 16777216.0);          // [0, 1)
  double rad = std::sqrt(-2.0 * std::log(u1));
  double th = 6.283185307179586 * u2;
  return static_cast<float>((i % 2 == 0) ? rad * std::cos(th) : rad * std::sin(th));
}

struct Generator {
  uint64_t seed = 0x7e55e7a5eedULL;
  uint64_t offset = 0;  // in 128-bit blocks
  // Reserves blocks for a draw of n elements using `per_block` elements per block.
  uint64_t reserve(uint64_t n, uint64_t per_block) {
    uint64_t o = offset;
    offset += (n + per_block - 1) / per_block;
    return o;
  }
};

Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace ts
