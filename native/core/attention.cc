// tessera core: scaled dot-product attention entry points (validation, allocation,
// dispatch). Dimension letters: B, Nq, Nk, H, D, S (see attention.h).
#include "attention.h"

#include <cmath>
#include <limits>
#include <vector>

#include "backend.h"

namespace ts {

namespace {
constexpr const char* kOp = "scaledDotProductAttention";

void check_input(const Tensor& x, const char* what, const char* layout) {
  if (!x.defined()) fail(kOp, what, " is an undefined (disposed) tensor");
  if (x.dtype() != DType::Float32)
    fail(kOp, "expected ", what, " of dtype float32, got ", dtype_name(x.dtype()), " (convert with .to('float32'))");
  if (x.dim() != 4) fail(kOp, "expected ", what, " of shape ", layout, ", got ", shape_str(x.shape()));
}

// Kernels read rows of D values with unit stride; every other stride is free.
Tensor unit_inner(const Tensor& x) {
  return (x.strides()[3] == 1 || x.shape()[3] <= 1) ? x : x.contiguous();
}

// Validates one cu_seqlens tensor against n tokens; returns its values: read in place on
// host-memory devices, taken from `host` (the caller's copy) elsewhere when given, and
// only otherwise read back from the device.
std::vector<int64_t> check_cu_seqlens(const Tensor& cu, const char* what, int64_t n, const Tensor& q,
                                      const std::vector<int32_t>& host) {
  if (!cu.defined()) fail(kOp, what, " is an undefined (disposed) tensor");
  if (cu.dtype() != DType::Int32) fail(kOp, "expected ", what, " of dtype int32, got ", dtype_name(cu.dtype()));
  if (cu.dim() != 1 || cu.shape()[0] < 2)
    fail(kOp, "expected ", what, " of shape [S + 1] with S >= 1 sequences, got ", shape_str(cu.shape()));
  if (cu.device() != q.device())
    fail(kOp, "expected ", what, " on ", q.device().str(), " like q, got ", cu.device().str());
  std::vector<int64_t> v(static_cast<size_t>(cu.shape()[0]));
  if (cu.device().is_cpu()) {
    Tensor c = cu.contiguous();
    const int32_t* p = c.data<int32_t>();
    for (size_t i = 0; i < v.size(); ++i) v[i] = p[i];
  } else if (!host.empty()) {
    if (host.size() != v.size())
      fail(kOp, "expected the host copy of ", what, " to hold ", v.size(), " values, got ", host.size());
    for (size_t i = 0; i < v.size(); ++i) v[i] = host[i];
  } else {
    std::vector<int32_t> raw(v.size());
    to_host(cu, DType::Int32, raw.data(), raw.size() * sizeof(int32_t));
    for (size_t i = 0; i < v.size(); ++i) v[i] = raw[i];
  }
  if (v[0] != 0) fail(kOp, "expected ", what, " to start at 0, got ", v[0]);
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] < v[i - 1])
      fail(kOp, "expected ", what, " to be non-decreasing prefix sums, got ", v[i - 1], " then ", v[i], " at entry ", i);
  if (v.back() != n) fail(kOp, "expected the last entry of ", what, " to equal the token count ", n, ", got ", v.back());
  return v;
}

struct Checked {
  Tensor q, k, v;
  AttentionParams p;
  int64_t B, Nq, Nk, H, D;
};

Checked check_inputs(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const AttentionOptions& o) {
  check_input(q_in, "q", "[B, Nq, H, D]");
  check_input(k_in, "k", "[B, Nk, H, D]");
  check_input(v_in, "v", "[B, Nk, H, D]");
  if (k_in.device() != q_in.device() || v_in.device() != q_in.device())
    fail(kOp, "expected q, k, v on one device, got ", q_in.device().str(), ", ", k_in.device().str(), ", ",
         v_in.device().str());
  const Shape &qs = q_in.shape(), &ks = k_in.shape(), &vs = v_in.shape();
  if (ks != vs) fail(kOp, "expected k and v of one shape [B, Nk, H, D], got k ", shape_str(ks), " and v ", shape_str(vs));
  if (ks[0] != qs[0] || ks[2] != qs[2] || ks[3] != qs[3])
    fail(kOp, "expected k [B, Nk, H, D] to match q [B, Nq, H, D] in B, H and D, got q ", shape_str(qs), " and k ",
         shape_str(ks));
  Checked c;
  c.B = qs[0], c.Nq = qs[1], c.H = qs[2], c.D = qs[3], c.Nk = ks[1];
  if (c.D < 1) fail(kOp, "expected a head dim D >= 1, got q ", shape_str(qs));
  double scale = o.scale ? *o.scale : 1.0 / std::sqrt(static_cast<double>(c.D));
  if (!std::isfinite(scale)) fail(kOp, "expected a finite scale, got ", scale);
  c.p.scale = static_cast<float>(scale);
  c.p.causal = o.causal;
  bool has_q = o.cu_seqlens_q.defined(), has_k = o.cu_seqlens_k.defined();
  if (has_q != has_k)
    fail(kOp, "expected cuSeqlensQ and cuSeqlensK together (packed sequences), got only ",
         has_q ? "cuSeqlensQ" : "cuSeqlensK");
  c.p.max_seqlen_q = c.Nq;
  c.p.max_seqlen_k = c.Nk;
  if (has_q) {
    if (c.B != 1) fail(kOp, "expected B = 1 with packed sequences (cuSeqlensQ/K), got q ", shape_str(qs));
    std::vector<int64_t> cq = check_cu_seqlens(o.cu_seqlens_q, "cuSeqlensQ", c.Nq, q_in, o.host_cu_q);
    std::vector<int64_t> ck = check_cu_seqlens(o.cu_seqlens_k, "cuSeqlensK", c.Nk, q_in, o.host_cu_k);
    if (cq.size() != ck.size())
      fail(kOp, "expected cuSeqlensQ and cuSeqlensK to hold the same number of sequences, got ", cq.size() - 1,
           " and ", ck.size() - 1);
    c.p.num_seqs = static_cast<int64_t>(cq.size()) - 1;
    c.p.max_seqlen_q = c.p.max_seqlen_k = 0;
    for (size_t s = 0; s + 1 < cq.size(); ++s) {
      c.p.max_seqlen_q = std::max(c.p.max_seqlen_q, cq[s + 1] - cq[s]);
      c.p.max_seqlen_k = std::max(c.p.max_seqlen_k, ck[s + 1] - ck[s]);
    }
    c.p.cu_seqlens_q = o.cu_seqlens_q.contiguous();
    c.p.cu_seqlens_k = o.cu_seqlens_k.contiguous();
  }
  c.q = unit_inner(q_in);
  c.k = unit_inner(k_in);
  c.v = unit_inner(v_in);
  return c;
}

void check_same(const Tensor& x, const char* what, const Shape& want, const Tensor& q) {
  if (!x.defined()) fail(kOp, "backward: ", what, " is an undefined (disposed) tensor");
  if (x.dtype() != DType::Float32)
    fail(kOp, "backward expected ", what, " of dtype float32, got ", dtype_name(x.dtype()));
  if (x.shape() != want)
    fail(kOp, "backward expected ", what, " of shape ", shape_str(want), ", got ", shape_str(x.shape()));
  if (x.device() != q.device()) fail(kOp, "backward expected ", what, " on ", q.device().str(), ", got ", x.device().str());
}
}  // namespace

AttentionResult scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                             const AttentionOptions& opts) {
  Checked c = check_inputs(q, k, v, opts);
  AttentionResult r;
  r.out = Tensor::empty({c.B, c.Nq, c.H, c.D}, DType::Float32, q.device(), kOp);
  r.lse = Tensor::empty({c.B, c.H, c.Nq}, DType::Float32, q.device(), kOp);
  if (r.out.numel() == 0) return r;
  backend_for(q.device(), kOp).attention_forward(r.out, r.lse, c.q, c.k, c.v, c.p);
  return r;
}

AttentionGrads scaled_dot_product_attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k,
                                                     const Tensor& v, const Tensor& out, const Tensor& lse,
                                                     const AttentionOptions& opts) {
  Checked c = check_inputs(q, k, v, opts);
  check_same(dout, "the output gradient", q.shape(), q);
  check_same(out, "the forward output", q.shape(), q);
  check_same(lse, "the log-sum-exp", {c.B, c.H, c.Nq}, q);
  AttentionGrads g;
  g.dq = Tensor::empty(q.shape(), DType::Float32, q.device(), kOp);
  g.dk = Tensor::empty(k.shape(), DType::Float32, q.device(), kOp);
  g.dv = Tensor::empty(v.shape(), DType::Float32, q.device(), kOp);
  if (g.dq.numel() == 0 && g.dk.numel() == 0) return g;
  backend_for(q.device(), kOp)
      .attention_backward(g.dq, g.dk, g.dv, unit_inner(dout), c.q, c.k, c.v, out.contiguous(), lse.contiguous(), c.p);
  return g;
}

}  // namespace ts
