// Cross-backend table for the reduced-precision paths: the same ops as the float32
// tables, run with float32_matmul_precision() = Medium (bf16 tensor cores with float32
// accumulation on CUDA) or High (TF32 for matmul). The CPU ignores the setting, so its
// rows check the CPU again; the CUDA rows check the tensor-core kernels against the
// CPU reference loops at bf16 / TF32 error bounds (normalized MSE). Without a device
// they report "skipped (no CUDA device)". Dimension letters: B, N, H, D (attention);
// B, Cin, Cout, T, H, W (conv3d); M, K, N (matmul).
#include "check.h"
#include "core/attention.h"
#include "core/conv.h"
#include "core/precision.h"
#include "op_table.h"

using namespace ts;
using optable::input;

namespace {

// bf16 inputs carry a relative rounding error of up to 2^-9: the outputs' normalized
// MSE lands near 1e-6..1e-5 (attention gradients, with their cancellations, higher).
constexpr double kBf16Bound = 2e-4;
constexpr double kBf16AttentionBound = 1e-3;
constexpr double kTf32Bound = 1e-5;

Tensor cu_tensor(const std::vector<int32_t>& v, Device d) {
  Tensor t = from_host(v.data(), v.size() * 4, DType::Int32, {static_cast<int64_t>(v.size())}, DType::Int32, Device{});
  return d.is_cpu() ? t : to_device(t, d);
}

struct AttnCase {
  int64_t B, Nq, Nk, H, D;
  bool causal, fused;
  std::vector<int32_t> cu_q, cu_k;
};

std::string describe(const AttnCase& c) {
  std::string s = "bf16,B=" + std::to_string(c.B) + ",Nq=" + std::to_string(c.Nq) + ",Nk=" + std::to_string(c.Nk) +
                  ",H=" + std::to_string(c.H) + ",D=" + std::to_string(c.D);
  if (c.causal) s += ",causal";
  if (c.fused) s += ",fused qkv";
  if (!c.cu_q.empty()) s += ",packed";
  return s;
}

struct Reg {
  Reg() {
    const AttnCase attn[] = {
        {2, 130, 130, 2, 64, false, false, {}, {}},
        {2, 130, 130, 2, 64, true, true, {}, {}},
        {1, 200, 77, 3, 128, false, false, {}, {}},   // cross-attention, Nk not a tile multiple
        {1, 77, 200, 2, 128, true, false, {}, {}},    // Nq < Nk, causal (top-left)
        {1, 300, 300, 2, 128, true, true, {}, {}},    // several tiles each way
        {1, 190, 190, 2, 64, true, false, {0, 5, 130, 190}, {0, 17, 150, 190}},  // packed
        {1, 13, 8, 2, 64, false, false, {0, 4, 4, 13}, {0, 3, 8, 8}},           // empty q seq, seq with no keys
        {1, 200, 77, 2, 64, true, false, {}, {}},     // Nq > Nk, causal: late rows see every key
        {2, 0, 70, 2, 64, true, false, {}, {}},       // no queries: dk = dv = 0
        {2, 70, 0, 2, 128, false, false, {}, {}},     // no keys: out = 0, lse = -inf
    };
    for (const AttnCase& c : attn)
      optable::table().push_back({OpKind::Attention, "scaledDotProductAttention", describe(c),
                                  [c](Device d) -> std::vector<Tensor> {
                                    MatmulPrecisionScope scope(MatmulPrecision::Medium);
                                    Tensor q, k, v;
                                    if (c.fused) {
                                      Tensor qkv = input({c.B, c.Nq, 3, c.H, c.D}, 301, d);
                                      auto part = [&](int64_t i) {
                                        return qkv.slice(2, i, i + 1).view({c.B, c.Nq, c.H, c.D});
                                      };
                                      q = part(0), k = part(1), v = part(2);
                                    } else {
                                      q = input({c.B, c.Nq, c.H, c.D}, 302, d);
                                      k = input({c.B, c.Nk, c.H, c.D}, 303, d);
                                      v = input({c.B, c.Nk, c.H, c.D}, 304, d);
                                    }
                                    AttentionOptions o;
                                    o.causal = c.causal;
                                    if (!c.cu_q.empty()) o.cu_seqlens_q = cu_tensor(c.cu_q, d), o.cu_seqlens_k = cu_tensor(c.cu_k, d);
                                    AttentionResult f = scaled_dot_product_attention(q, k, v, o);
                                    Tensor g = input({c.B, c.Nq, c.H, c.D}, 305, d);
                                    AttentionGrads gr = scaled_dot_product_attention_backward(g, q, k, v, f.out, f.lse, o);
                                    // lse is -inf for queries without keys (nmse undefined): left out there
                                    if (c.Nk == 0 || (c.Nk < c.Nq && !c.cu_q.empty())) return {f.out, gr.dq, gr.dk, gr.dv};
                                    return {f.out, f.lse, gr.dq, gr.dk, gr.dv};
                                  },
                                  kBf16AttentionBound});

    struct ConvCase {
      int64_t B, Cin, Cout, T, H, W;
      std::array<int64_t, 3> k, stride, padding;
      bool causal, replicate;
    };
    const ConvCase conv[] = {
        {2, 3, 7, 5, 7, 13, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, false, false},
        {1, 16, 24, 5, 9, 11, {3, 3, 3}, {1, 1, 1}, {0, 1, 1}, true, false},
        {1, 13, 9, 5, 9, 11, {3, 3, 3}, {1, 1, 1}, {0, 1, 1}, true, true},     // causal replicate
        {2, 8, 16, 6, 9, 10, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, false, false},   // strided
        {1, 5, 130, 3, 8, 8, {1, 3, 3}, {1, 2, 1}, {0, 1, 2}, false, true},    // Cout > one tile, replicate
        {1, 40, 8, 4, 6, 6, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, false, false},    // pointwise
    };
    for (const ConvCase& c : conv) {
      std::string p = "bf16,B=" + std::to_string(c.B) + ",Cin=" + std::to_string(c.Cin) + ",Cout=" +
                      std::to_string(c.Cout) + ",THW=" + std::to_string(c.T) + "x" + std::to_string(c.H) + "x" +
                      std::to_string(c.W) + ",k=" + shape_str({c.k[0], c.k[1], c.k[2]}) +
                      ",s=" + shape_str({c.stride[0], c.stride[1], c.stride[2]}) +
                      ",p=" + shape_str({c.padding[0], c.padding[1], c.padding[2]}) + (c.causal ? ",causal" : "") +
                      (c.replicate ? ",replicate" : "");
      optable::table().push_back({OpKind::Conv3d, "conv3d", p,
                                  [c](Device d) -> std::vector<Tensor> {
                                    MatmulPrecisionScope scope(MatmulPrecision::Medium);
                                    Conv3dOptions o;
                                    o.stride = c.stride;
                                    o.padding = c.padding;
                                    o.causal = c.causal;
                                    o.mode = c.replicate ? PadMode::Replicate : PadMode::Zeros;
                                    Tensor x = input({c.B, c.Cin, c.T, c.H, c.W}, 311, d);
                                    Tensor w = input({c.Cout, c.Cin, c.k[0], c.k[1], c.k[2]}, 312, d, false, 0.2f);
                                    Tensor b = input({c.Cout}, 313, d);
                                    Tensor y = conv3d(x, w, b, o);
                                    Tensor dy = input(y.shape(), 314, d);
                                    Conv3dGrads g = conv3d_backward(dy, x, w, o, true, true, true);
                                    return {y, g.dinp, g.dweight, g.dbias};
                                  },
                                  kBf16Bound});
    }

    const int64_t mm[][3] = {{5, 7, 13}, {64, 96, 128}, {130, 33, 257}};
    for (auto& s : mm)
      for (MatmulPrecision prec : {MatmulPrecision::Medium, MatmulPrecision::High}) {
        int64_t M = s[0], K = s[1], N = s[2];
        optable::table().push_back({OpKind::Matmul, "matmul", std::string(prec == MatmulPrecision::Medium ? "bf16" : "tf32") +
                                                  ",M=" + std::to_string(M) + ",K=" + std::to_string(K) +
                                                  ",N=" + std::to_string(N) + ",batched+a^T",
                                    [M, K, N, prec](Device d) -> std::vector<Tensor> {
                                      MatmulPrecisionScope scope(prec);
                                      return {matmul(input({3, 1, M, K}, 321, d), input({2, K, N}, 322, d)),
                                              matmul(input({K, M}, 323, d).transpose(0, 1), input({K, N}, 324, d))};
                                    },
                                    prec == MatmulPrecision::Medium ? kBf16Bound : kTf32Bound});
      }
  }
} reg;

TEST(precision_setting_scopes_and_names) {
  MatmulPrecision before = float32_matmul_precision();
  {
    MatmulPrecisionScope s(MatmulPrecision::Medium);
    EXPECT(float32_matmul_precision() == MatmulPrecision::Medium);
    {
      MatmulPrecisionScope t(MatmulPrecision::High);
      EXPECT(float32_matmul_precision() == MatmulPrecision::High);
    }
    EXPECT(float32_matmul_precision() == MatmulPrecision::Medium);
  }
  EXPECT(float32_matmul_precision() == before);
  EXPECT(std::string(matmul_precision_name(MatmulPrecision::Highest)) == "highest");
  EXPECT(std::string(matmul_precision_name(MatmulPrecision::Medium)) == "medium");
}

}  // namespace

int main(int argc, char** argv) {
  int checks = check::run_all(argc, argv);
  int table = optable::run(argc, argv);
  return checks || table ? 1 : 0;
}
