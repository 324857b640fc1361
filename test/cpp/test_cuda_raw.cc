// The CUDA backend's raw entry points, which take device pointers and a stream instead
// of tensors (benchmarks/gpu_bench.cu times them; nothing else calls them): flash
// attention forward and backward on bf16 [B, N, H, D] operands (plain, fused-QKV
// strides, packed sequences), conv3d forward / dinp / dweight on bf16 channels-last
// operands, the cuBLASLt bf16 GEMM (transposes, batch strides, beta = 1), and patchify on
// raw 32-bit words. Each is checked against the float32 CPU op run on the same inputs
// rounded to bf16, by normalized MSE (bounds: bf16 rounding of bf16 outputs, float32
// accumulation order of float32 ones). Without a device each case reports "skipped (no
// CUDA device)"; without cuBLAS the GEMM reports "not supported".
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "core/attention.h"
#include "core/conv.h"
#include "core/device_info.h"
#include "core/nn.h"
#include "op_table.h"

#ifdef TESSERA_WITH_CUDA
#include "../../cuda/attention.cuh"
#include "../../cuda/conv3d.cuh"
#include "../../cuda/gemm.cuh"
#include "../../cuda/patchify.cuh"
#include "../../cuda/runtime.cuh"
#endif

using namespace ts;
using optable::input;

namespace {

#ifdef TESSERA_WITH_CUDA

const Device kCuda{DeviceType::CUDA, 0};

// bf16 outputs carry a relative rounding error of up to 2^-9 (normalized MSE ~1e-6);
// attention also rounds P to bf16 inside the kernel, and its gradients cancel.
constexpr double kBf16Out = 2e-5;
constexpr double kAttention = 1e-3;
// float32 outputs from bf16 products (exact) accumulated in float32: only the order of
// the sums differs from the CPU.
constexpr double kF32Out = 1e-8;

Tensor rounded(const Tensor& x) { return to_dtype(to_dtype(x, DType::BFloat16), DType::Float32); }
Tensor bf16_on_device(const Tensor& x) { return to_device(to_dtype(x.contiguous(), DType::BFloat16), kCuda); }
Tensor on_device(const Tensor& x, DType dt) { return Tensor::empty(x.shape(), dt, kCuda, "test"); }
void* stream() { return cuda::stream(0); }

// x [R, C, *S] float32 on the CPU -> [R, *S, Cp] bf16 on the device, channels zero-padded.
Tensor channels_last(const Tensor& x, int64_t Cp) {
  std::vector<int64_t> perm{0};
  for (int64_t d = 2; d < x.dim(); ++d) perm.push_back(d);
  perm.push_back(1);
  Tensor cl = x.permute(perm).contiguous();
  const int64_t C = x.shape()[1];
  if (Cp > C) {
    Shape zs = cl.shape();
    zs.back() = Cp - C;
    cl = cat({cl, full(zs, 0, DType::Float32, Device{})}, cl.dim() - 1);
  }
  return bf16_on_device(cl);
}

int64_t round8(int64_t c) { return (c + 7) / 8 * 8; }

cuda::Rows4 rows(const Tensor& t, int64_t sb, int64_t sn, int64_t sh, int64_t elem_offset = 0) {
  cuda::Rows4 r;
  r.p = static_cast<const char*>(t.raw()) + elem_offset * 2;
  r.sb = sb, r.sn = sn, r.sh = sh;
  return r;
}

struct Result {
  std::vector<Tensor> got, want;
  double bound;
};

// ---- flash attention -------------------------------------------------------------------
struct FlashCase {
  int B, Nq, Nk, H, D;
  bool causal, fused_qkv;
  std::vector<int32_t> cu_q, cu_k;  // packed sequences (B = 1) when non-empty
};

Tensor int32_tensor(const std::vector<int32_t>& v, Device d) {
  Tensor t = from_host(v.data(), v.size() * 4, DType::Int32, {static_cast<int64_t>(v.size())}, DType::Int32, Device{});
  return d.is_cpu() ? t : to_device(t, d);
}

Result flash(const FlashCase& c) {
  const int64_t B = c.B, Nq = c.Nq, Nk = c.Nk, H = c.H, D = c.D;
  // Inputs on the CPU, rounded to bf16 once, so both sides see the same values.
  Tensor q, k, v, qkv_dev;
  cuda::Rows4 rq, rk, rv;
  if (c.fused_qkv) {
    Tensor qkv = rounded(input({B, Nq, 3, H, D}, 401, Device{}));
    auto part = [&](int64_t i) { return qkv.slice(2, i, i + 1).view({B, Nq, H, D}); };
    q = part(0), k = part(1), v = part(2);
    qkv_dev = bf16_on_device(qkv);
    const int64_t sn = 3 * H * D, sb = Nq * sn;
    rq = rows(qkv_dev, sb, sn, D, 0), rk = rows(qkv_dev, sb, sn, D, H * D), rv = rows(qkv_dev, sb, sn, D, 2 * H * D);
  } else {
    q = rounded(input({B, Nq, H, D}, 402, Device{}));
    k = rounded(input({B, Nk, H, D}, 403, Device{}));
    v = rounded(input({B, Nk, H, D}, 404, Device{}));
  }
  Tensor qd = bf16_on_device(q), kd = bf16_on_device(k), vd = bf16_on_device(v);
  if (!c.fused_qkv) {
    rq = rows(qd, Nq * H * D, H * D, D), rk = rows(kd, Nk * H * D, H * D, D), rv = rows(vd, Nk * H * D, H * D, D);
  }
  Tensor dout = rounded(input({B, Nq, H, D}, 405, Device{}));

  AttentionOptions o;
  o.causal = c.causal;
  cuda::FlashShape sh;
  sh.B = c.B, sh.H = c.H, sh.Nq = c.Nq, sh.Nk = c.Nk, sh.D = c.D, sh.causal = c.causal;
  sh.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  Tensor cq, ck;
  if (!c.cu_q.empty()) {
    o.cu_seqlens_q = int32_tensor(c.cu_q, Device{}), o.cu_seqlens_k = int32_tensor(c.cu_k, Device{});
    cq = int32_tensor(c.cu_q, kCuda), ck = int32_tensor(c.cu_k, kCuda);
    sh.cu_q = cq.data<int32_t>(), sh.cu_k = ck.data<int32_t>();
    sh.num_seqs = static_cast<int>(c.cu_q.size()) - 1;
    for (size_t s = 0; s + 1 < c.cu_q.size(); ++s) {
      sh.max_q = std::max(sh.max_q, c.cu_q[s + 1] - c.cu_q[s]);
      sh.max_k = std::max(sh.max_k, c.cu_k[s + 1] - c.cu_k[s]);
    }
  }
  AttentionResult f = scaled_dot_product_attention(q, k, v, o);
  AttentionGrads g = scaled_dot_product_attention_backward(dout, q, k, v, f.out, f.lse, o);

  Tensor out = on_device(f.out, DType::BFloat16), lse = on_device(f.lse, DType::Float32);
  cuda::flash_forward_bf16(sh, rq, rk, rv, out.raw(), lse.data<float>(), stream());
  Tensor gd = bf16_on_device(dout);
  Tensor dq = on_device(q, DType::BFloat16), dk = on_device(k, DType::BFloat16), dv = on_device(v, DType::BFloat16);
  Tensor ws = Tensor::empty({static_cast<int64_t>(cuda::flash_backward_workspace_bytes(sh))}, DType::UInt8, kCuda,
                            "test");
  cuda::flash_backward_bf16(sh, rq, rk, rv, out.raw(), gd.raw(), lse.data<float>(), dq.raw(), dk.raw(), dv.raw(),
                            ws.raw(), stream());
  // lse is -inf for queries that see no key (nmse undefined): compared only without them.
  bool keyless = Nk == 0;
  for (size_t s = 0; s + 1 < c.cu_k.size(); ++s) keyless = keyless || c.cu_k[s + 1] == c.cu_k[s];
  Result r{{out, dq, dk, dv}, {f.out, g.dq, g.dk, g.dv}, kAttention};
  if (!keyless) r.got.push_back(lse), r.want.push_back(f.lse);
  return r;
}

// ---- conv3d ----------------------------------------------------------------------------
struct ConvCase {
  int64_t B, Cin, Cout, T, H, W;
  std::array<int64_t, 3> k, stride, padding;
  bool causal, replicate;
};

Result conv(const ConvCase& c, int which) {
  Conv3dOptions o;
  o.stride = c.stride, o.padding = c.padding, o.causal = c.causal;
  o.mode = c.replicate ? PadMode::Replicate : PadMode::Zeros;
  Tensor x = rounded(input({c.B, c.Cin, c.T, c.H, c.W}, 411, Device{}));
  Tensor w = rounded(input({c.Cout, c.Cin, c.k[0], c.k[1], c.k[2]}, 412, Device{}, false, 0.2f));
  Tensor b = input({c.Cout}, 413, Device{});
  Conv3dGeometry geo = conv3d_geometry(x, w, b, o);
  const int64_t Cxp = round8(c.Cin), Coutp = round8(c.Cout);
  if (which == 0) {
    Tensor want = conv3d(x, w, b, o);
    Tensor xcl = channels_last(x, Cxp), wcl = channels_last(w, Cxp), bd = to_device(b, kCuda);
    Tensor out = on_device(want, DType::Float32);
    cuda::conv3d_forward_bf16(geo, xcl.raw(), wcl.raw(), bd.data<float>(), out.data<float>(), stream());
    return {{out}, {want}, kF32Out};
  }
  Tensor dout = rounded(input({c.B, c.Cout, geo.To, geo.Ho, geo.Wo}, 414, Device{}));
  Conv3dGrads g = conv3d_backward(dout, x, w, o, which == 1, which == 2, false);
  Tensor gcl = channels_last(dout, Coutp);
  if (which == 1) {
    // wt [Cin, kt, kh, kw, Coutp]: the weight with Cin and Cout swapped, taps unflipped.
    Tensor wt = channels_last(w.permute({1, 0, 2, 3, 4}), Coutp);
    Tensor dinp = on_device(x, DType::Float32);
    cuda::conv3d_dinp_bf16(geo, gcl.raw(), wt.raw(), dinp.data<float>(), stream());
    return {{dinp}, {g.dinp}, kF32Out};
  }
  Tensor xcl = channels_last(x, Cxp);
  Tensor dw = on_device(w, DType::Float32);
  cuda::conv3d_dweight_bf16(geo, gcl.raw(), xcl.raw(), dw.data<float>(), stream());
  return {{dw}, {g.dweight}, kF32Out};
}

// ---- GEMM --------------------------------------------------------------------------------
struct GemmCase {
  bool ta, tb;
  int64_t M, N, K, batch;
  float beta;
};

Result gemm(const GemmCase& c) {
  // Row-major operands as Backend::gemm: A [M, K] (or [K, M] when ta), B likewise.
  const int64_t ar = c.ta ? c.K : c.M, ac = c.ta ? c.M : c.K, br = c.tb ? c.N : c.K, bc = c.tb ? c.K : c.N;
  Tensor a = rounded(input({c.batch, ar, ac}, 421, Device{})), b = rounded(input({c.batch, br, bc}, 422, Device{}));
  Tensor c0 = rounded(input({c.batch, c.M, c.N}, 423, Device{}));
  Tensor want = matmul(c.ta ? a.transpose(1, 2) : a, c.tb ? b.transpose(1, 2) : b);
  if (c.beta != 0) want = binary(BinaryOp::Add, want, c0);
  Tensor ad = bf16_on_device(a), bd = bf16_on_device(b), cd = bf16_on_device(c0);
  cuda::gemm_bf16(c.ta, c.tb, c.M, c.N, c.K, ad.raw(), ac, ar * ac, bd.raw(), bc, br * bc, cd.raw(), c.N, c.M * c.N,
                  c.batch, c.beta, stream());
  return {{cd}, {want}, kBf16Out};
}

// ---- patchify (raw words) --------------------------------------------------------------
Result patchify_raw(const Shape& s, const std::vector<int64_t>& p, bool channels_last_input) {
  Tensor x = channels_last_input ? input({s[0], s[2], s[3], s[4], s[1]}, 431, Device{}).permute({0, 4, 1, 2, 3})
                                 : input(s, 431, Device{});
  Tensor want = patchify(x, p);
  // The same strides on the device: channels-last stays channels-last.
  Tensor xd = channels_last_input ? to_device(x.permute({0, 2, 3, 4, 1}).contiguous(), kCuda).permute({0, 4, 1, 2, 3})
                                  : to_device(x, kCuda);
  int64_t xs[5];
  for (int i = 0; i < 5; ++i) xs[i] = xd.strides()[i];
  Tensor tok = on_device(want, DType::Float32);
  cuda::patchify_launch(tok.data<float>(), xd.data<float>(), xs, s[0], s[1], s[2], s[3], s[4], p[0], p[1], p[2],
                        stream());
  return {{tok}, {want}, 0};
}

struct RawCase {
  std::string name;
  std::function<Result()> run;
  bool needs_cublas = false;
};

std::vector<RawCase> cases() {
  std::vector<RawCase> r;
  const FlashCase fl[] = {
      {2, 130, 130, 2, 64, false, false, {}, {}},
      {2, 130, 130, 2, 64, true, true, {}, {}},     // fused qkv strides
      {1, 200, 77, 3, 128, true, false, {}, {}},    // Nq > Nk, causal
      {1, 190, 190, 2, 64, true, false, {0, 5, 130, 190}, {0, 17, 150, 190}},  // packed
      {1, 13, 8, 2, 128, false, false, {0, 4, 4, 13}, {0, 3, 8, 8}},           // empty q seq, keyless seq
  };
  for (const FlashCase& c : fl) {
    std::string n = "flash_forward_bf16+flash_backward_bf16(B=" + std::to_string(c.B) + ",Nq=" + std::to_string(c.Nq) +
                    ",Nk=" + std::to_string(c.Nk) + ",H=" + std::to_string(c.H) + ",D=" + std::to_string(c.D) +
                    (c.causal ? ",causal" : "") + (c.fused_qkv ? ",fused qkv" : "") + (c.cu_q.empty() ? "" : ",packed") +
                    ")";
    r.push_back({n, [c] { return flash(c); }});
  }
  using A = std::array<int64_t, 3>;
  const ConvCase cv[] = {
      {2, 3, 7, 5, 7, 13, A{3, 3, 3}, A{1, 1, 1}, A{1, 1, 1}, false, false},
      {1, 13, 9, 5, 9, 11, A{3, 3, 3}, A{1, 1, 1}, A{0, 1, 1}, true, true},   // causal replicate (dinp folds)
      {2, 8, 130, 6, 9, 10, A{3, 3, 3}, A{2, 2, 2}, A{1, 1, 1}, false, false},  // strided, Cout > one tile
  };
  const char* what[] = {"conv3d_forward_bf16", "conv3d_dinp_bf16", "conv3d_dweight_bf16"};
  for (const ConvCase& c : cv)
    for (int which = 0; which < 3; ++which) {
      std::string n = std::string(what[which]) + "(B=" + std::to_string(c.B) + ",Cin=" + std::to_string(c.Cin) +
                      ",Cout=" + std::to_string(c.Cout) + ",THW=" + std::to_string(c.T) + "x" + std::to_string(c.H) +
                      "x" + std::to_string(c.W) + (c.causal ? ",causal" : "") + (c.replicate ? ",replicate" : "") +
                      (c.stride[0] > 1 ? ",stride 2" : "") + ")";
      r.push_back({n, [c, which] { return conv(c, which); }});
    }
  const GemmCase gm[] = {{false, false, 70, 96, 130, 1, 0.0f}, {true, true, 33, 65, 17, 3, 0.0f},
                         {false, true, 64, 64, 64, 2, 1.0f}};
  for (const GemmCase& c : gm) {
    std::string n = std::string("gemm_bf16(") + (c.ta ? "a^T," : "") + (c.tb ? "b^T," : "") + "M=" +
                    std::to_string(c.M) + ",N=" + std::to_string(c.N) + ",K=" + std::to_string(c.K) +
                    ",batch=" + std::to_string(c.batch) + (c.beta != 0 ? ",beta=1" : "") + ")";
    r.push_back({n, [c] { return gemm(c); }, true});
  }
  r.push_back({"patchify_launch([2, 4, 2, 8, 16],patch=[1, 2, 2])", [] { return patchify_raw({2, 4, 2, 8, 16}, {1, 2, 2}, false); }});
  r.push_back({"patchify_launch([1, 5, 2, 6, 9],patch=[2, 3, 3],channels-last)",
               [] { return patchify_raw({1, 5, 2, 6, 9}, {2, 3, 3}, true); }});
  return r;
}

int run_all() {
  std::string why;
  const bool have = cuda_available(&why, nullptr);
  int passed = 0, failed = 0, unsupported = 0, skipped = 0;
  for (const RawCase& c : cases()) {
    const char* name = c.name.c_str();
    if (!have) {
      std::printf("  %-70s cuda: skipped (no CUDA device)\n", name);
      ++skipped;
      continue;
    }
    if (c.needs_cublas && !cuda::have_cublas()) {
      std::printf("  %-70s cuda: not supported (built without cuBLAS)\n", name);
      ++unsupported;
      continue;
    }
    try {
      Result r = c.run();
      double worst = 0;
      bool finite_ok = true;
      for (size_t i = 0; i < r.got.size(); ++i) {
        std::vector<float> got = optable::host(r.got[i]), want = optable::host(r.want[i]);
        if (got.size() != want.size()) fail("test", "output ", i, " has ", got.size(), " values, want ", want.size());
        finite_ok = finite_ok && (optable::finite(got) || !optable::finite(want));
        worst = std::max(worst, optable::nmse(got, want));
      }
      if (finite_ok && worst <= r.bound) {
        std::printf("  %-70s cuda: OK (nmse %.2g)\n", name, worst);
        ++passed;
      } else {
        std::printf("  %-70s cuda: FAIL (%s nmse %.3g > %.3g)\n", name, finite_ok ? "" : "NaN/Inf,", worst, r.bound);
        ++failed;
      }
    } catch (const std::exception& e) {
      std::printf("  %-70s cuda: FAIL (%s)\n", name, e.what());
      ++failed;
    }
  }
  std::printf("raw entry points: %d passed, %d failed, %d not supported, %d skipped (%s)\n", passed, failed,
              unsupported, skipped, have ? "CUDA device present" : why.c_str());
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

#else  // built without the CUDA backend

int run_all() {
  std::printf("raw entry points: 0 passed, 0 failed, 0 not supported, 0 skipped (built without the CUDA backend)\n");
  std::printf("0 passed, 0 failed\n");
  return 0;
}

#endif

}  // namespace

int main() { return run_all(); }
