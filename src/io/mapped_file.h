// Read-only memory map of a whole file (RAII, move-only).
#pragma once

#include <cstddef>
#include <filesystem>

namespace exl::io {

class MappedFile {
 public:
  static MappedFile open(const std::filesystem::path& path);  // kNotFound / kCorruptFile naming the path
  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace exl::io
