// tessera CUDA backend: copies, fills, random draws and elementwise ops (float32),
// registered as the CUDA Backend. Tensors: any shape; strided inputs are handled
// by an index walk over up to 8 collapsed dims.
#include <cstring>

#include "core/backend.h"
#include "core/rng.h"
#include "runtime.cuh"

namespace ts {
namespace cuda {

namespace {
constexpr int kMaxDims = 8;
struct StridedDesc {
  int nd;
  int64_t shape[kMaxDims];
  int64_t stride[kMaxDims];
};

StridedDesc describe(const Tensor& t, const char* op) {
  StridedDesc d{};
  if (t.dim() > kMaxDims) fail(op, "CUDA kernels take at most ", kMaxDims, " dimensions, got ", t.dim());
  d.nd = static_cast<int>(t.dim());
  for (int i = 0; i < d.nd; ++i) {
    d.shape[i] = t.shape()[i];
    d.stride[i] = t.strides()[i];
  }
  return d;
}

__device__ inline int64_t strided_offset(const StridedDesc& d, int64_t linear) {
  int64_t off = 0;
  for (int i = d.nd - 1; i >= 0; --i) {
    int64_t idx = linear % d.shape[i];
    linear /= d.shape[i];
    off += idx * d.stride[i];
  }
  return off;
}

template <typename T>
__global__ void k_copy_strided(T* __restrict__ dst, const T* __restrict__ src, StridedDesc sd, int64_t n) {
  int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) dst[i] = src[strided_offset(sd, i)];
}

__global__ void k_fill(float* __restrict__ p, float v, int64_t n) {
  int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) p[i] = v;
}

__global__ void k_rand(float* __restrict__ p, uint64_t seed, uint64_t offset, int64_t n, bool normal) {
  int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) p[i] = normal ? philox_normal(seed, offset, i) : philox_uniform(seed, offset, i);
}

__global__ void k_binary(BinaryOp op, float* __restrict__ out, const float* a, StridedDesc da, const float* b,
                         StridedDesc db, int64_t n) {
  int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  float x = a[strided_offset(da, i)], y = b[strided_offset(db, i)];
  float r = 0;
  switch (op) {
    case BinaryOp::Add: r = x + y; break;
    case BinaryOp::Sub: r = x - y; break;
    case BinaryOp::Mul: r = x * y; break;
    case BinaryOp::Div: r = x / y; break;
    case BinaryOp::Pow: r = powf(x, y); break;
    case BinaryOp::Maximum: r = (x != x || y != y) ? NAN : fmaxf(x, y); break;
    case BinaryOp::Minimum: r = (x != x || y != y) ? NAN : fminf(x, y); break;
    case BinaryOp::Eq: r = x == y; break;
    case BinaryOp::Gt: r = x > y; break;
    case BinaryOp::Lt: r = x < y; break;
  }
  out[i] = r;
}

inline unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + 255) / 256); }

class CudaBackend final : public Backend {
 public:
  const char* name() const override { return "cuda"; }

  void copy(Tensor& dst, const Tensor& src) override {
    int64_t n = dst.numel();
    if (n == 0) return;
    int dev = dst.device().index;
    set_device(dev);
    if (dst.dtype() != src.dtype()) fail("copy", "dtype conversion on cuda is not supported yet");
    if (!dst.is_contiguous()) fail("copy", "a strided destination on cuda is not supported yet");
    if (src.is_contiguous()) {
      check(cudaMemcpyAsync(dst.raw(), src.raw(), dst.nbytes(), cudaMemcpyDeviceToDevice, stream(dev)), "copy");
      return;
    }
    StridedDesc sd = describe(src, "copy");
    switch (dst.itemsize()) {
      case 4: k_copy_strided<<<blocks_for(n), 256, 0, stream(dev)>>>(dst.data<uint32_t>(), src.data<uint32_t>(), sd, n); break;
      case 2: k_copy_strided<<<blocks_for(n), 256, 0, stream(dev)>>>(dst.data<uint16_t>(), src.data<uint16_t>(), sd, n); break;
      case 8: k_copy_strided<<<blocks_for(n), 256, 0, stream(dev)>>>(dst.data<uint64_t>(), src.data<uint64_t>(), sd, n); break;
      default: k_copy_strided<<<blocks_for(n), 256, 0, stream(dev)>>>(dst.data<uint8_t>(), src.data<uint8_t>(), sd, n); break;
    }
    check(cudaGetLastError(), "copy");
  }
  void copy_from_host(Tensor& dst, const void* src) override {
    int dev = dst.device().index;
    check(cudaMemcpyAsync(dst.raw(), src, dst.nbytes(), cudaMemcpyHostToDevice, stream(dev)), "copy");
    synchronize(dev);  // the host buffer may be freed right after
  }
  void copy_to_host(void* dst, const Tensor& src) override {
    int dev = src.device().index;
    check(cudaMemcpyAsync(dst, src.raw(), src.nbytes(), cudaMemcpyDeviceToHost, stream(dev)), "copy");
    synchronize(dev);
  }
  void fill(Tensor& dst, double v) override {
    if (dst.dtype() != DType::Float32) fail("full", "only float32 fills on cuda so far, got ", dtype_name(dst.dtype()));
    int64_t n = dst.numel();
    if (!n) return;
    k_fill<<<blocks_for(n), 256, 0, stream(dst.device().index)>>>(dst.data<float>(), static_cast<float>(v), n);
    check(cudaGetLastError(), "full");
  }
  void rand(Tensor& dst, uint64_t seed, uint64_t offset) override { draw(dst, seed, offset, false); }
  void randn(Tensor& dst, uint64_t seed, uint64_t offset) override { draw(dst, seed, offset, true); }
  void binary(BinaryOp op, Tensor& out, const Tensor& a, const Tensor& b) override {
    int64_t n = out.numel();
    if (!n) return;
    k_binary<<<blocks_for(n), 256, 0, stream(out.device().index)>>>(op, out.data<float>(), a.data<float>(),
                                                                      describe(a, binary_name(op)), b.data<float>(),
                                                                      describe(b, binary_name(op)), n);
    check(cudaGetLastError(), binary_name(op));
  }

 private:
  void draw(Tensor& dst, uint64_t seed, uint64_t offset, bool normal) {
    int64_t n = dst.numel();
    if (!n) return;
    k_rand<<<blocks_for(n), 256, 0, stream(dst.device().index)>>>(dst.data<float>(), seed, offset, n, normal);
    check(cudaGetLastError(), normal ? "randn" : "rand");
  }
};

struct Registration {
  Registration() {
    static CudaBackend backend;
    register_backend(DeviceType::CUDA, &backend);
    DeviceAllocator a;
    a.alloc = [](size_t n, int d) { return cached_alloc(n, d); };
    a.free = [](void* p, size_t n, int d) { cached_free(p, n, d); };
    a.reserved = [] { return reserved_bytes(); };
    set_device_allocator(DeviceType::CUDA, a);
  }
} g_registration;

}  // namespace
}  // namespace cuda
}  // namespace ts
