#include "tensor.h"

#include <algorithm>
#include <limits>
#include <sstream>

#include "ops.h"

namespace ts {

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

Shape contiguous_strides(const Shape& shape) {
  Shape st(shape.size());
  int64_t acc = 1;
  for (int64_t i = static_cast<int64_t>(shape.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= std::max<int64_t>(shape[i], 1);
  }
  return st;
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

void check_shape(const Shape& shape, const char* op) {
  if (shape.size() > 16) fail(op, "expected at most 16 dimensions, got ", shape.size());
  long double n = 1;
  for (int64_t s : shape) {
    if (s < 0) fail(op, "expected non-negative sizes, got shape ", shape_str(shape));
    n *= static_cast<long double>(s);
  }
  if (n > static_cast<long double>(std::numeric_limits<int64_t>::max() / 16))
    fail(op, "shape ", shape_str(shape), " has too many elements");
}

int64_t normalize_axis(int64_t axis, int64_t rank, const char* op) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) fail(op, "axis ", axis, " is out of range for a tensor of rank ", rank);
  return a;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device dev, const char* op) {
  check_shape(shape, op);
  Tensor t;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  t.offset_ = 0;
  t.storage_ = std::make_shared<Storage>(static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype), dev, op);
  return t;
}

Tensor Tensor::make_view(std::shared_ptr<Storage> st, Shape shape, Shape strides, int64_t offset, DType dt) {
  Tensor t;
  t.storage_ = std::move(st);
  t.shape_ = std::move(shape);
  t.strides_ = std::move(strides);
  t.offset_ = offset;
  t.dtype_ = dt;
  return t;
}

int64_t Tensor::size(int64_t d) const { return shape_[normalize_axis(d, dim(), "size")]; }

int64_t Tensor::numel() const { return shape_numel(shape_); }

bool Tensor::is_contiguous() const {
  int64_t acc = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (shape_[i] == 1) continue;
    if (strides_[i] != acc) return false;
    acc *= shape_[i];
  }
  return true;
}

static Shape infer_shape(const Shape& req, int64_t numel, const Shape& from, const char* op) {
  Shape out = req;
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      if (infer >= 0) fail(op, "only one dimension can be -1, got ", shape_str(req));
      infer = static_cast<int64_t>(i);
    } else if (out[i] < 0) {
      fail(op, "expected sizes >= 0 or -1, got ", shape_str(req));
    } else {
      known *= out[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || numel % known != 0)
      fail(op, "cannot reshape a tensor of shape ", shape_str(from), " (", numel, " elements) into ", shape_str(req));
    out[infer] = numel / known;
  }
  if (shape_numel(out) != numel)
    fail(op, "cannot reshape a tensor of shape ", shape_str(from), " (", numel, " elements) into ", shape_str(req));
  return out;
}

// Computes view strides for a reshape, or returns false when no view exists
// (the same rule as PyTorch's computeStride).
static bool view_strides(const Shape& oldshape, const Shape& oldstride, const Shape& newshape, Shape* out) {
  Shape ns(newshape.size());
  if (shape_numel(oldshape) <= 1) {
    *out = contiguous_strides(newshape);
    return true;
  }
  int64_t view_d = static_cast<int64_t>(newshape.size()) - 1;
  int64_t chunk_base_stride = oldstride.empty() ? 1 : oldstride.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t tensor_d = static_cast<int64_t>(oldshape.size()) - 1; tensor_d >= 0; --tensor_d) {
    tensor_numel *= oldshape[tensor_d];
    if (tensor_d == 0 || (oldshape[tensor_d - 1] != 1 && oldstride[tensor_d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || newshape[view_d] == 1)) {
        ns[view_d] = view_numel * chunk_base_stride;
        view_numel *= newshape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (tensor_d > 0) {
        chunk_base_stride = oldstride[tensor_d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return false;
  *out = ns;
  return true;
}

Tensor Tensor::view(const Shape& req) const {
  Shape ns = infer_shape(req, numel(), shape_, "view");
  Shape st;
  if (!view_strides(shape_, strides_, ns, &st))
    fail("view", "the layout of a tensor of shape ", shape_str(shape_), " with strides ", shape_str(strides_),
         " does not allow a view of shape ", shape_str(ns), "; use reshape");
  return make_view(storage_, ns, st, offset_, dtype_);
}

Tensor Tensor::reshape(const Shape& req) const {
  Shape ns = infer_shape(req, numel(), shape_, "reshape");
  Shape st;
  if (view_strides(shape_, strides_, ns, &st)) return make_view(storage_, ns, st, offset_, dtype_);
  return contiguous().view(ns);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  if (static_cast<int64_t>(dims.size()) != dim())
    fail("permute", "expected ", dim(), " dimensions for a tensor of shape ", shape_str(shape_), ", got ", shape_str(dims));
  std::vector<bool> seen(dims.size(), false);
  Shape ns(dims.size()), st(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = normalize_axis(dims[i], dim(), "permute");
    if (seen[d]) fail("permute", "dimension ", d, " repeats in ", shape_str(dims));
    seen[d] = true;
    ns[i] = shape_[d];
    st[i] = strides_[d];
  }
  return make_view(storage_, ns, st, offset_, dtype_);
}

Tensor Tensor::transpose(int64_t a, int64_t b) const {
  a = normalize_axis(a, dim(), "transpose");
  b = normalize_axis(b, dim(), "transpose");
  Shape ns = shape_, st = strides_;
  std::swap(ns[a], ns[b]);
  std::swap(st[a], st[b]);
  return make_view(storage_, ns, st, offset_, dtype_);
}

Tensor Tensor::slice(int64_t axis, int64_t start, int64_t end, int64_t step) const {
  axis = normalize_axis(axis, dim(), "slice");
  int64_t n = shape_[axis];
  if (step <= 0) fail("slice", "expected a positive step, got ", step);
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape ns = shape_, st = strides_;
  ns[axis] = (end - start + step - 1) / step;
  st[axis] = strides_[axis] * step;
  return make_view(storage_, ns, st, offset_ + start * strides_[axis], dtype_);
}

Tensor Tensor::expand(const Shape& target) const {
  if (target.size() < shape_.size())
    fail("expand", "cannot expand shape ", shape_str(shape_), " to fewer dimensions ", shape_str(target));
  size_t lead = target.size() - shape_.size();
  Shape st(target.size(), 0);
  for (size_t i = 0; i < target.size(); ++i) {
    if (i < lead) continue;
    int64_t s = shape_[i - lead];
    if (s == target[i]) st[i] = strides_[i - lead];
    else if (s == 1) st[i] = 0;
    else fail("expand", "cannot expand shape ", shape_str(shape_), " to ", shape_str(target));
  }
  return make_view(storage_, target, st, offset_, dtype_);
}

Tensor Tensor::unsqueeze(int64_t axis) const {
  axis = normalize_axis(axis, dim() + 1, "unsqueeze");
  Shape ns = shape_, st = strides_;
  int64_t s = axis < dim() ? strides_[axis] * shape_[axis] : 1;
  ns.insert(ns.begin() + axis, 1);
  st.insert(st.begin() + axis, s);
  return make_view(storage_, ns, st, offset_, dtype_);
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor out = Tensor::empty(shape_, dtype_, device(), "clone");
  copy_(out, *this);
  return out;
}

}  // namespace ts
