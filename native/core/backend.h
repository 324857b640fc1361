// tessera core: the kernel interface a device backend implements (the CPU backend
// always; the CUDA backend when linked). Core ops validate and allocate, then call
// these with outputs preallocated and contiguous. Inputs may be strided (including
// stride-0 broadcast views) unless a comment says contiguous. A backend that lacks a
// kernel inherits the default, which throws "<op>: not supported on <device>".
#pragma once
#include <string>

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

  // ---- optimizers (entry points in optim.h) ------------------------------------------
  // One AdamW step over n = param.numel() elements; param, m, v, grad are float32 and
  // contiguous. param, m, v are read and overwritten in place; grad is only read.
  // bias_correction1/2 = 1 - beta^step (computed in double by the entry point).
  virtual void adamw(Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, double lr, double beta1, double beta2,
                     double eps, double weight_decay, double bias_correction1, double bias_correction2) {
    unsupported("adamw");
  }

 protected:
  [[noreturn]] void unsupported(const char* op) const { fail(op, "not supported on ", name()); }
};

Backend& backend_for(Device dev, const char* op);  // throws when the device is not available
void register_backend(DeviceType type, Backend* b);
Backend& cpu_backend();

}  // namespace ts
