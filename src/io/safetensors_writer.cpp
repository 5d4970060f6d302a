#include "io/safetensors_writer.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <fstream>

#include "core/error.h"

namespace exl::io {

void SafetensorsWriter::add(const std::string& name, DType dtype, const Shape& shape, const void* data) {
  add_checked(name, dtype, shape, data, static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype));
}

void SafetensorsWriter::add_checked(const std::string& name, DType dtype, const Shape& shape, const void* data,
                                    size_t bytes) {
  const size_t expected = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  EXL_CHECK(bytes == expected, kInvalidArgument, "safetensors writer: tensor '{}' {} {} needs {} bytes, got {}", name,
            dtype_name(dtype), shape_str(shape), expected, bytes);
  for (const auto& e : tensors_)
    EXL_CHECK(e.name != name, kInvalidArgument, "safetensors writer: tensor '{}' added twice", name);
  Entry e{name, dtype, shape, std::vector<char>(bytes)};
  if (bytes) std::memcpy(e.bytes.data(), data, bytes);
  tensors_.push_back(std::move(e));
}

void SafetensorsWriter::write(const std::filesystem::path& path) const {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  size_t offset = 0;
  for (const auto& e : tensors_) {
    header[e.name] = {{"dtype", std::string(dtype_name(e.dtype))},
                      {"shape", e.shape},
                      {"data_offsets", {offset, offset + e.bytes.size()}}};
    offset += e.bytes.size();
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');  // keep the data section 8-byte aligned
  const auto tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    EXL_CHECK(out.good(), kInvalidArgument, "{}: cannot open for writing", tmp);
    const uint64_t len = text.size();
    out.write(reinterpret_cast<const char*>(&len), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& e : tensors_) out.write(e.bytes.data(), static_cast<std::streamsize>(e.bytes.size()));
    out.flush();
    EXL_CHECK(out.good(), kInvalidArgument, "{}: write failed (disk full?)", tmp);
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace exl::io
