#include "tensor/tensor.h"

#include "core/error.h"

namespace exl {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kF32: return 4;
    case DType::kF16: return 2;
    case DType::kBF16: return 2;
    case DType::kI32: return 4;
    case DType::kI16: return 2;
    case DType::kI8: return 1;
    case DType::kU8: return 1;
    case DType::kBool: return 1;
  }
  return 0;
}

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kI32: return "I32";
    case DType::kI16: return "I16";
    case DType::kI8: return "I8";
    case DType::kU8: return "U8";
    case DType::kBool: return "BOOL";
  }
  return "?";
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

Tensor::Tensor(DType dtype, Shape shape) : dtype_(dtype), shape_(std::move(shape)) {
  for (int64_t d : shape_) {
    EXL_CHECK(d >= 0, kInvalidArgument, "tensor shape {} has a negative dimension", shape_str(shape_));
  }
  storage_blocks_.resize((nbytes() + 63) / 64);  // value-initialized: zero
}

void Tensor::reshape(Shape shape) {
  EXL_CHECK(shape_numel(shape) == numel(), kInvalidArgument, "cannot reshape {} to {}", shape_str(shape_),
            shape_str(shape));
  shape_ = std::move(shape);
}

}  // namespace exl
