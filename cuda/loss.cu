// tessera CUDA backend: losses.
//   mse: l_i = (a_i - b_i)^2, dl/da = 2 (a - b);  l1: l_i = |a_i - b_i|, dl/da = sign(a - b)
//   Mean divides by n, Sum adds; db = -da.
//   KL:  out = 0.5 * sum(mean^2 + exp(logvar) - 1 - logvar) / B,
//        dmean = dout * mean / B, dlogvar = 0.5 * dout * (exp(logvar) - 1) / B.
// Scalar results: each block adds its grid-stride share in double, a second one-block
// pass adds the block partials in order (deterministic). dout of a scalar loss is read
// on the device (no host round trip). Memory contract: outputs overwritten.
#include "common.cuh"
#include "loss.cuh"

namespace ts {
namespace cuda {

namespace {

constexpr int kSumBlocks = 512;

__device__ __forceinline__ float loss_f(LossKind k, float d) { return k == LossKind::Mse ? d * d : fabsf(d); }
__device__ __forceinline__ float loss_df(LossKind k, float d) {
  return k == LossKind::Mse ? 2.0f * d : (d > 0 ? 1.0f : (d < 0 ? -1.0f : 0.0f));
}

// term(i) in double, summed per block into part[blockIdx.x].
struct LossTerm {
  LossKind kind;
  const float* a;
  const float* b;
  __device__ double operator()(int64_t i) const { return loss_f(kind, a[i] - b[i]); }
};
struct KlTerm {
  const float* m;
  const float* lv;
  __device__ double operator()(int64_t i) const {
    double mi = m[i], li = lv[i];
    return mi * mi + exp(li) - 1.0 - li;
  }
};

template <typename F>
__global__ void k_sum_part(double* __restrict__ part, F f, int64_t n) {
  __shared__ double sd[32];
  double acc = 0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    acc += f(i);
  acc = block_sum(acc, sd);
  if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

// out[0] = total * mul / div.
__global__ void k_sum_finish(float* __restrict__ out, const double* __restrict__ part, int parts, double mul,
                             double div) {
  __shared__ double sd[32];
  double acc = 0;
  for (int i = threadIdx.x; i < parts; i += blockDim.x) acc += part[i];
  acc = block_sum(acc, sd);
  if (threadIdx.x == 0) out[0] = static_cast<float>(mul * acc / div);
}

template <typename F>
void scalar_sum(float* out, F f, int64_t n, double mul, double div, const char* op) {
  int dev = 0;
  cudaStream_t s = prepare_ptr(out, &dev);
  int parts = static_cast<int>(std::min<int64_t>(kSumBlocks, std::max<int64_t>(1, (n + kThreads - 1) / kThreads)));
  Tensor part = workspace(parts, DType::Float64, dev, op);
  k_sum_part<<<parts, kThreads, 0, s>>>(part.data<double>(), f, n);
  check_launch(op);
  k_sum_finish<<<1, kThreads, 0, s>>>(out, part.data<double>(), parts, mul, div);
  check_launch(op);
}

__global__ void k_loss_none(LossKind kind, float* __restrict__ out, const float* __restrict__ a,
                            const float* __restrict__ b, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = loss_f(kind, a[i] - b[i]);
}

__global__ void k_loss_bwd(LossKind kind, Reduction r, float* __restrict__ da, float* __restrict__ db,
                           const float* __restrict__ dout, const float* __restrict__ a, const float* __restrict__ b,
                           int64_t n) {
  float c = r == Reduction::None ? 1.0f : (r == Reduction::Mean ? dout[0] / static_cast<float>(n) : dout[0]);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float g = loss_df(kind, a[i] - b[i]) * (r == Reduction::None ? dout[i] : c);
    da[i] = g;
    db[i] = -g;
  }
}

__global__ void k_kl_bwd(float* __restrict__ dm, float* __restrict__ dlv, const float* __restrict__ dout,
                         const float* __restrict__ m, const float* __restrict__ lv, int64_t B, int64_t n) {
  float c = dout[0] / static_cast<float>(B);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    dm[i] = c * m[i];
    dlv[i] = 0.5f * c * (expf(lv[i]) - 1.0f);
  }
}

}  // namespace

void loss_forward(LossKind kind, Reduction r, float* out, const float* a, const float* b, int64_t n) {
  const char* op = loss_name(kind);
  if (r == Reduction::None) {
    if (!n) return;
    cudaStream_t s = prepare_ptr(out);
    k_loss_none<<<grid_for(n), kThreads, 0, s>>>(kind, out, a, b, n);
    check_launch(op);
    return;
  }
  scalar_sum(out, LossTerm{kind, a, b}, n, 1.0, r == Reduction::Mean ? static_cast<double>(n) : 1.0, op);
}

void loss_backward(LossKind kind, Reduction r, float* da, float* db, const float* dout, const float* a, const float* b,
                   int64_t n) {
  if (!n) return;
  cudaStream_t s = prepare_ptr(da);
  k_loss_bwd<<<grid_for(n), kThreads, 0, s>>>(kind, r, da, db, dout, a, b, n);
  check_launch(loss_name(kind));
}

void gaussian_kl_forward(float* out, const float* mean, const float* logvar, int64_t B, int64_t n) {
  scalar_sum(out, KlTerm{mean, logvar}, n, 0.5, static_cast<double>(B), "gaussianKL");
}

void gaussian_kl_backward(float* dmean, float* dlogvar, const float* dout, const float* mean, const float* logvar,
                          int64_t B, int64_t n) {
  if (!n) return;
  cudaStream_t s = prepare_ptr(dmean);
  k_kl_bwd<<<grid_for(n), kThreads, 0, s>>>(dmean, dlogvar, dout, mean, logvar, B, n);
  check_launch("gaussianKL");
}

}  // namespace cuda
}  // namespace ts
