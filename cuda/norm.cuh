// tessera CUDA backend: layer norm, RMS norm and group norm, forward and backward
// (same contracts as the Backend norm methods). Dimension letters: M rows, N normalized
// width; B batch, C channels, S spatial size, G groups.
#pragma once
#include <cstdint>

namespace ts {
namespace cuda {

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                       int64_t M, int64_t N, float eps);
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t M, int64_t N);
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t M, int64_t N, float eps);
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t M, int64_t N);
void groupnorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                       int64_t B, int64_t C, int64_t S, int64_t G, float eps);
void groupnorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t B, int64_t C, int64_t S,
                        int64_t G);

// The group-norm passes with an optional SiLU after the affine (silu: groupNormSiLU,
// whose entry points are in fused_norm.cu). Errors name op. bias (or null) re-forms the
// pre-activation in the SiLU backward; the plain backward ignores it.
void groupnorm_act_forward(bool silu, float* out, float* mean, float* rstd, const float* inp, const float* weight,
                           const float* bias, int64_t B, int64_t C, int64_t S, int64_t G, float eps, const char* op);
void groupnorm_act_backward(bool silu, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                            const float* weight, const float* bias, const float* mean, const float* rstd, int64_t B,
                            int64_t C, int64_t S, int64_t G, const char* op);

}  // namespace cuda
}  // namespace ts
