// Python string formatting: printf-style "%" (str % args, the format filter) and str.format with the format-spec
// mini-language.
#include <cstdio>
#include <optional>

#include "chat/builtins.h"
#include "chat/unicode.h"
#include "core/error.h"

namespace exl::chat {

namespace {

std::string c_format(const std::string& spec, double value) {
  const int size = std::snprintf(nullptr, 0, spec.c_str(), value);
  EXL_CHECK(size >= 0 && size < (1 << 20), kInvalidArgument, "formatted number too long");
  std::string out(static_cast<size_t>(size) + 1, '\0');
  std::snprintf(out.data(), out.size(), spec.c_str(), value);
  out.resize(static_cast<size_t>(size));
  return out;
}

std::string c_format(const std::string& spec, long long value) {
  const int size = std::snprintf(nullptr, 0, spec.c_str(), value);
  EXL_CHECK(size >= 0 && size < (1 << 20), kInvalidArgument, "formatted number too long");
  std::string out(static_cast<size_t>(size) + 1, '\0');
  std::snprintf(out.data(), out.size(), spec.c_str(), value);
  out.resize(static_cast<size_t>(size));
  return out;
}

std::string pad(const std::string& text, int64_t width, bool left_align, const std::string& fill = " ") {
  const auto length = static_cast<int64_t>(count_code_points(text));
  if (width <= length) return text;
  std::string padding;
  for (int64_t i = 0; i < width - length; ++i) padding += fill;
  return left_align ? text + padding : padding + text;
}

// ---- printf-style ----

struct PercentSpec {
  std::string flags;
  std::optional<int64_t> width;
  std::optional<int64_t> precision;
  char type = 's';
};

std::string percent_one(const PercentSpec& spec, const Value& value) {
  const bool left = spec.flags.find('-') != std::string::npos;
  const bool alternate = spec.flags.find('#') != std::string::npos;
  std::string c_flags;
  for (char f : spec.flags) {
    if (f != '#' || (spec.type != 'o')) c_flags.push_back(f);
  }
  std::string c_spec = "%" + c_flags;
  if (spec.width) c_spec += std::to_string(*spec.width);
  if (spec.precision) c_spec += "." + std::to_string(*spec.precision);
  switch (spec.type) {
    case 's':
    case 'r':
    case 'a': {
      std::string text = spec.type == 's' ? to_str(value) : to_repr(value);
      if (spec.precision) {
        const std::u32string chars = decode_utf8(text);
        if (static_cast<int64_t>(chars.size()) > *spec.precision) {
          text = encode_utf8(std::u32string_view(chars).substr(0, static_cast<size_t>(*spec.precision)));
        }
      }
      return pad(text, spec.width.value_or(0), left);
    }
    case 'c': {
      std::string text;
      if (value.is_int()) {
        EXL_CHECK(value.as_int() >= 0 && value.as_int() <= 0x10FFFF, kInvalidArgument, "%c arg not in range(0x110000)");
        append_utf8(text, static_cast<char32_t>(value.as_int()));
      } else {
        EXL_CHECK(value.is_string() && count_code_points(value.as_string()) == 1, kInvalidArgument,
                  "%c requires int or char");
        text = value.as_string();
      }
      return pad(text, spec.width.value_or(0), left);
    }
    case 'd':
    case 'i':
    case 'u': {
      EXL_CHECK(value.is_number(), kInvalidArgument, "%{} format: a real number is required, not {}", spec.type,
                value.type_name());
      const long long number = value.is_float() ? static_cast<long long>(value.as_double()) : value.as_int();
      return c_format(c_spec + "lld", number);
    }
    case 'o':
    case 'x':
    case 'X': {
      EXL_CHECK(value.is_int() || value.is_bool(), kInvalidArgument, "%{} format: an integer is required, not {}",
                spec.type, value.type_name());
      if (spec.type == 'o' && alternate) {
        const long long number = value.as_int();
        std::string digits = c_format(std::string("%llo"), number < 0 ? -number : number);
        std::string text = (number < 0 ? "-0o" : "0o") + digits;
        return pad(text, spec.width.value_or(0), left);
      }
      return c_format(c_spec + "ll" + spec.type, static_cast<long long>(value.as_int()));
    }
    case 'e':
    case 'E':
    case 'f':
    case 'F':
    case 'g':
    case 'G':
      EXL_CHECK(value.is_number(), kInvalidArgument, "must be real number, not {}", value.type_name());
      return c_format(c_spec + spec.type, value.as_double());
    default: fail(ErrorKind::kInvalidArgument, "unsupported format character '{}'", spec.type);
  }
}

// ---- format spec mini-language ----

struct FormatSpec {
  std::string fill = " ";
  char align = 0;
  char sign = '-';
  bool alternate = false;
  int64_t width = 0;
  char grouping = 0;
  std::optional<int64_t> precision;
  char type = 0;
};

FormatSpec parse_format_spec(const std::string& text) {
  FormatSpec spec;
  const std::u32string s = decode_utf8(text);
  size_t pos = 0;
  auto is_align = [](char32_t c) { return c == '<' || c == '>' || c == '^' || c == '='; };
  if (s.size() >= 2 && is_align(s[1])) {
    spec.fill.clear();
    append_utf8(spec.fill, s[0]);
    spec.align = static_cast<char>(s[1]);
    pos = 2;
  } else if (!s.empty() && is_align(s[0])) {
    spec.align = static_cast<char>(s[0]);
    pos = 1;
  }
  if (pos < s.size() && (s[pos] == '+' || s[pos] == '-' || s[pos] == ' ')) spec.sign = static_cast<char>(s[pos++]);
  if (pos < s.size() && s[pos] == '#') {
    spec.alternate = true;
    ++pos;
  }
  if (pos < s.size() && s[pos] == '0') {
    if (spec.align == 0) {
      spec.fill = "0";
      spec.align = '=';
    }
    ++pos;
  }
  while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
    spec.width = spec.width * 10 + (s[pos++] - '0');
    EXL_CHECK(spec.width < (1 << 20), kInvalidArgument, "format width too large");
  }
  if (pos < s.size() && (s[pos] == ',' || s[pos] == '_')) spec.grouping = static_cast<char>(s[pos++]);
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int64_t precision = 0;
    bool any = false;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      precision = precision * 10 + (s[pos++] - '0');
      EXL_CHECK(precision < (1 << 16), kInvalidArgument, "format precision too large");
      any = true;
    }
    EXL_CHECK(any, kInvalidArgument, "Format specifier missing precision");
    spec.precision = precision;
  }
  if (pos < s.size()) spec.type = static_cast<char>(s[pos++]);
  EXL_CHECK(pos == s.size(), kInvalidArgument, "Invalid format specifier '{}'", text);
  return spec;
}

std::string group_digits(const std::string& digits, char separator) {
  if (separator == 0) return digits;
  std::string out;
  const size_t n = digits.size();
  for (size_t i = 0; i < n; ++i) {
    if (i > 0 && (n - i) % 3 == 0) out.push_back(separator);
    out.push_back(digits[i]);
  }
  return out;
}

std::string apply_alignment(const FormatSpec& spec, const std::string& sign, const std::string& body,
                            char default_align) {
  const char align = spec.align != 0 ? spec.align : default_align;
  const auto length = static_cast<int64_t>(count_code_points(sign + body));
  if (spec.width <= length) return sign + body;
  const int64_t total = spec.width - length;
  std::string left;
  std::string right;
  auto repeat = [&](int64_t n) {
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += spec.fill;
    return out;
  };
  switch (align) {
    case '<': right = repeat(total); break;
    case '^': left = repeat(total / 2); right = repeat(total - total / 2); break;
    case '=': return sign + repeat(total) + body;
    default: left = repeat(total); break;
  }
  return left + sign + body + right;
}

std::string format_number(const Value& value, const FormatSpec& spec) {
  char type = spec.type;
  if (type == 0) type = value.is_float() ? 0 : 'd';
  if (type == 'n') type = value.is_float() ? 'g' : 'd';
  const bool negative = value.is_float() ? std::signbit(value.as_double()) : value.as_int() < 0;
  std::string sign = negative ? "-" : (spec.sign == '+' ? "+" : spec.sign == ' ' ? " " : "");
  std::string body;
  if (type == 'd' || type == 'b' || type == 'o' || type == 'x' || type == 'X' || type == 'c') {
    EXL_CHECK(!value.is_float(), kInvalidArgument, "Unknown format code '{}' for object of type 'float'", type);
    const int64_t number = value.as_int();
    const unsigned long long magnitude =
        number < 0 ? 0ULL - static_cast<unsigned long long>(number) : static_cast<unsigned long long>(number);
    if (type == 'c') return apply_alignment(spec, "", [&] {
        std::string out;
        append_utf8(out, static_cast<char32_t>(number));
        return out;
      }(), '<');
    if (type == 'd') {
      body = group_digits(std::to_string(magnitude), spec.grouping);
    } else if (type == 'b') {
      for (unsigned long long m = magnitude; m > 0; m >>= 1) body.insert(body.begin(), static_cast<char>('0' + (m & 1)));
      if (body.empty()) body = "0";
      if (spec.alternate) body = "0b" + body;
    } else {
      body = c_format(std::string("%ll") + type, static_cast<long long>(magnitude));
      if (spec.alternate) body = (type == 'o' ? "0o" : type == 'x' ? "0x" : "0X") + body;
    }
    return apply_alignment(spec, sign, body, '>');
  }
  const double number = std::fabs(value.as_double());
  if (type == 0) {
    if (!spec.precision) {
      body = float_repr(number);
    } else {
      body = c_format("%." + std::to_string(std::max<int64_t>(1, *spec.precision)) + "g", number);
      if (body.find_first_of(".eni") == std::string::npos) body += ".0";
    }
  } else if (type == '%') {
    body = c_format("%." + std::to_string(spec.precision.value_or(6)) + "f", number * 100.0) + "%";
  } else if (type == 'e' || type == 'E' || type == 'f' || type == 'F' || type == 'g' || type == 'G') {
    std::string c_spec = std::string("%") + (spec.alternate ? "#" : "") + "." +
                         std::to_string(spec.precision.value_or(6)) + type;
    body = c_format(c_spec, number);
  } else {
    fail(ErrorKind::kInvalidArgument, "Unknown format code '{}' for object of type '{}'", type, value.type_name());
  }
  if (spec.grouping != 0) {
    const size_t end = body.find_first_not_of("0123456789");
    body = group_digits(body.substr(0, end), spec.grouping) + (end == std::string::npos ? "" : body.substr(end));
  }
  return apply_alignment(spec, sign, body, '>');
}

std::string format_value(const Value& value, const std::string& spec_text) {
  if (spec_text.empty()) return to_str(value);
  const FormatSpec spec = parse_format_spec(spec_text);
  if ((value.is_number() && !(value.is_bool() && (spec.type == 0 || spec.type == 's')))) {
    return format_number(value, spec);
  }
  if (value.is_string() || value.is_bool()) {
    EXL_CHECK(spec.type == 0 || spec.type == 's', kInvalidArgument, "Unknown format code '{}' for object of type 'str'",
              spec.type);
    std::string text = to_str(value);
    if (spec.precision) {
      const std::u32string chars = decode_utf8(text);
      if (static_cast<int64_t>(chars.size()) > *spec.precision) {
        text = encode_utf8(std::u32string_view(chars).substr(0, static_cast<size_t>(*spec.precision)));
      }
    }
    return apply_alignment(spec, "", text, '<');
  }
  fail(ErrorKind::kInvalidArgument, "unsupported format string passed to {}.__format__", value.type_name());
}

}  // namespace

std::string python_percent_format(const std::string& format, const Value& args) {
  const bool is_tuple = args.is_tuple();
  const List single{args};
  const List& positional = is_tuple ? args.as_list() : single;
  size_t next = 0;
  bool used_mapping = false;
  auto next_arg = [&]() -> const Value& {
    EXL_CHECK(next < positional.size(), kInvalidArgument, "not enough arguments for format string");
    return positional[next++];
  };
  std::string out;
  size_t pos = 0;
  while (pos < format.size()) {
    const size_t percent = format.find('%', pos);
    if (percent == std::string::npos) {
      out.append(format, pos, std::string::npos);
      break;
    }
    out.append(format, pos, percent - pos);
    pos = percent + 1;
    EXL_CHECK(pos < format.size(), kInvalidArgument, "incomplete format");
    std::optional<Value> mapped;
    if (format[pos] == '(') {
      const size_t close = format.find(')', pos);
      EXL_CHECK(close != std::string::npos, kInvalidArgument, "incomplete format key");
      EXL_CHECK(args.is_dict(), kInvalidArgument, "format requires a mapping");
      const std::string key = format.substr(pos + 1, close - pos - 1);
      const Value* found = args.as_dict().find(std::string_view(key));
      EXL_CHECK(found != nullptr, kInvalidArgument, "KeyError: '{}'", key);
      mapped = *found;
      used_mapping = true;
      pos = close + 1;
    }
    PercentSpec spec;
    while (pos < format.size() && std::string_view("-+ #0").find(format[pos]) != std::string_view::npos) {
      spec.flags.push_back(format[pos++]);
    }
    auto read_number = [&]() -> std::optional<int64_t> {
      if (pos < format.size() && format[pos] == '*') {
        ++pos;
        const Value& v = next_arg();
        EXL_CHECK(v.is_int(), kInvalidArgument, "* wants int");
        return v.as_int();
      }
      std::optional<int64_t> number;
      while (pos < format.size() && format[pos] >= '0' && format[pos] <= '9') {
        number = number.value_or(0) * 10 + (format[pos++] - '0');
        EXL_CHECK(*number < (1 << 20), kInvalidArgument, "format width or precision too large");
      }
      return number;
    };
    spec.width = read_number();
    if (pos < format.size() && format[pos] == '.') {
      ++pos;
      spec.precision = read_number().value_or(0);
    }
    while (pos < format.size() && (format[pos] == 'h' || format[pos] == 'l' || format[pos] == 'L')) ++pos;
    EXL_CHECK(pos < format.size(), kInvalidArgument, "incomplete format");
    spec.type = format[pos++];
    if (spec.type == '%') {
      out.push_back('%');
      continue;
    }
    out += percent_one(spec, mapped ? *mapped : next_arg());
  }
  if (!used_mapping && !args.is_dict()) {
    EXL_CHECK(next >= positional.size(), kInvalidArgument, "not all arguments converted during string formatting");
  }
  return out;
}

std::string python_str_format(const std::string& format, const CallArgs& args) {
  std::string out;
  size_t pos = 0;
  size_t auto_index = 0;
  while (pos < format.size()) {
    const char c = format[pos];
    if (c == '}') {
      EXL_CHECK(pos + 1 < format.size() && format[pos + 1] == '}', kInvalidArgument,
                "Single '}}' encountered in format string");
      out.push_back('}');
      pos += 2;
      continue;
    }
    if (c != '{') {
      out.push_back(c);
      ++pos;
      continue;
    }
    if (pos + 1 < format.size() && format[pos + 1] == '{') {
      out.push_back('{');
      pos += 2;
      continue;
    }
    const size_t close = format.find('}', pos);
    EXL_CHECK(close != std::string::npos, kInvalidArgument, "Single '{{' encountered in format string");
    const std::string field = format.substr(pos + 1, close - pos - 1);
    pos = close + 1;
    EXL_CHECK(field.find('{') == std::string::npos, kUnsupported, "nested replacement fields are not supported by exl");
    std::string name = field;
    std::string spec;
    char conversion = 0;
    const size_t colon = name.find(':');
    if (colon != std::string::npos) {
      spec = name.substr(colon + 1);
      name.resize(colon);
    }
    const size_t bang = name.find('!');
    if (bang != std::string::npos) {
      EXL_CHECK(bang + 2 == name.size(), kInvalidArgument, "expected ':' after conversion specifier");
      conversion = name[bang + 1];
      EXL_CHECK(conversion == 's' || conversion == 'r' || conversion == 'a', kInvalidArgument,
                "Unknown conversion specifier {}", conversion);
      name.resize(bang);
    }
    EXL_CHECK(name.find_first_of(".[") == std::string::npos, kUnsupported,
              "attribute or index lookups in format fields ('{}') are not supported by exl", name);
    Value value;
    if (name.empty() || std::all_of(name.begin(), name.end(), [](char d) { return d >= '0' && d <= '9'; })) {
      const size_t index = name.empty() ? auto_index++ : static_cast<size_t>(std::stoul(name.substr(0, 9)));
      EXL_CHECK(index < args.positional.size(), kInvalidArgument,
                "Replacement index {} out of range for positional args tuple", index);
      value = args.positional[index];
    } else {
      const auto it = std::find_if(args.keyword.begin(), args.keyword.end(),
                                   [&](const auto& kw) { return kw.first == name; });
      EXL_CHECK(it != args.keyword.end(), kInvalidArgument, "KeyError: '{}'", name);
      value = it->second;
    }
    if (conversion != 0) value = Value::string(conversion == 's' ? to_str(value) : to_repr(value));
    out += format_value(value, spec);
  }
  return out;
}

}  // namespace exl::chat
