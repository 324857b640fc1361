// tessera core: op entry points. Each validates its arguments (naming the op,
// expected vs got), then dispatches by device to a backend kernel. Inputs may be
// strided; outputs are fresh contiguous tensors unless the name ends in '_'.
// Math ops compute in float32 (other dtypes are storage: convert with to_dtype).
#pragma once
#include <string>
#include <vector>

#include "rng.h"
#include "tensor.h"

namespace ts {

// ---- creation and data movement -------------------------------------------------
Tensor full(const Shape& shape, double value, DType dt, Device dev);
Tensor arange(double start, double end, double step, DType dt, Device dev);
Tensor rand(const Shape& shape, DType dt, Device dev, Generator& g);
Tensor randn(const Shape& shape, DType dt, Device dev, Generator& g);
// Builds a tensor from host memory holding `src_dt` values, converting to dt.
Tensor from_host(const void* data, size_t nbytes, DType src_dt, const Shape& shape, DType dt, Device dev);
// Copies elements (dst and src of one shape, any strides, dtypes and devices).
void copy_(Tensor& dst, const Tensor& src);
Tensor to_dtype(const Tensor& x, DType dt);
Tensor to_device(const Tensor& x, Device dev);
// Contiguous host copy of x in dtype dt (for reading values out).
void to_host(const Tensor& x, DType dt, void* out, size_t nbytes);
Tensor cat(const std::vector<Tensor>& xs, int64_t axis);

// ---- elementwise --------------------------------------------------------------------
enum class UnaryOp { Neg, Exp, Log, Sqrt, Abs, Tanh, Sigmoid, Relu, Silu, Gelu, GeluTanh, Square, Rsqrt, Sin, Cos };
const char* unary_name(UnaryOp op);
Tensor unary(UnaryOp op, const Tensor& x);
// dinp = dout * f'(x); `out` is f(x) (used by ops whose derivative reads it).
Tensor unary_backward(UnaryOp op, const Tensor& dout, const Tensor& x, const Tensor& out);

enum class BinaryOp { Add, Sub, Mul, Div, Pow, Maximum, Minimum, Eq, Gt, Lt };
const char* binary_name(BinaryOp op);
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);           // NumPy broadcasting
Tensor binary_scalar(BinaryOp op, const Tensor& a, double s, bool scalar_first);  // a op s, or s op a
// Sums a (broadcast) gradient down to `shape` (the inverse of broadcasting).
Tensor sum_to(const Tensor& x, const Shape& shape);

// ---- reductions ---------------------------------------------------------------------
enum class ReduceOp { Sum, Mean, Max, Min };
// Empty axes: all axes.
Tensor reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& axes, bool keepdim);

// ---- linear algebra -------------------------------------------------------------
// Batched matmul with broadcasting of the batch dims (1-D operands as in NumPy).
Tensor matmul(const Tensor& a, const Tensor& b);

}  // namespace ts
