// tessera CUDA backend: data movement (strided copies with dtype casts, fills,
// arange, Philox draws) and elementwise float32 ops (unary with its backward,
// broadcast binary, tensor-scalar). Dimension letters: none (any shape).
#pragma once
#include "core/ops.h"

namespace ts {
namespace cuda {

// dst and src of one shape on one CUDA device, any strides and dtypes (float32,
// float64, bfloat16, float16, int32, int64, uint8, bool); conversions round and
// saturate exactly as the CPU's copy (through double; bfloat16/float16 round to
// nearest even; integers truncate toward zero and saturate, NaN -> 0).
void copy(Tensor& dst, const Tensor& src);
void fill(Tensor& dst, double v);                     // dst contiguous, any dtype
void arange(Tensor& dst, double start, double step);  // dst contiguous, any dtype
void rand(Tensor& dst, uint64_t seed, uint64_t offset, bool normal);  // float32, contiguous

void unary(UnaryOp op, Tensor& out, const Tensor& x);
void unary_backward(UnaryOp op, Tensor& dinp, const Tensor& dout, const Tensor& x, const Tensor& out);
void binary(BinaryOp op, Tensor& out, const Tensor& a, const Tensor& b);
void binary_scalar(BinaryOp op, Tensor& out, const Tensor& a, double s, bool scalar_first);

}  // namespace cuda
}  // namespace ts
