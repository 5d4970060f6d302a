// safetensors reader: every *.safetensors file of a model directory, memory-mapped, one name -> tensor map.
// Index files (*.index.json) are ignored on purpose: converters copy stale ones (exl2-format.md 9.2).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "io/mapped_file.h"
#include "tensor/tensor.h"

namespace exl::io {

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  size_t offset = 0;  // absolute byte offset in the file
  size_t nbytes = 0;
  size_t file_index = 0;
};

class SafetensorsFile {
 public:
  // Parses and validates the header: length, JSON, dtypes, shapes, offsets (in bounds, sized dtype*numel,
  // not overlapping). Any violation is kCorruptFile naming the file and tensor.
  static SafetensorsFile open(const std::filesystem::path& path);
  static std::vector<TensorInfo> parse_header(const std::byte* data, size_t size, const std::string& file_name);

  const std::filesystem::path& path() const { return file_.path(); }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::byte* data() const { return file_.data(); }

 private:
  MappedFile file_;
  std::vector<TensorInfo> tensors_;
};

// All tensors of a directory (or a single file).
class TensorStore {
 public:
  static TensorStore open_dir(const std::filesystem::path& dir);
  static TensorStore open_file(const std::filesystem::path& file);

  bool has(const std::string& name) const { return index_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;  // kNotFound naming the tensor and the directory
  std::vector<std::string> names() const;
  std::string file_of(const std::string& name) const;
  const std::filesystem::path& location() const { return location_; }

  // Raw view of the stored bytes (any dtype).
  TensorView view(const std::string& name) const;

  // Checked typed reads: the dtype must be `dtype`, the shape must equal `shape` (an empty `shape` accepts any).
  // Errors name the file and tensor, what was expected and what was found.
  const TensorInfo& expect(const std::string& name, DType dtype, const Shape& shape) const;
  template <typename T>
  std::vector<T> read(const std::string& name, DType dtype, const Shape& shape = {}) const {
    const TensorInfo& ti = expect(name, dtype, shape);
    std::vector<T> out(ti.nbytes / sizeof(T));
    copy_bytes(ti, out.data());
    return out;
  }
  // Float tensor (F32/F16/BF16) as fp32, shape checked.
  std::vector<float> read_f32(const std::string& name, const Shape& shape = {}) const;
  // Float tensor as an owning Tensor in its stored dtype (F32/F16/BF16 only), shape checked.
  Tensor read_float_tensor(const std::string& name, const Shape& shape = {}) const;

 private:
  void copy_bytes(const TensorInfo& ti, void* out) const;

  std::filesystem::path location_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, TensorInfo> index_;
};

}  // namespace exl::io
