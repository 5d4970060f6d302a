#include "chat/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>

#include "chat/unicode.h"
#include "core/error.h"

namespace exl::chat {

namespace {

constexpr int kMaxJsonDepth = 512;

bool is_non_printable(char32_t c) {
  if (c < 0x20 || (c >= 0x7F && c <= 0xA0)) return true;
  if (c == 0xAD || c == 0x1680 || (c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F)) return true;
  if ((c >= 0x205F && c <= 0x206F) || c == 0x3000 || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFB)) return true;
  if ((c >= 0x600 && c <= 0x605) || c == 0x61C || c == 0x6DD || c == 0x70F || c == 0x180E) return true;
  return (c >= 0xD800 && c <= 0xF8FF) || c == 0xFFFE || c == 0xFFFF || c > 0x10FFFF;
}

std::string string_repr(const std::string& text) {
  const std::u32string s = decode_utf8(text);
  const bool has_single = s.find(U'\'') != std::u32string::npos;
  const bool has_double = s.find(U'"') != std::u32string::npos;
  const char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  for (char32_t c : s) {
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (is_non_printable(c)) {
      if (c < 0x100) {
        out += fmt::format("\\x{:02x}", static_cast<unsigned>(c));
      } else if (c < 0x10000) {
        out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
      } else {
        out += fmt::format("\\U{:08x}", static_cast<unsigned>(c));
      }
    } else {
      append_utf8(out, c);
    }
  }
  out.push_back(quote);
  return out;
}

void json_string(std::string& out, const std::string& text, bool ensure_ascii) {
  out.push_back('"');
  const std::u32string s = decode_utf8(text);
  for (char32_t c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20 || (ensure_ascii && c >= 0x7F)) {
          if (c >= 0x10000) {
            const char32_t v = c - 0x10000;
            out += fmt::format("\\u{:04x}\\u{:04x}", static_cast<unsigned>(0xD800 | (v >> 10)),
                               static_cast<unsigned>(0xDC00 | (v & 0x3FF)));
          } else {
            out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
          }
        } else {
          append_utf8(out, c);
        }
    }
  }
  out.push_back('"');
}

std::string json_float(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  return float_repr(value);
}

std::string json_key(const Value& key) {
  switch (key.type()) {
    case ValueType::kString: return key.as_string();
    case ValueType::kFloat: return json_float(key.as_double());
    case ValueType::kInt: return std::to_string(key.as_int());
    case ValueType::kBool: return key.as_bool() ? "true" : "false";
    case ValueType::kNone: return "null";
    default:
      fail(ErrorKind::kInvalidArgument, "tojson: keys must be str, int, float, bool or None, not {}", key.type_name());
  }
}

void json_dump(std::string& out, const Value& value, const JsonDumpOptions& options, int level) {
  EXL_CHECK(level < kMaxJsonDepth, kInvalidArgument, "tojson: value nested deeper than {} levels", kMaxJsonDepth);
  switch (value.type()) {
    case ValueType::kNone: out += "null"; return;
    case ValueType::kBool: out += value.as_bool() ? "true" : "false"; return;
    case ValueType::kInt: out += std::to_string(value.as_int()); return;
    case ValueType::kFloat: out += json_float(value.as_double()); return;
    case ValueType::kString: json_string(out, value.as_string(), options.ensure_ascii); return;
    case ValueType::kUndefined:
    case ValueType::kObject:
      fail(ErrorKind::kInvalidArgument, "tojson: Object of type {} is not JSON serializable", value.type_name());
    case ValueType::kList:
    case ValueType::kDict: break;
  }
  const bool is_list = value.is_list();
  const size_t size = is_list ? value.as_list().size() : value.as_dict().size();
  if (size == 0) {
    out += is_list ? "[]" : "{}";
    return;
  }
  std::string newline_indent;
  if (options.indent) {
    newline_indent = "\n";
    for (int i = 0; i <= level; ++i) newline_indent += *options.indent;
  }
  out.push_back(is_list ? '[' : '{');
  out += newline_indent;
  if (is_list) {
    bool first = true;
    for (const Value& item : value.as_list()) {
      if (!first) out += options.item_separator + newline_indent;
      first = false;
      json_dump(out, item, options, level + 1);
    }
  } else {
    std::vector<const std::pair<Value, Value>*> entries;
    for (const auto& entry : value.as_dict().entries()) entries.push_back(&entry);
    if (options.sort_keys) {
      std::stable_sort(entries.begin(), entries.end(),
                       [](const auto* a, const auto* b) { return py_less(a->first, b->first); });
    }
    bool first = true;
    for (const auto* entry : entries) {
      if (!first) out += options.item_separator + newline_indent;
      first = false;
      json_string(out, json_key(entry->first), options.ensure_ascii);
      out += options.key_separator;
      json_dump(out, entry->second, options, level + 1);
    }
  }
  if (options.indent) {
    out.push_back('\n');
    for (int i = 0; i < level; ++i) out += *options.indent;
  }
  out.push_back(is_list ? ']' : '}');
}

template <typename Json>
Value from_json_impl(const Json& json, int depth) {
  EXL_CHECK(depth < kMaxJsonDepth, kInvalidArgument, "chat template input: JSON nested deeper than {} levels",
            kMaxJsonDepth);
  switch (json.type()) {
    case nlohmann::json::value_t::null: return Value::none();
    case nlohmann::json::value_t::boolean: return Value::boolean(json.template get<bool>());
    case nlohmann::json::value_t::number_integer: return Value::integer(json.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      const auto value = json.template get<uint64_t>();
      EXL_CHECK(value <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), kUnsupported,
                "chat template input: integer {} does not fit in 64 bits", value);
      return Value::integer(static_cast<int64_t>(value));
    }
    case nlohmann::json::value_t::number_float: return Value::floating(json.template get<double>());
    case nlohmann::json::value_t::string: return Value::string(json.template get<std::string>());
    case nlohmann::json::value_t::array: {
      List items;
      items.reserve(json.size());
      for (const auto& item : json) items.push_back(from_json_impl(item, depth + 1));
      return Value::list(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      Dict dict;
      for (auto it = json.begin(); it != json.end(); ++it) {
        dict.set(Value::string(it.key()), from_json_impl(it.value(), depth + 1));
      }
      return Value::dict(std::move(dict));
    }
    default: fail(ErrorKind::kInvalidArgument, "chat template input: unsupported JSON value (binary or discarded)");
  }
}

}  // namespace

Value Value::undefined(std::string hint, UndefinedKind kind) {
  Value v;
  v.data_ = std::move(hint);
  v.undefined_kind_ = kind;
  return v;
}
Value Value::none() {
  Value v;
  v.type_ = ValueType::kNone;
  return v;
}
Value Value::boolean(bool value) {
  Value v;
  v.type_ = ValueType::kBool;
  v.data_ = value;
  return v;
}
Value Value::integer(int64_t value) {
  Value v;
  v.type_ = ValueType::kInt;
  v.data_ = value;
  return v;
}
Value Value::floating(double value) {
  Value v;
  v.type_ = ValueType::kFloat;
  v.data_ = value;
  return v;
}
Value Value::string(std::string value) {
  Value v;
  v.type_ = ValueType::kString;
  v.data_ = std::move(value);
  return v;
}
Value Value::list(List items, SequenceKind kind) {
  return list(std::make_shared<const List>(std::move(items)), kind);
}
Value Value::list(ListPtr items, SequenceKind kind) {
  int depth = 0;
  for (const Value& item : *items) depth = std::max(depth, item.depth());
  EXL_CHECK(depth < kMaxValueDepth, kInvalidArgument, "list nested deeper than {} levels", kMaxValueDepth);
  Value v;
  v.depth_ = static_cast<uint16_t>(depth + 1);
  v.type_ = ValueType::kList;
  v.sequence_kind_ = kind;
  v.data_ = std::move(items);
  return v;
}
Value Value::dict(Dict items) { return dict(std::make_shared<const Dict>(std::move(items))); }
Value Value::dict(DictPtr items) {
  int depth = 0;
  for (const auto& [key, value] : items->entries()) depth = std::max({depth, key.depth(), value.depth()});
  EXL_CHECK(depth < kMaxValueDepth, kInvalidArgument, "dict nested deeper than {} levels", kMaxValueDepth);
  Value v;
  v.depth_ = static_cast<uint16_t>(depth + 1);
  v.type_ = ValueType::kDict;
  v.data_ = std::move(items);
  return v;
}
Value Value::object(ObjectPtr object) {
  Value v;
  v.type_ = ValueType::kObject;
  v.data_ = std::move(object);
  return v;
}

int64_t Value::as_int() const {
  if (type_ == ValueType::kBool) return as_bool() ? 1 : 0;
  return std::get<int64_t>(data_);
}

double Value::as_double() const {
  if (type_ == ValueType::kFloat) return std::get<double>(data_);
  return static_cast<double>(as_int());
}

bool Value::truthy() const {
  switch (type_) {
    case ValueType::kUndefined:
    case ValueType::kNone: return false;
    case ValueType::kBool: return as_bool();
    case ValueType::kInt: return as_int() != 0;
    case ValueType::kFloat: return as_double() != 0.0;
    case ValueType::kString: return !as_string().empty();
    case ValueType::kList: return !as_list().empty();
    case ValueType::kDict: return !as_dict().empty();
    case ValueType::kObject: return true;
  }
  return false;
}

std::string_view Value::type_name() const {
  switch (type_) {
    case ValueType::kUndefined: return "Undefined";
    case ValueType::kNone: return "NoneType";
    case ValueType::kBool: return "bool";
    case ValueType::kInt: return "int";
    case ValueType::kFloat: return "float";
    case ValueType::kString: return "str";
    case ValueType::kList: return is_tuple() ? "tuple" : "list";
    case ValueType::kDict: return "dict";
    case ValueType::kObject: return as_object().type_name();
  }
  return "?";
}

const Value* Dict::find(std::string_view key) const {
  const auto it = string_index_.find(std::string(key));
  return it == string_index_.end() ? nullptr : &entries_[it->second].second;
}

const Value* Dict::find(const Value& key) const {
  if (key.is_string()) return find(std::string_view(key.as_string()));
  for (const auto& entry : entries_) {
    if (!entry.first.is_string() && py_equal(entry.first, key)) return &entry.second;
  }
  return nullptr;
}

void Dict::set(Value key, Value value) {
  if (key.is_string()) {
    const auto [it, inserted] = string_index_.emplace(key.as_string(), entries_.size());
    if (!inserted) {
      entries_[it->second].second = std::move(value);
      return;
    }
    entries_.emplace_back(std::move(key), std::move(value));
    return;
  }
  for (auto& entry : entries_) {
    if (!entry.first.is_string() && py_equal(entry.first, key)) {
      entry.second = std::move(value);
      return;
    }
  }
  entries_.emplace_back(std::move(key), std::move(value));
}

Value Object::get_attr(std::string_view name) const {
  return Value::undefined(fmt::format("'{}' object has no attribute '{}'", type_name(), name));
}

Value Object::call(Interpreter& /*interpreter*/, CallArgs& /*args*/) {
  fail(ErrorKind::kInvalidArgument, "'{}' object is not callable", type_name());
}

std::string Object::to_str(int /*depth*/) const { return fmt::format("<{} object>", type_name()); }

std::string float_repr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  if (value == 0.0) return std::signbit(value) ? "-0.0" : "0.0";
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::scientific);
  const std::string sci(buffer, result.ptr);  // "-d.ddde+XX"
  const size_t e_pos = sci.find('e');
  std::string mantissa = sci.substr(0, e_pos);
  const int exponent = std::stoi(sci.substr(e_pos + 1));
  std::string sign;
  if (mantissa[0] == '-') {
    sign = "-";
    mantissa.erase(0, 1);
  }
  std::string digits;
  for (char c : mantissa) {
    if (c != '.') digits.push_back(c);
  }
  const int decimal_point = exponent + 1;  // value = 0.DIGITS * 10^decimal_point
  const int num_digits = static_cast<int>(digits.size());
  std::string out = sign;
  if (decimal_point > -4 && decimal_point <= 16) {
    if (decimal_point <= 0) {
      out += "0." + std::string(static_cast<size_t>(-decimal_point), '0') + digits;
    } else if (decimal_point >= num_digits) {
      out += digits + std::string(static_cast<size_t>(decimal_point - num_digits), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(decimal_point)) + "." +
             digits.substr(static_cast<size_t>(decimal_point));
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (num_digits > 1) out += "." + digits.substr(1);
  out += fmt::format("e{}{:02d}", exponent < 0 ? '-' : '+', std::abs(exponent));
  return out;
}

std::string to_str(const Value& value) {
  switch (value.type()) {
    case ValueType::kUndefined: return "";
    case ValueType::kString: return value.as_string();
    case ValueType::kObject: return value.as_object().to_str(0);
    default: return to_repr(value);
  }
}

std::string to_repr(const Value& value, int depth) {
  EXL_CHECK(depth < kMaxValueDepth, kInvalidArgument, "value nested deeper than {} levels cannot be printed",
            kMaxValueDepth);
  switch (value.type()) {
    case ValueType::kUndefined: return "Undefined";
    case ValueType::kNone: return "None";
    case ValueType::kBool: return value.as_bool() ? "True" : "False";
    case ValueType::kInt: return std::to_string(value.as_int());
    case ValueType::kFloat: return float_repr(value.as_double());
    case ValueType::kString: return string_repr(value.as_string());
    case ValueType::kObject: return value.as_object().to_str(depth + 1);
    case ValueType::kList: {
      const bool tuple = value.is_tuple();
      std::string out = tuple ? "(" : "[";
      bool first = true;
      for (const Value& item : value.as_list()) {
        if (!first) out += ", ";
        first = false;
        out += to_repr(item, depth + 1);
      }
      if (tuple && value.as_list().size() == 1) out += ",";
      out += tuple ? ")" : "]";
      return out;
    }
    case ValueType::kDict: {
      std::string out = "{";
      bool first = true;
      for (const auto& [key, item] : value.as_dict().entries()) {
        if (!first) out += ", ";
        first = false;
        out += to_repr(key, depth + 1) + ": " + to_repr(item, depth + 1);
      }
      return out + "}";
    }
  }
  return "";
}

bool py_equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case ValueType::kUndefined:
    case ValueType::kNone: return true;
    case ValueType::kString: return a.as_string() == b.as_string();
    case ValueType::kList: {
      if (a.is_tuple() != b.is_tuple()) return false;
      const List& x = a.as_list();
      const List& y = b.as_list();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!py_equal(x[i], y[i])) return false;
      }
      return true;
    }
    case ValueType::kDict: {
      const Dict& x = a.as_dict();
      const Dict& y = b.as_dict();
      if (x.size() != y.size()) return false;
      for (const auto& [key, item] : x.entries()) {
        const Value* other = y.find(key);
        if (other == nullptr || !py_equal(item, *other)) return false;
      }
      return true;
    }
    case ValueType::kObject: return a.object_ptr() == b.object_ptr();
    default: return false;
  }
}

bool py_less(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() < b.as_double();
    return a.as_int() < b.as_int();
  }
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    const List& x = a.as_list();
    const List& y = b.as_list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!py_equal(x[i], y[i])) return py_less(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  fail(ErrorKind::kInvalidArgument, "'<' not supported between instances of '{}' and '{}'", a.type_name(),
       b.type_name());
}

Value from_json(const nlohmann::ordered_json& json) { return from_json_impl(json, 0); }

std::string json_dumps(const Value& value, const JsonDumpOptions& options) {
  std::string out;
  json_dump(out, value, options, 0);
  return out;
}

int64_t checked_add(int64_t a, int64_t b) {
  int64_t result = 0;
  EXL_CHECK(!__builtin_add_overflow(a, b, &result), kUnsupported, "integer overflow in {} + {} (exl uses 64-bit ints)",
            a, b);
  return result;
}

int64_t checked_sub(int64_t a, int64_t b) {
  int64_t result = 0;
  EXL_CHECK(!__builtin_sub_overflow(a, b, &result), kUnsupported, "integer overflow in {} - {} (exl uses 64-bit ints)",
            a, b);
  return result;
}

int64_t checked_mul(int64_t a, int64_t b) {
  int64_t result = 0;
  EXL_CHECK(!__builtin_mul_overflow(a, b, &result), kUnsupported, "integer overflow in {} * {} (exl uses 64-bit ints)",
            a, b);
  return result;
}

}  // namespace exl::chat
