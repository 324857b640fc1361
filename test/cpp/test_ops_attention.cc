// Scaled dot-product attention: cross-backend table (out, lse, dq, dk, dv; CPU
// reference loops vs the flash-style kernels, and CUDA when it has the op) plus
// checks with hand-computable answers, the dq-partials path, determinism and
// input validation. Dimension letters: B, Nq, Nk, H, D (core/attention.h).
#include <cmath>
#include <cstring>
#include <limits>

#include "check.h"
#include "core/attention.h"
#include "core/parallel.h"
#include "op_table.h"

using namespace ts;
using optable::input;

namespace {

enum class Layout { Plain, FusedQkv, FusedKv, StridedD };
const char* layout_name(Layout l) {
  switch (l) {
    case Layout::Plain: return "plain";
    case Layout::FusedQkv: return "slices of qkv [B, N, 3, H, D]";
    case Layout::FusedKv: return "k, v slices of kv [B, Nk, 2, H, D]";
    case Layout::StridedD: return "stride 2 on D";
  }
  return "";
}

struct Spec {
  int64_t B, Nq, Nk, H, D;
  bool causal = false;
  Layout layout = Layout::Plain;
  std::vector<int32_t> cu_q, cu_k;  // packed sequences when non-empty (B = 1)
  double scale = 0;                 // 0: default 1/sqrt(D)
  bool with_lse = true;
};

// Slice `which` of axis 2 of a fused [B, N, P, H, D] tensor, as a [B, N, H, D] view.
Tensor part(const Tensor& fused, int64_t which) {
  const Shape& s = fused.shape();
  Tensor p = fused.slice(2, which, which + 1).view({s[0], s[1], s[3], s[4]});
  if (p.is_contiguous() && s[1] * s[0] > 1) fail("test", "expected a strided view");
  return p;
}

Tensor cu_tensor(const std::vector<int32_t>& v, Device d) {
  Tensor t = from_host(v.data(), v.size() * 4, DType::Int32, {static_cast<int64_t>(v.size())}, DType::Int32, Device{});
  return d.is_cpu() ? t : to_device(t, d);
}

struct QKV {
  Tensor q, k, v;
};
QKV make_inputs(const Spec& s, Device d) {
  QKV r;
  switch (s.layout) {
    case Layout::FusedQkv: {
      Tensor qkv = input({s.B, s.Nq, 3, s.H, s.D}, 101, d);
      r = {part(qkv, 0), part(qkv, 1), part(qkv, 2)};
      break;
    }
    case Layout::FusedKv: {
      Tensor kv = input({s.B, s.Nk, 2, s.H, s.D}, 102, d);
      r = {input({s.B, s.Nq, s.H, s.D}, 103, d), part(kv, 0), part(kv, 1)};
      break;
    }
    default: {
      bool st = s.layout == Layout::StridedD;
      r = {input({s.B, s.Nq, s.H, s.D}, 104, d, st), input({s.B, s.Nk, s.H, s.D}, 105, d, st),
           input({s.B, s.Nk, s.H, s.D}, 106, d, st)};
    }
  }
  return r;
}

AttentionOptions options(const Spec& s, Device d) {
  AttentionOptions o;
  if (s.scale != 0) o.scale = s.scale;
  o.causal = s.causal;
  if (!s.cu_q.empty()) o.cu_seqlens_q = cu_tensor(s.cu_q, d), o.cu_seqlens_k = cu_tensor(s.cu_k, d);
  return o;
}

std::vector<Tensor> run_spec(const Spec& s, Device d) {
  QKV x = make_inputs(s, d);
  AttentionOptions o = options(s, d);
  AttentionResult f = scaled_dot_product_attention(x.q, x.k, x.v, o);
  Tensor dout = input({s.B, s.Nq, s.H, s.D}, 107, d);
  AttentionGrads g = scaled_dot_product_attention_backward(dout, x.q, x.k, x.v, f.out, f.lse, o);
  if (s.with_lse) return {f.out, f.lse, g.dq, g.dk, g.dv};
  return {f.out, g.dq, g.dk, g.dv};
}

std::string params(const Spec& s) {
  std::string p = "B=" + std::to_string(s.B) + ",Nq=" + std::to_string(s.Nq) + ",Nk=" + std::to_string(s.Nk) +
                  ",H=" + std::to_string(s.H) + ",D=" + std::to_string(s.D);
  if (s.causal) p += ",causal";
  if (!s.cu_q.empty()) {
    p += ",packed q" + shape_str(Shape(s.cu_q.begin(), s.cu_q.end())) + " k" + shape_str(Shape(s.cu_k.begin(), s.cu_k.end()));
  }
  if (s.scale != 0) p += ",scale=" + std::to_string(s.scale).substr(0, 4);
  if (s.layout != Layout::Plain) p += std::string(",") + layout_name(s.layout);
  return p;
}

void add(const Spec& s) {
  optable::table().push_back({OpKind::Attention, "scaledDotProductAttention", params(s), [s](Device d) { return run_spec(s, d); }, 1e-10});
}

struct Reg {
  Reg() {
    for (bool causal : {false, true}) {
      add({2, 1, 1, 2, 8, causal});
      add({1, 7, 7, 3, 8, causal, Layout::StridedD});
      add({2, 13, 13, 2, 64, causal, Layout::FusedQkv});
      add({1, 130, 130, 2, 80, causal});
      add({1, 130, 130, 3, 64, causal, Layout::FusedQkv});
      add({2, 7, 130, 2, 64, causal, Layout::FusedKv});  // cross-attention, Nq < Nk
      add({1, 130, 13, 3, 8, causal});                   // Nq > Nk: late rows see every key
      add({1, 3, 13, 2, 64, causal, Layout::Plain, {}, {}, 0.3});
      // packed (NaViT): three sequences of unequal lengths, q and k lengths differ
      add({1, 130, 130, 2, 64, causal, Layout::Plain, {0, 5, 75, 130}, {0, 13, 77, 130}});
      add({1, 130, 130, 2, 80, causal, Layout::FusedQkv, {0, 1, 65, 130}, {0, 1, 65, 130}});
      // an empty query sequence, and a query sequence with no keys (out = 0, lse = -inf)
      add({1, 13, 8, 2, 8, causal, Layout::Plain, {0, 4, 4, 13}, {0, 3, 8, 8}, 0, false});
      // no queries (dk = dv = 0), no keys (out = 0, lse = -inf)
      add({2, 0, 5, 2, 8, causal});
      add({2, 4, 0, 2, 8, causal, Layout::Plain, {}, {}, 0, false});
      // D = 128: CUDA's float32 kernels then need more than 48 KB of shared memory (opt-in)
      add({1, 70, 70, 2, 128, causal});
      add({2, 33, 65, 2, 128, causal, Layout::FusedKv});
      add({1, 70, 33, 2, 128, causal, Layout::StridedD});  // Nq > Nk
    }
  }
} reg;

double max_abs_diff(const Tensor& a, const Tensor& b) {
  std::vector<float> x = optable::host(a), y = optable::host(b);
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, static_cast<double>(std::fabs(x[i] - y[i])));
  return m;
}

// With k = 0 every visible score is 0: out_i is the mean of the visible v rows and
// lse_i = log(count), a truth independent of both implementations.
TEST(uniform_scores_give_mean_of_visible_values) {
  for (bool ref : {true, false}) {
    cpu::set_reference_kernels(ref);
    for (bool causal : {false, true}) {
      const int64_t N = 75, H = 2, D = 24;
      Tensor q = input({1, N, H, D}, 1, Device{}), v = input({1, N, H, D}, 2, Device{});
      Tensor k = full({1, N, H, D}, 0.0, DType::Float32, Device{});
      AttentionOptions o;
      o.causal = causal;
      AttentionResult r = scaled_dot_product_attention(q, k, v, o);
      std::vector<float> vo = optable::host(r.out), vl = optable::host(r.lse), vv = optable::host(v);
      double worst = 0, worst_lse = 0;
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < N; ++i) {
          int64_t n = causal ? i + 1 : N;
          worst_lse = std::max(worst_lse, std::fabs(vl[h * N + i] - std::log(static_cast<double>(n))));
          for (int64_t d = 0; d < D; ++d) {
            double mean = 0;
            for (int64_t j = 0; j < n; ++j) mean += vv[(j * H + h) * D + d];
            worst = std::max(worst, std::fabs(vo[(i * H + h) * D + d] - mean / n));
          }
        }
      EXPECT(worst < 1e-5);
      EXPECT(worst_lse < 1e-5);
    }
  }
  cpu::set_reference_kernels(false);
}

TEST(rows_without_keys_give_zero_output_and_minus_inf_lse) {
  for (bool ref : {true, false}) {
    cpu::set_reference_kernels(ref);
    Spec s{1, 13, 8, 2, 8, false, Layout::Plain, {0, 4, 4, 13}, {0, 3, 8, 8}};
    std::vector<Tensor> o = run_spec(s, Device{});
    std::vector<float> out = optable::host(o[0]), lse = optable::host(o[1]), dq = optable::host(o[2]);
    for (int64_t i = 4; i < 13; ++i)
      for (int64_t h = 0; h < 2; ++h) {
        EXPECT(lse[h * 13 + i] == -std::numeric_limits<float>::infinity());
        for (int64_t d = 0; d < 8; ++d) EXPECT(out[(i * 2 + h) * 8 + d] == 0.0f && dq[(i * 2 + h) * 8 + d] == 0.0f);
      }
  }
  cpu::set_reference_kernels(false);
}

// Few (b, h) pairs for many threads: the backward splits key blocks into groups with
// dq partials. It must match the reference and repeat bit for bit.
TEST(grouped_backward_matches_reference_and_is_deterministic) {
  const int saved = num_threads();
  for (bool causal : {false, true}) {
    Spec s{1, 300, 260, 1, 40, causal};
    cpu::set_reference_kernels(true);
    std::vector<Tensor> ref = run_spec(s, Device{});
    cpu::set_reference_kernels(false);
    set_num_threads(4);
    std::vector<Tensor> a = run_spec(s, Device{}), b = run_spec(s, Device{});
    set_num_threads(saved);
    for (size_t i = 0; i < ref.size(); ++i) {
      EXPECT(optable::nmse(optable::host(a[i]), optable::host(ref[i])) < 1e-10);
      EXPECT(max_abs_diff(a[i], b[i]) == 0.0);
    }
  }
}

// The table runs the widest kernels this CPU has; here every narrower build of the
// same kernels (AVX2, portable) is checked against the reference too.
TEST(every_vector_width_matches_reference) {
  const std::vector<Spec> specs = {
      {1, 130, 130, 2, 80, true},
      {2, 7, 130, 2, 64, false, Layout::FusedKv},
      {1, 130, 13, 3, 8, true, Layout::StridedD},
      {1, 130, 130, 2, 64, true, Layout::FusedQkv, {0, 5, 75, 130}, {0, 13, 77, 130}},
      {1, 13, 8, 2, 8, false, Layout::Plain, {0, 4, 4, 13}, {0, 3, 8, 8}, 0, false},
  };
  for (int width : {4, 8, 16}) {
    int got = cpu::attention_set_max_width(width);
    if (got != width) {
      std::printf("  vector width %d: skipped (this CPU lacks it)\n", width);
      continue;
    }
    for (const Spec& s : specs) {
      cpu::set_reference_kernels(true);
      std::vector<Tensor> ref = run_spec(s, Device{});
      cpu::set_reference_kernels(false);
      std::vector<Tensor> out = run_spec(s, Device{});
      double worst = 0;
      for (size_t i = 0; i < ref.size(); ++i)
        worst = std::max(worst, optable::nmse(optable::host(out[i]), optable::host(ref[i])));
      if (!(worst < 1e-10)) std::printf("  width %d, %s: nmse %.3g\n", width, params(s).c_str(), worst);
      EXPECT(worst < 1e-10);
    }
  }
  cpu::attention_set_max_width(0);
}

TEST(validation_messages_name_the_op) {
  Device c{};
  Tensor q = input({1, 5, 2, 8}, 1, c), k = input({1, 6, 2, 8}, 2, c), v = input({1, 6, 2, 8}, 3, c);
  auto sdpa = [&](const Tensor& a, const Tensor& b, const Tensor& d, const AttentionOptions& o = {}) {
    return scaled_dot_product_attention(a, b, d, o);
  };
  EXPECT_THROWS(sdpa(q.reshape({5, 2, 8}), k, v), "scaledDotProductAttention: expected q of shape [B, Nq, H, D], got [5, 2, 8]");
  EXPECT_THROWS(sdpa(q, k, input({1, 7, 2, 8}, 4, c)), "scaledDotProductAttention: expected k and v of one shape");
  EXPECT_THROWS(sdpa(q, input({1, 6, 3, 8}, 5, c), input({1, 6, 3, 8}, 6, c)), "match q [B, Nq, H, D] in B, H and D");
  EXPECT_THROWS(sdpa(q, input({2, 6, 2, 8}, 5, c), input({2, 6, 2, 8}, 6, c)), "in B, H and D");
  EXPECT_THROWS(sdpa(to_dtype(q, DType::Float64), k, v), "expected q of dtype float32, got float64");
  EXPECT_THROWS(sdpa(input({1, 5, 2, 0}, 1, c), input({1, 6, 2, 0}, 1, c), input({1, 6, 2, 0}, 1, c)), "head dim D >= 1");
  AttentionOptions o;
  o.scale = std::numeric_limits<double>::infinity();
  EXPECT_THROWS(sdpa(q, k, v, o), "expected a finite scale");
  auto packed = [&](std::vector<int32_t> cq, std::vector<int32_t> ck) {
    AttentionOptions p;
    p.cu_seqlens_q = cu_tensor(cq, c);
    p.cu_seqlens_k = cu_tensor(ck, c);
    return p;
  };
  EXPECT_THROWS(sdpa(q, k, v, packed({0, 2, 5}, {0, 3, 6, 6})), "same number of sequences, got 2 and 3");
  EXPECT_THROWS(sdpa(q, k, v, packed({1, 2, 5}, {0, 3, 6})), "cuSeqlensQ to start at 0, got 1");
  EXPECT_THROWS(sdpa(q, k, v, packed({0, 3, 2, 5}, {0, 1, 2, 6})), "cuSeqlensQ to be non-decreasing prefix sums, got 3 then 2");
  EXPECT_THROWS(sdpa(q, k, v, packed({0, 2, 5}, {0, 3, 7})), "last entry of cuSeqlensK to equal the token count 6, got 7");
  EXPECT_THROWS(sdpa(q, k, v, packed({0}, {0})), "cuSeqlensQ of shape [S + 1] with S >= 1");
  AttentionOptions one = packed({0, 5}, {0, 6});
  one.cu_seqlens_k = Tensor();
  EXPECT_THROWS(sdpa(q, k, v, one), "expected cuSeqlensQ and cuSeqlensK together");
  AttentionOptions f64 = packed({0, 5}, {0, 6});
  f64.cu_seqlens_q = to_dtype(f64.cu_seqlens_q, DType::Float32);
  EXPECT_THROWS(sdpa(q, k, v, f64), "expected cuSeqlensQ of dtype int32, got float32");
  EXPECT_THROWS(sdpa(input({2, 5, 2, 8}, 1, c), input({2, 6, 2, 8}, 2, c), input({2, 6, 2, 8}, 3, c), packed({0, 5}, {0, 6})),
                "expected B = 1 with packed sequences");
  AttentionResult r = sdpa(q, k, v);
  EXPECT_THROWS(scaled_dot_product_attention_backward(k, q, k, v, r.out, r.lse), "backward expected the output gradient of shape [1, 5, 2, 8]");
  EXPECT_THROWS(scaled_dot_product_attention_backward(r.out, q, k, v, r.out, r.out), "backward expected the log-sum-exp of shape [1, 2, 5]");
}

}  // namespace

int main(int argc, char** argv) {
  int table = optable::run(argc, argv);
  int checks = check::run_all(argc, argv);
  return table | checks;
}
