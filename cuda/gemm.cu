// tessera CUDA backend: GEMM via cuBLASLt (one handle and one 32 MiB workspace per
// device, heuristics cached per problem). Row-major C = A' B' is computed as the
// column-major C^T = B'^T A'^T: cuBLASLt's A operand is our B, its B is our A, and each
// row-major matrix is read as its column-major transpose (no copies). Alignments of
// the actual pointers, leading dims and batch strides are passed to the heuristic so
// views at any offset are safe. Strided batches (stride 0 broadcasts an operand).
// The heuristic is asked for several algorithms, tried in its order until one runs
// (an algorithm can be refused at run time, e.g. for a workspace or alignment it did
// not foresee); the one that ran is cached per problem.
#include "gemm.cuh"

#if __has_include(<cublasLt.h>)
#include <cublasLt.h>

#include <map>
#include <mutex>
#include <tuple>

#include "common.cuh"
#include "core/precision.h"

namespace ts {
namespace cuda {

namespace {

constexpr size_t kWorkspace = 32u << 20;

void lt_check(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS) fail("matmul", "cuBLASLt ", what, " failed with status ", static_cast<int>(st));
}

struct LtDevice {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
};

LtDevice& lt_device(int dev) {
  static std::mutex mu;
  static std::map<int, LtDevice> devs;
  std::lock_guard<std::mutex> lk(mu);
  LtDevice& d = devs[dev];
  if (!d.handle) {
    lt_check(cublasLtCreate(&d.handle), "cublasLtCreate");
    d.workspace = cached_alloc(kWorkspace, dev, "matmul");  // held for the process's life
    if (!d.workspace) fail("matmul", "out of memory allocating the cuBLASLt workspace");
  }
  return d;
}

uint32_t alignment(const void* p, int64_t ld, int64_t stride, int64_t batch, int64_t elem) {
  uint64_t v = reinterpret_cast<uint64_t>(p) | static_cast<uint64_t>(ld * elem);
  if (batch > 1 && stride) v |= static_cast<uint64_t>(stride * elem);
  uint32_t a = 256;
  while (a > 1 && (v & (a - 1))) a >>= 1;
  return a;
}

using AlgoKey = std::tuple<int, int, int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                           int64_t, int64_t, int, int, int, uint32_t, uint32_t, uint32_t>;

struct Layout {
  cublasLtMatrixLayout_t l = nullptr;
  Layout(cudaDataType_t t, int64_t rows, int64_t cols, int64_t ld, int64_t batch, int64_t stride) {
    lt_check(cublasLtMatrixLayoutCreate(&l, t, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld),
             "cublasLtMatrixLayoutCreate");
    if (batch > 1) {
      int32_t n = static_cast<int32_t>(batch);
      lt_check(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &n, sizeof(n)),
               "layout batch count");
      lt_check(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                sizeof(stride)),
               "layout batch stride");
    }
  }
  ~Layout() {
    if (l) cublasLtMatrixLayoutDestroy(l);
  }
};

void lt_matmul(cudaStream_t s, int dev, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void* a, int64_t lda,
               int64_t sa, const void* b, int64_t ldb, int64_t sb, void* c, int64_t ldc, int64_t sc, int64_t batch,
               float beta, cudaDataType_t ab_type, cudaDataType_t c_type, cublasComputeType_t compute, int64_t elem_ab,
               int64_t elem_c) {
  LtDevice& d = lt_device(dev);
  cublasLtMatmulDesc_t op = nullptr;
  lt_check(cublasLtMatmulDescCreate(&op, compute, CUDA_R_32F), "cublasLtMatmulDescCreate");
  struct OpGuard {
    cublasLtMatmulDesc_t o;
    ~OpGuard() { cublasLtMatmulDescDestroy(o); }
  } op_guard{op};
  cublasOperation_t opA = tb ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLAS's A is our B
  cublasOperation_t opB = ta ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLAS's B is our A
  lt_check(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof(opA)), "transa");
  lt_check(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof(opB)), "transb");
  // Column-major views: our B [K, N] (ld ldb) is N x K; our B^T-stored [N, K] is K x N.
  Layout Al(ab_type, tb ? K : N, tb ? N : K, ldb, batch, sb);
  Layout Bl(ab_type, ta ? M : K, ta ? K : M, lda, batch, sa);
  Layout Cl(c_type, N, M, ldc, batch, sc);
  uint32_t al_a = alignment(b, ldb, sb, batch, elem_ab), al_b = alignment(a, lda, sa, batch, elem_ab);
  uint32_t al_c = alignment(c, ldc, sc, batch, elem_c);

  static std::mutex mu;
  static std::map<AlgoKey, cublasLtMatmulAlgo_t> cache;
  float alpha = 1.0f;
  auto run = [&](const cublasLtMatmulAlgo_t& algo) {
    return cublasLtMatmul(d.handle, op, &alpha, b, Al.l, a, Bl.l, &beta, c, Cl.l, c, Cl.l, &algo, d.workspace,
                          kWorkspace, s);
  };
  AlgoKey key{dev,   ta,    tb,    M,   N,     K, lda, ldb, ldc, sa, sb, sc, batch, static_cast<int>(ab_type),
              static_cast<int>(c_type), static_cast<int>(compute), al_a, al_b, al_c};
  {
    std::unique_lock<std::mutex> lk(mu);
    auto it = cache.find(key);
    if (it != cache.end()) {
      cublasLtMatmulAlgo_t algo = it->second;
      lk.unlock();
      lt_check(run(algo), "cublasLtMatmul");
      return;
    }
  }
  cublasLtMatmulPreference_t pref = nullptr;
  lt_check(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
  struct PrefGuard {
    cublasLtMatmulPreference_t p;
    ~PrefGuard() { cublasLtMatmulPreferenceDestroy(p); }
  } pref_guard{pref};
  uint64_t ws = kWorkspace;
  lt_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)),
           "preference workspace");
  lt_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof(al_a)),
           "preference alignment");
  lt_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof(al_b)),
           "preference alignment");
  lt_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof(al_c)),
           "preference alignment");
  lt_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof(al_c)),
           "preference alignment");
  constexpr int kAlgos = 8;
  cublasLtMatmulHeuristicResult_t res[kAlgos];
  int count = 0;
  lt_check(cublasLtMatmulAlgoGetHeuristic(d.handle, op, Al.l, Bl.l, Cl.l, Cl.l, pref, kAlgos, res, &count),
           "heuristic");
  cublasStatus_t last = CUBLAS_STATUS_NOT_SUPPORTED;
  int tried = 0;
  for (int i = 0; i < count; ++i) {
    if (res[i].state != CUBLAS_STATUS_SUCCESS) continue;
    ++tried;
    last = run(res[i].algo);
    if (last == CUBLAS_STATUS_SUCCESS) {
      std::lock_guard<std::mutex> lk(mu);
      cache[key] = res[i].algo;
      return;
    }
  }
  if (tried == 0) fail("matmul", "cuBLASLt found no algorithm for M=", M, ", N=", N, ", K=", K);
  fail("matmul", "cuBLASLt: none of the ", tried, " algorithms its heuristic proposed ran for M=", M, ", N=", N,
       ", K=", K, " (last status ", static_cast<int>(last), ")");
}

__global__ void k_zero_batched(float* c, int64_t M, int64_t N, int64_t ldc, int64_t sc, int64_t batch) {
  int64_t total = batch * M * N;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t b = i / (M * N), r = (i / N) % M, col = i % N;
    c[b * sc + r * ldc + col] = 0.0f;
  }
}

// out [M, N]: every row a copy of bias [N] (linear_forward's starting point).
__global__ void k_fill_rows(float* out, const float* bias, int64_t M, int64_t N) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < M * N;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = bias[i % N];
}

}  // namespace

bool have_cublas() { return true; }

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, int64_t sa, const float* b,
          int64_t ldb, int64_t sb, float* c, int64_t ldc, int64_t sc, int64_t batch, float beta) {
  if (M == 0 || N == 0 || batch == 0) return;
  int dev = 0;
  cudaStream_t s = prepare_ptr(c, &dev);
  if (K == 0) {  // C = beta C: nothing to add
    if (beta == 0.0f) {
      k_zero_batched<<<grid_for(batch * M * N), kThreads, 0, s>>>(c, M, N, ldc, sc, batch);
      check_launch("matmul");
    }
    return;
  }
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  switch (float32_matmul_precision()) {
    case MatmulPrecision::Highest: compute = CUBLAS_COMPUTE_32F; break;
    case MatmulPrecision::High: compute = CUBLAS_COMPUTE_32F_FAST_TF32; break;
    case MatmulPrecision::Medium: compute = CUBLAS_COMPUTE_32F_FAST_16BF; break;
  }
  lt_matmul(s, dev, ta, tb, M, N, K, a, lda, sa, b, ldb, sb, c, ldc, sc, batch, beta, CUDA_R_32F, CUDA_R_32F, compute,
            4, 4);
}

void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t M, int64_t K,
                    int64_t N) {
  if (M == 0 || N == 0) return;
  float beta = 0.0f;
  if (bias) {
    int dev = 0;
    cudaStream_t s = prepare_ptr(out, &dev);
    k_fill_rows<<<grid_for(M * N), kThreads, 0, s>>>(out, bias, M, N);
    check_launch("linear");
    beta = 1.0f;
  }
  gemm(false, true, M, N, K, inp, K, 0, weight, K, 0, out, N, 0, 1, beta);
}

void gemm_bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void* a, int64_t lda, int64_t sa,
               const void* b, int64_t ldb, int64_t sb, void* c, int64_t ldc, int64_t sc, int64_t batch, float beta,
               void* stream) {
  if (M == 0 || N == 0 || batch == 0 || K == 0) return;
  int dev = 0;
  check(cudaGetDevice(&dev), "matmul");
  lt_matmul(static_cast<cudaStream_t>(stream), dev, ta, tb, M, N, K, a, lda, sa, b, ldb, sb, c, ldc, sc, batch, beta,
            CUDA_R_16BF, CUDA_R_16BF, CUBLAS_COMPUTE_32F, 2, 2);
}

}  // namespace cuda
}  // namespace ts

#else  // no cuBLASLt header: the objects still compile (CI), matmul reports why it is missing

#include "core/error.h"

namespace ts {
namespace cuda {

bool have_cublas() { return false; }

void gemm(bool, bool, int64_t, int64_t, int64_t, const float*, int64_t, int64_t, const float*, int64_t, int64_t, float*,
          int64_t, int64_t, int64_t, float) {
  fail("matmul", "not supported (built without cuBLAS)");
}
void gemm_bf16(bool, bool, int64_t, int64_t, int64_t, const void*, int64_t, int64_t, const void*, int64_t, int64_t,
               void*, int64_t, int64_t, int64_t, float, void*) {
  fail("matmul", "not supported (built without cuBLAS)");
}
void linear_forward(float*, const float*, const float*, const float*, int64_t, int64_t, int64_t) {
  fail("linear", "not supported (built without cuBLAS)");
}

}  // namespace cuda
}  // namespace ts

#endif
