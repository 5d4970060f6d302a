// JSON access helpers shared by the component factories (see components.h).
#include <fmt/format.h>

#include "tokenizer/components.h"

namespace exl::tokenizer::detail {

void config_fail(ErrorKind kind, const std::string& path, const std::string& what) {
  fail(kind, "tokenizer.json: {}: {}", path.empty() ? std::string("(root)") : path, what);
}

std::string child_path(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : fmt::format("{}.{}", path, key);
}

std::string index_path(const std::string& path, size_t index) { return fmt::format("{}[{}]", path, index); }

namespace {

std::string_view json_type_name(const Json& j) { return j.type_name(); }

}  // namespace

const Json* find_member(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

const Json& require_member(const Json& obj, std::string_view key, const std::string& path) {
  if (!obj.is_object()) config_fail(ErrorKind::kCorruptFile, path, fmt::format("expected an object, found {}", json_type_name(obj)));
  const Json* m = find_member(obj, key);
  if (m == nullptr) config_fail(ErrorKind::kCorruptFile, child_path(path, key), "missing");
  return *m;
}

std::string require_string(const Json& obj, std::string_view key, const std::string& path) {
  const Json& m = require_member(obj, key, path);
  if (!m.is_string()) {
    config_fail(ErrorKind::kCorruptFile, child_path(path, key), fmt::format("expected a string, found {}", json_type_name(m)));
  }
  return m.get<std::string>();
}

std::optional<std::string> optional_string(const Json& obj, std::string_view key, const std::string& path) {
  const Json* m = find_member(obj, key);
  if (m == nullptr) return std::nullopt;
  if (!m->is_string()) {
    config_fail(ErrorKind::kCorruptFile, child_path(path, key), fmt::format("expected a string, found {}", json_type_name(*m)));
  }
  return m->get<std::string>();
}

bool optional_bool(const Json& obj, std::string_view key, const std::string& path, bool fallback) {
  const Json* m = find_member(obj, key);
  if (m == nullptr) return fallback;
  if (!m->is_boolean()) {
    config_fail(ErrorKind::kCorruptFile, child_path(path, key), fmt::format("expected true or false, found {}", json_type_name(*m)));
  }
  return m->get<bool>();
}

int64_t optional_int(const Json& obj, std::string_view key, const std::string& path, int64_t fallback) {
  const Json* m = find_member(obj, key);
  if (m == nullptr) return fallback;
  if (!m->is_number_integer()) {
    config_fail(ErrorKind::kCorruptFile, child_path(path, key), fmt::format("expected an integer, found {}", json_type_name(*m)));
  }
  return m->get<int64_t>();
}

const Json& require_array(const Json& obj, std::string_view key, const std::string& path) {
  const Json& m = require_member(obj, key, path);
  if (!m.is_array()) {
    config_fail(ErrorKind::kCorruptFile, child_path(path, key), fmt::format("expected an array, found {}", json_type_name(m)));
  }
  return m;
}

std::string component_type(const Json& obj, const std::string& path) {
  if (!obj.is_object()) {
    config_fail(ErrorKind::kCorruptFile, path, fmt::format("expected an object with a \"type\", found {}", json_type_name(obj)));
  }
  return require_string(obj, "type", path);
}

void unsupported_type(const std::string& path, std::string_view type, std::initializer_list<std::string_view> supported) {
  config_fail(ErrorKind::kUnsupported, child_path(path, "type"),
              fmt::format("unsupported \"{}\" (supported: {})", type, fmt::join(supported, ", ")));
}

PatternSpec read_pattern(const Json& obj, std::string_view key, const std::string& path) {
  const Json& p = require_member(obj, key, path);
  std::string p_path = child_path(path, key);
  if (const Json* s = find_member(p, "String"); s != nullptr && s->is_string()) {
    return {PatternSpec::Kind::kString, s->get<std::string>()};
  }
  if (const Json* r = find_member(p, "Regex"); r != nullptr && r->is_string()) {
    return {PatternSpec::Kind::kRegex, r->get<std::string>()};
  }
  config_fail(ErrorKind::kUnsupported, p_path, "expected {\"String\": ...} or {\"Regex\": ...}");
}

}  // namespace exl::tokenizer::detail
