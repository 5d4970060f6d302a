// Methods of str, dict, list and tuple reachable from templates (message.content.startswith(...), d.items()).
// Mutating methods are what jinja's ImmutableSandboxedEnvironment forbids: they resolve to an unsafe undefined.
#include <algorithm>

#include "chat/builtins.h"
#include "chat/builtins_util.h"
#include "chat/interpreter.h"
#include "chat/unicode.h"
#include "core/error.h"

namespace exl::chat {

namespace {

bool is_one_of(std::string_view name, std::initializer_list<std::string_view> names) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// Python slice-style adjustment of optional start/end arguments to [0, length].
std::pair<size_t, size_t> adjust_range(const Value& start, const Value& end, size_t length) {
  auto adjust = [&](const Value& v, size_t fallback) -> size_t {
    if (v.is_none() || v.is_undefined()) return fallback;
    int64_t i = expect_int(v, "str method", "start/end");
    const auto n = static_cast<int64_t>(length);
    if (i < 0) i = std::max<int64_t>(0, i + n);
    return static_cast<size_t>(std::min(i, n));
  };
  return {adjust(start, 0), adjust(end, length)};
}

int64_t find_in(const std::u32string& hay, const std::u32string& needle, size_t start, size_t end, bool reverse) {
  if (start > end || end - start < needle.size()) return -1;
  const std::u32string_view window = std::u32string_view(hay).substr(start, end - start);
  const size_t found = reverse ? window.rfind(needle) : window.find(needle);
  return found == std::u32string_view::npos ? -1 : static_cast<int64_t>(start + found);
}

std::vector<std::string> prefixes_of(const Value& value, std::string_view method) {
  std::vector<std::string> out;
  if (value.is_string()) {
    out.push_back(value.as_string());
  } else if (value.is_tuple()) {
    for (const Value& item : value.as_list()) out.push_back(expect_string(item, method, "prefix"));
  } else {
    fail(ErrorKind::kInvalidArgument, "{} first arg must be str or a tuple of str, not {}", method, value.type_name());
  }
  return out;
}

Value string_method(Interpreter& interpreter, const std::string& self, const std::string& name, CallArgs& args) {
  const auto n = name;
  if (is_one_of(n, {"strip", "lstrip", "rstrip"})) {
    const auto a = bind_args(n, args, {{"chars", Value::none()}});
    const StripSide side = n == "strip" ? StripSide::kBoth : n == "lstrip" ? StripSide::kLeft : StripSide::kRight;
    if (a[0].is_none()) return Value::string(py_strip(self, nullptr, side));
    const std::string chars = expect_string(a[0], n, "chars");
    return Value::string(py_strip(self, &chars, side));
  }
  if (n == "split" || n == "rsplit") {
    const auto a = bind_args(n, args, {{"sep", Value::none()}, {"maxsplit", Value::integer(-1)}});
    const long long maxsplit = expect_int(a[1], n, "maxsplit");
    std::vector<std::string> parts;
    if (a[0].is_none()) {
      parts = n == "split" ? py_split(self, nullptr, maxsplit) : py_rsplit(self, nullptr, maxsplit);
    } else {
      const std::string sep = expect_string(a[0], n, "sep");
      EXL_CHECK(!sep.empty(), kInvalidArgument, "empty separator");
      parts = n == "split" ? py_split(self, &sep, maxsplit) : py_rsplit(self, &sep, maxsplit);
    }
    List out;
    for (auto& part : parts) out.push_back(Value::string(std::move(part)));
    interpreter.charge(out.size());
    return Value::list(std::move(out));
  }
  if (n == "splitlines") {
    const auto a = bind_args(n, args, {{"keepends", Value::boolean(false)}});
    EXL_CHECK(!a[0].truthy(), kUnsupported, "str.splitlines(keepends=True) is not supported by exl");
    List out;
    for (auto& line : py_splitlines(self)) out.push_back(Value::string(std::move(line)));
    return Value::list(std::move(out));
  }
  if (n == "startswith" || n == "endswith") {
    const auto a = bind_args(n, args, {{"prefix", Value(), ParamKind::kRequired}, {"start", Value::none()},
                                       {"end", Value::none()}});
    const std::u32string text = decode_utf8(self);
    const auto [start, end] = adjust_range(a[1], a[2], text.size());
    if (start > end) return Value::boolean(false);
    const std::u32string_view window = std::u32string_view(text).substr(start, end - start);
    for (const std::string& prefix : prefixes_of(a[0], n)) {
      const std::u32string p = decode_utf8(prefix);
      if (p.size() > window.size()) continue;
      if (n == "startswith" ? window.substr(0, p.size()) == p : window.substr(window.size() - p.size()) == p) {
        return Value::boolean(true);
      }
    }
    return Value::boolean(false);
  }
  if (n == "replace") {
    const auto a = bind_args(n, args, {{"old", Value(), ParamKind::kRequired}, {"new", Value(), ParamKind::kRequired},
                                       {"count", Value::integer(-1)}});
    std::string out = py_replace(self, expect_string(a[0], n, "old"), expect_string(a[1], n, "new"),
                                 expect_int(a[2], n, "count"));
    interpreter.check_size(out.size());
    return Value::string(std::move(out));
  }
  if (n == "upper" || n == "lower" || n == "title" || n == "capitalize") {
    bind_args(n, args, {});
    if (n == "upper") return Value::string(str_upper(self));
    if (n == "lower") return Value::string(str_lower(self));
    if (n == "title") return Value::string(py_title(self));
    return Value::string(py_capitalize(self));
  }
  if (n == "format") {
    std::string out = python_str_format(self, args);
    interpreter.check_size(out.size());
    return Value::string(std::move(out));
  }
  if (n == "join") {
    const auto a = bind_args(n, args, {{"iterable", Value(), ParamKind::kRequired}});
    std::string out;
    size_t index = 0;
    for (const Value& item : interpreter.iterate(a[0])) {
      EXL_CHECK(item.is_string(), kInvalidArgument, "sequence item {}: expected str instance, {} found", index,
                item.type_name());
      if (index++ > 0) out += self;
      out += item.as_string();
      interpreter.check_size(out.size());
    }
    return Value::string(std::move(out));
  }
  if (is_one_of(n, {"find", "rfind", "index", "rindex", "count"})) {
    const auto a = bind_args(n, args, {{"sub", Value(), ParamKind::kRequired}, {"start", Value::none()},
                                       {"end", Value::none()}});
    const std::u32string text = decode_utf8(self);
    const std::u32string needle = decode_utf8(expect_string(a[0], n, "sub"));
    const auto [start, end] = adjust_range(a[1], a[2], text.size());
    if (n == "count") {
      if (start > end) return Value::integer(0);
      if (needle.empty()) return Value::integer(static_cast<int64_t>(end - start + 1));
      int64_t count = 0;
      for (size_t pos = start; pos + needle.size() <= end;) {
        const int64_t found = find_in(text, needle, pos, end, false);
        if (found < 0) break;
        ++count;
        pos = static_cast<size_t>(found) + needle.size();
      }
      return Value::integer(count);
    }
    const int64_t found = find_in(text, needle, start, end, n[0] == 'r');
    EXL_CHECK(found >= 0 || n.find("index") == std::string::npos, kInvalidArgument, "substring not found");
    return Value::integer(found);
  }
  if (is_one_of(n, {"isdigit", "isdecimal", "isnumeric", "isalpha", "isalnum", "isspace", "islower", "isupper",
                    "isascii"})) {
    bind_args(n, args, {});
    const std::u32string text = decode_utf8(self);
    if (n == "isascii") {
      return Value::boolean(std::all_of(text.begin(), text.end(), [](char32_t c) { return c < 0x80; }));
    }
    if (n == "islower" || n == "isupper") {
      bool any = false;
      for (char32_t c : text) {
        if (!is_cased_letter(c)) continue;
        any = true;
        if ((n == "islower") != (to_lower(c) == c)) return Value::boolean(false);
      }
      return Value::boolean(any);
    }
    if (text.empty()) return Value::boolean(false);
    for (char32_t c : text) {
      EXL_CHECK(c < 0x80 || n == "isspace", kUnsupported, "str.{}() on non-ASCII text is not supported by exl", n);
      const bool digit = c >= '0' && c <= '9';
      const bool alpha = (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
      bool ok = false;
      if (n == "isspace") ok = is_py_space(c);
      if (n == "isalpha") ok = alpha;
      if (n == "isalnum") ok = alpha || digit;
      if (n == "isdigit" || n == "isdecimal" || n == "isnumeric") ok = digit;
      if (!ok) return Value::boolean(false);
    }
    return Value::boolean(true);
  }
  if (n == "center" || n == "ljust" || n == "rjust") {
    const auto a = bind_args(n, args, {{"width", Value(), ParamKind::kRequired}, {"fillchar", Value::string(" ")}});
    const int64_t width = expect_int(a[0], n, "width");
    interpreter.check_size(static_cast<size_t>(std::clamp<int64_t>(width, 0, int64_t{1} << 40)));
    const std::string fill = expect_string(a[1], n, "fillchar");
    EXL_CHECK(count_code_points(fill) == 1, kInvalidArgument, "The fill character must be exactly one character long");
    if (n == "center") return Value::string(py_center(self, width, fill));
    const auto length = static_cast<int64_t>(count_code_points(self));
    std::string padding;
    for (int64_t i = length; i < width; ++i) padding += fill;
    return Value::string(n == "ljust" ? self + padding : padding + self);
  }
  if (n == "zfill") {
    const auto a = bind_args(n, args, {{"width", Value(), ParamKind::kRequired}});
    const int64_t width = expect_int(a[0], n, "width");
    interpreter.check_size(static_cast<size_t>(std::clamp<int64_t>(width, 0, int64_t{1} << 40)));
    const auto length = static_cast<int64_t>(count_code_points(self));
    if (width <= length) return Value::string(self);
    const bool signed_text = !self.empty() && (self[0] == '+' || self[0] == '-');
    const std::string zeros(static_cast<size_t>(width - length), '0');
    return Value::string(signed_text ? self.substr(0, 1) + zeros + self.substr(1) : zeros + self);
  }
  if (n == "partition" || n == "rpartition") {
    const auto a = bind_args(n, args, {{"sep", Value(), ParamKind::kRequired}});
    const std::string sep = expect_string(a[0], n, "sep");
    EXL_CHECK(!sep.empty(), kInvalidArgument, "empty separator");
    const size_t found = n == "partition" ? self.find(sep) : self.rfind(sep);
    List parts;
    if (found == std::string::npos) {
      parts = n == "partition" ? List{Value::string(self), Value::string(""), Value::string("")}
                               : List{Value::string(""), Value::string(""), Value::string(self)};
    } else {
      parts = {Value::string(self.substr(0, found)), Value::string(sep), Value::string(self.substr(found + sep.size()))};
    }
    return Value::list(std::move(parts), SequenceKind::kTuple);
  }
  if (n == "removeprefix" || n == "removesuffix") {
    const auto a = bind_args(n, args, {{"affix", Value(), ParamKind::kRequired}});
    const std::string affix = expect_string(a[0], n, "affix");
    if (n == "removeprefix" && self.compare(0, affix.size(), affix) == 0) return Value::string(self.substr(affix.size()));
    if (n == "removesuffix" && !affix.empty() && self.size() >= affix.size() &&
        self.compare(self.size() - affix.size(), affix.size(), affix) == 0) {
      return Value::string(self.substr(0, self.size() - affix.size()));
    }
    return Value::string(self);
  }
  fail(ErrorKind::kUnsupported, "str.{}() is not supported by exl", n);
}

Value dict_method(Interpreter&, const Value& self, const std::string& name, CallArgs& args) {
  const Dict& dict = self.as_dict();
  if (name == "items") {
    bind_args(name, args, {});
    return Value::list(dict_items(dict));
  }
  if (name == "keys" || name == "values") {
    bind_args(name, args, {});
    List out;
    for (const auto& [key, value] : dict.entries()) out.push_back(name == "keys" ? key : value);
    return Value::list(std::move(out));
  }
  if (name == "get") {
    const auto a = bind_args(name, args, {{"key", Value(), ParamKind::kRequired}, {"default", Value::none()}});
    const Value* found = dict.find(a[0]);
    return found != nullptr ? *found : a[1];
  }
  if (name == "copy") {
    bind_args(name, args, {});
    return self;
  }
  fail(ErrorKind::kUnsupported, "dict.{}() is not supported by exl", name);
}

Value list_method(Interpreter& interpreter, const Value& self, const std::string& name, CallArgs& args) {
  const List& items = self.as_list();
  if (name == "index" || name == "count") {
    const auto a = bind_args(name, args, {{"value", Value(), ParamKind::kRequired}});
    interpreter.charge(items.size() / 16);
    int64_t count = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!py_equal(items[i], a[0])) continue;
      if (name == "index") return Value::integer(static_cast<int64_t>(i));
      ++count;
    }
    EXL_CHECK(name == "count", kInvalidArgument, "{} is not in list", to_repr(a[0]));
    return Value::integer(count);
  }
  if (name == "copy") {
    bind_args(name, args, {});
    return self;
  }
  fail(ErrorKind::kUnsupported, "list.{}() is not supported by exl", name);
}

bool is_str_method(std::string_view name) {
  return is_one_of(name, {"strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith", "endswith",
                          "replace", "upper", "lower", "title", "capitalize", "format", "join", "find", "rfind",
                          "index", "rindex", "count", "isdigit", "isdecimal", "isnumeric", "isalpha", "isalnum",
                          "isspace", "islower", "isupper", "isascii", "center", "ljust", "rjust", "zfill",
                          "partition", "rpartition", "removeprefix", "removesuffix",
                          // Python has these; calling them is reported as unsupported.
                          "casefold", "encode", "expandtabs", "format_map", "isidentifier", "isprintable",
                          "istitle", "maketrans", "swapcase", "translate"});
}

}  // namespace

Value find_method(const Value& receiver, std::string_view name) {
  if (name.size() > 4 && name.substr(0, 2) == "__" && name.substr(name.size() - 2) == "__") {
    return Value::undefined(fmt::format("access to attribute '{}' of '{}' object is unsafe.", name,
                                        receiver.type_name()),
                            UndefinedKind::kUnsafe);
  }
  const std::string method(name);
  if (receiver.is_string()) {
    if (!is_str_method(name)) return Value::undefined("");
    const std::string self = receiver.as_string();
    return make_native("str." + method, [self, method](Interpreter& interpreter, CallArgs& args) {
      return string_method(interpreter, self, method, args);
    });
  }
  if (receiver.is_dict()) {
    if (is_one_of(name, {"clear", "pop", "popitem", "setdefault", "update"})) {
      return Value::undefined(fmt::format("access to attribute '{}' of 'dict' object is unsafe.", name),
                              UndefinedKind::kUnsafe);
    }
    if (!is_one_of(name, {"items", "keys", "values", "get", "copy", "fromkeys"})) return Value::undefined("");
    return make_native("dict." + method, [receiver, method](Interpreter& interpreter, CallArgs& args) {
      return dict_method(interpreter, receiver, method, args);
    });
  }
  if (receiver.is_list()) {
    const bool tuple = receiver.is_tuple();
    if (!tuple && is_one_of(name, {"append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"})) {
      return Value::undefined(fmt::format("access to attribute '{}' of 'list' object is unsafe.", name),
                              UndefinedKind::kUnsafe);
    }
    if (!is_one_of(name, {"index", "count"}) && (tuple || name != "copy")) return Value::undefined("");
    return make_native("list." + method, [receiver, method](Interpreter& interpreter, CallArgs& args) {
      return list_method(interpreter, receiver, method, args);
    });
  }
  return Value::undefined("");
}

}  // namespace exl::chat
