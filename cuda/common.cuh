// tessera CUDA backend: helpers shared by the kernels (launch sizes, strided index
// walks, warp/block reductions, workspaces). Dimension letters: none.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "core/tensor.h"
#include "runtime.cuh"

namespace ts {
namespace cuda {

constexpr int kThreads = 256;

inline unsigned blocks_for(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 0x7fffffff ? 0x7fffffff : b));
}
// A grid for a grid-stride loop over n elements (capped, the loop covers the rest).
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > 65535LL * 8) b = 65535LL * 8;
  return static_cast<unsigned>(b);
}

// Checks the launch just made (op names the caller in the error).
inline void check_launch(const char* op) { check(cudaGetLastError(), op); }

// The device of a CUDA tensor, made current; returns its stream.
inline cudaStream_t prepare(const Tensor& t) {
  int dev = t.device().index;
  set_device(dev);
  return stream(dev);
}

// The device holding p (a pointer from the caching allocator), made current; returns
// its stream. For the Backend methods that receive raw pointers.
inline cudaStream_t prepare_ptr(const void* p, int* device = nullptr) {
  cudaPointerAttributes a;
  int dev = 0;
  if (p && cudaPointerGetAttributes(&a, p) == cudaSuccess && a.type == cudaMemoryTypeDevice) {
    dev = a.device;
  } else {
    cudaGetLastError();
    check(cudaGetDevice(&dev), "cuda");
  }
  set_device(dev);
  if (device) *device = dev;
  return stream(dev);
}

// A scratch tensor on dev (through the caching allocator, so memory() sees it; blocks
// are reused in stream order, so it may be freed as soon as the launches are queued).
inline Tensor workspace(int64_t numel, DType dt, int dev, const char* op) {
  return Tensor::empty({numel}, dt, Device{DeviceType::CUDA, dev}, op);
}

// ---- strided index walks --------------------------------------------------------------
constexpr int kMaxDims = 16;
struct StridedDesc {
  int nd;
  int64_t shape[kMaxDims];
  int64_t stride[kMaxDims];
};

__device__ __forceinline__ int64_t strided_offset(const StridedDesc& d, int64_t linear) {
  int64_t off = 0;
  for (int i = d.nd - 1; i >= 0; --i) {
    int64_t s = d.shape[i];
    int64_t q = linear / s;
    off += (linear - q * s) * d.stride[i];
    linear = q;
  }
  return off;
}

// Two tensors of one shape walked together (dst and src of a copy, out and an input):
// dims of size 1 dropped and dims contiguous in both merged.
struct PairDesc {
  int nd;
  int64_t shape[kMaxDims];
  int64_t s1[kMaxDims];
  int64_t s2[kMaxDims];
};
PairDesc describe_pair(const Tensor& a, const Tensor& b, const char* op);
StridedDesc describe(const Tensor& t, const char* op);

__device__ __forceinline__ void pair_offsets(const PairDesc& d, int64_t linear, int64_t* o1, int64_t* o2) {
  int64_t a = 0, b = 0;
  for (int i = d.nd - 1; i >= 0; --i) {
    int64_t s = d.shape[i];
    int64_t q = linear / s;
    int64_t idx = linear - q * s;
    a += idx * d.s1[i];
    b += idx * d.s2[i];
    linear = q;
  }
  *o1 = a;
  *o2 = b;
}

// ---- reductions ---------------------------------------------------------------------
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets
// the result. scratch: at least 32 values of shared memory. Deterministic: a fixed tree.
template <typename T>
__device__ __forceinline__ T block_sum(T v, T* scratch) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T r = lane < nw ? scratch[lane] : T(0);
  return warp_sum(r);
}

// Max over the block (fmaxf: NaN inputs are ignored); as block_sum.
__device__ __forceinline__ float block_max(float v, float* scratch) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float r = lane < nw ? scratch[lane] : -INFINITY;
  return warp_max(r);
}

}  // namespace cuda
}  // namespace ts
