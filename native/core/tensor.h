// tessera core: Tensor = shared storage + shape + strides (in elements) + offset + dtype.
// A Tensor is a cheap value (copies share storage). Views (reshape of a contiguous
// tensor, permute, transpose, slice) share storage; contiguous() copies when needed.
#pragma once
#include <memory>
#include <vector>

#include "allocator.h"
#include "dtype.h"
#include "error.h"

namespace ts {

using Shape = std::vector<int64_t>;

struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  Device device;
  Storage(size_t n, Device d, const char* op) : nbytes(n), device(d) { data = raw_alloc(n, d, op); }
  ~Storage() { raw_free(data, nbytes, device); }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

class Tensor {
 public:
  Tensor() = default;
  // Fresh, uninitialized, contiguous tensor.
  static Tensor empty(const Shape& shape, DType dtype, Device dev = Device{}, const char* op = "empty");

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const;
  int64_t offset() const { return offset_; }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device : Device{}; }
  size_t itemsize() const { return dtype_size(dtype_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * itemsize(); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }

  // Pointer to element [0,...,0] (storage base + offset).
  void* raw() const { return static_cast<char*>(storage_->data) + offset_ * static_cast<int64_t>(itemsize()); }
  template <typename T>
  T* data() const { return static_cast<T*>(raw()); }

  // Views (no copy). reshape copies only when the strides do not allow a view.
  Tensor view(const Shape& shape) const;  // requires a compatible layout; -1 infers one dim
  Tensor reshape(const Shape& shape) const;
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t a, int64_t b) const;
  Tensor slice(int64_t axis, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor expand(const Shape& shape) const;  // broadcast view (stride 0)
  Tensor unsqueeze(int64_t axis) const;
  Tensor alias() const { return *this; }

  Tensor contiguous() const;  // itself when already contiguous, else a copy
  Tensor clone() const;       // always a copy, contiguous

  // Only for the core: build a view over existing storage.
  static Tensor make_view(std::shared_ptr<Storage> st, Shape shape, Shape strides, int64_t offset, DType dt);

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  Shape strides_;
  int64_t offset_ = 0;
  DType dtype_ = DType::Float32;
};

Shape contiguous_strides(const Shape& shape);
int64_t shape_numel(const Shape& shape);
// Normalizes a possibly negative axis against rank; throws naming op otherwise.
int64_t normalize_axis(int64_t axis, int64_t rank, const char* op);
// Validates sizes (non-negative, product not overflowing) naming op.
void check_shape(const Shape& shape, const char* op);

}  // namespace ts
