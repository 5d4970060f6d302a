// DType, Shape and a host Tensor (owning, contiguous, row-major) / TensorView (non-owning).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace exl {

enum class DType { kF32, kF16, kBF16, kI32, kI16, kI8, kU8, kBool };

size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);  // safetensors spelling: "F32", "F16", ...

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);  // "[4, 64, 2048]"

template <typename T>
constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::kF32; }
template <> constexpr DType dtype_of<int32_t>() { return DType::kI32; }
template <> constexpr DType dtype_of<int16_t>() { return DType::kI16; }
template <> constexpr DType dtype_of<int8_t>() { return DType::kI8; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::kU8; }

// Non-owning view of contiguous row-major data.
struct TensorView {
  DType dtype = DType::kF32;
  Shape shape;
  const void* data = nullptr;

  int64_t numel() const { return shape_numel(shape); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  template <typename T>
  std::span<const T> as() const {
    return {static_cast<const T*>(data), static_cast<size_t>(numel())};
  }
};

// Owning host tensor. Storage is 64-byte aligned.
class Tensor {
 public:
  Tensor() = default;
  Tensor(DType dtype, Shape shape);

  static Tensor zeros_f32(Shape shape) { return Tensor(DType::kF32, std::move(shape)); }

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(size_t i) const { return shape_.at(i); }
  size_t ndim() const { return shape_.size(); }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }

  void* raw() { return storage_blocks_.data(); }
  const void* raw() const { return storage_blocks_.data(); }
  template <typename T>
  T* data() {
    return reinterpret_cast<T*>(storage_blocks_.data());
  }
  template <typename T>
  const T* data() const {
    return reinterpret_cast<const T*>(storage_blocks_.data());
  }
  TensorView view() const { return {dtype_, shape_, raw()}; }

  // Same storage, new shape with the same numel (kInvalidArgument otherwise).
  void reshape(Shape shape);

 private:
  struct alignas(64) Block {
    std::byte bytes[64];
  };
  DType dtype_ = DType::kF32;
  Shape shape_;
  std::vector<Block> storage_blocks_;  // copies and moves stay valid: nothing points into it
};

}  // namespace exl
