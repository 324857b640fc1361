// tessera core: 3D convolution (PyTorch layouts), forward and backward entry points.
// Dimension letters: B batch, Cin/Cout channels, T frames, H height, W width;
// kt, kh, kw kernel extents; T', H', W' output extents.
//   x      [B, Cin, T, H, W]          (float32, any strides)
//   weight [Cout, Cin, kt, kh, kw]    (float32, any strides)
//   bias   [Cout] or undefined
//   out    [B, Cout, T', H', W'],  T' = (T + pt0 + pt1 - kt) / st + 1, likewise H', W'.
// Padding: time is padded by pt0 frames before and pt1 after, H and W by ph / pw on
// both sides. With causal = true the time padding is pt0 = kt - 1, pt1 = 0 (an output
// frame sees only current and past input frames) and options.padding[0] must be 0;
// spatial padding still applies. Padded values are zeros (PadMode::Zeros) or copies
// of the nearest edge element (PadMode::Replicate, in every padded dim, like PyTorch's
// padding_mode='replicate'; causal + replicate repeats the first frame).
// No groups or dilation.
#pragma once
#include <array>

#include "tensor.h"

namespace ts {

enum class PadMode { Zeros, Replicate };

struct Conv3dOptions {
  std::array<int64_t, 3> stride{1, 1, 1};   // [t, h, w], each >= 1
  std::array<int64_t, 3> padding{0, 0, 0};  // [t, h, w], each >= 0; t must be 0 when causal
  bool causal = false;
  PadMode mode = PadMode::Zeros;
};

// Every size a kernel needs, resolved and validated once by conv3d_geometry.
struct Conv3dGeometry {
  int64_t B, Cin, Cout, T, H, W;  // input and channel sizes
  int64_t kt, kh, kw;             // kernel
  int64_t st, sh, sw;             // strides
  int64_t pt0, pt1, ph, pw;       // padding: time before/after, h and w on both sides
  int64_t To, Ho, Wo;             // output T', H', W'
  bool replicate;                 // PadMode::Replicate
  int64_t K() const { return Cin * kt * kh * kw; }  // GEMM reduction length
  int64_t P() const { return To * Ho * Wo; }        // output positions per (b, cout)
};

// Validates shapes, dtypes, devices and options (errors name conv3d, expected vs got).
Conv3dGeometry conv3d_geometry(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv3dOptions& o);

// out [B, Cout, T', H', W'] (fresh, contiguous).
Tensor conv3d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv3dOptions& o);

struct Conv3dGrads {
  Tensor dinp, dweight, dbias;  // undefined where not asked for
};
// Gradients of conv3d for dout [B, Cout, T', H', W'] (fresh tensors, shapes of x,
// weight and [Cout]); need_* choose which are computed (dinp is the costliest).
Conv3dGrads conv3d_backward(const Tensor& dout, const Tensor& x, const Tensor& weight, const Conv3dOptions& o,
                            bool need_dinp, bool need_dweight, bool need_dbias);

}  // namespace ts
