#include "attention.cuh"
#include "common.cuh"
namespace ts { namespace cuda {
void attention_forward(Tensor&, Tensor&, const Tensor&, const Tensor&, const Tensor&, const AttentionParams&) { fail("scaledDotProductAttention", "not supported on cuda"); }
void attention_backward(Tensor&, Tensor&, Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const AttentionParams&) { fail("scaledDotProductAttention", "not supported on cuda"); }
}}
