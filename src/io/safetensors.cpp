#include "io/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/fp16.h"

namespace exl::io {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

bool parse_dtype(const std::string& s, DType* out) {
  static const std::pair<const char*, DType> kTable[] = {
      {"F32", DType::kF32}, {"F16", DType::kF16}, {"BF16", DType::kBF16}, {"I32", DType::kI32},
      {"I16", DType::kI16}, {"I8", DType::kI8},   {"U8", DType::kU8},     {"BOOL", DType::kBool}};
  for (const auto& [name, dtype] : kTable) {
    if (s == name) {
      *out = dtype;
      return true;
    }
  }
  return false;
}

}  // namespace

std::vector<TensorInfo> SafetensorsFile::parse_header(const std::byte* data, size_t size,
                                                      const std::string& file_name) {
  EXL_CHECK(size >= 8, kCorruptFile, "{}: file is {} bytes, too short for a safetensors header (needs >= 8)",
            file_name, size);
  uint64_t header_len = 0;
  std::memcpy(&header_len, data, 8);
  EXL_CHECK(header_len <= kMaxHeaderBytes && header_len <= size - 8, kCorruptFile,
            "{}: header length {} runs past the end of the file ({} bytes; truncated or not safetensors?)", file_name,
            header_len, size);
  const char* header_begin = reinterpret_cast<const char*>(data + 8);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(header_begin, header_begin + header_len);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::kCorruptFile, "{}: malformed safetensors JSON header: {}", file_name, e.what());
  }
  EXL_CHECK(header.is_object(), kCorruptFile, "{}: safetensors header is not a JSON object", file_name);
  const size_t data_start = 8 + header_len;
  const size_t data_size = size - data_start;

  std::vector<TensorInfo> tensors;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    EXL_CHECK(entry.is_object() && entry.contains("dtype") && entry.contains("shape") &&
                  entry.contains("data_offsets"),
              kCorruptFile, "{}: tensor '{}': header entry needs dtype, shape and data_offsets", file_name, name);
    TensorInfo ti;
    ti.name = name;
    const auto& dt = entry["dtype"];
    EXL_CHECK(dt.is_string(), kCorruptFile, "{}: tensor '{}': dtype is not a string", file_name, name);
    EXL_CHECK(parse_dtype(dt.get<std::string>(), &ti.dtype), kUnsupported,
              "{}: tensor '{}': dtype {} is not supported (supported: F32, F16, BF16, I32, I16, I8, U8, BOOL)",
              file_name, name, dt.dump());
    const auto& shape = entry["shape"];
    EXL_CHECK(shape.is_array(), kCorruptFile, "{}: tensor '{}': shape is not an array", file_name, name);
    uint64_t numel = 1;
    for (const auto& d : shape) {
      EXL_CHECK(d.is_number_unsigned() || (d.is_number_integer() && d.get<int64_t>() >= 0), kCorruptFile,
                "{}: tensor '{}': shape {} has a non-integer or negative dimension", file_name, name, shape.dump());
      uint64_t v = d.get<uint64_t>();
      EXL_CHECK(v < (1ull << 40) && (v == 0 || numel <= (1ull << 48) / v), kCorruptFile,
                "{}: tensor '{}': shape {} is implausibly large", file_name, name, shape.dump());
      numel *= v;
      ti.shape.push_back(static_cast<int64_t>(v));
    }
    const auto& offs = entry["data_offsets"];
    EXL_CHECK(offs.is_array() && offs.size() == 2 && offs[0].is_number_unsigned() && offs[1].is_number_unsigned(),
              kCorruptFile, "{}: tensor '{}': data_offsets must be two non-negative integers, found {}", file_name,
              name, offs.dump());
    uint64_t begin = offs[0].get<uint64_t>();
    uint64_t end = offs[1].get<uint64_t>();
    EXL_CHECK(begin <= end && end <= data_size, kCorruptFile,
              "{}: tensor '{}': data_offsets [{}, {}) run past the end of the data section ({} bytes; file truncated?)",
              file_name, name, begin, end, data_size);
    uint64_t expected = numel * dtype_size(ti.dtype);
    EXL_CHECK(end - begin == expected, kCorruptFile,
              "{}: tensor '{}': {} {} needs {} bytes, data_offsets give {}", file_name, name, dtype_name(ti.dtype),
              shape_str(ti.shape), expected, end - begin);
    ti.offset = data_start + begin;
    ti.nbytes = end - begin;
    tensors.push_back(std::move(ti));
  }
  std::vector<const TensorInfo*> sorted;
  for (const auto& t : tensors) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < sorted.size(); ++i) {
    const TensorInfo* prev = sorted[i - 1];
    EXL_CHECK(prev->offset + prev->nbytes <= sorted[i]->offset || prev->nbytes == 0 || sorted[i]->nbytes == 0,
              kCorruptFile, "{}: tensors '{}' and '{}' overlap in the data section", file_name, prev->name,
              sorted[i]->name);
  }
  return tensors;
}

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  SafetensorsFile f;
  f.file_ = MappedFile::open(path);
  f.tensors_ = parse_header(f.file_.data(), f.file_.size(), path.string());
  return f;
}

TensorStore TensorStore::open_file(const std::filesystem::path& file) {
  TensorStore store;
  store.location_ = file;
  store.files_.push_back(std::make_unique<SafetensorsFile>(SafetensorsFile::open(file)));
  for (const auto& t : store.files_[0]->tensors()) store.index_[t.name] = t;
  return store;
}

TensorStore TensorStore::open_dir(const std::filesystem::path& dir) {
  EXL_CHECK(std::filesystem::is_directory(dir), kNotFound, "{}: not a directory", dir.string());
  std::vector<std::filesystem::path> paths;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.is_regular_file() && e.path().extension() == ".safetensors") paths.push_back(e.path());
  }
  std::sort(paths.begin(), paths.end());
  EXL_CHECK(!paths.empty(), kNotFound, "{}: no *.safetensors files in the model directory", dir.string());
  TensorStore store;
  store.location_ = dir;
  for (const auto& p : paths) {
    size_t file_index = store.files_.size();
    store.files_.push_back(std::make_unique<SafetensorsFile>(SafetensorsFile::open(p)));
    for (TensorInfo t : store.files_.back()->tensors()) {
      t.file_index = file_index;
      auto it = store.index_.find(t.name);
      EXL_CHECK(it == store.index_.end(), kCorruptFile, "tensor '{}' is stored twice: in {} and in {}", t.name,
                store.files_[it == store.index_.end() ? 0 : it->second.file_index]->path().filename().string(),
                p.filename().string());
      store.index_[t.name] = t;
    }
  }
  return store;
}

const TensorInfo& TensorStore::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail(ErrorKind::kNotFound, "{}: tensor '{}' not found", location_.string(), name);
  return it->second;
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> out;
  for (const auto& [name, ti] : index_) out.push_back(name);
  return out;
}

std::string TensorStore::file_of(const std::string& name) const {
  return files_[info(name).file_index]->path().string();
}

TensorView TensorStore::view(const std::string& name) const {
  const TensorInfo& ti = info(name);
  return {ti.dtype, ti.shape, files_[ti.file_index]->data() + ti.offset};
}

const TensorInfo& TensorStore::expect(const std::string& name, DType dtype, const Shape& shape) const {
  const TensorInfo& ti = info(name);
  EXL_CHECK(ti.dtype == dtype, kCorruptFile, "{}: tensor '{}': expected dtype {}, found {}", file_of(name), name,
            dtype_name(dtype), dtype_name(ti.dtype));
  EXL_CHECK(shape.empty() || ti.shape == shape, kCorruptFile, "{}: tensor '{}': expected shape {}, found {}",
            file_of(name), name, shape_str(shape), shape_str(ti.shape));
  return ti;
}

void TensorStore::copy_bytes(const TensorInfo& ti, void* out) const {
  std::memcpy(out, files_[ti.file_index]->data() + ti.offset, ti.nbytes);
}

Tensor TensorStore::read_float_tensor(const std::string& name, const Shape& shape) const {
  const TensorInfo& ti = info(name);
  EXL_CHECK(ti.dtype == DType::kF32 || ti.dtype == DType::kF16 || ti.dtype == DType::kBF16, kCorruptFile,
            "{}: tensor '{}': expected a float dtype (F32, F16 or BF16), found {}", file_of(name), name,
            dtype_name(ti.dtype));
  EXL_CHECK(shape.empty() || ti.shape == shape, kCorruptFile, "{}: tensor '{}': expected shape {}, found {}",
            file_of(name), name, shape_str(shape), shape_str(ti.shape));
  Tensor t(ti.dtype, ti.shape);
  copy_bytes(ti, t.raw());
  return t;
}

std::vector<float> TensorStore::read_f32(const std::string& name, const Shape& shape) const {
  Tensor t = read_float_tensor(name, shape);
  std::vector<float> out(static_cast<size_t>(t.numel()));
  const size_t n = out.size();
  switch (t.dtype()) {
    case DType::kF32: std::memcpy(out.data(), t.raw(), n * 4); break;
    case DType::kF16:
      for (size_t i = 0; i < n; ++i) out[i] = half_to_float(t.data<uint16_t>()[i]);
      break;
    default:
      for (size_t i = 0; i < n; ++i) out[i] = bf16_to_float(t.data<uint16_t>()[i]);
      break;
  }
  return out;
}

}  // namespace exl::io
