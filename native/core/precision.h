// tessera core: how much float32 matrix math may give up for speed, like PyTorch's
// torch.set_float32_matmul_precision. Every op keeps the float32 contract (float32
// tensors in and out); the setting only chooses the arithmetic inside the kernels
// that are matrix products (matmul, scaledDotProductAttention, conv3d):
//   Highest  float32 FMA everywhere (the default; what the cross-backend tables check
//            at float32 bounds)
//   High     TF32 tensor cores may be used (10-bit mantissa inputs, float32 accumulate)
//   Medium   bfloat16 tensor cores may be used (8-bit mantissa inputs, float32
//            accumulate; softmax statistics, norms and outputs stay float32)
// The CPU backend always computes in float32 and ignores it. The initial value comes
// from the environment variable TESSERA_MATMUL_PRECISION (highest|high|medium).
#pragma once

namespace ts {

enum class MatmulPrecision { Highest, High, Medium };

MatmulPrecision float32_matmul_precision();
void set_float32_matmul_precision(MatmulPrecision p);
const char* matmul_precision_name(MatmulPrecision p);

// Sets the precision for one scope and restores the previous value.
class MatmulPrecisionScope {
 public:
  explicit MatmulPrecisionScope(MatmulPrecision p) : prev_(float32_matmul_precision()) {
    set_float32_matmul_precision(p);
  }
  ~MatmulPrecisionScope() { set_float32_matmul_precision(prev_); }
  MatmulPrecisionScope(const MatmulPrecisionScope&) = delete;
  MatmulPrecisionScope& operator=(const MatmulPrecisionScope&) = delete;

 private:
  MatmulPrecision prev_;
};

}  // namespace ts
