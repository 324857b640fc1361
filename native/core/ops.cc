#include "ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend.h"
#include "checks.h"
#include "device_info.h"

namespace ts {

namespace {
Backend* g_backends[2] = {nullptr, nullptr};

}  // namespace

void register_backend(DeviceType type, Backend* b) { g_backends[static_cast<int>(type)] = b; }

Backend& backend_for(Device dev, const char* op) {
  if (dev.is_cpu()) {
    if (dev.index != 0) check_host_device(dev, op);
    return cpu_backend();
  }
  Backend* b = g_backends[static_cast<int>(dev.type)];
#ifdef TESSERA_WITH_CUDA
  if (dev.type == DeviceType::CUDA) {
    if (!b) {
      cuda_backend_init();
      b = g_backends[static_cast<int>(dev.type)];
    }
    std::string why;
    if (!cuda_device_usable(dev.index, &why)) fail(op, "device ", dev.str(), " is not available (", why, ")");
  }
#endif
  if (!b) fail(op, "device ", dev.str(), " is not available (no CUDA backend in this build, or no device answered)");
  return *b;
}

const char* unary_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg: return "neg";
    case UnaryOp::Exp: return "exp";
    case UnaryOp::Log: return "log";
    case UnaryOp::Sqrt: return "sqrt";
    case UnaryOp::Abs: return "abs";
    case UnaryOp::Tanh: return "tanh";
    case UnaryOp::Sigmoid: return "sigmoid";
    case UnaryOp::Relu: return "relu";
    case UnaryOp::Silu: return "silu";
    case UnaryOp::Gelu: return "gelu";
    case UnaryOp::GeluTanh: return "gelu";
    case UnaryOp::Square: return "square";
    case UnaryOp::Rsqrt: return "rsqrt";
    case UnaryOp::Sin: return "sin";
    case UnaryOp::Cos: return "cos";
  }
  return "unary";
}

const char* binary_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return "add";
    case BinaryOp::Sub: return "sub";
    case BinaryOp::Mul: return "mul";
    case BinaryOp::Div: return "div";
    case BinaryOp::Pow: return "pow";
    case BinaryOp::Maximum: return "maximum";
    case BinaryOp::Minimum: return "minimum";
    case BinaryOp::Eq: return "eq";
    case BinaryOp::Gt: return "gt";
    case BinaryOp::Lt: return "lt";
  }
  return "binary";
}

// ---- creation ------------------------------------------------------------------------

Tensor full(const Shape& shape, double value, DType dt, Device dev) {
  Tensor t = Tensor::empty(shape, dt, dev, "full");
  backend_for(dev, "full").fill(t, value);
  return t;
}

Tensor arange(double start, double end, double step, DType dt, Device dev) {
  if (step == 0 || !std::isfinite(step) || !std::isfinite(start) || !std::isfinite(end))
    fail("arange", "expected finite start/end and a non-zero step, got (", start, ", ", end, ", ", step, ")");
  double n = std::ceil((end - start) / step);
  int64_t count = n > 0 ? static_cast<int64_t>(n) : 0;
  Tensor t = Tensor::empty({count}, dt, dev, "arange");
  backend_for(dev, "arange").arange(t, start, step);
  return t;
}

Tensor rand(const Shape& shape, DType dt, Device dev, Generator& g) {
  if (!is_floating(dt)) fail("rand", "expected a floating dtype, got ", dtype_name(dt));
  Tensor t = Tensor::empty(shape, DType::Float32, dev, "rand");
  uint64_t off = g.reserve(static_cast<uint64_t>(t.numel()), 4);
  backend_for(dev, "rand").rand(t, g.seed, off);
  return dt == DType::Float32 ? t : to_dtype(t, dt);
}

Tensor randn(const Shape& shape, DType dt, Device dev, Generator& g) {
  if (!is_floating(dt)) fail("randn", "expected a floating dtype, got ", dtype_name(dt));
  Tensor t = Tensor::empty(shape, DType::Float32, dev, "randn");
  uint64_t off = g.reserve(static_cast<uint64_t>(t.numel()), 2);
  backend_for(dev, "randn").randn(t, g.seed, off);
  return dt == DType::Float32 ? t : to_dtype(t, dt);
}

Tensor from_host(const void* data, size_t nbytes, DType src_dt, const Shape& shape, DType dt, Device dev) {
  check_shape(shape, "tensor");
  size_t need = static_cast<size_t>(shape_numel(shape)) * dtype_size(src_dt);
  if (nbytes != need)
    fail("tensor", "shape ", shape_str(shape), " needs ", shape_numel(shape), " values, got ", nbytes / dtype_size(src_dt));
  // Host-memory devices (cpu, simulated cpu:N) are written directly: nothing is staged on cpu.
  Tensor host = Tensor::empty(shape, src_dt, dev.is_cpu() ? dev : Device{}, "tensor");
  if (need) std::memcpy(host.raw(), data, need);
  if (src_dt != dt) host = to_dtype(host, dt);
  return dev.is_cpu() ? host : to_device(host, dev);
}

namespace {
void copy_impl(Tensor& dst, const Tensor& src);
}

// The public copy counts a read when values leave another device for the host (cpu:0).
void copy_(Tensor& dst, const Tensor& src) {
  copy_impl(dst, src);
  if (dst.device().is_host() && !src.device().is_host()) count_host_read(dst.nbytes());
}

namespace {
void copy_impl(Tensor& dst, const Tensor& src) {
  if (!dst.defined() || !src.defined()) fail("copy", "got an undefined (disposed) tensor");
  if (dst.shape() != src.shape())
    fail("copy", "expected equal shapes, got destination ", shape_str(dst.shape()), " and source ", shape_str(src.shape()));
  if (dst.device() == src.device()) {
    backend_for(dst.device(), "copy").copy(dst, src);
    return;
  }
  // Across devices: stage through a contiguous tensor of dst's dtype.
  if (src.device().is_cpu()) {
    Tensor staged = (src.dtype() == dst.dtype() && src.is_contiguous()) ? src : to_dtype(src, dst.dtype()).contiguous();
    if (dst.is_contiguous()) {
      backend_for(dst.device(), "copy").copy_from_host(dst, staged.raw());
    } else {
      Tensor tmp = Tensor::empty(dst.shape(), dst.dtype(), dst.device(), "copy");
      backend_for(dst.device(), "copy").copy_from_host(tmp, staged.raw());
      backend_for(dst.device(), "copy").copy(dst, tmp);
    }
  } else if (dst.device().is_cpu()) {
    Tensor s = src.contiguous();
    Tensor host = Tensor::empty(s.shape(), s.dtype(), dst.device(), "copy");
    backend_for(src.device(), "copy").copy_to_host(host.raw(), s);
    cpu_backend().copy(dst, host);
  } else {
    Tensor host = Tensor::empty(src.shape(), src.dtype(), Device{}, "copy");
    copy_impl(host, src);
    copy_impl(dst, host);
  }
}
}  // namespace

Tensor to_dtype(const Tensor& x, DType dt) {
  if (!x.defined()) fail("to", "got an undefined (disposed) tensor");
  if (x.dtype() == dt) return x;
  Tensor out = Tensor::empty(x.shape(), dt, x.device(), "to");
  copy_(out, x);
  return out;
}

Tensor to_device(const Tensor& x, Device dev) {
  if (!x.defined()) fail("to", "got an undefined (disposed) tensor");
  if (x.device() == dev) return x;
  backend_for(dev, "to");
  Tensor out = Tensor::empty(x.shape(), x.dtype(), dev, "to");
  copy_(out, x);
  return out;
}

void to_host(const Tensor& x, DType dt, void* out, size_t nbytes) {
  if (!x.defined()) fail("read", "got an undefined (disposed) tensor");
  if (nbytes != static_cast<size_t>(x.numel()) * dtype_size(dt))
    fail("read", "expected a buffer of ", x.numel() * dtype_size(dt), " bytes, got ", nbytes);
  if (!x.device().is_host()) count_host_read(nbytes);
  if (x.device().is_cpu() && x.dtype() == dt && x.is_contiguous()) {
    if (nbytes) std::memcpy(out, x.raw(), nbytes);
    return;
  }
  // Converted or gathered on the tensor's own device when that is host memory, so a read
  // from a simulated device allocates nothing on cpu.
  Tensor tmp = Tensor::empty(x.shape(), dt, x.device().is_cpu() ? x.device() : Device{}, "read");
  copy_impl(tmp, x);
  if (nbytes) std::memcpy(out, tmp.raw(), nbytes);
}

Tensor cat(const std::vector<Tensor>& xs, int64_t axis) {
  if (xs.empty()) fail("cat", "expected at least one tensor, got none");
  const Tensor& f = xs[0];
  if (!f.defined()) fail("cat", "tensor 0 is undefined (disposed)");
  int64_t ax = normalize_axis(axis, f.dim(), "cat");
  int64_t total = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    if (!x.defined()) fail("cat", "tensor ", i, " is undefined (disposed)");
    if (x.dim() != f.dim())
      fail("cat", "expected tensors of rank ", f.dim(), ", tensor ", i, " has shape ", shape_str(x.shape()));
    if (x.dtype() != f.dtype())
      fail("cat", "expected dtype ", dtype_name(f.dtype()), ", tensor ", i, " is ", dtype_name(x.dtype()));
    check_device(f, x, "cat");
    for (int64_t d = 0; d < f.dim(); ++d)
      if (d != ax && x.shape()[d] != f.shape()[d])
        fail("cat", "expected shapes equal except on axis ", ax, ", got ", shape_str(f.shape()), " and ",
             shape_str(x.shape()), " (tensor ", i, ")");
    total += x.shape()[ax];
  }
  Shape os = f.shape();
  os[ax] = total;
  Tensor out = Tensor::empty(os, f.dtype(), f.device(), "cat");
  int64_t at = 0;
  for (const Tensor& x : xs) {
    int64_t n = x.shape()[ax];
    if (n) {
      Tensor dst = out.slice(ax, at, at + n);
      copy_(dst, x);
    }
    at += n;
  }
  return out;
}

// ---- elementwise ---------------------------------------------------------------------

Tensor unary(UnaryOp op, const Tensor& x) {
  check_f32(x, unary_name(op));
  Tensor out = Tensor::empty(x.shape(), DType::Float32, x.device(), unary_name(op));
  backend_for(x.device(), unary_name(op)).unary(op, out, x);
  return out;
}

Tensor unary_backward(UnaryOp op, const Tensor& dout, const Tensor& x, const Tensor& out) {
  const char* nm = unary_name(op);
  check_f32(dout, nm, "gradient");
  check_f32(x, nm);
  if (dout.shape() != x.shape())
    fail(nm, "backward expected a gradient of shape ", shape_str(x.shape()), ", got ", shape_str(dout.shape()));
  if (out.defined() && out.shape() != x.shape())
    fail(nm, "backward expected an output of shape ", shape_str(x.shape()), ", got ", shape_str(out.shape()));
  check_device(dout, x, nm);
  Tensor dinp = Tensor::empty(x.shape(), DType::Float32, x.device(), nm);
  backend_for(x.device(), nm).unary_backward(op, dinp, dout, x, out);
  return dinp;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      fail(op, "shapes ", shape_str(a), " and ", shape_str(b), " are not broadcastable");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* nm = binary_name(op);
  check_f32(a, nm, "first input");
  check_f32(b, nm, "second input");
  check_device(a, b, nm);
  Shape os = broadcast_shapes(a.shape(), b.shape(), nm);
  Tensor out = Tensor::empty(os, DType::Float32, a.device(), nm);
  Tensor ea = a.shape() == os ? a : a.expand(os);
  Tensor eb = b.shape() == os ? b : b.expand(os);
  backend_for(a.device(), nm).binary(op, out, ea, eb);
  return out;
}

Tensor binary_scalar(BinaryOp op, const Tensor& a, double s, bool scalar_first) {
  const char* nm = binary_name(op);
  check_f32(a, nm);
  Tensor out = Tensor::empty(a.shape(), DType::Float32, a.device(), nm);
  backend_for(a.device(), nm).binary_scalar(op, out, a, s, scalar_first);
  return out;
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  if (shape.size() > x.shape().size())
    fail("sum_to", "cannot reduce shape ", shape_str(x.shape()), " to ", shape_str(shape));
  size_t lead = x.shape().size() - shape.size();
  std::vector<int64_t> axes;
  for (size_t i = 0; i < x.shape().size(); ++i) {
    if (i < lead) {
      axes.push_back(static_cast<int64_t>(i));
    } else if (shape[i - lead] == 1 && x.shape()[i] != 1) {
      axes.push_back(static_cast<int64_t>(i));
    } else if (shape[i - lead] != x.shape()[i]) {
      fail("sum_to", "cannot reduce shape ", shape_str(x.shape()), " to ", shape_str(shape));
    }
  }
  if (axes.empty()) return x.reshape(shape);
  return reduce(ReduceOp::Sum, x, axes, false).reshape(shape);
}

// ---- reductions ----------------------------------------------------------------------

Tensor reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& axes_in, bool keepdim) {
  const char* nm = op == ReduceOp::Sum ? "sum" : op == ReduceOp::Mean ? "mean" : op == ReduceOp::Max ? "max" : "min";
  check_f32(x, nm);
  int64_t r = x.dim();
  std::vector<bool> red(r, false);
  if (axes_in.empty()) {
    std::fill(red.begin(), red.end(), true);
  } else {
    for (int64_t a : axes_in) {
      int64_t d = normalize_axis(a, r, nm);
      if (red[d]) fail(nm, "axis ", a, " repeats");
      red[d] = true;
    }
  }
  Shape os;
  std::vector<int64_t> perm_red;  // the reduced axes, ascending
  int64_t n = 1;
  for (int64_t d = 0; d < r; ++d) {
    if (red[d]) {
      perm_red.push_back(d);
      n *= x.shape()[d];
      if (keepdim) os.push_back(1);
    } else {
      os.push_back(x.shape()[d]);
    }
  }
  if ((op == ReduceOp::Max || op == ReduceOp::Min) && n == 0)
    fail(nm, "cannot reduce an empty axis of shape ", shape_str(x.shape()));
  // Reduce over a middle axis when the reduced axes are contiguous in the layout
  // [kept-before..., reduced..., kept-after...]; otherwise in stages (below).
  int64_t first = perm_red.empty() ? r : perm_red.front(), last = perm_red.empty() ? r - 1 : perm_red.back();
  bool block = static_cast<int64_t>(perm_red.size()) == last - first + 1;
  if (block) {
    Tensor out = Tensor::empty(os, DType::Float32, x.device(), nm);
    Tensor xc = x.contiguous();
    int64_t o = 1, in = 1;
    for (int64_t d = 0; d < first; ++d) o *= x.shape()[d];
    for (int64_t d = last + 1; d < r; ++d) in *= x.shape()[d];
    backend_for(x.device(), nm).reduce(op, out, xc, o, n, in);
    return out;
  }
  {
    // Axes in several runs, e.g. [4, 6] of a 2x2 pooling view [B, C, T, h, 2, w, 2]:
    // one run of adjacent axes at a time, the last run first (keepdim, so the earlier
    // axes keep their numbers), each a middle-axis reduce with no copy, instead of
    // permuting the reduced axes last (a copy of the whole input: 2x2 mean pooling of
    // [2, 16, 9, 64, 64] took 3.6 ms that way, 0.75 ms in stages). Equal in exact
    // arithmetic (every run has a fixed count, so a mean of means is the mean); sums
    // round to float between stages.
    Tensor cur = x;
    for (size_t e = perm_red.size(); e > 0;) {
      size_t b = e - 1;
      while (b > 0 && perm_red[b - 1] == perm_red[b] - 1) --b;
      std::vector<int64_t> run(perm_red.begin() + static_cast<std::ptrdiff_t>(b), perm_red.begin() + static_cast<std::ptrdiff_t>(e));
      cur = reduce(op, cur, run, true);
      e = b;
    }
    return cur.reshape(os);
  }
}

// ---- matmul --------------------------------------------------------------------------

namespace {
// Describes a [.., R, C] operand as a GEMM operand without copying when possible:
// row-major (stride C == 1) or transposed (stride R == 1).
struct GemmOperand {
  Tensor t;
  bool trans = false;
  int64_t ld = 0;
};
GemmOperand as_gemm_operand(const Tensor& x) {
  int64_t d = x.dim();
  int64_t R = x.shape()[d - 2], C = x.shape()[d - 1];
  int64_t sr = x.strides()[d - 2], sc = x.strides()[d - 1];
  if ((sc == 1 || C == 1) && sr >= std::max<int64_t>(C, 1)) return {x, false, sr};
  if ((sr == 1 || R == 1) && sc >= std::max<int64_t>(R, 1)) return {x, true, sc};
  Tensor c = x.contiguous();
  return {c, false, std::max<int64_t>(C, 1)};
}
}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  check_f32(a_in, "matmul", "first input");
  check_f32(b_in, "matmul", "second input");
  check_device(a_in, b_in, "matmul");
  if (a_in.dim() == 0 || b_in.dim() == 0)
    fail("matmul", "expected inputs of rank >= 1, got shapes ", shape_str(a_in.shape()), " and ", shape_str(b_in.shape()));
  Tensor a = a_in.dim() == 1 ? a_in.unsqueeze(0) : a_in;
  Tensor b = b_in.dim() == 1 ? b_in.unsqueeze(1) : b_in;
  int64_t M = a.shape()[a.dim() - 2], K = a.shape()[a.dim() - 1];
  int64_t K2 = b.shape()[b.dim() - 2], N = b.shape()[b.dim() - 1];
  if (K != K2)
    fail("matmul", "inner dimensions differ: ", shape_str(a_in.shape()), " @ ", shape_str(b_in.shape()), " (", K,
         " vs ", K2, ")");
  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(ba, bb, "matmul");
  int64_t nb = shape_numel(batch);
  Shape ea = batch, eb = batch;
  ea.push_back(M); ea.push_back(K);
  eb.push_back(K); eb.push_back(N);
  Shape os = batch;
  os.push_back(M);
  os.push_back(N);
  Tensor out = Tensor::empty(os, DType::Float32, a.device(), "matmul");
  if (out.numel() > 0) {
    Backend& be = backend_for(a.device(), "matmul");
    if (shape_numel(bb) == 1) {
      // b has no batch: fold a's batch into M and run one GEMM.
      GemmOperand A = as_gemm_operand(a.expand(ea).reshape({nb * M, K}));
      GemmOperand B = as_gemm_operand(b.reshape({K, N}));
      be.gemm(A.trans, B.trans, nb * M, N, K, A.t.data<float>(), A.ld, 0, B.t.data<float>(), B.ld, 0,
              out.data<float>(), N, 0, 1, 0.0f);
    } else {
      // One batch stride per operand: a view when the batch dims collapse, stride 0
      // when the operand is broadcast over all of them, else a contiguous copy.
      auto flat = [&](const Tensor& x, const Shape& full, int64_t R, int64_t C, int64_t* bstride) -> GemmOperand {
        Tensor e = x.expand(full);
        bool all_zero = true;
        for (size_t i = 0; i + 2 < full.size(); ++i) all_zero = all_zero && (e.strides()[i] == 0 || full[i] == 1);
        Tensor m;
        if (all_zero) {
          m = x.reshape({1, R, C});  // x has no batch of its own here
          GemmOperand g = as_gemm_operand(m);
          *bstride = 0;
          return g;
        }
        m = e.reshape({nb, R, C});
        GemmOperand g = as_gemm_operand(m);
        *bstride = g.t.strides()[0];
        return g;
      };
      int64_t sa = 0, sb = 0;
      GemmOperand A = flat(a, ea, M, K, &sa), B = flat(b, eb, K, N, &sb);
      be.gemm(A.trans, B.trans, M, N, K, A.t.data<float>(), A.ld, sa, B.t.data<float>(), B.ld, sb,
              out.data<float>(), N, M * N, nb, 0.0f);
    }
  }
  // Drop the dims added for 1-D operands.
  Shape fin = batch;
  if (a_in.dim() > 1) fin.push_back(M);
  if (b_in.dim() > 1) fin.push_back(N);
  return out.reshape(fin);
}

}  // namespace ts
