// tessera CUDA backend: reductions over the middle axis of x [outer, n, inner]
// (sum, mean, max, min). Dimension letters: outer, n (reduced), inner.
#pragma once
#include "core/ops.h"

namespace ts {
namespace cuda {

// x contiguous [outer, n, inner] -> out [outer, inner]. Sums accumulate in double;
// max/min propagate NaN; mean over n = 0 is NaN (as the CPU). Deterministic.
void reduce(ReduceOp op, Tensor& out, const Tensor& x, int64_t outer, int64_t n, int64_t inner);

}  // namespace cuda
}  // namespace ts
