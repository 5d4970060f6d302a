// jinja2's built-in filters (filters.py) plus transformers' tojson, with Python semantics.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <utility>

#include "chat/builtins.h"
#include "chat/builtins_util.h"
#include "chat/interpreter.h"
#include "chat/unicode.h"
#include "core/error.h"

namespace exl::chat {

namespace {

using Fn = FilterFn;

Value filter_length(Interpreter&, const Value& input, CallArgs& args) {
  bind_args("length", args, {});
  return Value::integer(static_cast<int64_t>(py_len(input)));
}

Value filter_string(Interpreter&, const Value& input, CallArgs& args) {
  bind_args("string", args, {});
  return Value::string(to_str(input));
}

Value filter_trim(Interpreter&, const Value& input, CallArgs& args) {
  const auto a = bind_args("trim", args, {{"chars", Value::none()}});
  const std::string chars = a[0].is_none() ? std::string() : expect_string(a[0], "trim", "chars");
  return Value::string(py_strip(to_str(input), a[0].is_none() ? nullptr : &chars, StripSide::kBoth));
}

Value filter_lower(Interpreter&, const Value& input, CallArgs& args) {
  bind_args("lower", args, {});
  return Value::string(str_lower(to_str(input)));
}

Value filter_upper(Interpreter&, const Value& input, CallArgs& args) {
  bind_args("upper", args, {});
  return Value::string(str_upper(to_str(input)));
}

Value filter_title(Interpreter&, const Value& input, CallArgs& args) {
  bind_args("title", args, {});
  // jinja: words begin after runs of whitespace, '-', '(', '{', '[' or '<'; first char upper, rest lower.
  const std::u32string text = decode_utf8(to_str(input));
  std::u32string out;
  bool word_start = true;
  for (char32_t c : text) {
    const bool separator = is_py_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
    if (separator) {
      out.push_back(c);
      word_start = true;
    } else {
      out.push_back(word_start ? to_upper(c) : to_lower(c));
      word_start = false;
    }
  }
  return Value::string(encode_utf8(out));
}

Value filter_capitalize(Interpreter&, const Value& input, CallArgs& args) {
  bind_args("capitalize", args, {});
  return Value::string(py_capitalize(to_str(input)));
}

Value filter_replace(Interpreter& interpreter, const Value& input, CallArgs& args) {
  const auto a = bind_args("replace", args,
                           {{"old", Value(), ParamKind::kRequired}, {"new", Value(), ParamKind::kRequired},
                            {"count", Value::none()}});
  const long long count = a[2].is_none() ? -1 : expect_int(a[2], "replace", "count");
  std::string out = py_replace(to_str(input), to_str(a[0]), to_str(a[1]), count);
  interpreter.check_size(out.size());
  return Value::string(std::move(out));
}

Value filter_join(Interpreter& interpreter, const Value& input, CallArgs& args) {
  const auto a = bind_args("join", args, {{"d", Value::string("")}, {"attribute", Value::none()}});
  const std::string separator = to_str(a[0]);
  std::string out;
  bool first = true;
  for (const Value& item : interpreter.iterate(input)) {
    if (!first) out += separator;
    first = false;
    out += to_str(a[1].is_none() ? item : attribute_of(interpreter, item, a[1], Value::none()));
    interpreter.check_size(out.size());
  }
  return Value::string(std::move(out));
}

Value filter_first(Interpreter& interpreter, const Value& input, CallArgs& args) {
  bind_args("first", args, {});
  List items = interpreter.iterate(input);
  return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
}

Value filter_last(Interpreter& interpreter, const Value& input, CallArgs& args) {
  bind_args("last", args, {});
  if (input.is_object()) fail(ErrorKind::kInvalidArgument, "'{}' object is not reversible", input.type_name());
  List items = interpreter.iterate(input);
  return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
}

Value filter_list(Interpreter& interpreter, const Value& input, CallArgs& args) {
  bind_args("list", args, {});
  return Value::list(interpreter.iterate(input));
}

Value filter_items(Interpreter&, const Value& input, CallArgs& args) {
  bind_args("items", args, {});
  if (input.is_undefined()) return make_generator({});
  EXL_CHECK(input.is_dict(), kInvalidArgument, "Can only get item pairs from a mapping.");
  return make_generator(dict_items(input.as_dict()));
}

Value filter_tojson(Interpreter& interpreter, const Value& input, CallArgs& args) {
  const auto a = bind_args("tojson", args,
                           {{"ensure_ascii", Value::boolean(false)}, {"indent", Value::none()},
                            {"separators", Value::none()}, {"sort_keys", Value::boolean(false)}});
  JsonDumpOptions options;
  options.ensure_ascii = a[0].truthy();
  if (a[1].is_string()) {
    options.indent = a[1].as_string();
  } else if (a[1].is_int() || a[1].is_bool()) {
    const int64_t width = a[1].as_int();
    EXL_CHECK(width <= 1024, kUnsupported, "tojson: indent {} is larger than exl's limit of 1024", width);
    options.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(width, 0, 1024)), ' ');
  } else if (!a[1].is_none()) {
    fail(ErrorKind::kInvalidArgument, "tojson: indent must be an int, a string or None, not {}", a[1].type_name());
  }
  if (options.indent) options.item_separator = kComma;  // a std::string: gcc 12 warns (-Wrestrict) on the literal
  if (!a[2].is_none()) {
    EXL_CHECK(a[2].is_list() && a[2].as_list().size() == 2 && a[2].as_list()[0].is_string() &&
                  a[2].as_list()[1].is_string(),
              kInvalidArgument, "tojson: separators must be a pair of strings");
    options.item_separator = a[2].as_list()[0].as_string();
    options.key_separator = a[2].as_list()[1].as_string();
  }
  options.sort_keys = a[3].truthy();
  std::string out = json_dumps(input, options);
  interpreter.check_size(out.size());
  interpreter.charge(out.size() / 256);
  return Value::string(std::move(out));
}

// select/reject/selectattr/rejectattr share jinja's prepare_select_or_reject.
Value select_or_reject(Interpreter& interpreter, const Value& input, CallArgs& args, bool lookup_attr,
                       bool select, std::string_view name) {
  size_t next = 0;
  Value attribute;
  if (lookup_attr) {
    EXL_CHECK(!args.positional.empty(), kInvalidArgument, "{}: Missing parameter for attribute name", name);
    attribute = args.positional[next++];
  }
  std::string test_name;
  CallArgs test_args;
  const bool has_test = args.positional.size() > next;
  if (has_test) {
    test_name = expect_string(args.positional[next], name, "test name");
    test_args.positional.assign(args.positional.begin() + static_cast<long>(next) + 1, args.positional.end());
    test_args.keyword = args.keyword;
  }
  List out;
  if (input.truthy()) {
    for (const Value& item : interpreter.iterate(input)) {
      const Value subject = lookup_attr ? attribute_of(interpreter, item, attribute, Value::none()) : item;
      CallArgs call_args = test_args;
      const bool passed = has_test ? interpreter.apply_test(test_name, subject, call_args) : subject.truthy();
      if (passed == select) out.push_back(item);
    }
  }
  return make_generator(std::move(out));
}

Value filter_select(Interpreter& i, const Value& input, CallArgs& args) {
  return select_or_reject(i, input, args, false, true, "select");
}
Value filter_reject(Interpreter& i, const Value& input, CallArgs& args) {
  return select_or_reject(i, input, args, false, false, "reject");
}
Value filter_selectattr(Interpreter& i, const Value& input, CallArgs& args) {
  return select_or_reject(i, input, args, true, true, "selectattr");
}
Value filter_rejectattr(Interpreter& i, const Value& input, CallArgs& args) {
  return select_or_reject(i, input, args, true, false, "rejectattr");
}

Value filter_map(Interpreter& interpreter, const Value& input, CallArgs& args) {
  List out;
  const auto attribute = std::find_if(args.keyword.begin(), args.keyword.end(),
                                      [](const auto& kw) { return kw.first == "attribute"; });
  if (args.positional.empty() && attribute != args.keyword.end()) {
    Value default_value = Value::none();
    for (const auto& [key, value] : args.keyword) {
      if (key == "default") {
        default_value = value;
      } else if (key != "attribute") {
        fail(ErrorKind::kInvalidArgument, "map: Unexpected keyword argument '{}'", key);
      }
    }
    if (input.truthy()) {
      for (const Value& item : interpreter.iterate(input)) {
        out.push_back(attribute_of(interpreter, item, attribute->second, default_value));
      }
    }
    return make_generator(std::move(out));
  }
  EXL_CHECK(!args.positional.empty(), kInvalidArgument, "map requires a filter argument");
  const std::string filter_name = expect_string(args.positional[0], "map", "filter name");
  CallArgs filter_args;
  filter_args.positional.assign(args.positional.begin() + 1, args.positional.end());
  filter_args.keyword = args.keyword;
  if (input.truthy()) {
    for (const Value& item : interpreter.iterate(input)) {
      CallArgs call_args = filter_args;
      out.push_back(interpreter.apply_filter(filter_name, item, call_args));
    }
  }
  return make_generator(std::move(out));
}

Value filter_default(Interpreter&, const Value& input, CallArgs& args) {
  const auto a = bind_args("default", args, {{"default_value", Value::string("")}, {"boolean", Value::boolean(false)}});
  if (input.is_undefined() || (a[1].truthy() && !input.truthy())) return a[0];
  return input;
}

Value filter_indent(Interpreter& interpreter, const Value& input, CallArgs& args) {
  const auto a = bind_args("indent", args,
                           {{"width", Value::integer(4)}, {"first", Value::boolean(false)},
                            {"blank", Value::boolean(false)}});
  const std::string indention = a[0].is_string()
                                    ? a[0].as_string()
                                    : std::string(static_cast<size_t>(std::max<int64_t>(0, expect_int(a[0], "indent", "width"))), ' ');
  const std::vector<std::string> lines = py_splitlines(to_str(input) + "\n");
  std::string out;
  if (a[2].truthy()) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i > 0) out += "\n" + indention;
      out += lines[i];
    }
  } else if (!lines.empty()) {
    out = lines[0];
    for (size_t i = 1; i < lines.size(); ++i) out += "\n" + (lines[i].empty() ? lines[i] : indention + lines[i]);
  }
  if (a[1].truthy()) out = indention + out;
  interpreter.check_size(out.size());
  return Value::string(std::move(out));
}

Value filter_safe(Interpreter&, const Value& input, CallArgs& args) {
  bind_args("safe", args, {});
  return Value::string(to_str(input));
}

Value filter_escape(Interpreter&, const Value& input, CallArgs& args) {
  bind_args("escape", args, {});
  std::string out;
  for (char c : to_str(input)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return Value::string(std::move(out));
}

Value filter_int(Interpreter&, const Value& input, CallArgs& args) {
  const auto a = bind_args("int", args, {{"default", Value::integer(0)}, {"base", Value::integer(10)}});
  const int base = static_cast<int>(expect_int(a[1], "int", "base"));
  if (input.is_int() || input.is_bool()) return Value::integer(input.as_int());
  if (input.is_float()) return float_to_int(input.as_double()).value_or(a[0]);
  if (input.is_string()) {
    if (auto value = parse_py_int(input.as_string(), base)) return Value::integer(*value);
    if (auto value = parse_py_float(input.as_string())) return float_to_int(*value).value_or(a[0]);
  }
  return a[0];
}

Value filter_float(Interpreter&, const Value& input, CallArgs& args) {
  const auto a = bind_args("float", args, {{"default", Value::floating(0.0)}});
  if (input.is_number()) return Value::floating(input.as_double());
  if (input.is_string()) {
    if (auto value = parse_py_float(input.as_string())) return Value::floating(*value);
  }
  return a[0];
}

Value filter_round(Interpreter&, const Value& input, CallArgs& args) {
  const auto a = bind_args("round", args, {{"precision", Value::integer(0)}, {"method", Value::string("common")}});
  const int64_t precision = expect_int(a[0], "round", "precision");
  const std::string method = expect_string(a[1], "round", "method");
  EXL_CHECK(method == "common" || method == "ceil" || method == "floor", kInvalidArgument,
            "method must be common, ceil or floor");
  EXL_CHECK(input.is_number(), kInvalidArgument, "round: expected a number, got {}", input.type_name());
  if (method == "common") {
    if (!input.is_float()) return Value::integer(input.as_int());
    return Value::floating(py_round(input.as_double(), precision));
  }
  const double scale = std::pow(10.0, static_cast<double>(precision));
  const double scaled = input.as_double() * scale;
  return Value::floating((method == "ceil" ? std::ceil(scaled) : std::floor(scaled)) / scale);
}

Value filter_abs(Interpreter&, const Value& input, CallArgs& args) {
  bind_args("abs", args, {});
  if (input.is_int() || input.is_bool()) {
    return Value::integer(input.as_int() < 0 ? checked_sub(0, input.as_int()) : input.as_int());
  }
  if (input.is_float()) return Value::floating(std::fabs(input.as_double()));
  fail(ErrorKind::kInvalidArgument, "bad operand type for abs(): '{}'", input.type_name());
}

Value filter_sum(Interpreter& interpreter, const Value& input, CallArgs& args) {
  const auto a = bind_args("sum", args, {{"attribute", Value::none()}, {"start", Value::integer(0)}});
  Value total = a[1];
  for (const Value& item : interpreter.iterate(input)) {
    const Value value = a[0].is_none() ? item : attribute_of(interpreter, item, a[0], Value::none());
    total = interpreter.binary(BinaryOp::kAdd, total, value);
  }
  return total;
}

Value min_or_max(Interpreter& interpreter, const Value& input, CallArgs& args, bool want_max) {
  const auto a = bind_args(want_max ? "max" : "min", args,
                           {{"case_sensitive", Value::boolean(false)}, {"attribute", Value::none()}});
  const List items = interpreter.iterate(input);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  const SortKey key{&interpreter, a[1], !a[0].truthy()};
  size_t best = 0;
  Value best_key = key(items[0]);
  for (size_t i = 1; i < items.size(); ++i) {
    Value k = key(items[i]);
    if (want_max ? py_less(best_key, k) : py_less(k, best_key)) {
      best = i;
      best_key = std::move(k);
    }
  }
  return items[best];
}

Value filter_min(Interpreter& i, const Value& input, CallArgs& args) { return min_or_max(i, input, args, false); }
Value filter_max(Interpreter& i, const Value& input, CallArgs& args) { return min_or_max(i, input, args, true); }

Value filter_sort(Interpreter& interpreter, const Value& input, CallArgs& args) {
  const auto a = bind_args("sort", args,
                           {{"reverse", Value::boolean(false)}, {"case_sensitive", Value::boolean(false)},
                            {"attribute", Value::none()}});
  List items = interpreter.iterate(input);
  std::vector<std::string> attributes;
  if (a[2].is_string()) {
    for (const std::string& part : py_split(a[2].as_string(), nullptr, -1)) {
      for (std::string& name : py_split(part, &kComma, -1)) {
        if (!name.empty()) attributes.push_back(name);
      }
    }
  }
  std::vector<std::pair<List, size_t>> keyed;
  for (size_t i = 0; i < items.size(); ++i) {
    List keys;
    if (attributes.empty()) {
      keys.push_back(SortKey{&interpreter, a[2], !a[1].truthy()}(items[i]));
    } else {
      for (const std::string& attribute : attributes) {
        keys.push_back(SortKey{&interpreter, Value::string(attribute), !a[1].truthy()}(items[i]));
      }
    }
    keyed.emplace_back(std::move(keys), i);
  }
  const bool reverse = a[0].truthy();
  interpreter.charge(items.size() * 8);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    const Value kx = Value::list(x.first);
    const Value ky = Value::list(y.first);
    return reverse ? py_less(ky, kx) : py_less(kx, ky);
  });
  List out;
  for (const auto& entry : keyed) out.push_back(items[entry.second]);
  return Value::list(std::move(out));
}

Value filter_dictsort(Interpreter& interpreter, const Value& input, CallArgs& args) {
  const auto a = bind_args("dictsort", args,
                           {{"case_sensitive", Value::boolean(false)}, {"by", Value::string("key")},
                            {"reverse", Value::boolean(false)}});
  EXL_CHECK(input.is_dict(), kInvalidArgument, "dictsort: expected a dict, got {}", input.type_name());
  const std::string by = expect_string(a[1], "dictsort", "by");
  EXL_CHECK(by == "key" || by == "value", kInvalidArgument, "You can only sort by either \"key\" or \"value\"");
  const size_t position = by == "key" ? 0 : 1;
  List items = dict_items(input.as_dict());
  const bool ignore_case = !a[0].truthy();
  const bool reverse = a[2].truthy();
  interpreter.charge(items.size() * 8);
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    const Value kx = ignore_case ? lower_if_string(x.as_list()[position]) : x.as_list()[position];
    const Value ky = ignore_case ? lower_if_string(y.as_list()[position]) : y.as_list()[position];
    return reverse ? py_less(ky, kx) : py_less(kx, ky);
  });
  return Value::list(std::move(items));
}

Value filter_unique(Interpreter& interpreter, const Value& input, CallArgs& args) {
  const auto a = bind_args("unique", args, {{"case_sensitive", Value::boolean(false)}, {"attribute", Value::none()}});
  const SortKey key{&interpreter, a[1], !a[0].truthy()};
  List seen;
  List out;
  for (const Value& item : interpreter.iterate(input)) {
    Value k = key(item);
    interpreter.charge(seen.size() / 16);
    if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return py_equal(s, k); })) {
      seen.push_back(std::move(k));
      out.push_back(item);
    }
  }
  return make_generator(std::move(out));
}

Value filter_reverse(Interpreter& interpreter, const Value& input, CallArgs& args) {
  bind_args("reverse", args, {});
  if (input.is_string()) {
    std::u32string text = decode_utf8(input.as_string());
    std::reverse(text.begin(), text.end());
    return Value::string(encode_utf8(text));
  }
  const bool reversible = input.is_list() || input.is_dict();
  List items = interpreter.iterate(input);
  std::reverse(items.begin(), items.end());
  if (!reversible) return Value::list(std::move(items));
  return make_generator(std::move(items), input.is_dict() ? "dict_reversekeyiterator" : "list_reverseiterator");
}

Value filter_batch(Interpreter& interpreter, const Value& input, CallArgs& args) {
  const auto a = bind_args("batch", args, {{"linecount", Value(), ParamKind::kRequired}, {"fill_with", Value::none()}});
  const int64_t count = expect_int(a[0], "batch", "linecount");
  EXL_CHECK(count > 0, kInvalidArgument, "batch: linecount must be positive");
  List out;
  List current;
  for (const Value& item : interpreter.iterate(input)) {
    current.push_back(item);
    if (static_cast<int64_t>(current.size()) == count) {
      out.push_back(Value::list(std::move(current)));
      current.clear();
    }
  }
  if (!current.empty()) {
    if (!a[1].is_none()) {
      while (static_cast<int64_t>(current.size()) < count) current.push_back(a[1]);
    }
    out.push_back(Value::list(std::move(current)));
  }
  return make_generator(std::move(out));
}

Value filter_center(Interpreter& interpreter, const Value& input, CallArgs& args) {
  const auto a = bind_args("center", args, {{"width", Value::integer(80)}});
  const int64_t width = expect_int(a[0], "center", "width");
  interpreter.check_size(static_cast<size_t>(std::max<int64_t>(0, std::min<int64_t>(width, int64_t{1} << 40))));
  return Value::string(py_center(to_str(input), width, " "));
}

Value filter_wordcount(Interpreter&, const Value& input, CallArgs& args) {
  bind_args("wordcount", args, {});
  int64_t count = 0;
  bool in_word = false;
  for (char32_t c : decode_utf8(to_str(input))) {
    const bool word_char = (c < 0x80) ? (std::isalnum(static_cast<int>(c)) != 0 || c == '_')
                                      : !is_py_space(c);
    if (word_char && !in_word) ++count;
    in_word = word_char;
  }
  return Value::integer(count);
}

Value filter_attr(Interpreter& interpreter, const Value& input, CallArgs& args) {
  const auto a = bind_args("attr", args, {{"name", Value(), ParamKind::kRequired}});
  const std::string name = to_str(a[0]);
  if (input.is_dict()) {
    Value method = find_method(input, name);
    if (!method.is_undefined() || method.undefined_kind() == UndefinedKind::kUnsafe) return method;
    return Value::undefined(fmt::format("'dict object' has no attribute '{}'", name));
  }
  return interpreter.getattr(input, name);
}

Value filter_format(Interpreter& interpreter, const Value& input, CallArgs& args) {
  EXL_CHECK(args.positional.empty() || args.keyword.empty(), kInvalidArgument,
            "format: can't handle positional and keyword arguments at the same time");
  Value format_args;
  if (!args.keyword.empty()) {
    Dict dict;
    for (auto& [key, value] : args.keyword) dict.set(Value::string(key), value);
    format_args = Value::dict(std::move(dict));
  } else {
    format_args = Value::list(args.positional, SequenceKind::kTuple);
  }
  std::string out = python_percent_format(to_str(input), format_args);
  interpreter.check_size(out.size());
  return Value::string(std::move(out));
}

struct FilterEntry {
  std::string_view name;
  Fn fn;
};

constexpr FilterEntry kFilters[] = {
    {"abs", filter_abs},
    {"attr", filter_attr},
    {"batch", filter_batch},
    {"capitalize", filter_capitalize},
    {"center", filter_center},
    {"count", filter_length},
    {"d", filter_default},
    {"default", filter_default},
    {"dictsort", filter_dictsort},
    {"e", filter_escape},
    {"escape", filter_escape},
    {"first", filter_first},
    {"float", filter_float},
    {"forceescape", filter_escape},
    {"format", filter_format},
    {"indent", filter_indent},
    {"int", filter_int},
    {"items", filter_items},
    {"join", filter_join},
    {"last", filter_last},
    {"length", filter_length},
    {"list", filter_list},
    {"lower", filter_lower},
    {"map", filter_map},
    {"max", filter_max},
    {"min", filter_min},
    {"reject", filter_reject},
    {"rejectattr", filter_rejectattr},
    {"replace", filter_replace},
    {"reverse", filter_reverse},
    {"round", filter_round},
    {"safe", filter_safe},
    {"select", filter_select},
    {"selectattr", filter_selectattr},
    {"sort", filter_sort},
    {"string", filter_string},
    {"sum", filter_sum},
    {"title", filter_title},
    {"tojson", filter_tojson},
    {"trim", filter_trim},
    {"unique", filter_unique},
    {"upper", filter_upper},
    {"wordcount", filter_wordcount},
    // jinja filters exl does not implement: known, so that a template using them fails clearly when applied.
    {"filesizeformat", unsupported_filter},
    {"groupby", unsupported_filter},
    {"pprint", unsupported_filter},
    {"random", unsupported_filter},
    {"slice", unsupported_filter},
    {"striptags", unsupported_filter},
    {"truncate", unsupported_filter},
    {"urlencode", unsupported_filter},
    {"urlize", unsupported_filter},
    {"wordwrap", unsupported_filter},
    {"xmlattr", unsupported_filter},
};

}  // namespace

Value unsupported_filter(Interpreter&, const Value&, CallArgs&) {
  fail(ErrorKind::kUnsupported, "this jinja filter is not supported by exl");
}

FilterFn find_filter(std::string_view name) {
  for (const auto& entry : kFilters) {
    if (entry.name == name) return entry.fn;
  }
  return nullptr;
}

}  // namespace exl::chat
