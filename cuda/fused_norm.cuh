// tessera CUDA backend: fused norms, forward and backward (contracts of the Backend
// fused-norm methods and core/fused_norm.h). Dimension letters: B batch, C channels,
// S spatial size (T*H*W), G groups; N tokens, D features.
//   groupNormSiLU:     inp [B, C, S] -> silu(group_norm(inp) * weight + bias); mean, rstd [B*G]
//   layerNormModulate: inp [B, N, D] -> layer_norm(inp over D) * (1 + scale[b]) + shift[b];
//                      shift, scale [B, D]; mean, rstd [B*N]
#pragma once
#include <cstdint>

namespace ts {
namespace cuda {

// weight/bias [C] or null; dweight/dbias null when not wanted.
void groupnorm_silu_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                            const float* bias, int64_t B, int64_t C, int64_t S, int64_t G, float eps);
void groupnorm_silu_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                             const float* weight, const float* bias, const float* mean, const float* rstd, int64_t B,
                             int64_t C, int64_t S, int64_t G);

void layernorm_modulate_forward(float* out, float* mean, float* rstd, const float* inp, const float* shift,
                                const float* scale, int64_t B, int64_t N, int64_t D, float eps);
void layernorm_modulate_backward(float* dinp, float* dshift, float* dscale, const float* dout, const float* inp,
                                 const float* scale, const float* mean, const float* rstd, int64_t B, int64_t N,
                                 int64_t D);

}  // namespace cuda
}  // namespace ts
