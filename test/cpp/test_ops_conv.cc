// Cross-backend table: conv3d forward with dinp, dweight and dbias (odd sizes,
// 1x1x1 / 3x3x3 / 1x3x3 / 3x1x1 kernels, strides 1 and 2, symmetric and mixed
// padding, causal zeros / replicate, replicate spatial padding, strided input views).
// The cases reach every optimized path: the implicit-GEMM forward (several K slices
// and Cout panels, position panels that cross output rows), dinp as a flipped-weight
// convolution (unit stride, zero padding <= k - 1) and dinp by GEMM + col2im (strides,
// replicate, large padding), dweight by the row kernel over vol2col panels or over the
// padded window (unit W stride, AVX-512 and AVX2; chunked or not), or as per-tap dot
// products (few output channels: <= 4, <= 8 on AVX-512), and the offset-path forward; on CUDA,
// Cout over one 64-wide tile, and B = 0 (no output positions: zero gradients).
#include <iterator>

#include "core/conv.h"
#include "op_table.h"

using namespace ts;
using optable::input;

namespace {
struct ConvCase {
  int64_t B, Cin, Cout, T, H, W;
  Shape k;                       // [kt, kh, kw]
  std::array<int64_t, 3> stride, padding;
  bool causal, replicate, bias, strided;
  bool chunked = false;  // shrink the column buffer so the optimized path runs many chunks
  bool packed = false;   // force the packed forward where it would read panels in place
};

std::string describe(const ConvCase& c) {
  std::string s = "B=" + std::to_string(c.B) + ",Cin=" + std::to_string(c.Cin) + ",Cout=" + std::to_string(c.Cout) +
                  ",THW=" + std::to_string(c.T) + "x" + std::to_string(c.H) + "x" + std::to_string(c.W) +
                  ",k=" + shape_str(c.k) + ",s=" + shape_str({c.stride[0], c.stride[1], c.stride[2]}) +
                  ",p=" + shape_str({c.padding[0], c.padding[1], c.padding[2]});
  if (c.causal) s += ",causal";
  if (c.replicate) s += ",replicate";
  if (!c.bias) s += ",nobias";
  if (c.strided) s += ",strided";
  if (c.chunked) s += ",chunked";
  if (c.packed) s += ",packed";
  return s;
}

struct Reg {
  Reg() {
    using A = std::array<int64_t, 3>;
    const A s1{1, 1, 1}, s2{2, 2, 2}, p0{0, 0, 0}, p1{1, 1, 1};
    const ConvCase cases[] = {
        // B, Cin, Cout, T, H, W, k, stride, padding, causal, replicate, bias, strided
        {2, 3, 7, 5, 7, 13, {1, 1, 1}, s1, p0, false, false, true, false},   // pointwise
        {2, 5, 7, 5, 7, 13, {1, 1, 1}, s2, p0, false, false, true, true},
        {2, 3, 7, 5, 7, 13, {3, 3, 3}, s1, p1, false, false, true, false},
        {1, 5, 7, 5, 7, 13, {3, 3, 3}, s1, p0, false, false, false, false},
        {2, 5, 7, 5, 7, 13, {3, 3, 3}, s2, p1, false, false, true, false},
        {2, 3, 7, 5, 7, 13, {3, 3, 3}, s1, {1, 2, 0}, false, false, true, true},
        {2, 5, 7, 5, 7, 13, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}, false, false, true, false},
        {2, 3, 7, 5, 7, 13, {3, 1, 1}, {2, 1, 1}, {1, 0, 0}, false, false, true, true},
        {2, 3, 7, 5, 7, 13, {3, 3, 3}, s1, {0, 1, 1}, true, false, true, false},   // causal zeros
        {2, 5, 7, 5, 7, 13, {3, 3, 3}, s1, {0, 1, 1}, true, true, true, false},    // causal replicate
        {2, 3, 7, 5, 7, 13, {3, 3, 3}, s2, {0, 1, 2}, true, true, false, true},
        {2, 5, 7, 5, 7, 13, {3, 1, 1}, s1, p0, true, false, true, true},
        {1, 3, 7, 5, 7, 13, {3, 3, 3}, s1, {1, 2, 0}, false, true, true, false},   // replicate everywhere
        {1, 3, 7, 5, 7, 13, {2, 5, 4}, {2, 1, 3}, {1, 3, 2}, false, true, true, true},  // pads > 1, odd kernel
        {1, 5, 7, 1, 7, 13, {3, 3, 3}, s1, {0, 1, 1}, true, false, true, false},   // one frame (an image)
        {1, 3, 7, 5, 1, 1, {3, 3, 3}, s1, {0, 1, 1}, true, true, true, false},     // 1x1 frames, all spatial padding
        // K = 297 taps (more than one K slice of the implicit GEMM), Cout = 13 (two row panels)
        {1, 11, 13, 5, 7, 13, {3, 3, 3}, s1, p1, false, false, true, false},
        {1, 11, 13, 3, 5, 9, {3, 3, 3}, s1, {0, 1, 1}, true, true, true, true},
        {2, 3, 7, 5, 7, 13, {1, 1, 1}, s1, p1, false, false, true, false},        // padding > k - 1
        // W' a multiple of 32: the forward and dinp read whole 32-wide B panels in place
        // from the padded window: several K slices, 1-, 8- and 12-row tails.
        {1, 11, 13, 3, 4, 32, {3, 3, 3}, s1, p1, false, false, true, false},
        {2, 5, 20, 3, 3, 32, {3, 3, 3}, s1, {0, 1, 1}, true, false, true, true},   // causal
        {1, 3, 7, 4, 6, 64, {3, 3, 3}, {2, 2, 1}, {1, 1, 1}, false, false, true, false},  // T/H stride
        {1, 4, 12, 2, 3, 32, {1, 3, 5}, s1, {0, 1, 2}, false, false, false, false},  // wide W padding
        // W' = 16, Cout = 10 and 3: the AVX2 tile's 4- and 2-row variants (6 + 4, 3) on
        // packed panels.
        {1, 5, 10, 3, 4, 16, {3, 3, 3}, s1, p1, false, false, true, false},
        {1, 6, 3, 2, 3, 16, {3, 3, 3}, s1, {0, 1, 1}, true, false, true, true},
        // Cout = 130: three 64-wide column tiles of CUDA's float32 GEMMs (forward N, and
        // dweight M), the last one ragged.
        {1, 5, 130, 3, 6, 7, {3, 3, 3}, s1, p1, false, false, true, false},
        {2, 4, 130, 3, 5, 6, {1, 3, 3}, {1, 2, 1}, {0, 1, 1}, false, true, true, false},
        // B = 0: no output positions; every gradient is an empty sum (dweight = dbias = 0).
        {0, 3, 7, 5, 7, 13, {3, 3, 3}, s1, p1, false, false, true, false},
        {0, 3, 7, 5, 7, 13, {3, 3, 3}, s1, {0, 1, 1}, true, true, true, false},
        // W' = 48 on AVX-512's offset path: 32-wide panels whose two 16-wide halves lie in
        // different output rows; Cout = 21 (12- and 12-row tiles, the second 9 rows).
        {1, 5, 21, 3, 3, 48, {3, 3, 3}, s1, {0, 1, 1}, true, false, true, false},
        // The offset path (W' a multiple of 16: B rows read in place from a padded copy
        // of the input) with replicate padding, T/H strides and pads > 1; the two W' = 16
        // cases above take it too, and on AVX2 the W' = 32 cases.
        {1, 4, 8, 5, 7, 16, {3, 3, 3}, {2, 2, 1}, {1, 2, 1}, false, true, true, false},
        {2, 3, 7, 3, 4, 32, {3, 3, 5}, s1, {0, 1, 2}, true, true, false, true},
        // Cout <= 4 with unit W stride: dweight as per-tap dot products over the positions
        // (a VAE's conv to the image): 1 to 4 channels, W' below / at / above the vector
        // widths (vector tails), replicate padding, T/H strides.
        {2, 16, 1, 3, 5, 64, {3, 3, 3}, s1, {0, 1, 1}, true, false, true, false},
        {1, 5, 2, 4, 3, 13, {3, 3, 3}, s1, p1, false, true, true, true},
        {2, 3, 3, 5, 4, 7, {3, 3, 3}, {2, 2, 1}, {1, 1, 1}, false, false, false, false},
        {1, 7, 4, 3, 6, 40, {3, 1, 3}, s1, {0, 0, 1}, true, true, true, false},
        // The forward by taps on AVX-512 (16 | W', Cout <= 4 or K <= 32): Cin = 1 (K = 27)
        // with channel groups of 8 and of 8 + 5, 1, 2 and 4 vectors a step, replicate,
        // T/H strides, no bias; the Cout = 1 case above also takes it, and its dinp (a
        // convolution with Cin = 1).
        {2, 1, 16, 5, 4, 32, {3, 3, 3}, s1, {0, 1, 1}, true, false, true, false},
        {1, 1, 13, 3, 3, 48, {3, 3, 3}, s1, p1, false, true, true, false},
        {1, 3, 2, 4, 5, 32, {3, 3, 3}, {2, 2, 1}, {1, 1, 1}, false, false, false, true},
        {1, 2, 3, 2, 2, 64, {1, 3, 3}, s1, {0, 1, 1}, false, false, true, false},
    };
    std::vector<ConvCase> all(std::begin(cases), std::end(cases));
    // Chunked: also the offset-path cases, whose padded copy then goes window by window of
    // output frames, two of the few-Cout cases and two of the forward-by-taps cases.
    const int n = static_cast<int>(std::size(cases));
    for (int i : {2, 4, 5, 9, 13, n - 11, n - 10, n - 9, n - 8, n - 5, n - 4, n - 3}) {
      ConvCase c = cases[i];
      c.chunked = true;
      all.push_back(c);
    }
    for (int i : {19, 20}) {
      ConvCase c = cases[i];
      c.packed = true;
      all.push_back(c);
    }
    for (const ConvCase& c : all) {
      optable::table().push_back(
          {OpKind::Conv3d, "conv3d", describe(c),
           [c](Device d) -> std::vector<Tensor> {
             Conv3dOptions o;
             o.stride = c.stride;
             o.padding = c.padding;
             o.causal = c.causal;
             o.mode = c.replicate ? PadMode::Replicate : PadMode::Zeros;
             Tensor x = input({c.B, c.Cin, c.T, c.H, c.W}, 101, d, c.strided);
             Tensor w = input({c.Cout, c.Cin, c.k[0], c.k[1], c.k[2]}, 102, d, c.strided, 0.2f);
             Tensor b = c.bias ? input({c.Cout}, 103, d) : Tensor();
             // 2 output rows' worth of columns: chunks of 2 rows, ending mid-frame
             if (c.chunked) cpu::set_conv3d_column_budget(2 * c.Cin * c.k[0] * c.k[1] * c.k[2] * c.W);
             if (c.packed) cpu::set_conv3d_direct(false);
             Tensor y = conv3d(x, w, b, o);
             Tensor dy = input(y.shape(), 104, d);
             Conv3dGrads g = conv3d_backward(dy, x, w, o, true, true, true);
             cpu::set_conv3d_column_budget(0);
             cpu::set_conv3d_direct(true);
             return {y, g.dinp, g.dweight, g.dbias};
           },
           1e-10});
    }
    // The few-Cout weight gradient at every vector width this CPU has (the table above runs
    // the widest): AVX-512, AVX2 and the portable build of the same kernel.
    for (int width : {4, 8}) {
      ConvCase c{2, 5, 2, 3, 4, 13, {3, 3, 3}, {1, 1, 1}, {0, 1, 1}, true, false, true, false};
      optable::table().push_back({OpKind::Conv3d, "conv3d", describe(c) + ",dweight at width " + std::to_string(width),
                                  [c, width](Device d) -> std::vector<Tensor> {
                                    Conv3dOptions o;
                                    o.padding = c.padding;
                                    o.causal = true;
                                    Tensor x = input({c.B, c.Cin, c.T, c.H, c.W}, 121, d);
                                    Tensor w = input({c.Cout, c.Cin, 3, 3, 3}, 122, d, false, 0.2f);
                                    Tensor dy = input({c.B, c.Cout, c.T, c.H, c.W}, 124, d);
                                    const int was = cpu::simd_set_max_width(width);
                                    Conv3dGrads g = conv3d_backward(dy, x, w, o, false, true, false);
                                    cpu::simd_set_max_width(0);
                                    (void)was;
                                    return {g.dweight};
                                  },
                                  1e-10});
    }
    // Only some gradients asked for: the others stay undefined and the asked ones agree.
    optable::table().push_back({OpKind::Conv3d, "conv3d", "B=2,Cin=3,Cout=7,k=[3, 3, 3],causal,dweight only / dinp only",
                                [](Device d) -> std::vector<Tensor> {
                                  Conv3dOptions o;
                                  o.padding = {0, 1, 1};
                                  o.causal = true;
                                  Tensor x = input({2, 3, 5, 7, 13}, 111, d);
                                  Tensor w = input({7, 3, 3, 3, 3}, 112, d, false, 0.2f);
                                  Tensor dy = input({2, 7, 5, 7, 13}, 114, d);
                                  Conv3dGrads a = conv3d_backward(dy, x, w, o, false, true, false);
                                  Conv3dGrads b = conv3d_backward(dy, x, w, o, true, false, false);
                                  if (a.dinp.defined() || a.dbias.defined() || b.dweight.defined())
                                    fail("conv3d", "backward computed a gradient that was not asked for");
                                  return {a.dweight, b.dinp};
                                },
                                1e-10});
  }
} reg;
}  // namespace

int main(int argc, char** argv) { return optable::run(argc, argv); }
