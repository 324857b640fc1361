// tessera CUDA backend: fused AdamW. One pass reads param, m, v, grad and writes param,
// m, v (28 bytes per element): memory bound, so 16-byte accesses (float4) when the
// four pointers allow, a scalar loop otherwise. The scalars are rounded to float on the
// host exactly as cpu/adamw.cc does, and the per-element arithmetic is the CPU's:
//   m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g;  denom = sqrt(v) / sqrt(bc2) + eps
//   param = param*(1 - lr*wd) + (-lr/bc1) * m / denom
// Memory contract: param, m, v overwritten in place; grad read.
#include <algorithm>
#include <cmath>
#include <vector>

#include "adamw.cuh"
#include "common.cuh"

namespace ts {
namespace cuda {

namespace {
struct Scalars {
  float decay, beta1, one_minus_beta1, beta2, one_minus_beta2, neg_step_size, bc2_sqrt, eps;
};

__device__ __forceinline__ void step1(float& p, float& m, float& v, float g, const Scalars& s) {
  float mi = m * s.beta1 + s.one_minus_beta1 * g;
  float vi = v * s.beta2 + s.one_minus_beta2 * g * g;
  float denom = sqrtf(vi) / s.bc2_sqrt + s.eps;
  p = p * s.decay + s.neg_step_size * mi / denom;
  m = mi;
  v = vi;
}

__global__ void k_adamw4(float4* __restrict__ p, float4* __restrict__ m, float4* __restrict__ v,
                         const float4* __restrict__ g, int64_t n4, Scalars s) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n4;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float4 pp = p[i], mm = m[i], vv = v[i], gg = g[i];
    step1(pp.x, mm.x, vv.x, gg.x, s);
    step1(pp.y, mm.y, vv.y, gg.y, s);
    step1(pp.z, mm.z, vv.z, gg.z, s);
    step1(pp.w, mm.w, vv.w, gg.w, s);
    p[i] = pp;
    m[i] = mm;
    v[i] = vv;
  }
}

__global__ void k_adamw(float* __restrict__ p, float* __restrict__ m, float* __restrict__ v,
                        const float* __restrict__ g, int64_t begin, int64_t n, Scalars s) {
  for (int64_t i = begin + blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float pp = p[i], mm = m[i], vv = v[i];
    step1(pp, mm, vv, g[i], s);
    p[i] = pp;
    m[i] = mm;
    v[i] = vv;
  }
}

bool a16(const void* q) { return (reinterpret_cast<uintptr_t>(q) & 15) == 0; }

constexpr int kSumBlocks = 256;

__global__ void k_sum_squares_part(double* __restrict__ part, const float* __restrict__ x, int64_t n) {
  __shared__ double sd[32];
  double acc = 0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    acc += static_cast<double>(x[i]) * x[i];
  acc = block_sum(acc, sd);
  if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

// One thread adds the block partials to *acc in order: the same value for any launch
// order, with no host round trip.
__global__ void k_sum_partials(double* __restrict__ acc, const double* __restrict__ part, int parts) {
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    double t = 0;
    for (int i = 0; i < parts; ++i) t += part[i];
    *acc += t;
  }
}

__global__ void k_clip_scale(float* __restrict__ x, int64_t n, const double* __restrict__ sumsq, double max_norm) {
  const double norm = sqrt(*sumsq);
  const double coef = max_norm / (norm + 1e-6);
  if (!isfinite(norm) || !(coef < 1)) return;
  const float s = static_cast<float>(coef);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] *= s;
}

__global__ void k_scale(float* __restrict__ x, int64_t n, float s) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] *= s;
}

__global__ void k_ema(float* __restrict__ shadow, const float* __restrict__ param, int64_t n, float decay,
                      float one_minus_decay) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    shadow[i] = shadow[i] * decay + param[i] * one_minus_decay;
}
}  // namespace

void sum_squares(double* acc, const float* x, int64_t n) {
  if (n <= 0) return;
  int dev = 0;
  cudaStream_t st = prepare_ptr(x, &dev);
  const int parts = static_cast<int>(std::min<int64_t>(kSumBlocks, (n + kThreads - 1) / kThreads));
  Tensor part = workspace(parts, DType::Float64, dev, "sumOfSquares");
  k_sum_squares_part<<<parts, kThreads, 0, st>>>(part.data<double>(), x, n);
  check_launch("sumOfSquares");
  k_sum_partials<<<1, 32, 0, st>>>(acc, part.data<double>(), parts);
  check_launch("sumOfSquares");
}

void clip_scale(float* x, int64_t n, const double* sumsq, double max_norm) {
  if (n <= 0) return;
  cudaStream_t st = prepare_ptr(x);
  k_clip_scale<<<grid_for(n), kThreads, 0, st>>>(x, n, sumsq, max_norm);
  check_launch("clipByNorm_");
}

void scale_inplace(float* x, int64_t n, float s) {
  if (n <= 0) return;
  cudaStream_t st = prepare_ptr(x);
  k_scale<<<grid_for(n), kThreads, 0, st>>>(x, n, s);
  check_launch("scale_");
}

void ema_update(float* shadow, const float* param, int64_t n, float decay, float one_minus_decay) {
  if (n <= 0) return;
  cudaStream_t st = prepare_ptr(shadow);
  k_ema<<<grid_for(n), kThreads, 0, st>>>(shadow, param, n, decay, one_minus_decay);
  check_launch("emaUpdate");
}

void adamw(float* param, float* m, float* v, const float* grad, int64_t n, double lr, double beta1, double beta2,
           double eps, double wd, double bc1, double bc2) {
  if (!n) return;
  cudaStream_t st = prepare_ptr(param);
  Scalars s{static_cast<float>(1.0 - lr * wd), static_cast<float>(beta1),       static_cast<float>(1.0 - beta1),
            static_cast<float>(beta2),         static_cast<float>(1.0 - beta2), static_cast<float>(-(lr / bc1)),
            static_cast<float>(std::sqrt(bc2)), static_cast<float>(eps)};
  int64_t done = 0;
  if (a16(param) && a16(m) && a16(v) && a16(grad) && n >= 4) {
    int64_t n4 = n / 4;
    k_adamw4<<<grid_for(n4), kThreads, 0, st>>>(reinterpret_cast<float4*>(param), reinterpret_cast<float4*>(m),
                                                reinterpret_cast<float4*>(v), reinterpret_cast<const float4*>(grad),
                                                n4, s);
    check_launch("adamw");
    done = n4 * 4;
  }
  if (done < n) {
    k_adamw<<<grid_for(n - done), kThreads, 0, st>>>(param, m, v, grad, done, n, s);
    check_launch("adamw");
  }
}

}  // namespace cuda
}  // namespace ts
