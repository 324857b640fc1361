// Fused norms (groupNormSiLU, layerNormModulate): the cross-backend table (forward and
// backward kernels, CPU reference loops vs optimized path vs CUDA; friendly and odd
// shapes; contiguous and strided inputs), every SIMD width against the reference, the
// fused ops against the unfused composition of existing ops, and error messages.
#include <cmath>

#include "check.h"
#include "core/fused_norm.h"
#include "core/parallel.h"
#include "core/nn.h"
#include "op_table.h"

using namespace ts;
using optable::input;

namespace {

std::string sh(const Shape& s) { return shape_str(s); }

struct GnCase {
  Shape s;
  int64_t G;
};
// [B, C] (S = 1), odd spatial sizes (vector tails), G = 1 / C / between, a group
// longer than the 512-value sum blocks, and groups of 76,800 values (several chunks per
// group on CUDA). (No group or row of 1 or 2 values: there the input gradient is 0
// analytically, and float cancellation noise, amplified by rstd, is all a float kernel
// can return.)
const GnCase kGn[] = {{{5, 6}, 2},           {{2, 6, 5, 7}, 3},      {{3, 4, 3, 5, 7}, 2}, {{2, 5, 7, 13}, 1},
                      {{2, 5, 7, 13}, 5},    {{1, 8, 4, 16, 17}, 2}, {{1, 4, 3, 80, 160}, 2}};
// D below, at and above the vector widths; N spanning several backward row chunks (CUDA:
// several token chunks per sample); D = 1500 (CUDA: a block per row, not a warp).
// Per-frame groups ([B, C, T, ...], a group per (b, t)): one frame, odd frame sizes (vector
// tails), one channel per group, a frame of 64x64 (the demo VAE's), no spatial dims.
const GnCase kGnFrames[] = {{{2, 6, 1, 5, 7}, 3}, {{2, 6, 3, 5, 7}, 3}, {{1, 16, 9, 8, 8}, 8},
                            {{2, 4, 4, 3, 13}, 4}, {{1, 16, 3, 64, 64}, 4}, {{3, 4, 5}, 2}};
const Shape kLn[] = {{2, 7, 13}, {3, 5, 130}, {1, 200, 64}, {2, 3, 3}, {2, 70, 384}, {3, 300, 40}, {2, 5, 1500}};

std::vector<Tensor> run_gn(const Shape& s, int64_t G, bool affine, bool strided, Device d, bool per_frame = false) {
  Tensor x = input(s, 201, d, strided, 2, -0.5f);
  Tensor w = affine ? input({s[1]}, 202, d, false, 1, 1) : Tensor();
  Tensor b = affine ? input({s[1]}, 203, d, false, 0.5f) : Tensor();
  NormOut f = group_norm_silu(x, G, w, b, 1e-5, per_frame);
  NormGrads g = group_norm_silu_backward(input(s, 204, d, strided), x, w, b, f.mean, f.rstd, G, per_frame);
  std::vector<Tensor> r{f.out, f.mean, f.rstd, g.dinp};
  if (affine) r.insert(r.end(), {g.dweight, g.dbias});
  return r;
}

std::vector<Tensor> run_ln(const Shape& s, bool strided, Device d) {
  Tensor x = input(s, 211, d, strided, 2, 0.5f);
  Tensor shift = input({s[0], s[2]}, 212, d, strided), scale = input({s[0], s[2]}, 213, d, false, 0.5f);
  NormOut f = layer_norm_modulate(x, shift, scale, 1e-6);
  ModulateGrads g = layer_norm_modulate_backward(input(s, 214, d, strided), x, scale, f.mean, f.rstd);
  return {f.out, f.mean, f.rstd, g.dinp, g.dshift, g.dscale};
}

struct Reg {
  Reg() {
    for (const GnCase& c : kGn)
      for (bool affine : {false, true})
        for (bool strided : {false, true}) {
          Shape s = c.s;
          int64_t G = c.G;
          optable::table().push_back({OpKind::GroupNormSiLU, "groupNormSiLU",
                                      sh(s) + ",G=" + std::to_string(G) + (affine ? ",affine" : "") +
                                          (strided ? ",strided" : ""),
                                      [=](Device d) { return run_gn(s, G, affine, strided, d); }, 1e-10});
        }
    for (const GnCase& c : kGnFrames)
      for (bool affine : {false, true})
        for (bool strided : {false, true}) {
          Shape s = c.s;
          int64_t G = c.G;
          optable::table().push_back({OpKind::GroupNormSiLU, "groupNormSiLU per frame",
                                      sh(s) + ",G=" + std::to_string(G) + (affine ? ",affine" : "") +
                                          (strided ? ",strided" : ""),
                                      [=](Device d) { return run_gn(s, G, affine, strided, d, true); }, 1e-10});
        }
    for (const Shape& s : kLn)
      for (bool strided : {false, true})
        optable::table().push_back({OpKind::LayerNormModulate, "layerNormModulate", sh(s) + (strided ? ",strided" : ""),
                                    [=](Device d) { return run_ln(s, strided, d); }, 1e-10});
  }
} reg;

double worst_nmse(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, optable::nmse(optable::host(a[i]), optable::host(b[i])));
  return worst;
}

}  // namespace

// The table runs the widest kernels this CPU has; every narrower build of the same
// kernels (AVX2, portable) is checked against the reference here.
TEST(every_vector_width_matches_reference) {
  for (int width : {4, 8, 16}) {
    if (cpu::simd_set_max_width(width) != width) {
      std::printf("  vector width %d: skipped (this CPU lacks it)\n", width);
      continue;
    }
    for (const GnCase& c : kGn) {
      cpu::set_reference_kernels(true);
      auto ref = run_gn(c.s, c.G, true, false, Device{});
      cpu::set_reference_kernels(false);
      double e = worst_nmse(run_gn(c.s, c.G, true, false, Device{}), ref);
      if (!(e < 1e-10)) std::printf("  width %d, groupNormSiLU %s: nmse %.3g\n", width, sh(c.s).c_str(), e);
      EXPECT(e < 1e-10);
    }
    for (const GnCase& c : kGnFrames) {
      cpu::set_reference_kernels(true);
      auto ref = run_gn(c.s, c.G, true, false, Device{}, true);
      cpu::set_reference_kernels(false);
      double e = worst_nmse(run_gn(c.s, c.G, true, false, Device{}, true), ref);
      if (!(e < 1e-10)) std::printf("  width %d, groupNormSiLU per frame %s: nmse %.3g\n", width, sh(c.s).c_str(), e);
      EXPECT(e < 1e-10);
    }
    for (const Shape& s : kLn) {
      cpu::set_reference_kernels(true);
      auto ref = run_ln(s, false, Device{});
      cpu::set_reference_kernels(false);
      double e = worst_nmse(run_ln(s, false, Device{}), ref);
      if (!(e < 1e-10)) std::printf("  width %d, layerNormModulate %s: nmse %.3g\n", width, sh(s).c_str(), e);
      EXPECT(e < 1e-10);
    }
  }
  cpu::simd_set_max_width(0);
}

// The fused ops equal the compositions they replace (group_norm then silu; layer_norm
// without affine then modulate), forward and backward (the composed backward chains
// the existing kernels), on the optimized path.
TEST(fused_ops_match_the_unfused_composition) {
  Device c{};
  {
    Shape s{2, 8, 3, 5, 7};
    Tensor x = input(s, 1, c, false, 2), w = input({8}, 2, c, false, 1, 1), b = input({8}, 3, c), dy = input(s, 4, c);
    NormOut gn = group_norm(x, 4, w, b, 1e-5);
    Tensor y = unary(UnaryOp::Silu, gn.out);
    NormGrads g = group_norm_backward(unary_backward(UnaryOp::Silu, dy, gn.out, y), x, w, gn.mean, gn.rstd, 4, true);
    NormOut f = group_norm_silu(x, 4, w, b, 1e-5);
    NormGrads fg = group_norm_silu_backward(dy, x, w, b, f.mean, f.rstd, 4);
    EXPECT(worst_nmse({f.out, f.mean, f.rstd, fg.dinp, fg.dweight, fg.dbias},
                      {y, gn.mean, gn.rstd, g.dinp, g.dweight, g.dbias}) < 1e-10);
  }
  {
    // Per frame: the frames laid out as [B*T, C, H*W] through the plain kernel, and back.
    Shape s{2, 8, 3, 5, 7};
    Tensor x = input(s, 11, c, false, 2), w = input({8}, 12, c, false, 1, 1), b = input({8}, 13, c), dy = input(s, 14, c);
    auto first = [](const Tensor& t) { return t.permute({0, 2, 1, 3, 4}).contiguous().reshape({6, 8, 35}); };
    auto back = [](const Tensor& t) { return t.reshape({2, 3, 8, 5, 7}).permute({0, 2, 1, 3, 4}).contiguous(); };
    NormOut p = group_norm_silu(first(x), 4, w, b, 1e-5);
    NormGrads pg = group_norm_silu_backward(first(dy), first(x), w, b, p.mean, p.rstd, 4);
    NormOut f = group_norm_silu(x, 4, w, b, 1e-5, true);
    NormGrads fg = group_norm_silu_backward(dy, x, w, b, f.mean, f.rstd, 4, true);
    EXPECT(worst_nmse({f.out, f.mean, f.rstd, fg.dinp, fg.dweight, fg.dbias},
                      {back(p.out), p.mean, p.rstd, back(pg.dinp), pg.dweight, pg.dbias}) < 1e-12);
    EXPECT_THROWS(group_norm_silu(input({2, 8}, 1, c), 4, Tensor(), Tensor(), 1e-5, true),
                  "groupNormSiLU: per-frame groups expect input [B, C, T, ...] (rank >= 3), got [2, 8]");
  }
  {
    Shape s{2, 37, 48};
    Tensor x = input(s, 5, c, false, 2, 1), shift = input({2, 48}, 6, c), scale = input({2, 48}, 7, c, false, 0.3f);
    Tensor dy = input(s, 8, c);
    NormOut ln = layer_norm(x, {48}, Tensor(), Tensor(), 1e-6);
    Tensor y = modulate(ln.out, shift, scale);
    ModulateGrads mg = modulate_backward(dy, ln.out, scale);
    NormGrads lg = layer_norm_backward(mg.dinp, x, Tensor(), ln.mean, ln.rstd, {48}, false);
    NormOut f = layer_norm_modulate(x, shift, scale, 1e-6);
    ModulateGrads fg = layer_norm_modulate_backward(dy, x, scale, f.mean, f.rstd);
    EXPECT(worst_nmse({f.out, f.mean, f.rstd, fg.dinp, fg.dshift, fg.dscale},
                      {y, ln.mean, ln.rstd, lg.dinp, mg.dshift, mg.dscale}) < 1e-10);
  }
}

// Results do not depend on the thread count (fixed chunking, ordered partial sums).
TEST(results_are_independent_of_the_thread_count) {
  Device c{};
  int saved = num_threads();
  std::vector<std::vector<float>> runs;
  for (int nt : {1, 2, 3}) {
    set_num_threads(nt);
    std::vector<float> all;
    for (auto& t : run_gn({3, 4, 3, 5, 7}, 2, true, false, c)) {
      auto v = optable::host(t);
      all.insert(all.end(), v.begin(), v.end());
    }
    for (auto& t : run_ln({2, 70, 384}, false, c)) {
      auto v = optable::host(t);
      all.insert(all.end(), v.begin(), v.end());
    }
    runs.push_back(all);
  }
  set_num_threads(saved);
  EXPECT(runs[0] == runs[1] && runs[0] == runs[2]);
}

TEST(bad_inputs_name_the_op_and_the_expectation) {
  Device c{};
  Tensor x3 = input({2, 3, 4}, 1, c);
  EXPECT_THROWS(group_norm_silu(x3, 2, Tensor(), Tensor(), 1e-5),
                "groupNormSiLU: expected channels C = 3 to be divisible by numGroups = 2");
  EXPECT_THROWS(group_norm_silu(input({6}, 1, c), 2, Tensor(), Tensor(), 1e-5),
                "groupNormSiLU: expected input of shape [B, C, ...]");
  EXPECT_THROWS(group_norm_silu(x3, 3, input({4}, 1, c), Tensor(), 1e-5),
                "groupNormSiLU: expected weight of shape [3], got [4]");
  EXPECT_THROWS(group_norm_silu(x3, 3, Tensor(), Tensor(), -1), "groupNormSiLU: expected a finite eps >= 0");
  EXPECT_THROWS(group_norm_silu_backward(input({2, 3, 5}, 1, c), x3, Tensor(), Tensor(), input({6}, 1, c),
                                         input({6}, 1, c), 3),
                "groupNormSiLU: expected gradient of shape [2, 3, 4], got [2, 3, 5]");
  EXPECT_THROWS(layer_norm_modulate(input({2, 4}, 1, c), input({2, 4}, 1, c), input({2, 4}, 1, c), 1e-6),
                "layerNormModulate: expected x of shape [B, N, D], got [2, 4]");
  EXPECT_THROWS(layer_norm_modulate(x3, input({2, 4}, 1, c), input({3, 4}, 1, c), 1e-6),
                "layerNormModulate: expected scale of shape [2, 4] ([B, D]), got [3, 4]");
  EXPECT_THROWS(layer_norm_modulate_backward(x3, x3, input({2, 4}, 1, c), input({5}, 1, c), input({6}, 1, c)),
                "layerNormModulate: backward expected mean with 6 values, got shape [5]");
}

int main(int argc, char** argv) {
  int checks = check::run_all(argc, argv);
  int table = optable::run(argc, argv);
  return checks || table ? 1 : 0;
}
