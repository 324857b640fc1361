// tessera CUDA backend: warp-level tensor-core building blocks (sm_80+): bf16
// mma.sync m16n8k16 with float32 accumulators, ldmatrix fragment loads from shared
// memory, cp.async global -> shared copies. Dimension letters: M, N, K of one MMA.
//
// Fragment layouts (PTX ISA, mma.m16n8k16 .bf16; g = lane / 4, t = lane % 4):
//   A (16 x 16, row major) a0: (g, 2t..2t+1)  a1: (g+8, 2t..)  a2: (g, 2t+8..)  a3: (g+8, 2t+8..)
//   B (16 x 8, "col")      b0: (k 2t..2t+1, n g)                b1: (k 2t+8.., n g)
//   C (16 x 8, float)      c0, c1: (g, 2t..2t+1)                c2, c3: (g+8, 2t..2t+1)
// A register holds two bf16, the lower column (or k) index in the low half.
// ldmatrix .x4: lanes 8i..8i+7 give the row addresses of 8x8 matrix i, register i of
// every lane receives matrix i (row g, columns 2t..2t+1; with .trans the transpose).
// The loaders below choose the four matrices so that the registers come out as the
// fragments above; every row address must be 16-byte aligned (row strides of shared
// tiles are multiples of 8 elements, padded by 8 so the 8 rows of a matrix fall in
// different bank groups).
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

namespace ts {
namespace cuda {
namespace mma {

using bf16 = __nv_bfloat16;

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void ldsm_x4(uint32_t r[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t r[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

// c += a b (16x8x16, bf16 in, float32 accumulate).
__device__ __forceinline__ void mma_bf16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats -> one register of two bf16 (lo in the low half), round to nearest even.
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// A fragment (16 x 16 at rows m0, cols k0) of a row-major [M][K] tile, row stride ld.
__device__ __forceinline__ void load_a(uint32_t a[4], const bf16* base, int ld, int m0, int k0) {
  int lane = threadIdx.x & 31, mat = lane >> 3, r = lane & 7;
  ldsm_x4(a, base + (m0 + r + (mat & 1) * 8) * ld + k0 + (mat >> 1) * 8);
}
// A fragment of A = S^T where the tile holds S row-major as [K][M] (rows k, cols m).
__device__ __forceinline__ void load_a_trans(uint32_t a[4], const bf16* base, int ld, int m0, int k0) {
  int lane = threadIdx.x & 31, mat = lane >> 3, r = lane & 7;
  ldsm_x4_trans(a, base + (k0 + r + (mat >> 1) * 8) * ld + m0 + (mat & 1) * 8);
}
// B fragments of two n-blocks (n0 and n0 + 8) x 16 k, from a tile holding B^T
// row-major as [N][K]. b[0], b[1]: n-block n0; b[2], b[3]: n-block n0 + 8.
__device__ __forceinline__ void load_b_nk(uint32_t b[4], const bf16* base, int ld, int n0, int k0) {
  int lane = threadIdx.x & 31, mat = lane >> 3, r = lane & 7;
  ldsm_x4(b, base + (n0 + r + (mat >> 1) * 8) * ld + k0 + (mat & 1) * 8);
}
// The same fragments from a tile holding B row-major as [K][N].
__device__ __forceinline__ void load_b_kn(uint32_t b[4], const bf16* base, int ld, int k0, int n0) {
  int lane = threadIdx.x & 31, mat = lane >> 3, r = lane & 7;
  ldsm_x4_trans(b, base + (k0 + r + (mat & 1) * 8) * ld + n0 + (mat >> 1) * 8);
}

// 16-byte global -> shared copy; when !valid the 16 bytes are zero-filled (src is not
// read, but must still be a mapped address: pass the tensor's base).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  int n = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem), "r"(n));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

}  // namespace mma
}  // namespace cuda
}  // namespace ts
