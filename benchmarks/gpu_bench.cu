// tessera GPU benchmark (C++/CUDA, no Node): the tensor-core kernels through their raw
// bf16 entry points, timed with CUDA events (median of repeats after warm-ups).
//   attention  B=2, H=16, N in {4096, 16384}, D in {64, 128}, bf16, forward and backward
//              (non-causal and causal), FLOPs = 4 B H N^2 D (halved when causal),
//              backward counted as 2.5x the forward (FlashAttention's convention)
//   conv3d     3x3x3, padding 1, C in {128, 256}, input [1, C, 17, 64, 64], bf16
//              channels-last operands, float32 outputs: forward, dinp, dweight
//   patchify   float32 [4, 16, 32, 128, 128] -> tokens, patch (1,2,2) and (2,2,2), versus
//              cudaMemcpyAsync device-to-device of the same bytes (read + write counted)
//   gemm       cuBLASLt: bf16 8192^3 (float32 accumulate) and float32 4096^3 (FP32)
// Everything runs on the backend's stream (ts::cuda::stream), as tessera's ops do.
// Usage: gpu_bench [out.json]   (prints a table; writes JSON for benchmarks/gpu_torch.py)
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/conv.h"
#include "cuda/attention.cuh"
#include "cuda/conv3d.cuh"
#include "cuda/gemm.cuh"
#include "cuda/patchify.cuh"
#include "cuda/runtime.cuh"

namespace {

#define CK(x)                                                                                   \
  do {                                                                                          \
    cudaError_t e_ = (x);                                                                       \
    if (e_ != cudaSuccess) {                                                                    \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                             \
    }                                                                                           \
  } while (0)

__global__ void k_fill_bf16(__nv_bfloat16* p, int64_t n, uint32_t seed, float scale) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 15, h *= 2246822519u, h ^= h >> 13, h *= 3266489917u, h ^= h >> 16;
    p[i] = __float2bfloat16((static_cast<float>(h & 0xffffff) / 16777216.0f - 0.5f) * 2.0f * scale);
  }
}
__global__ void k_fill_f32(float* p, int64_t n, uint32_t seed, float scale) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 15, h *= 2246822519u, h ^= h >> 13, h *= 3266489917u, h ^= h >> 16;
    p[i] = (static_cast<float>(h & 0xffffff) / 16777216.0f - 0.5f) * 2.0f * scale;
  }
}

void* dalloc(size_t bytes) {
  void* p = nullptr;
  CK(cudaMalloc(&p, std::max<size_t>(bytes, 256)));
  return p;
}
__nv_bfloat16* rand_bf16(int64_t n, uint32_t seed, float scale = 1.0f) {
  auto* p = static_cast<__nv_bfloat16*>(dalloc(n * 2));
  k_fill_bf16<<<1024, 256>>>(p, n, seed, scale);
  CK(cudaGetLastError());
  CK(cudaDeviceSynchronize());  // filled on the default stream; used on the backend's
  return p;
}
float* rand_f32(int64_t n, uint32_t seed, float scale = 1.0f) {
  auto* p = static_cast<float*>(dalloc(n * 4));
  k_fill_f32<<<1024, 256>>>(p, n, seed, scale);
  CK(cudaGetLastError());
  CK(cudaDeviceSynchronize());
  return p;
}

cudaStream_t g_stream;

// Median milliseconds of fn over `reps` timed runs after `warm` warm-ups.
template <typename F>
double time_ms(F&& fn, int warm = 3, int reps = 10) {
  for (int i = 0; i < warm; ++i) fn();
  CK(cudaStreamSynchronize(g_stream));
  std::vector<double> t;
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  for (int i = 0; i < reps; ++i) {
    CK(cudaEventRecord(a, g_stream));
    fn();
    CK(cudaEventRecord(b, g_stream));
    CK(cudaEventSynchronize(b));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  CK(cudaEventDestroy(a));
  CK(cudaEventDestroy(b));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

struct Row {
  std::string name;
  double ms, tflops, gbps;
};
std::vector<Row> g_rows;

void report(const std::string& name, double ms, double flops, double bytes) {
  Row r{name, ms, flops > 0 ? flops / ms / 1e9 : 0.0, bytes > 0 ? bytes / ms / 1e6 : 0.0};
  g_rows.push_back(r);
  std::printf("%-58s %10.3f ms", name.c_str(), ms);
  if (flops > 0) std::printf(" %9.1f TFLOP/s", r.tflops);
  if (bytes > 0) std::printf(" %9.1f GB/s", r.gbps);
  std::printf("\n");
  std::fflush(stdout);
}

void bench_attention() {
  for (int N : {4096, 16384})
    for (int D : {64, 128})
      for (bool causal : {false, true}) {
        const int B = 2, H = 16;
        const int64_t n = static_cast<int64_t>(B) * N * H * D;
        auto *q = rand_bf16(n, 1), *k = rand_bf16(n, 2), *v = rand_bf16(n, 3), *dout = rand_bf16(n, 4);
        auto* out = static_cast<__nv_bfloat16*>(dalloc(n * 2));
        auto *dq = static_cast<__nv_bfloat16*>(dalloc(n * 2)), *dk = static_cast<__nv_bfloat16*>(dalloc(n * 2)),
             *dv = static_cast<__nv_bfloat16*>(dalloc(n * 2));
        auto* lse = static_cast<float*>(dalloc(static_cast<size_t>(B) * H * N * 4));
        ts::cuda::FlashShape s;
        s.B = B, s.H = H, s.Nq = N, s.Nk = N, s.D = D, s.scale = 1.0f / std::sqrt(static_cast<float>(D));
        s.causal = causal;
        ts::cuda::Rows4 rq{q, static_cast<int64_t>(N) * H * D, static_cast<int64_t>(H) * D, D};
        ts::cuda::Rows4 rk{k, rq.sb, rq.sn, rq.sh}, rv{v, rq.sb, rq.sn, rq.sh};
        void* ws = dalloc(ts::cuda::flash_backward_workspace_bytes(s));
        double flops = 4.0 * B * H * static_cast<double>(N) * N * D * (causal ? 0.5 : 1.0);
        char name[128];
        std::snprintf(name, sizeof name, "attention fwd B=2 H=16 N=%d D=%d%s", N, D, causal ? " causal" : "");
        double ms = time_ms([&] { ts::cuda::flash_forward_bf16(s, rq, rk, rv, out, lse, g_stream); });
        report(name, ms, flops, 0);
        std::snprintf(name, sizeof name, "attention bwd B=2 H=16 N=%d D=%d%s", N, D, causal ? " causal" : "");
        ms = time_ms([&] { ts::cuda::flash_backward_bf16(s, rq, rk, rv, out, dout, lse, dq, dk, dv, ws, g_stream); });
        report(name, ms, 2.5 * flops, 0);
        for (void* p : {static_cast<void*>(q), static_cast<void*>(k), static_cast<void*>(v), static_cast<void*>(dout),
                        static_cast<void*>(out), static_cast<void*>(dq), static_cast<void*>(dk),
                        static_cast<void*>(dv), static_cast<void*>(lse), ws})
          CK(cudaFree(p));
      }
}

void bench_conv3d() {
  for (int C : {128, 256}) {
    ts::Conv3dGeometry g;
    g.B = 1, g.Cin = C, g.Cout = C, g.T = 17, g.H = 64, g.W = 64;
    g.kt = g.kh = g.kw = 3;
    g.st = g.sh = g.sw = 1;
    g.pt0 = g.pt1 = g.ph = g.pw = 1;
    g.To = 17, g.Ho = 64, g.Wo = 64;
    g.replicate = false;
    const int64_t P = g.To * g.Ho * g.Wo, X = g.T * g.H * g.W;
    auto* x_cl = rand_bf16(X * C, 11);
    auto* w_cl = rand_bf16(static_cast<int64_t>(C) * 27 * C, 12, 0.05f);
    auto* wt_cl = rand_bf16(static_cast<int64_t>(C) * 27 * C, 13, 0.05f);
    auto* dout_cl = rand_bf16(P * C, 14);
    auto* bias = rand_f32(C, 15);
    auto* out = static_cast<float*>(dalloc(P * C * 4));
    auto* dinp = static_cast<float*>(dalloc(X * C * 4));
    auto* dw = static_cast<float*>(dalloc(static_cast<int64_t>(C) * C * 27 * 4));
    double flops = 2.0 * P * C * C * 27;
    char name[128];
    std::snprintf(name, sizeof name, "conv3d fwd 3x3x3 C=%d 17x64x64", C);
    report(name, time_ms([&] { ts::cuda::conv3d_forward_bf16(g, x_cl, w_cl, bias, out, g_stream); }), flops, 0);
    std::snprintf(name, sizeof name, "conv3d dinp 3x3x3 C=%d 17x64x64", C);
    report(name, time_ms([&] { ts::cuda::conv3d_dinp_bf16(g, dout_cl, wt_cl, dinp, g_stream); }), flops, 0);
    std::snprintf(name, sizeof name, "conv3d dweight 3x3x3 C=%d 17x64x64", C);
    report(name, time_ms([&] { ts::cuda::conv3d_dweight_bf16(g, dout_cl, x_cl, dw, g_stream); }), flops, 0);
    for (void* p : {static_cast<void*>(x_cl), static_cast<void*>(w_cl), static_cast<void*>(wt_cl),
                    static_cast<void*>(dout_cl), static_cast<void*>(bias), static_cast<void*>(out),
                    static_cast<void*>(dinp), static_cast<void*>(dw)})
      CK(cudaFree(p));
  }
}

void bench_patchify() {
  const int64_t B = 4, C = 16, T = 32, H = 128, W = 128;
  const int64_t n = B * C * T * H * W;
  float* x = rand_f32(n, 21);
  float* tok = static_cast<float*>(dalloc(n * 4));
  double bytes = 2.0 * n * 4;
  report("d2d copy (cudaMemcpyAsync) 4x16x32x128x128 f32",
         time_ms([&] { CK(cudaMemcpyAsync(tok, x, n * 4, cudaMemcpyDeviceToDevice, g_stream)); }), 0, bytes);
  const int64_t xs[5] = {C * T * H * W, T * H * W, H * W, W, 1};
  const int64_t patches[2][3] = {{1, 2, 2}, {2, 2, 2}};
  for (auto& p : patches) {
    char name[128];
    std::snprintf(name, sizeof name, "patchify [%lld,%lld,%lld] 4x16x32x128x128 f32", static_cast<long long>(p[0]),
                  static_cast<long long>(p[1]), static_cast<long long>(p[2]));
    report(name, time_ms([&] { ts::cuda::patchify_launch(tok, x, xs, B, C, T, H, W, p[0], p[1], p[2], g_stream); }), 0,
           bytes);
  }
  CK(cudaFree(x));
  CK(cudaFree(tok));
}

void bench_gemm() {
  if (!ts::cuda::have_cublas()) {
    std::printf("gemm: skipped (built without cuBLAS)\n");
    return;
  }
  {
    const int64_t n = 8192;
    auto *a = rand_bf16(n * n, 31), *b = rand_bf16(n * n, 32);
    auto* c = static_cast<__nv_bfloat16*>(dalloc(n * n * 2));
    report("gemm bf16 8192x8192x8192",
           time_ms([&] { ts::cuda::gemm_bf16(false, false, n, n, n, a, n, 0, b, n, 0, c, n, 0, 1, 0.0f, g_stream); }),
           2.0 * n * n * n, 0);
    CK(cudaFree(a));
    CK(cudaFree(b));
    CK(cudaFree(c));
  }
  {
    const int64_t n = 4096;
    float *a = rand_f32(n * n, 33), *b = rand_f32(n * n, 34);
    float* c = static_cast<float*>(dalloc(n * n * 4));
    report("gemm f32 (FP32, no TF32) 4096x4096x4096",
           time_ms([&] { ts::cuda::gemm(false, false, n, n, n, a, n, 0, b, n, 0, c, n, 0, 1, 0.0f); }),
           2.0 * n * n * n, 0);
    CK(cudaFree(a));
    CK(cudaFree(b));
    CK(cudaFree(c));
  }
}

}  // namespace

int main(int argc, char** argv) {
  int dev = 0;
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
    std::fprintf(stderr, "gpu_bench: no CUDA device\n");
    return 1;
  }
  CK(cudaSetDevice(dev));
  // The backend's own stream: the raw entry points take workspaces from the caching
  // allocator, which reuses blocks in the order of that one stream.
  g_stream = ts::cuda::stream(dev);
  std::printf("device: %s (sm_%d%d, %d SMs)\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount);
  const char* only = std::getenv("GPU_BENCH_ONLY");  // attention | conv3d | patchify | gemm
  auto want = [&](const char* w) { return !only || std::string(only).find(w) != std::string::npos; };
  try {
    if (want("attention")) bench_attention();
    if (want("conv3d")) bench_conv3d();
    if (want("patchify")) bench_patchify();
    if (want("gemm")) bench_gemm();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpu_bench: %s\n", e.what());
    return 1;
  }
  if (argc > 1) {
    FILE* f = std::fopen(argv[1], "w");
    if (!f) return 1;
    std::fprintf(f, "{\n  \"device\": \"%s\",\n  \"cases\": [\n", prop.name);
    for (size_t i = 0; i < g_rows.size(); ++i)
      std::fprintf(f, "    {\"name\": \"%s\", \"ms\": %.6f, \"tflops\": %.3f, \"gbps\": %.3f}%s\n",
                   g_rows[i].name.c_str(), g_rows[i].ms, g_rows[i].tflops, g_rows[i].gbps,
                   i + 1 < g_rows.size() ? "," : "");
    std::fprintf(f, "  ]\n}\n");
    std::fclose(f);
  }
  return 0;
}
