// tessera core: the kernel interface a device backend implements (the CPU backend
// always; the CUDA backend when linked). Core ops validate and allocate, then call
// these with outputs preallocated and contiguous. Inputs may be strided (including
// stride-0 broadcast views) unless a comment says contiguous. A backend that lacks a
// kernel inherits the default, which throws "<op>: not supported on <device>".
#pragma once
#include <string>

#include "conv.h"
#include "ops.h"

namespace ts {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // data movement within the backend's device (dst and src of one shape)
  virtual void copy(Tensor& dst, const Tensor& src) { unsupported("copy"); }
  // host <-> device, contiguous on both sides, same dtype
  virtual void copy_from_host(Tensor& dst, const void* src) { unsupported("copy_from_host"); }
  virtual void copy_to_host(void* dst, const Tensor& src) { unsupported("copy_to_host"); }
  virtual void fill(Tensor& dst, double value) { unsupported("fill"); }
  virtual void arange(Tensor& dst, double start, double step) { unsupported("arange"); }
  virtual void rand(Tensor& dst, uint64_t seed, uint64_t offset) { unsupported("rand"); }
  virtual void randn(Tensor& dst, uint64_t seed, uint64_t offset) { unsupported("randn"); }

  // elementwise (float32)
  virtual void unary(UnaryOp op, Tensor& out, const Tensor& x) { unsupported(unary_name(op)); }
  virtual void unary_backward(UnaryOp op, Tensor& dinp, const Tensor& dout, const Tensor& x, const Tensor& out) {
    unsupported(unary_name(op));
  }
  // a and b are views already broadcast to out's shape
  virtual void binary(BinaryOp op, Tensor& out, const Tensor& a, const Tensor& b) { unsupported(binary_name(op)); }
  virtual void binary_scalar(BinaryOp op, Tensor& out, const Tensor& a, double s, bool scalar_first) {
    unsupported(binary_name(op));
  }

  // x contiguous [outer, n, inner]; out [outer, inner] = op over n
  virtual void reduce(ReduceOp op, Tensor& out, const Tensor& x, int64_t outer, int64_t n, int64_t inner) {
    unsupported("reduce");
  }

  // C[b] = A[b] @ B[b] for b < batch, row-major float32. A[b] is [M, K] at a + b*stride_a
  // with leading dim lda (or [K, M] when trans_a), likewise B; C contiguous [batch, M, N].
  // beta = 0 overwrites C, beta = 1 accumulates.
  virtual void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* a, int64_t lda,
                    int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b, float* c, int64_t ldc,
                    int64_t stride_c, int64_t batch, float beta) {
    unsupported("matmul");
  }

  // ---- conv3d (geometry and layouts in core/conv.h) ----------------------------------
  // inp [B, Cin, T, H, W], weight [Cout, Cin, kt, kh, kw], bias [Cout] (or undefined):
  // all contiguous. out [B, Cout, T', H', W'] preallocated contiguous, overwritten.
  virtual void conv3d_forward(Tensor& out, const Tensor& inp, const Tensor& weight, const Tensor& bias,
                              const Conv3dGeometry& g) {
    unsupported("conv3d");
  }
  // dinp / dweight / dbias: preallocated contiguous, or undefined when not wanted.
  // Memory contract: all three are overwritten (=), never accumulated; the autograd
  // engine does the accumulation. dout, inp, weight contiguous.
  virtual void conv3d_backward(Tensor& dinp, Tensor& dweight, Tensor& dbias, const Tensor& dout, const Tensor& inp,
                               const Tensor& weight, const Conv3dGeometry& g) {
    unsupported("conv3d");
  }

 protected:
  [[noreturn]] void unsupported(const char* op) const { fail(op, "not supported on ", name()); }
};

Backend& backend_for(Device dev, const char* op);  // throws when the device is not available
void register_backend(DeviceType type, Backend* b);
Backend& cpu_backend();

}  // namespace ts
