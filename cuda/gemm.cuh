// tessera CUDA backend: GEMM through cuBLASLt. Row-major operands as in Backend::gemm:
// C[b] = A'[b] B'[b] (+ C[b] when beta = 1), A' = A or A^T ([M, K]), B' likewise
// ([K, N]). Dimension letters: M, N, K, batch.
// Compiled against cuBLASLt only when its header is present (the build that links
// cuBLAS); otherwise every entry point reports "matmul: not supported (built without
// cuBLAS)".
#pragma once
#include <cstdint>

namespace ts {
namespace cuda {

// float32 operands. The arithmetic follows float32_matmul_precision(): Highest = FP32
// (no tensor cores), High = TF32 tensor cores, Medium = BF16 tensor cores; float32
// accumulate and float32 C in every case.
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, int64_t stride_a,
          const float* b, int64_t ldb, int64_t stride_b, float* c, int64_t ldc, int64_t stride_c, int64_t batch,
          float beta);

// bfloat16 A, B and C (raw device pointers), float32 accumulate, on `stream` (a
// cudaStream_t) of the current device. For the benchmarks and bf16 callers.
void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const void* a, int64_t lda,
               int64_t stride_a, const void* b, int64_t ldb, int64_t stride_b, void* c, int64_t ldc, int64_t stride_c,
               int64_t batch, float beta, void* stream);

// out [M, N] = inp [M, K] @ weight [N, K]^T (+ bias [N] on every row, null for none):
// the rows of out start from the bias, then one GEMM accumulates into them (beta = 1).
void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t M, int64_t K,
                    int64_t N);

bool have_cublas();

}  // namespace cuda
}  // namespace ts
