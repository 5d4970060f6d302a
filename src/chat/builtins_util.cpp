#include "chat/builtins_util.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "chat/interpreter.h"
#include "chat/unicode.h"
#include "core/error.h"

namespace exl::chat {

size_t py_len(const Value& value) {
  switch (value.type()) {
    case ValueType::kUndefined: return 0;
    case ValueType::kString: return count_code_points(value.as_string());
    case ValueType::kList: return value.as_list().size();
    case ValueType::kDict: return value.as_dict().size();
    default: fail(ErrorKind::kInvalidArgument, "object of type '{}' has no len()", value.type_name());
  }
}

std::string expect_string(const Value& value, std::string_view function, std::string_view param) {
  EXL_CHECK(value.is_string(), kInvalidArgument, "{}: {} must be a string, not {}", function, param,
            value.type_name());
  return value.as_string();
}

int64_t expect_int(const Value& value, std::string_view function, std::string_view param) {
  EXL_CHECK(value.is_int() || value.is_bool(), kInvalidArgument, "{}: {} must be an integer, not {}", function, param,
            value.type_name());
  return value.as_int();
}

Value attribute_of(Interpreter& interpreter, const Value& item, const Value& attribute, const Value& default_value) {
  std::vector<Value> parts;
  if (attribute.is_string()) {
    static const std::string kDot = ".";
    for (const std::string& part : py_split(attribute.as_string(), &kDot, -1)) {
      const bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) {
        return c >= '0' && c <= '9';
      });
      parts.push_back(digits && part.size() < 18 ? Value::integer(std::stoll(part)) : Value::string(part));
    }
  } else {
    parts.push_back(attribute);
  }
  Value current = item;
  for (const Value& part : parts) {
    current = interpreter.getitem(current, part);
    if (!default_value.is_none() && current.is_undefined()) current = default_value;
  }
  return current;
}

Value lower_if_string(const Value& value) {
  return value.is_string() ? Value::string(str_lower(value.as_string())) : value;
}

Value SortKey::operator()(const Value& item) const {
  const Value key = attribute.is_none() ? item : attribute_of(*interpreter, item, attribute, Value::none());
  return ignore_case ? lower_if_string(key) : key;
}

List dict_items(const Dict& dict) {
  List items;
  items.reserve(dict.size());
  for (const auto& [key, value] : dict.entries()) items.push_back(Value::list(List{key, value}, SequenceKind::kTuple));
  return items;
}

std::string py_capitalize(std::string_view text) {
  std::u32string chars = decode_utf8(text);
  for (size_t i = 0; i < chars.size(); ++i) chars[i] = i == 0 ? to_upper(chars[i]) : to_lower(chars[i]);
  return encode_utf8(chars);
}

std::string py_title(std::string_view text) {
  std::u32string chars = decode_utf8(text);
  bool previous_cased = false;
  for (char32_t& c : chars) {
    const bool cased = is_cased_letter(c);
    c = previous_cased ? to_lower(c) : to_upper(c);
    previous_cased = cased;
  }
  return encode_utf8(chars);
}

std::string py_center(const std::string& text, int64_t width, const std::string& fill) {
  const auto length = static_cast<int64_t>(count_code_points(text));
  if (width <= length) return text;
  const int64_t margin = width - length;
  const int64_t left = margin / 2 + (margin & width & 1);
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += fill;
  out += text;
  for (int64_t i = 0; i < margin - left; ++i) out += fill;
  return out;
}

namespace {

// Digits with single underscores between them (Python's numeric literal grouping); strips the underscores.
std::optional<std::string> strip_digit_underscores(std::string_view digits, int base) {
  std::string out;
  bool previous_underscore = true;  // a leading underscore is invalid
  for (char c : digits) {
    if (c == '_') {
      if (previous_underscore) return std::nullopt;
      previous_underscore = true;
      continue;
    }
    const char lower = static_cast<char>(c | 0x20);
    int digit = -1;
    if (c >= '0' && c <= '9') digit = c - '0';
    if (lower >= 'a' && lower <= 'z') digit = lower - 'a' + 10;
    if (digit < 0 || digit >= base) return std::nullopt;
    out.push_back(c);
    previous_underscore = false;
  }
  if (out.empty() || previous_underscore) return std::nullopt;
  return out;
}

}  // namespace

std::optional<int64_t> parse_py_int(std::string_view text, int base) {
  const std::string stripped = py_strip(text, nullptr, StripSide::kBoth);
  std::string_view body = stripped;
  bool negative = false;
  if (!body.empty() && (body[0] == '+' || body[0] == '-')) {
    negative = body[0] == '-';
    body.remove_prefix(1);
  }
  EXL_CHECK(base == 0 || (base >= 2 && base <= 36), kInvalidArgument, "int() base must be >= 2 and <= 36, or 0");
  auto has_prefix = [&](char letter) {
    return body.size() >= 2 && body[0] == '0' && (body[1] | 0x20) == letter;
  };
  if (base == 0) {
    base = has_prefix('x') ? 16 : has_prefix('o') ? 8 : has_prefix('b') ? 2 : 10;
    if (base != 10) body.remove_prefix(2);
  } else if ((base == 16 && has_prefix('x')) || (base == 8 && has_prefix('o')) || (base == 2 && has_prefix('b'))) {
    body.remove_prefix(2);
    if (!body.empty() && body[0] == '_') body.remove_prefix(1);
  }
  const auto digits = strip_digit_underscores(body, base);
  if (!digits) return std::nullopt;
  errno = 0;
  const unsigned long long value = std::strtoull(digits->c_str(), nullptr, base);
  EXL_CHECK(errno != ERANGE && value <= (negative ? 9223372036854775808ULL : 9223372036854775807ULL), kUnsupported,
            "integer '{}' does not fit in 64 bits (exl limitation)", text);
  return negative ? static_cast<int64_t>(0 - value) : static_cast<int64_t>(value);
}

std::optional<double> parse_py_float(std::string_view text) {
  const std::string stripped = py_strip(text, nullptr, StripSide::kBoth);
  std::string_view body = stripped;
  std::string sign;
  if (!body.empty() && (body[0] == '+' || body[0] == '-')) {
    sign = std::string(1, body[0]);
    body.remove_prefix(1);
  }
  std::string lower = str_lower(body);
  if (lower == "inf" || lower == "infinity") return sign == "-" ? -HUGE_VAL : HUGE_VAL;
  if (lower == "nan") return std::nan("");
  // digits [. digits] [e [sign] digits], with single underscores between digits.
  std::string clean = sign;
  size_t pos = 0;
  auto take_digits = [&]() -> bool {
    const size_t start = pos;
    while (pos < body.size() && ((body[pos] >= '0' && body[pos] <= '9') || body[pos] == '_')) ++pos;
    if (pos == start) return true;
    const auto digits = strip_digit_underscores(body.substr(start, pos - start), 10);
    if (!digits) return false;
    clean += *digits;
    return true;
  };
  const size_t before = clean.size();
  if (!take_digits()) return std::nullopt;
  bool any_digits = clean.size() > before;
  if (pos < body.size() && body[pos] == '.') {
    clean.push_back('.');
    ++pos;
    const size_t fraction_start = clean.size();
    if (!take_digits()) return std::nullopt;
    any_digits = any_digits || clean.size() > fraction_start;
  }
  if (!any_digits) return std::nullopt;
  if (pos < body.size() && (body[pos] == 'e' || body[pos] == 'E')) {
    clean.push_back('e');
    ++pos;
    if (pos < body.size() && (body[pos] == '+' || body[pos] == '-')) clean.push_back(body[pos++]);
    const size_t exponent_start = clean.size();
    if (!take_digits() || clean.size() == exponent_start) return std::nullopt;
  }
  if (pos != body.size()) return std::nullopt;
  return std::strtod(clean.c_str(), nullptr);
}

std::optional<Value> float_to_int(double value) {
  if (std::isnan(value)) return std::nullopt;
  EXL_CHECK(!std::isinf(value), kInvalidArgument, "cannot convert float infinity to integer");
  const double truncated = std::trunc(value);
  EXL_CHECK(truncated >= -9.2233720368547758e18 && truncated < 9.2233720368547758e18, kUnsupported,
            "integer {} does not fit in 64 bits (exl limitation)", float_repr(truncated));
  return Value::integer(static_cast<int64_t>(truncated));
}

double py_round(double value, int64_t ndigits) {
  if (!std::isfinite(value) || value == 0.0) return value;
  if (ndigits > 320) return value;
  if (ndigits >= 0) {
    const int precision = static_cast<int>(ndigits);
    std::string buffer(static_cast<size_t>(std::snprintf(nullptr, 0, "%.*f", precision, value)) + 1, '\0');
    std::snprintf(buffer.data(), buffer.size(), "%.*f", precision, value);
    return std::strtod(buffer.c_str(), nullptr);
  }
  if (ndigits < -308) return std::copysign(0.0, value);
  const double scale = std::pow(10.0, static_cast<double>(-ndigits));
  return std::nearbyint(value / scale) * scale;
}

}  // namespace exl::chat
