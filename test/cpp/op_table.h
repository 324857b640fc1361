// The cross-backend op table, in the manner of ggml's test-backend-ops.
// Each case builds seeded inputs on the CPU, runs an op (forward and, where the
// case says, backward kernels) on a device, and returns its outputs. Every case is
// run three ways: CPU reference loops (the truth), the CPU optimized path, and CUDA.
// Outputs are compared by normalized MSE against the reference, checked for
// NaN/Inf, and the guard allocator catches out-of-bounds writes. Before running a
// case on a backend the table asks it (Backend::supports) for the case's kernel
// family and dtypes: a backend that does not claim them reports "not supported"; one
// that claims them and throws is a FAIL. CUDA without a device reports "skipped".
#pragma once
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/device_info.h"
#include "core/ops.h"
#include "cpu/cpu.h"

namespace optable {

struct Case {
  ts::OpKind kind;     // the kernel family under test, asked of each backend first
  std::string op;      // "conv3d"
  std::string params;  // "B=1,C=5,T=7,k=3,causal,strided"
  // Runs the op on dev; returns its outputs (any device: they are read back).
  std::function<std::vector<ts::Tensor>(ts::Device dev)> run;
  double max_nmse = 1e-9;  // float32 ops with long reductions may need more
  std::vector<ts::DType> dtypes{ts::DType::Float32};  // the dtypes `kind` runs on
};

inline std::vector<Case>& table() {
  static std::vector<Case> t;
  return t;
}

// Whether backend b claims every dtype of the case's kernel family.
inline bool claims(const ts::Backend& b, const Case& c) {
  for (ts::DType dt : c.dtypes)
    if (!b.supports(c.kind, dt)) return false;
  return true;
}

inline std::string dtype_list(const Case& c) {
  std::string s;
  for (ts::DType dt : c.dtypes) s += (s.empty() ? "" : ", ") + std::string(ts::dtype_name(dt));
  return s;
}

// A seeded input of `shape` on dev: normal values scaled by `scale`, shifted by
// `shift`. strided = true returns a non-contiguous view holding the same values.
inline ts::Tensor input(const ts::Shape& shape, uint64_t seed, ts::Device dev, bool strided = false, float scale = 1,
                        float shift = 0) {
  ts::Generator g;
  g.seed = seed;
  ts::Tensor t = ts::randn(shape, ts::DType::Float32, ts::Device{}, g);
  if (scale != 1) t = ts::binary_scalar(ts::BinaryOp::Mul, t, scale, false);
  if (shift != 0) t = ts::binary_scalar(ts::BinaryOp::Add, t, shift, false);
  if (strided && !shape.empty()) {
    // Same values, inner stride 2: take every other element of a wider tensor.
    ts::Shape wide = shape;
    wide.back() *= 2;
    ts::Tensor w = ts::full(wide, std::nan(""), ts::DType::Float32, ts::Device{});
    int64_t last = static_cast<int64_t>(shape.size()) - 1;
    ts::Tensor v = w.slice(last, 0, wide.back(), 2);
    ts::copy_(v, t);
    ts::Tensor wd = dev.is_cpu() ? w : ts::to_device(w, dev);
    return wd.slice(last, 0, wide.back(), 2);
  }
  return dev.is_cpu() ? t : ts::to_device(t, dev);
}

inline std::vector<float> host(const ts::Tensor& t) {
  std::vector<float> v(t.numel());
  ts::to_host(t, ts::DType::Float32, v.data(), v.size() * 4);
  return v;
}

inline double nmse(const std::vector<float>& out, const std::vector<float>& ref) {
  double err = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    double d = static_cast<double>(out[i]) - ref[i];
    err += d * d;
    norm += static_cast<double>(ref[i]) * ref[i];
  }
  return err / (norm > 0 ? norm : 1.0);
}

inline bool finite(const std::vector<float>& v) {
  for (float x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

// Runs every case whose "op(params)" contains filter; returns the process exit code.
inline int run(int argc, char** argv) {
  const char* filter = argc > 1 ? argv[1] : "";
  std::string why;
  bool have_cuda = ts::cuda_available(&why, nullptr);
  int passed = 0, failed = 0, skipped = 0, unsupported = 0;
  ts::set_guard_mode(true);
  for (const Case& c : table()) {
    std::string name = c.op + "(" + c.params + ")";
    if (name.find(filter) == std::string::npos) continue;
    std::vector<std::vector<float>> ref;
    if (!claims(ts::cpu_backend(), c)) {
      // The CPU is the reference: a case it does not claim names the wrong family or dtype.
      std::printf("  %-60s reference: FAIL (the cpu backend does not claim %s on %s)\n", name.c_str(),
                  ts::op_kind_name(c.kind), dtype_list(c).c_str());
      ++failed;
      continue;
    }
    try {
      ts::cpu::set_reference_kernels(true);
      for (auto& t : c.run(ts::Device{})) ref.push_back(host(t));
      ts::cpu::set_reference_kernels(false);
    } catch (const std::exception& e) {
      ts::cpu::set_reference_kernels(false);
      std::printf("  %-60s reference: FAIL (%s)\n", name.c_str(), e.what());
      ++failed;
      continue;
    }
    auto compare = [&](const char* backend, ts::Device dev) {
      if (!claims(ts::backend_for(dev, c.op.c_str()), c)) {
        std::printf("  %-60s %s: not supported (%s on %s)\n", name.c_str(), backend, ts::op_kind_name(c.kind),
                    dtype_list(c).c_str());
        ++unsupported;
        return;
      }
      int64_t before = ts::guard_violations();
      std::vector<ts::Tensor> outs;
      try {
        outs = c.run(dev);
      } catch (const std::exception& e) {
        // The backend claimed the op: any error is a failure.
        std::printf("  %-60s %s: FAIL (%s)\n", name.c_str(), backend, e.what());
        ++failed;
        return;
      }
      if (outs.size() != ref.size()) {
        std::printf("  %-60s %s: FAIL (%zu outputs, reference has %zu)\n", name.c_str(), backend, outs.size(), ref.size());
        ++failed;
        return;
      }
      double worst = 0;
      bool ok = true;
      for (size_t i = 0; i < outs.size(); ++i) {
        std::vector<float> v = host(outs[i]);
        if (v.size() != ref[i].size()) {
          std::printf("  %-60s %s: FAIL (output %zu has %zu values, reference %zu)\n", name.c_str(), backend, i, v.size(), ref[i].size());
          ok = false;
          break;
        }
        if (!finite(v) && finite(ref[i])) {
          std::printf("  %-60s %s: FAIL (output %zu has NaN/Inf)\n", name.c_str(), backend, i);
          ok = false;
          break;
        }
        worst = std::max(worst, nmse(v, ref[i]));
      }
      outs.clear();
      if (ts::guard_violations() != before) {
        std::printf("  %-60s %s: FAIL (out-of-bounds write caught by the guard allocator)\n", name.c_str(), backend);
        ok = false;
      }
      if (ok && !(worst <= c.max_nmse)) {
        std::printf("  %-60s %s: FAIL (nmse %.3g > %.3g)\n", name.c_str(), backend, worst, c.max_nmse);
        ok = false;
      }
      if (ok) {
        std::printf("  %-60s %s: OK (nmse %.2g)\n", name.c_str(), backend, worst);
        ++passed;
      } else {
        ++failed;
      }
    };
    compare("cpu", ts::Device{});
    if (have_cuda) {
      compare("cuda", ts::Device{ts::DeviceType::CUDA, 0});
    } else {
      std::printf("  %-60s cuda: skipped (no CUDA device)\n", name.c_str());
      ++skipped;
    }
  }
  ts::set_guard_mode(false);
  std::printf("op table: %d backend cases passed, %d failed, %d not supported, %d skipped (%s)\n", passed, failed,
              unsupported, skipped, have_cuda ? "CUDA device present" : why.c_str());
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

}  // namespace optable
