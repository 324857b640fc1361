// tessera CUDA backend: embedding lookup and its backward. Dimension letters: n ids,
// V vocabulary, D features.
#pragma once
#include <cstdint>

namespace ts {
namespace cuda {

// ids (device, int64) already checked to lie in [0, V); out [n, D]; weight [V, D].
void embedding_forward(float* out, const int64_t* ids, const float* weight, int64_t n, int64_t V, int64_t D);
// dweight [V, D] overwritten: row v = sum of dout rows whose id is v, added in the order
// of the ids (bit-identical to the CPU).
void embedding_backward(float* dweight, const float* dout, const int64_t* ids, int64_t n, int64_t V, int64_t D);

}  // namespace cuda
}  // namespace ts
