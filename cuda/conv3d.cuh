// tessera CUDA backend: conv3d as implicit GEMM, forward, input gradient and weight
// gradient (geometry and PyTorch layouts in core/conv.h). Dimension letters: B batch,
// Cin / Cout channels, T H W input extents, kt kh kw kernel, To Ho Wo output extents,
// P = To*Ho*Wo positions, K = Cin*kt*kh*kw.
// Two kernel families:
//   tensor cores: bf16 operands in channels-last layouts (mma.sync m16n8k16, float32
//     accumulation), cp.async multi-stage pipelines: forward M = B*P positions x
//     N = Cout; dinp M = input positions x N = Cin (a gather over the taps that reach
//     each input position, any stride; replicate padding folds a padded-grid gradient
//     back onto the edges); dweight M = Cout x N = taps*Cin reducing over positions,
//     split over blocks with float32 partials added in order.
//   float32: the same three GEMMs on a 64x64 FFMA tile (the default).
// The Backend entry points take the tensor-core path when float32_matmul_precision()
// is Medium (inputs rounded to bf16, float32 outputs), else the float32 path.
#pragma once
#include <cstdint>

#include "core/conv.h"

namespace ts {
namespace cuda {

void conv3d_forward(Tensor& out, const Tensor& inp, const Tensor& weight, const Tensor& bias, const Conv3dGeometry& g);
void conv3d_backward(Tensor& dinp, Tensor& dweight, Tensor& dbias, const Tensor& dout, const Tensor& inp,
                     const Tensor& weight, const Conv3dGeometry& g);

// ---- raw bf16 entry points (benchmarks): channels-last operands on the current device.
// x [B, T, H, W, Cp] bf16, weight [Cout, kt, kh, kw, Cp] bf16 (Cp = Cin rounded up to a
// multiple of 8, zero padded), out float32 [B, Cout, To, Ho, Wo].
void conv3d_forward_bf16(const Conv3dGeometry& g, const void* x_cl, const void* w_cl, const float* bias, float* out,
                         void* stream);
// dout_cl [B, To, Ho, Wo, Coutp] bf16, wt [Cin_p, kt, kh, kw, Coutp] bf16 (the weight
// with Cin and Cout swapped); dinp float32 [B, Cin, T, H, W]; dweight float32
// [Cout, Cin, kt, kh, kw]. Workspaces come from the caching allocator.
void conv3d_dinp_bf16(const Conv3dGeometry& g, const void* dout_cl, const void* wt_cl, float* dinp, void* stream);
void conv3d_dweight_bf16(const Conv3dGeometry& g, const void* dout_cl, const void* x_cl, float* dweight, void* stream);

}  // namespace cuda
}  // namespace ts
