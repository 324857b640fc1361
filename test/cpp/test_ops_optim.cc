// Optimizer kernels: the fused AdamW update across backends (CPU reference loop vs
// CPU optimized vs CUDA), plus a check of the reference against a double-precision
// formula and of the entry point's argument validation.
#include <cstdio>

#include "core/optim.h"
#include "core/parallel.h"
#include "op_table.h"

using namespace ts;
using optable::input;

namespace {

// Three AdamW steps on seeded state; returns the final param, m and v.
std::vector<Tensor> adamw_steps(Device d, const Shape& shape, double wd, bool strided_grad, int64_t first_step) {
  Tensor p = input(shape, 101, d).contiguous();
  Tensor m = input(shape, 102, d, false, 0.1f).contiguous();
  Tensor v = unary(UnaryOp::Abs, input(shape, 103, d, false, 0.01f));
  for (int64_t k = 0; k < 3; ++k) {
    Tensor g = input(shape, 200 + k, d, strided_grad);
    AdamWStep s;
    s.lr = 1e-2;
    s.beta1 = 0.9;
    s.beta2 = 0.99;
    s.eps = 1e-8;
    s.weight_decay = wd;
    s.step = first_step + k;
    adamw_update_(p, m, v, g, s);
  }
  return {p, m, v};
}

// The training-loop helpers on a list of tensors (odd sizes, one strided, one empty):
// the sum of squares as a one-element tensor, then the scaled and averaged tensors.
std::vector<Tensor> loop_helpers(Device d, bool strided) {
  const Shape shapes[] = {{7}, {5, 13}, {0}, {3, 1000, 41}, {17000}};
  std::vector<Tensor> xs, shadow, params;
  uint64_t seed = 300;
  for (const Shape& sh : shapes) {
    xs.push_back(input(sh, seed++, d, strided && sh.size() == 2));
    shadow.push_back(input(sh, seed++, d).contiguous());
    params.push_back(input(sh, seed++, d, strided && sh.size() == 2));
  }
  Tensor ss = sum_of_squares(xs);  // float64 [1] on d
  std::vector<Tensor> dense;
  for (const Tensor& x : xs) dense.push_back(x.contiguous());
  scale_(dense, 0.37);
  std::vector<Tensor> clipped;  // clipped to norm 3 on the device, from the sum of squares
  for (const Tensor& x : dense) clipped.push_back(x.clone());
  clip_by_norm_(clipped, sum_of_squares(clipped), 3.0);
  ema_update_(shadow, params, 0.9);
  std::vector<Tensor> out{to_dtype(ss, DType::Float32)};
  out.insert(out.end(), clipped.begin(), clipped.end());
  out.insert(out.end(), dense.begin(), dense.end());
  out.insert(out.end(), shadow.begin(), shadow.end());
  return out;
}

struct Reg {
  Reg() {
    for (bool strided : {false, true})
      optable::table().push_back({OpKind::TrainingHelpers, "sumOfSquares+scale_+emaUpdate", strided ? "5 tensors,strided" : "5 tensors",
                                  [strided](Device d) { return loop_helpers(d, strided); }, 1e-12});
    const Shape shapes[] = {{1}, {7}, {5, 13}, {3, 1000, 41}};
    for (const Shape& sh : shapes)
      for (double wd : {0.0, 0.1})
        for (bool strided : {false, true})
          for (int64_t first : {1, 1000}) {
            std::string p = shape_str(sh) + ",wd=" + std::to_string(wd).substr(0, 3) + ",step=" + std::to_string(first) +
                            (strided ? ",strided grad" : "");
            optable::table().push_back({OpKind::AdamW, "adamw", p, [sh, wd, strided, first](Device d) -> std::vector<Tensor> {
                                          return adamw_steps(d, sh, wd, strided, first);
                                        },
                                        1e-12});
          }
  }
} reg;

int failures = 0;
void expect(bool ok, const char* what) {
  if (!ok) {
    std::printf("  FAIL: %s\n", what);
    ++failures;
  }
}
bool throws_with(const std::function<void()>& f, const char* fragment) {
  try {
    f();
  } catch (const std::exception& e) {
    if (std::string(e.what()).find(fragment) != std::string::npos) return true;
    std::printf("  message '%s' lacks '%s'\n", e.what(), fragment);
    return false;
  }
  return false;
}

// The reference loop against the update written out in double precision.
void check_reference_formula() {
  const int64_t n = 257;
  Tensor p = input({n}, 1, Device{}), m = input({n}, 2, Device{}, false, 0.1f);
  Tensor v = unary(UnaryOp::Abs, input({n}, 3, Device{}, false, 0.01f)), g = input({n}, 4, Device{});
  std::vector<float> p0 = optable::host(p), m0 = optable::host(m), v0 = optable::host(v), g0 = optable::host(g);
  AdamWStep s;
  s.lr = 3e-3;
  s.beta1 = 0.8;
  s.beta2 = 0.95;
  s.eps = 1e-6;
  s.weight_decay = 0.05;
  s.step = 4;
  cpu::set_reference_kernels(true);
  adamw_update_(p, m, v, g, s);
  cpu::set_reference_kernels(false);
  std::vector<float> p1 = optable::host(p), m1 = optable::host(m), v1 = optable::host(v);
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    double mi = s.beta1 * m0[i] + (1 - s.beta1) * g0[i];
    double vi = s.beta2 * v0[i] + (1 - s.beta2) * g0[i] * g0[i];
    double bc1 = 1 - std::pow(s.beta1, 4.0), bc2 = 1 - std::pow(s.beta2, 4.0);
    double pi = p0[i] * (1 - s.lr * s.weight_decay) - s.lr / bc1 * mi / (std::sqrt(vi / bc2) + s.eps);
    worst = std::max({worst, std::fabs(mi - m1[i]) / (std::fabs(mi) + 1e-6), std::fabs(vi - v1[i]) / (vi + 1e-12),
                      std::fabs(pi - p1[i]) / (std::fabs(pi) + 1e-6)});
  }
  std::printf("  adamw reference vs double formula: worst relative error %.2g\n", worst);
  expect(worst < 1e-5, "adamw reference matches the double-precision formula");
}

void check_validation() {
  Tensor p = input({4, 3}, 1, Device{}).contiguous(), m = full({4, 3}, 0, DType::Float32, Device{});
  Tensor v = full({4, 3}, 0, DType::Float32, Device{}), g = input({4, 3}, 2, Device{});
  AdamWStep s;
  expect(throws_with([&] { Tensor bad = full({3, 4}, 0, DType::Float32, Device{}); adamw_update_(p, m, v, bad, s); },
                     "adamw: expected grad of the parameter's shape [4, 3], got [3, 4]"),
         "shape mismatch is reported");
  expect(throws_with([&] { Tensor pt = p.transpose(0, 1), mt = m.transpose(0, 1), vt = v.transpose(0, 1);
                           adamw_update_(pt, mt, vt, g.transpose(0, 1), s); },
                     "expected contiguous param"),
         "strided param is refused");
  expect(throws_with([&] { Tensor h = to_dtype(m, DType::BFloat16); adamw_update_(p, h, v, g, s); },
                     "expected exp_avg (m) of dtype float32, got bfloat16"),
         "dtype mismatch is reported");
  expect(throws_with([&] { AdamWStep z = s; z.step = 0; adamw_update_(p, m, v, g, z); }, "expected step >= 1"),
         "step 0 is refused");
  expect(throws_with([&] { AdamWStep z = s; z.beta2 = 1.0; adamw_update_(p, m, v, g, z); }, "beta2 in [0, 1)"),
         "beta2 = 1 is refused");
  expect(throws_with([&] { adamw_update_(p, p, v, g, s); }, "separate storages"), "aliased state is refused");
  expect(throws_with([&] { sum_of_squares({p, to_dtype(m, DType::BFloat16)}); },
                     "sumOfSquares: expected tensor 1 of dtype float32, got bfloat16"),
         "a bfloat16 tensor in the list is named");
  expect(throws_with([&] { scale_({p.transpose(0, 1)}, 2.0); }, "scale_: expected tensor 0 to be contiguous"),
         "a strided tensor is refused in place");
  expect(throws_with([&] { ema_update_({m, v}, {p}, 0.9); },
                     "emaUpdate: expected as many parameters as shadow tensors, got 1 and 2"),
         "list lengths must agree");
  expect(throws_with([&] { ema_update_({m}, {g.reshape({3, 4})}, 0.9); },
                     "emaUpdate: expected parameter 0 of its shadow's shape [4, 3], got [3, 4]"),
         "shapes must agree");
  expect(throws_with([&] { ema_update_({m}, {p}, 1.5); }, "emaUpdate: expected decay in [0, 1], got 1.5"),
         "decay out of range is refused");
  // The sum of squares in double against a plain loop, and thread-count independence.
  Tensor big = input({100003}, 9, Device{});
  std::vector<float> hv = optable::host(big);
  double want = 0;
  for (float x : hv) want += static_cast<double>(x) * x;
  auto value = [](const Tensor& t) {
    double v = 0;
    to_host(t, DType::Float64, &v, sizeof v);
    return v;
  };
  double got2 = value(sum_of_squares({big}));
  int saved = num_threads();
  set_num_threads(1);
  double got1 = value(sum_of_squares({big}));
  set_num_threads(saved);
  std::printf("  sumOfSquares: %.17g vs loop %.17g (1 thread: %.17g)\n", got2, want, got1);
  expect(std::fabs(got2 - want) <= 1e-12 * want, "sumOfSquares matches a double loop");
  expect(got1 == got2, "sumOfSquares is the same for 1 and 2 threads");
  // clip_by_norm_: scales to the wanted norm, leaves small gradients and non-finite norms alone.
  std::vector<Tensor> g1{big.clone()};
  clip_by_norm_(g1, sum_of_squares(g1), 1.0);
  double n1 = std::sqrt(value(sum_of_squares(g1)));
  expect(std::fabs(n1 - 1.0) < 1e-5, "clipByNorm_ scales to max_norm");
  std::vector<Tensor> g2{big.clone()};
  clip_by_norm_(g2, sum_of_squares(g2), 1e9);
  expect(value(sum_of_squares(g2)) == got2, "clipByNorm_ leaves a gradient under max_norm unchanged");
  Tensor inf = full({1}, INFINITY, DType::Float64, Device{});
  std::vector<Tensor> g3{big.clone()};
  clip_by_norm_(g3, inf, 1.0);
  expect(value(sum_of_squares(g3)) == got2, "clipByNorm_ leaves gradients alone when the norm is not finite");
  expect(throws_with([&] { clip_by_norm_(g3, full({1}, 1.0, DType::Float32, Device{}), 1.0); },
                     "clipByNorm_: expected sumsq as a float64 [1] tensor"),
         "clipByNorm_ wants the float64 sum of squares");
}

}  // namespace

int main(int argc, char** argv) {
  check_reference_formula();
  check_validation();
  int table = optable::run(argc, argv);
  return (table || failures) ? 1 : 0;
}
