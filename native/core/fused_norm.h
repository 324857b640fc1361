// tessera core: fused norm + activation / modulation, the pairs the models run back to
// back (video VAE ResNet blocks: GroupNorm then SiLU; DiT blocks: LayerNorm without
// affine then adaLN modulate). One kernel reads x once and writes the result once, and
// the backward recomputes the intermediate instead of storing it.
// Dimension letters: B batch, C channels, S product of the spatial dims (T*H*W), G
// groups, N tokens, D features.
//   group_norm_silu:     x [B, C, *spatial] -> silu(group_norm(x, G, weight, bias, eps))
//   layer_norm_modulate: x [B, N, D], shift/scale [B, D] ->
//                        layer_norm(x over D, no affine, eps) * (1 + scale[:, None]) + shift[:, None]
// The forwards also return the per-group / per-row mean and rstd ([B*G] / [B*N]) that
// the backwards take. Inputs are float32 and may be strided; outputs are fresh and
// contiguous; every gradient is overwritten (the autograd engine accumulates). Errors
// name the op as TypeScript calls it (groupNormSiLU, layerNormModulate).
#pragma once
#include "nn.h"

namespace ts {

// weight, bias [C] or undefined (then 1 and 0). per_frame: x [B, C, T, ...] is normalized
// frame by frame (groups per (b, t), as a causal video VAE needs); mean, rstd [B*T*G].
NormOut group_norm_silu(const Tensor& x, int64_t num_groups, const Tensor& weight, const Tensor& bias, double eps,
                        bool per_frame = false);
// dweight / dbias are undefined when weight / bias were. bias is needed to recompute
// the pre-activation group_norm(x).
NormGrads group_norm_silu_backward(const Tensor& dout, const Tensor& x, const Tensor& weight, const Tensor& bias,
                                   const Tensor& mean, const Tensor& rstd, int64_t num_groups, bool per_frame = false);

NormOut layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, double eps);
// -> dinp [B, N, D], dshift and dscale [B, D].
ModulateGrads layer_norm_modulate_backward(const Tensor& dout, const Tensor& x, const Tensor& scale,
                                           const Tensor& mean, const Tensor& rstd);

}  // namespace ts
