// Writing safetensors files (used by `exl logits`, `exl make-random-model` and test fixtures).
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace exl::io {

class SafetensorsWriter {
 public:
  // Copies the bytes; data must hold numel(shape) * dtype_size(dtype) bytes.
  void add(const std::string& name, DType dtype, const Shape& shape, const void* data);
  template <typename T>
  void add(const std::string& name, DType dtype, const Shape& shape, const std::vector<T>& values) {
    add_checked(name, dtype, shape, values.data(), values.size() * sizeof(T));
  }
  void add_checked(const std::string& name, DType dtype, const Shape& shape, const void* data, size_t bytes);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  // Writes to a temporary file and renames it into place, so a failure never leaves a half-written file.
  void write(const std::filesystem::path& path) const;
  size_t num_tensors() const { return tensors_.size(); }

 private:
  struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
    std::vector<char> bytes;
  };
  std::vector<Entry> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace exl::io
