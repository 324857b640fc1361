// tessera core: the "nn" op family (softmax, norms, adaLN modulate, embedding,
// dropout, losses, nearest upsampling, patchify/unpatchify). Each forward has a
// backward beside it; the forward returns exactly what the backward needs (mean
// and rstd for the norms, seed and offset for dropout).
// Dimension letters: B batch, C channels, T H W time/height/width, N tokens,
// D features, V vocabulary, G groups, M rows of a row-wise op.
// Inputs are float32 (ids int32/int64) and may be strided; outputs are fresh and
// contiguous. Errors name the op as TypeScript calls it (F.layerNorm -> "layerNorm").
#pragma once
#include <array>
#include <vector>

#include "rng.h"
#include "tensor.h"

namespace ts {

// ---- softmax / log-softmax over one axis (numerically stable) ------------------------
Tensor softmax(const Tensor& x, int64_t axis, bool log);
// dinp from dout and the forward's output `out` (softmax or log-softmax).
Tensor softmax_backward(const Tensor& dout, const Tensor& out, int64_t axis, bool log);

// ---- norms -----------------------------------------------------------------------------
// out plus the per-row (per-group) statistics saved for the backward: mean and rstd
// are float32 [M] (layer/rms norm: M = numel / prod(normalized dims); group norm:
// M = B * G). rms_norm leaves mean undefined.
struct NormOut {
  Tensor out, mean, rstd;
};
// Gradients of a norm; dweight/dbias are undefined when the forward had no weight/bias.
struct NormGrads {
  Tensor dinp, dweight, dbias;
};

// x [..., *normalized_shape]; weight, bias of normalized_shape or undefined.
NormOut layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                   double eps);
NormGrads layer_norm_backward(const Tensor& dout, const Tensor& x, const Tensor& weight, const Tensor& mean,
                              const Tensor& rstd, const Shape& normalized_shape, bool has_bias);

// x [B, C, *spatial] (rank >= 2), C divisible by num_groups; weight, bias [C] or undefined.
NormOut group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight, const Tensor& bias, double eps);
NormGrads group_norm_backward(const Tensor& dout, const Tensor& x, const Tensor& weight, const Tensor& mean,
                              const Tensor& rstd, int64_t num_groups, bool has_bias);

// Over the last dim D: out = x / sqrt(mean(x^2) + eps) * weight; weight [D] or undefined.
NormOut rms_norm(const Tensor& x, const Tensor& weight, double eps);
NormGrads rms_norm_backward(const Tensor& dout, const Tensor& x, const Tensor& weight, const Tensor& rstd);

// ---- DiT adaLN modulate: out = x * (1 + scale[:, None]) + shift[:, None] ----------------
// x [B, N, D], shift and scale [B, D].
Tensor modulate(const Tensor& x, const Tensor& shift, const Tensor& scale);
struct ModulateGrads {
  Tensor dinp, dshift, dscale;
};
ModulateGrads modulate_backward(const Tensor& dout, const Tensor& x, const Tensor& scale);

// ---- embedding: out[..., :] = weight[ids[...], :] ----------------------------------------
// ids int32/int64 of any shape, every id in [0, V); weight [V, D] -> out [*ids.shape, D].
Tensor embedding(const Tensor& ids, const Tensor& weight);
// dweight [V, D]: scatter-add of dout's rows into the rows their ids name.
Tensor embedding_backward(const Tensor& dout, const Tensor& ids, int64_t num_embeddings);

// ---- dropout (Philox: element i is kept when philox_uniform(seed, offset, i) >= p) ------
struct DropoutOut {
  Tensor out;
  uint64_t seed = 0, offset = 0;  // where the mask came from; the backward regenerates it
};
// training = false or p = 0: out is x itself (no copy, no draw). p must be in [0, 1).
DropoutOut dropout(const Tensor& x, double p, bool training, Generator& g);
Tensor dropout_backward(const Tensor& dout, double p, uint64_t seed, uint64_t offset);

// ---- losses ------------------------------------------------------------------------------
enum class LossKind { Mse, L1 };
enum class Reduction { None, Mean, Sum };
const char* loss_name(LossKind k);  // "mseLoss", "l1Loss"
// a, b of one shape. None: out has a's shape; Mean/Sum: out is a scalar (shape []).
Tensor loss(LossKind kind, const Tensor& a, const Tensor& b, Reduction r);
// dout has out's shape; db = -da.
std::array<Tensor, 2> loss_backward(LossKind kind, const Tensor& dout, const Tensor& a, const Tensor& b, Reduction r);

// KL(N(mean, exp(logvar)) || N(0, I)) of diagonal Gaussians, averaged over the batch:
//   out = 0.5 * sum_all(mean^2 + exp(logvar) - 1 - logvar) / B,  B = mean.shape[0].
// mean, logvar of one shape, rank >= 1; out is a scalar (shape []).
Tensor gaussian_kl(const Tensor& mean, const Tensor& logvar);
std::array<Tensor, 2> gaussian_kl_backward(const Tensor& dout, const Tensor& mean, const Tensor& logvar);

// ---- nearest upsampling by integer factors: x [B, C, T, H, W] -> [B, C, T*st, H*sh, W*sw] -
Tensor interpolate_nearest(const Tensor& x, const std::vector<int64_t>& scale);
// dinp [B, C, T, H, W]: dout summed over each st x sh x sw block.
Tensor interpolate_nearest_backward(const Tensor& dout, const std::vector<int64_t>& scale);

// ---- spacetime patches ------------------------------------------------------------------
// x [B, C, T, H, W] -> tokens [B, T'H'W', C*pt*ph*pw] (T' = T/pt, ...): tokens in
// (t, h, w) row-major order, features in (c, pt, ph, pw) order, i.e.
// x.reshape(B,C,T',pt,H',ph,W',pw).permute(0,2,4,6,1,3,5,7).reshape(B,N,-1).
Tensor patchify(const Tensor& x, const std::vector<int64_t>& patch);
// The exact inverse: tokens [B, T'H'W', C*pt*ph*pw] -> [B, C, T'pt, H'ph, W'pw].
Tensor unpatchify(const Tensor& tokens, int64_t channels, const std::vector<int64_t>& grid,
                  const std::vector<int64_t>& patch);

// ---- linear (nn.Linear): x [..., K] @ weight [N, K]^T + bias [N] -> [..., N] ------------
// One GEMM whose tiles start from the bias (no separate pass over the output for it);
// bias may be undefined. The backward: dx = dout @ weight, dweight = dout^T x (over all
// leading dims), dbias = dout summed over them; each only when asked (else undefined).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);
struct LinearGrads {
  Tensor dinp, dweight, dbias;
};
LinearGrads linear_backward(const Tensor& dout, const Tensor& x, const Tensor& weight, bool need_dinp,
                            bool need_dweight, bool need_dbias);

}  // namespace ts
