// nn family: the cross-backend table (forward and backward kernels, CPU reference
// loops vs optimized path vs CUDA; friendly and odd shapes; contiguous and strided
// inputs), plus checks against independent compositions of generic ops and the
// error messages of bad inputs.
#include <cmath>
#include <cstring>

#include "check.h"
#include "core/nn.h"
#include "op_table.h"

using namespace ts;
using optable::input;

namespace {

Tensor ids_tensor(const std::vector<int64_t>& v, const Shape& shape, DType dt, Device d) {
  Tensor t = from_host(v.data(), v.size() * sizeof(int64_t), DType::Int64, shape, dt, Device{});
  return d.is_cpu() ? t : to_device(t, d);
}

// Pseudo-random ids in [0, V) with repeats.
std::vector<int64_t> some_ids(int64_t n, int64_t V, uint64_t seed) {
  std::vector<int64_t> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<int64_t>((i * 7919 + seed * 104729 + (i * i) % 13) % V);
  return v;
}

std::string sh(const Shape& s) { return shape_str(s); }
const char* strided_tag(bool s) { return s ? ",strided" : ""; }

void add(OpKind kind, const std::string& op, const std::string& params, std::function<std::vector<Tensor>(Device)> fn,
         double bound = 1e-10) {
  optable::table().push_back({kind, op, params, std::move(fn), bound});
}

struct Reg {
  Reg() {
    // softmax / logSoftmax over each axis, plus a middle axis wider than one column block,
    // and rows longer than 1024 (one block per row on CUDA instead of one warp).
    struct SmCase {
      Shape s;
      int64_t axis;
    };
    const SmCase sm[] = {{{5, 7, 13}, -1}, {{5, 7, 13}, 0}, {{5, 7, 13}, 1}, {{2, 5, 130}, 1}, {{3, 1000}, 1},
                           {{5, 1500}, 1},    {{3, 2, 4100}, -1}};
    for (bool log : {false, true})
      for (const SmCase& c : sm)
        for (bool strided : {false, true}) {
          Shape s = c.s;
          int64_t axis = c.axis;
          add(OpKind::Softmax, log ? "logSoftmax" : "softmax", sh(s) + ",axis=" + std::to_string(axis) + strided_tag(strided),
              [=](Device d) -> std::vector<Tensor> {
                Tensor x = input(s, 101, d, strided, 3);
                Tensor y = softmax(x, axis, log);
                return {y, softmax_backward(input(s, 102, d), y, axis, log)};
              });
        }

    // layerNorm: trailing 1 or 2 dims, with and without affine params; 300x100 spans
    // several row chunks of the optimized backward; rows of 2000 and 2x1500 take CUDA's
    // block-per-row path.
    struct LnCase {
      Shape s, ns;
    };
    const LnCase ln[] = {{{5, 7, 13}, {13}}, {{5, 7, 13}, {7, 13}}, {{300, 100}, {100}}, {{4, 1}, {1}},
                          {{7, 2000}, {2000}}, {{3, 2, 1500}, {2, 1500}}};
    for (const LnCase& c : ln)
      for (int affine = 0; affine < 3; ++affine)
        for (bool strided : {false, true}) {
          Shape s = c.s, ns = c.ns;
          const char* an[] = {"no affine", "weight", "weight+bias"};
          add(OpKind::LayerNorm, "layerNorm", sh(s) + ",ns=" + sh(ns) + "," + an[affine] + strided_tag(strided),
              [=](Device d) -> std::vector<Tensor> {
                Tensor x = input(s, 111, d, strided, 2, 0.5f);
                Tensor w = affine >= 1 ? input(ns, 112, d, false, 1, 1) : Tensor();
                Tensor b = affine >= 2 ? input(ns, 113, d) : Tensor();
                NormOut f = layer_norm(x, ns, w, b, 1e-5);
                NormGrads g = layer_norm_backward(input(s, 114, d), x, w, f.mean, f.rstd, ns, b.defined());
                std::vector<Tensor> r{f.out, f.mean, f.rstd, g.dinp};
                if (g.dweight.defined()) r.push_back(g.dweight);
                if (g.dbias.defined()) r.push_back(g.dbias);
                return r;
              });
        }

    // groupNorm on [B, C], [B, C, H, W] and [B, C, T, H, W], with G = 1, C and between;
    // groups of 76,800 values (several chunks per group on CUDA, combined in order).
    struct GnCase {
      Shape s;
      int64_t G;
    };
    const GnCase gn[] = {{{5, 6}, 3},        {{2, 6, 5, 7}, 3},  {{3, 4, 3, 5, 7}, 2},
                         {{2, 5, 7, 13}, 1}, {{2, 5, 7, 13}, 5}, {{1, 4, 3, 80, 160}, 2}};
    for (const GnCase& c : gn)
      for (bool affine : {false, true})
        for (bool strided : {false, true}) {
          Shape s = c.s;
          int64_t G = c.G;
          add(OpKind::GroupNorm, "groupNorm", sh(s) + ",G=" + std::to_string(G) + (affine ? ",affine" : "") + strided_tag(strided),
              [=](Device d) -> std::vector<Tensor> {
                Tensor x = input(s, 121, d, strided, 2, -0.5f);
                Tensor w = affine ? input({s[1]}, 122, d, false, 1, 1) : Tensor();
                Tensor b = affine ? input({s[1]}, 123, d) : Tensor();
                NormOut f = group_norm(x, G, w, b, 1e-5);
                NormGrads g = group_norm_backward(input(s, 124, d), x, w, f.mean, f.rstd, G, affine);
                std::vector<Tensor> r{f.out, f.mean, f.rstd, g.dinp};
                if (affine) r.insert(r.end(), {g.dweight, g.dbias});
                return r;
              });
        }

    for (Shape s : {Shape{5, 7, 13}, Shape{300, 100}, Shape{7}, Shape{6, 3000}})
      for (bool affine : {false, true})
        for (bool strided : {false, true})
          add(OpKind::RmsNorm, "rmsNorm", sh(s) + (affine ? ",weight" : "") + strided_tag(strided), [=](Device d) -> std::vector<Tensor> {
            Tensor x = input(s, 131, d, strided);
            Tensor w = affine ? input({s.back()}, 132, d, false, 1, 1) : Tensor();
            NormOut f = rms_norm(x, w, 1e-6);
            NormGrads g = rms_norm_backward(input(s, 133, d), x, w, f.rstd);
            std::vector<Tensor> r{f.out, f.rstd, g.dinp};
            if (affine) r.push_back(g.dweight);
            return r;
          });

    // linear: odd sizes around the GEMM tiles (6/12 rows, 16/32 columns), several K slabs
    // (K = 600 > 256), no rows, K = 0, with and without bias, a strided input.
    struct LinCase {
      Shape x;
      int64_t N;
      bool bias, strided;
    };
    const LinCase lin[] = {{{5, 7, 13}, 9, true, false},  {{5, 7, 13}, 9, false, true}, {{130, 64}, 33, true, false},
                           {{1, 600}, 517, true, false},   {{37, 1}, 5, true, true},    {{2, 0, 4}, 3, true, false},
                           {{3, 0}, 4, true, false},       {{70, 300}, 16, false, false}};
    for (const LinCase& c : lin)
      add(OpKind::Matmul, "linear", "x=" + sh(c.x) + ",N=" + std::to_string(c.N) + (c.bias ? ",bias" : "") + strided_tag(c.strided),
          [c](Device d) -> std::vector<Tensor> {
            const int64_t K = c.x.back();
            Tensor x = input(c.x, 161, d, c.strided), w = input({c.N, K}, 162, d, false, 0.3f);
            Tensor b = c.bias ? input({c.N}, 163, d) : Tensor();
            Shape os = c.x;
            os.back() = c.N;
            LinearGrads g = linear_backward(input(os, 164, d), x, w, true, true, c.bias);
            std::vector<Tensor> r{linear(x, w, b), g.dinp, g.dweight};
            if (c.bias) r.push_back(g.dbias);
            return r;
          });

    for (Shape s : {Shape{2, 7, 13}, Shape{3, 5, 130}, Shape{1, 200, 64}})
      for (bool strided : {false, true})
        add(OpKind::Modulate, "modulate", sh(s) + strided_tag(strided), [=](Device d) -> std::vector<Tensor> {
          Tensor x = input(s, 141, d, strided);
          Tensor shift = input({s[0], s[2]}, 142, d, strided), scale = input({s[0], s[2]}, 143, d, false, 0.5f);
          ModulateGrads g = modulate_backward(input(s, 144, d), x, scale);
          return {modulate(x, shift, scale), g.dinp, g.dshift, g.dscale};
        });

    // embedding: int32 and int64 ids with repeats, one strided (a transposed view).
    struct EmCase {
      Shape ids;
      int64_t V, D;
      DType dt;
      bool strided;
    };
    const EmCase em[] = {{{5, 7}, 13, 11, DType::Int32, false},
                         {{5, 7}, 13, 11, DType::Int64, true},
                         {{37}, 5, 130, DType::Int64, false},
                         {{}, 3, 7, DType::Int32, false}};
    for (const EmCase& c : em)
      add(OpKind::Embedding, "embedding", "ids=" + sh(c.ids) + "," + dtype_name(c.dt) + ",V=" + std::to_string(c.V) + ",D=" +
                           std::to_string(c.D) + strided_tag(c.strided),
          [c](Device d) -> std::vector<Tensor> {
            int64_t n = shape_numel(c.ids);
            Tensor ids = ids_tensor(some_ids(n, c.V, 3), c.ids, c.dt, d);
            if (c.strided) ids = ids_tensor(some_ids(n, c.V, 3), {c.ids[1], c.ids[0]}, c.dt, d).transpose(0, 1);
            Tensor w = input({c.V, c.D}, 151, d);
            Shape os = c.ids;
            os.push_back(c.D);
            return {embedding(ids, w), embedding_backward(input(os, 152, d), ids, c.V)};
          },
          0);

    // dropout: a fixed generator, so every backend must draw the identical mask.
    for (Shape s : {Shape{5, 7, 13}, Shape{3, 1001}})
      for (double p : {0.1, 0.5})
        for (bool strided : {false, true})
          add(OpKind::Dropout, "dropout", sh(s) + ",p=" + std::to_string(p).substr(0, 3) + strided_tag(strided),
              [=](Device d) -> std::vector<Tensor> {
                Generator g;
                g.seed = 1234;
                g.offset = 7;
                DropoutOut f = dropout(input(s, 161, d, strided), p, true, g);
                return {f.out, dropout_backward(input(s, 162, d), p, f.seed, f.offset)};
              },
              0);

    for (LossKind k : {LossKind::Mse, LossKind::L1})
      for (Reduction r : {Reduction::Mean, Reduction::Sum, Reduction::None})
        for (Shape s : {Shape{5, 7, 13}, Shape{40, 1000}})
          for (bool strided : {false, true}) {
            const char* rn = r == Reduction::Mean ? "mean" : r == Reduction::Sum ? "sum" : "none";
            add(OpKind::Loss, loss_name(k), sh(s) + "," + rn + strided_tag(strided), [=](Device d) -> std::vector<Tensor> {
              Tensor a = input(s, 171, d, strided), b = input(s, 172, d);
              Tensor out = loss(k, a, b, r);
              Tensor g = r == Reduction::None ? input(s, 173, d) : input({}, 173, d);
              auto gr = loss_backward(k, g, a, b, r);
              return {out, gr[0], gr[1]};
            });
          }

    for (Shape s : {Shape{5, 7, 13}, Shape{2, 4, 3, 5, 7}, Shape{3, 30000}})
      for (bool strided : {false, true})
        add(OpKind::GaussianKL, "gaussianKL", sh(s) + strided_tag(strided), [=](Device d) -> std::vector<Tensor> {
          Tensor m = input(s, 181, d, strided), lv = input(s, 182, d, strided, 0.5f);
          auto g = gaussian_kl_backward(input({}, 183, d), m, lv);
          return {gaussian_kl(m, lv), g[0], g[1]};
        });

    struct UpCase {
      Shape s;
      std::vector<int64_t> f;
    };
    const UpCase up[] = {{{2, 3, 5, 7, 4}, {2, 3, 1}}, {{1, 2, 3, 4, 5}, {1, 2, 2}}, {{1, 1, 2, 3, 13}, {3, 1, 2}}};
    for (const UpCase& c : up)
      for (bool strided : {false, true}) {
        Shape s = c.s, os = c.s;
        std::vector<int64_t> f = c.f;
        for (int i = 0; i < 3; ++i) os[2 + i] *= f[i];
        add(OpKind::Interpolate, "interpolate", sh(s) + ",scale=" + sh(f) + strided_tag(strided), [=](Device d) -> std::vector<Tensor> {
          Tensor x = input(s, 191, d, strided);
          return {interpolate_nearest(x, f), interpolate_nearest_backward(input(os, 192, d, strided), f)};
        });
      }

    // patchify with contiguous, inner-strided and channels-last inputs; unpatchify with
    // contiguous and transposed-view tokens. Each checks the other as its backward. The
    // last three reach CUDA's other paths: 16-byte loads and stores (W and the runs a
    // multiple of 4), channels split over several slabs (100 channels, 48 per slab), and
    // the direct gather (a patch row of 4x4x804 floats does not fit a slab).
    struct PCase {
      Shape s;
      std::vector<int64_t> p;
    };
    const PCase pc[] = {{{2, 3, 6, 8, 10}, {2, 2, 2}}, {{1, 5, 7, 13, 13}, {7, 13, 1}}, {{2, 4, 1, 6, 6}, {1, 3, 2}},
                        {{1, 2, 5, 7, 13}, {1, 1, 1}},  {{2, 4, 2, 8, 16}, {1, 2, 2}},  {{1, 100, 2, 4, 60}, {2, 2, 2}},
                        {{1, 2, 4, 4, 800}, {4, 4, 2}}};
    for (const PCase& c : pc)
      for (int layout = 0; layout < 3; ++layout) {
        Shape s = c.s;
        std::vector<int64_t> p = c.p;
        const char* ln_[] = {"", ",strided", ",channels-last"};
        add(OpKind::Patchify, "patchify", sh(s) + ",patch=" + sh(p) + ln_[layout], [=](Device d) -> std::vector<Tensor> {
          Tensor x;
          if (layout == 2) x = input({s[0], s[2], s[3], s[4], s[1]}, 201, d).permute({0, 4, 1, 2, 3});
          else x = input(s, 201, d, layout == 1);
          Tensor tok = patchify(x, p);
          std::vector<int64_t> grid{s[2] / p[0], s[3] / p[1], s[4] / p[2]};
          Tensor back = unpatchify(input(tok.shape(), 202, d), s[1], grid, p);
          return {tok, back};
        }, 0);
        if (layout == 2) continue;
        add(OpKind::Patchify, "unpatchify", sh(s) + ",patch=" + sh(p) + (layout ? ",transposed tokens" : ""),
            [=](Device d) -> std::vector<Tensor> {
              std::vector<int64_t> grid{s[2] / p[0], s[3] / p[1], s[4] / p[2]};
              int64_t N = grid[0] * grid[1] * grid[2], F = s[1] * p[0] * p[1] * p[2];
              Tensor tok = layout ? input({s[0], F, N}, 211, d).transpose(1, 2) : input({s[0], N, F}, 211, d);
              Tensor x = unpatchify(tok, s[1], grid, p);
              return {x, patchify(input(s, 212, d), p)};
            }, 0);
      }
  }
} reg;

// ---- checks against independent compositions of generic ops ----------------------------

std::vector<float> vals(const Tensor& t) { return optable::host(t); }
double max_abs_diff(const Tensor& a, const Tensor& b) {
  auto x = vals(a), y = vals(b);
  if (x.size() != y.size()) return INFINITY;
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::fabs(static_cast<double>(x[i]) - y[i]));
  return m;
}

TEST(patchify_is_the_reshape_permute_and_unpatchify_its_inverse) {
  for (bool ref : {true, false}) {
    cpu::set_reference_kernels(ref);
    Tensor x = input({2, 3, 4, 6, 10}, 7, Device{});
    Tensor want = x.reshape({2, 3, 2, 2, 3, 2, 5, 2}).permute({0, 2, 4, 6, 1, 3, 5, 7}).reshape({2, 30, 24});
    Tensor tok = patchify(x, {2, 2, 2});
    EXPECT(tok.shape() == (Shape{2, 30, 24}));
    EXPECT_NEAR(max_abs_diff(tok, want), 0, 0);
    EXPECT_NEAR(max_abs_diff(unpatchify(tok, 3, {2, 3, 5}, {2, 2, 2}), x), 0, 0);
    cpu::set_reference_kernels(false);
  }
}

TEST(softmax_and_log_softmax_match_their_definitions) {
  Tensor x = input({4, 6, 5}, 9, Device{}, false, 4);
  Tensor e = unary(UnaryOp::Exp, x);
  Tensor want = binary(BinaryOp::Div, e, reduce(ReduceOp::Sum, e, {1}, true));
  EXPECT(max_abs_diff(softmax(x, 1, false), want) < 1e-6);
  EXPECT(max_abs_diff(softmax(x, 1, true), unary(UnaryOp::Log, want)) < 1e-5);
  // Large logits stay finite (the max is subtracted first).
  Tensor big = binary_scalar(BinaryOp::Add, x, 1000, false);
  EXPECT(max_abs_diff(softmax(big, 1, false), want) < 1e-5);
}

TEST(norms_match_their_definitions) {
  Tensor x = input({6, 20}, 10, Device{}, false, 3, 2);
  NormOut ln = layer_norm(x, {20}, Tensor(), Tensor(), 0);
  Tensor mu = reduce(ReduceOp::Mean, x, {1}, true);
  Tensor xc = binary(BinaryOp::Sub, x, mu);
  Tensor var = reduce(ReduceOp::Mean, unary(UnaryOp::Square, xc), {1}, true);
  EXPECT(max_abs_diff(ln.out, binary(BinaryOp::Mul, xc, unary(UnaryOp::Rsqrt, var))) < 1e-5);
  // groupNorm with one channel per group on [B, C, S] is layer norm over S.
  NormOut gn = group_norm(x.reshape({2, 3, 20}), 3, Tensor(), Tensor(), 0);
  EXPECT(max_abs_diff(gn.out.reshape({6, 20}), ln.out) < 1e-5);
  NormOut rn = rms_norm(x, Tensor(), 0);
  Tensor ms = reduce(ReduceOp::Mean, unary(UnaryOp::Square, x), {1}, true);
  EXPECT(max_abs_diff(rn.out, binary(BinaryOp::Mul, x, unary(UnaryOp::Rsqrt, ms))) < 1e-5);
}

TEST(losses_kl_interpolate_and_dropout_values) {
  float av[] = {1, 2, 3, 4}, bv[] = {1, 0, 5, 3.5f};
  Tensor a = from_host(av, 16, DType::Float32, {2, 2}, DType::Float32, Device{});
  Tensor b = from_host(bv, 16, DType::Float32, {2, 2}, DType::Float32, Device{});
  EXPECT_NEAR(vals(loss(LossKind::Mse, a, b, Reduction::Mean))[0], (0 + 4 + 4 + 0.25) / 4, 1e-6);
  EXPECT_NEAR(vals(loss(LossKind::L1, a, b, Reduction::Sum))[0], 0 + 2 + 2 + 0.5, 1e-6);
  // KL: mean 1, logvar 0 -> 0.5 per element; 4 elements over B = 2 -> 1.
  Tensor ones = full({2, 2}, 1, DType::Float32, Device{}), zeros = full({2, 2}, 0, DType::Float32, Device{});
  EXPECT_NEAR(vals(gaussian_kl(ones, zeros))[0], 1.0, 1e-6);
  Tensor x = arange(0, 4, 1, DType::Float32, Device{}).reshape({1, 1, 1, 2, 2});
  auto up = vals(interpolate_nearest(x, {2, 1, 3}));  // [1, 1, 2, 2, 6]
  EXPECT(up.size() == 24);
  EXPECT_NEAR(up[0], 0, 0);
  EXPECT_NEAR(up[5], 1, 0);
  EXPECT_NEAR(up[6], 2, 0);
  EXPECT_NEAR(up[12 + 11], 3, 0);
  // Dropout: about p of the elements are zeroed, the rest scaled by 1/(1-p).
  Generator g;
  g.seed = 5;
  Tensor big = full({100000}, 1, DType::Float32, Device{});
  DropoutOut d = dropout(big, 0.25, true, g);
  int64_t zero = 0;
  bool scaled = true;
  for (float v : vals(d.out)) {
    zero += v == 0;
    scaled = scaled && (v == 0 || std::fabs(v - 1 / 0.75f) < 1e-6);
  }
  EXPECT(scaled);
  EXPECT(std::abs(zero - 25000) < 600);
  EXPECT(g.offset == 25000);  // 4 elements per Philox block
  EXPECT(dropout(big, 0.25, false, g).out.storage() == big.storage());
}

// ---- bad inputs: the message names the op and what was expected --------------------------

TEST(bad_inputs_name_the_op_and_the_expectation) {
  Device c{};
  Tensor x3 = input({2, 3, 4}, 1, c);
  Tensor x5 = input({1, 2, 5, 4, 4}, 2, c);
  Tensor i32 = ids_tensor({0, 1}, {2}, DType::Int32, c);
  EXPECT_THROWS(softmax(x3, 3, false), "softmax: axis 3 is out of range for a tensor of rank 3");
  EXPECT_THROWS(softmax(i32, 0, true), "logSoftmax: expected input of dtype float32, got int32");
  EXPECT_THROWS(layer_norm(x3, {3}, Tensor(), Tensor(), 1e-5), "layerNorm: expected input whose trailing dims are normalizedShape [3]");
  EXPECT_THROWS(layer_norm(x3, {4}, input({3}, 3, c), Tensor(), 1e-5), "layerNorm: expected weight of shape [4], got [3]");
  EXPECT_THROWS(layer_norm(x3, {4}, Tensor(), Tensor(), -1), "layerNorm: expected a finite eps >= 0");
  EXPECT_THROWS(group_norm(x3, 2, Tensor(), Tensor(), 1e-5), "groupNorm: expected channels C = 3 to be divisible by numGroups = 2");
  EXPECT_THROWS(group_norm(input({6}, 1, c), 2, Tensor(), Tensor(), 1e-5), "groupNorm: expected input of shape [B, C, ...]");
  EXPECT_THROWS(group_norm(x3, 3, input({4}, 1, c), Tensor(), 1e-5), "groupNorm: expected weight of shape [3], got [4]");
  EXPECT_THROWS(rms_norm(x3, input({3}, 1, c), 1e-6), "rmsNorm: expected weight of shape [4], got [3]");
  EXPECT_THROWS(linear(x3, input({5, 3}, 1, c), Tensor()), "linear: input's last dim must equal weight's in features 3, got input [2, 3, 4]");
  EXPECT_THROWS(linear(x3, input({5, 4}, 1, c), input({4}, 1, c)), "linear: expected bias of shape [5], got [4]");
  EXPECT_THROWS(linear(x3, input({20}, 1, c), Tensor()), "linear: expected weight of shape [out, in], got [20]");
  EXPECT_THROWS(linear(i32, input({5, 2}, 1, c), Tensor()), "linear: expected input of dtype float32, got int32");
  EXPECT_THROWS(linear_backward(input({2, 3, 4}, 1, c), x3, input({5, 4}, 1, c), true, true, true), "linear: expected gradient of shape [2, 3, 5], got [2, 3, 4]");
  EXPECT_THROWS(modulate(input({2, 4}, 1, c), input({2, 4}, 1, c), input({2, 4}, 1, c)), "modulate: expected x of shape [B, N, D], got [2, 4]");
  EXPECT_THROWS(modulate(x3, input({2, 4}, 1, c), input({3, 4}, 1, c)), "modulate: expected scale of shape [2, 4] ([B, D]), got [3, 4]");
  EXPECT_THROWS(embedding(ids_tensor({0, 9}, {2}, DType::Int64, c), input({5, 3}, 1, c)),
                "embedding: id 9 (at flat position 1) is out of range for 5 embeddings (expected 0 <= id < 5)");
  EXPECT_THROWS(embedding(ids_tensor({-1}, {1}, DType::Int32, c), input({5, 3}, 1, c)), "embedding: id -1");
  EXPECT_THROWS(embedding(x3, input({5, 3}, 1, c)), "embedding: expected ids of dtype int32 or int64, got float32");
  EXPECT_THROWS(embedding(i32, input({5}, 1, c)), "embedding: expected weight of shape [V, D], got [5]");
  Generator g;
  EXPECT_THROWS(dropout(x3, 1.0, true, g), "dropout: expected p in [0, 1), got 1");
  EXPECT_THROWS(dropout(x3, -0.1, false, g), "dropout: expected p in [0, 1), got -0.1");
  EXPECT_THROWS(loss(LossKind::Mse, x3, input({3, 4}, 1, c), Reduction::Mean), "mseLoss: expected input and target of one shape, got [2, 3, 4] and [3, 4]");
  EXPECT_THROWS(loss(LossKind::L1, x3, i32, Reduction::Sum), "l1Loss: expected target of dtype float32, got int32");
  EXPECT_THROWS(gaussian_kl(x3, input({2, 3}, 1, c)), "gaussianKL: expected mean and logvar of one shape");
  EXPECT_THROWS(interpolate_nearest(x3, {2, 2, 2}), "interpolate: expected input of shape [B, C, T, H, W], got [2, 3, 4]");
  EXPECT_THROWS(interpolate_nearest(x5, {2, 0, 2}), "interpolate: expected scaleFactor of 3 positive integers [t, h, w], got [2, 0, 2]");
  EXPECT_THROWS(patchify(x5, {2, 2, 2}), "patchify: expected T, H, W divisible by the patch [2, 2, 2], got input [1, 2, 5, 4, 4] (T = 5 is not divisible by pt = 2)");
  EXPECT_THROWS(patchify(x3, {1, 1, 1}), "patchify: expected input of shape [B, C, T, H, W], got [2, 3, 4]");
  EXPECT_THROWS(unpatchify(input({1, 10, 16}, 1, c), 2, {2, 2, 2}, {2, 2, 1}),
                "unpatchify: expected tokens of shape [B, 8, 8] (N = T'H'W' = 2*2*2, features = channels*pt*ph*pw = 2*2*2*1), got [1, 10, 16]");
  EXPECT_THROWS(unpatchify(input({1, 8, 16}, 1, c), 2, {2, 2}, {2, 2, 1}), "unpatchify: expected grid of 3 positive integers");
}

}  // namespace

int main(int argc, char** argv) {
  int checks = check::run_all(argc, argv);
  int table = optable::run(argc, argv);
  return checks || table ? 1 : 0;
}
