// JSON schema -> Grammar. Objects and arrays become rules (called, never inlined: an object inlined into a list of
// optional properties would be copied per path); strings, numbers, enums and consts are inlined expressions;
// $ref targets become rules that the compiler inlines unless they are recursive. Rule names are JSON pointers.
#include <cmath>
#include <map>
#include <set>

#include "constrain/front_ends.h"
#include "core/error.h"

namespace exl::constrain::detail {
namespace {

using ojson = nlohmann::ordered_json;

constexpr int kMaxIntegerDigits = 18;   // unbounded integers stay within int64
constexpr int kMaxIntPartDigits = 16;   // unbounded numbers: integer part
constexpr int kMaxFractionDigits = 16;  // fraction digits
constexpr int kMaxExponentDigits = 2;

const std::set<std::string>& annotation_keywords() {
  static const std::set<std::string> k = {"title",   "description", "default",  "examples",        "$schema",
                                          "$id",     "$comment",    "deprecated", "readOnly",      "writeOnly",
                                          "$defs",   "definitions", "contentMediaType", "contentEncoding"};
  return k;
}

const std::set<std::string>& supported_keywords() {
  static const std::set<std::string> k = {
      "type",      "properties", "required",  "additionalProperties", "items",     "minItems",
      "maxItems",  "enum",       "const",     "anyOf",                "oneOf",     "allOf",
      "$ref",      "minLength",  "maxLength", "pattern",              "format",    "minimum",
      "maximum",   "exclusiveMinimum", "exclusiveMaximum", "nullable", "uniqueItems"};
  return k;
}

std::string pointer_token(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

std::string where(const std::string& ptr) { return ptr.empty() ? "/" : ptr; }

std::string digits_of(uint64_t v) { return std::to_string(v); }

ExprPtr digit() { return byte_range('0', '9'); }

// Equal-length digit strings lo <= hi: every digit string between them.
ExprPtr same_length_range(const std::string& lo, const std::string& hi) {
  size_t n = lo.size();
  if (n == 0) return empty();
  if (lo == hi) return literal(lo);
  if (lo.find_first_not_of('0', 1) == std::string::npos && hi.find_first_not_of('9', 1) == std::string::npos)
    return seq({byte_range(static_cast<uint8_t>(lo[0]), static_cast<uint8_t>(hi[0])),
                repeat(digit(), static_cast<int>(n - 1), static_cast<int>(n - 1))});
  if (lo[0] == hi[0]) return seq({literal(lo.substr(0, 1)), same_length_range(lo.substr(1), hi.substr(1))});
  std::vector<ExprPtr> parts;
  parts.push_back(seq({literal(lo.substr(0, 1)), same_length_range(lo.substr(1), std::string(n - 1, '9'))}));
  if (lo[0] + 1 <= hi[0] - 1)
    parts.push_back(seq({byte_range(static_cast<uint8_t>(lo[0] + 1), static_cast<uint8_t>(hi[0] - 1)),
                         repeat(digit(), static_cast<int>(n - 1), static_cast<int>(n - 1))}));
  parts.push_back(seq({literal(hi.substr(0, 1)), same_length_range(std::string(n - 1, '0'), hi.substr(1))}));
  return alt(std::move(parts));
}

uint64_t pow10(size_t n) {
  uint64_t v = 1;
  for (size_t i = 0; i < n; ++i) v *= 10;
  return v;
}

// Canonical decimals (no leading zeros) of [lo, hi]; hi == nullopt: up to max_digits digits (or lo's length).
ExprPtr uint_range(uint64_t lo, std::optional<uint64_t> hi, int max_digits) {
  if (hi && *hi < lo) return nothing();
  size_t lo_len = digits_of(lo).size();
  size_t hi_len = hi ? digits_of(*hi).size() : std::max<size_t>(lo_len, static_cast<size_t>(max_digits));
  std::vector<ExprPtr> parts;
  for (size_t len = lo_len; len <= hi_len; ++len) {
    uint64_t a = len == lo_len ? lo : pow10(len - 1);
    if (!hi && len > lo_len) {
      parts.push_back(seq({byte_range('1', '9'), repeat(digit(), static_cast<int>(len - 1), static_cast<int>(hi_len - 1))}));
      break;
    }
    uint64_t b = (hi && len == hi_len) ? *hi : pow10(len) - 1;
    parts.push_back(same_length_range(digits_of(a), digits_of(b)));
  }
  return alt(std::move(parts));
}

struct Bound {
  uint64_t value;
  bool exclusive;
};

// Non-negative decimals m with lower <= m (or <) and m <= upper (or <); integers only unless `fraction`.
ExprPtr magnitude(Bound lower, std::optional<Bound> upper, bool fraction, int max_digits) {
  if (!fraction) {
    uint64_t lo = lower.exclusive ? lower.value + 1 : lower.value;
    std::optional<uint64_t> hi;
    if (upper) {
      if (upper->exclusive && upper->value == 0) return nothing();
      hi = upper->exclusive ? upper->value - 1 : upper->value;
    }
    return uint_range(lo, hi, max_digits);
  }
  ExprPtr frac_any = optional(seq({literal("."), repeat(digit(), 1, kMaxFractionDigits)}));
  ExprPtr frac_zero = optional(seq({literal("."), repeat(literal("0"), 1, kMaxFractionDigits)}));
  ExprPtr frac_nonzero = seq({literal("."), repeat(literal("0"), 0, kMaxFractionDigits - 1), byte_range('1', '9'),
                              repeat(digit(), 0, kMaxFractionDigits - 1)});
  std::vector<ExprPtr> parts;
  uint64_t lo_int = lower.exclusive ? lower.value + 1 : lower.value;
  if (!upper) {
    parts.push_back(seq({uint_range(lo_int, std::nullopt, max_digits), frac_any}));
  } else if (upper->value >= 1) {
    parts.push_back(seq({uint_range(lo_int, upper->value - 1, max_digits), frac_any}));
  }
  if (lower.exclusive && (!upper || lower.value < upper->value))
    parts.push_back(seq({literal(digits_of(lower.value)), frac_nonzero}));
  if (upper && !upper->exclusive &&
      (upper->value > lower.value || (upper->value == lower.value && !lower.exclusive)))
    parts.push_back(seq({literal(digits_of(upper->value)), frac_zero}));
  return alt(std::move(parts));
}

struct SignedBound {
  int64_t value;
  bool exclusive;
};

uint64_t negated(int64_t v) { return static_cast<uint64_t>(-(v + 1)) + 1; }

class SchemaCompiler {
 public:
  SchemaCompiler(const ojson& root, const JsonOptions& options) : root_(root), options_(options) {
    EXL_CHECK(options.max_whitespace >= 0 && options.max_whitespace <= 1000, kInvalidArgument,
              "json schema: JsonOptions::max_whitespace must be in [0, 1000], found {}", options.max_whitespace);
    EXL_CHECK(options.max_depth >= 1 && options.max_depth <= 10000, kInvalidArgument,
              "json schema: JsonOptions::max_depth must be in [1, 10000], found {}", options.max_depth);
    ByteSet ws;
    for (char c : {' ', '\t', '\n', '\r'}) ws.set(static_cast<uint8_t>(c));
    ws_ = repeat(bytes(ws), 0, options.max_whitespace);
    g_.what = "json schema";
    g_.max_depth = options.max_depth;
  }

  Grammar schema_grammar() {
    int start = new_rule("#", true);
    g_.rules[static_cast<size_t>(start)].body = compile(root_, "");
    g_.start = start;
    return std::move(g_);
  }

  Grammar object_grammar() {
    g_.what = "json object";
    int start = new_rule("json_object", true);
    g_.rules[static_cast<size_t>(start)].body = rule_ref(any_object_rule());
    g_.start = start;
    return std::move(g_);
  }

 private:
  [[noreturn]] void error(ErrorKind kind, const std::string& ptr, const std::string& message) const {
    fail(kind, "json schema {}: {}", where(ptr), message);
  }

  int new_rule(std::string name, bool inlinable) {
    g_.rules.push_back({std::move(name), nullptr, inlinable});
    return static_cast<int>(g_.rules.size() - 1);
  }

  ExprPtr compile(const ojson& s, const std::string& ptr) {
    if (s.is_boolean()) {
      if (s.get<bool>()) return any_value();
      error(ErrorKind::kInvalidArgument, ptr, "the schema false matches nothing");
    }
    if (!s.is_object())
      error(ErrorKind::kInvalidArgument, ptr, fmt::format("expected a schema (an object or a boolean), found {}", s.type_name()));
    std::set<std::string> constraints;
    for (const auto& [key, value] : s.items()) {
      if (annotation_keywords().count(key)) continue;
      if (!supported_keywords().count(key))
        error(ErrorKind::kUnsupported, ptr + "/" + pointer_token(key),
              fmt::format("unsupported keyword \"{}\" (supported: type, properties, required, additionalProperties, "
                          "items, minItems, maxItems, enum, const, anyOf, oneOf, allOf with one schema, $ref, "
                          "minLength, maxLength, pattern, format, minimum, maximum, exclusiveMinimum, "
                          "exclusiveMaximum, nullable; annotations such as title and description are ignored)",
                          key));
      constraints.insert(key);
    }
    auto only = [&](const char* keyword) {
      for (const std::string& k : constraints)
        if (k != keyword && k != "nullable")
          error(ErrorKind::kUnsupported, ptr,
                fmt::format("\"{}\" together with \"{}\" is not supported (move the other keywords into each "
                            "alternative)",
                            keyword, k));
    };
    ExprPtr e;
    if (s.contains("$ref")) {
      only("$ref");
      e = ref(s["$ref"], ptr + "/$ref");
    } else if (s.contains("const")) {
      e = json_literal(s["const"], ptr + "/const");
    } else if (s.contains("enum")) {
      e = enum_expr(s["enum"], ptr + "/enum");
    } else if (s.contains("anyOf") || s.contains("oneOf")) {
      const char* key = s.contains("anyOf") ? "anyOf" : "oneOf";
      only(key);
      e = any_of(s[key], ptr + "/" + key);
    } else if (s.contains("allOf")) {
      only("allOf");
      const ojson& all = s["allOf"];
      if (!all.is_array() || all.size() != 1)
        error(ErrorKind::kUnsupported, ptr + "/allOf", "allOf is supported only with exactly one schema");
      e = compile(all[0], ptr + "/allOf/0");
    } else {
      e = typed(s, ptr, constraints);
    }
    if (s.contains("nullable")) {
      if (!s["nullable"].is_boolean())
        error(ErrorKind::kInvalidArgument, ptr + "/nullable", "expected a boolean");
      if (s["nullable"].get<bool>()) e = alt({e, literal("null")});
    }
    return e;
  }

  ExprPtr typed(const ojson& s, const std::string& ptr, const std::set<std::string>& constraints) {
    std::vector<std::string> types;
    if (s.contains("type")) {
      const ojson& t = s["type"];
      if (t.is_string()) {
        types.push_back(t.get<std::string>());
      } else if (t.is_array() && !t.empty()) {
        for (const auto& x : t) {
          if (!x.is_string()) error(ErrorKind::kInvalidArgument, ptr + "/type", "expected type names (strings)");
          types.push_back(x.get<std::string>());
        }
      } else {
        error(ErrorKind::kInvalidArgument, ptr + "/type", "expected a type name or a non-empty array of them");
      }
    } else {
      auto has = [&](std::initializer_list<const char*> keys) {
        for (const char* k : keys)
          if (constraints.count(k)) return true;
        return false;
      };
      if (has({"properties", "required", "additionalProperties"})) types.push_back("object");
      if (has({"items", "minItems", "maxItems", "uniqueItems"})) types.push_back("array");
      if (has({"minLength", "maxLength", "pattern", "format"})) types.push_back("string");
      if (has({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})) types.push_back("number");
      if (types.empty()) return any_value();
    }
    std::vector<ExprPtr> parts;
    for (const std::string& t : types) {
      if (t == "object") {
        parts.push_back(object_rule(s, ptr));
      } else if (t == "array") {
        parts.push_back(array_rule(s, ptr));
      } else if (t == "string") {
        parts.push_back(string_expr(s, ptr));
      } else if (t == "number" || t == "integer") {
        parts.push_back(number_expr(s, ptr, t == "integer"));
      } else if (t == "boolean") {
        parts.push_back(alt({literal("true"), literal("false")}));
      } else if (t == "null") {
        parts.push_back(literal("null"));
      } else {
        error(ErrorKind::kInvalidArgument, ptr + "/type",
              fmt::format("unknown type \"{}\" (expected object, array, string, number, integer, boolean or null)", t));
      }
    }
    return alt(std::move(parts));
  }

  ExprPtr ref(const ojson& r, const std::string& ptr) {
    if (!r.is_string()) error(ErrorKind::kInvalidArgument, ptr, "expected a string");
    std::string target = r.get<std::string>();
    if (target.empty() || target[0] != '#' || (target.size() > 1 && target[1] != '/'))
      error(ErrorKind::kUnsupported, ptr,
            fmt::format("only references into this document (\"#\", \"#/$defs/Name\", \"#/definitions/Name\") are "
                        "supported, found \"{}\"",
                        target));
    std::string pointer = target.substr(1);
    auto it = ref_rules_.find(pointer);
    if (it != ref_rules_.end()) return rule_ref(it->second);
    const ojson* node = nullptr;
    try {
      ojson::json_pointer jp(pointer);
      if (root_.contains(jp)) node = &root_.at(jp);
    } catch (const nlohmann::json::exception& e) {
      error(ErrorKind::kInvalidArgument, ptr, fmt::format("invalid JSON pointer \"{}\": {}", target, e.what()));
    }
    if (!node) error(ErrorKind::kInvalidArgument, ptr, fmt::format("reference \"{}\" points to nothing", target));
    int rule = new_rule("#" + pointer, true);
    ref_rules_[pointer] = rule;
    ExprPtr body = compile(*node, pointer);
    g_.rules[static_cast<size_t>(rule)].body = std::move(body);
    return rule_ref(rule);
  }

  std::string dump(const ojson& value, const std::string& ptr) const {
    try {
      return value.dump();
    } catch (const nlohmann::json::exception& e) {
      error(ErrorKind::kInvalidArgument, ptr, fmt::format("the value cannot be written as JSON: {}", e.what()));
    }
  }

  ExprPtr json_literal(const ojson& value, const std::string& ptr) const { return literal(dump(value, ptr)); }

  ExprPtr enum_expr(const ojson& values, const std::string& ptr) {
    if (!values.is_array() || values.empty())
      error(ErrorKind::kInvalidArgument, ptr, "expected a non-empty array of values");
    std::vector<ExprPtr> parts;
    for (size_t i = 0; i < values.size(); ++i) parts.push_back(json_literal(values[i], ptr + "/" + std::to_string(i)));
    return alt(std::move(parts));
  }

  ExprPtr any_of(const ojson& options, const std::string& ptr) {
    if (!options.is_array() || options.empty())
      error(ErrorKind::kInvalidArgument, ptr, "expected a non-empty array of schemas");
    std::vector<ExprPtr> parts;
    for (size_t i = 0; i < options.size(); ++i) parts.push_back(compile(options[i], ptr + "/" + std::to_string(i)));
    return alt(std::move(parts));
  }

  std::optional<uint64_t> count(const ojson& s, const char* key, const std::string& ptr) {
    if (!s.contains(key)) return std::nullopt;
    const ojson& v = s[key];
    if (v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0)) return v.get<uint64_t>();
    if (v.is_number_float() && v.get<double>() >= 0 && std::floor(v.get<double>()) == v.get<double>() &&
        v.get<double>() < 1e9)
      return static_cast<uint64_t>(v.get<double>());
    error(ErrorKind::kInvalidArgument, ptr + "/" + key, fmt::format("expected a non-negative integer, found {}", v.dump()));
  }

  static int clamp_count(uint64_t v) { return v > 1'000'000'000 ? 1'000'000'000 : static_cast<int>(v); }

  ExprPtr string_expr(const ojson& s, const std::string& ptr) {
    auto min_len = count(s, "minLength", ptr);
    auto max_len = count(s, "maxLength", ptr);
    bool has_len = min_len || max_len;
    if (s.contains("format")) {
      if (has_len || s.contains("pattern"))
        error(ErrorKind::kUnsupported, ptr, "\"format\" together with \"pattern\", \"minLength\" or \"maxLength\"");
      return quoted(format_expr(s["format"], ptr + "/format"));
    }
    if (s.contains("pattern")) {
      if (has_len)
        error(ErrorKind::kUnsupported, ptr, "\"pattern\" together with \"minLength\" or \"maxLength\"");
      return quoted(pattern_expr(s["pattern"], ptr + "/pattern"));
    }
    int lo = clamp_count(min_len.value_or(0));
    int hi = max_len ? clamp_count(*max_len) : kUnbounded;
    if (hi != kUnbounded && hi < lo)
      error(ErrorKind::kInvalidArgument, ptr, fmt::format("maxLength {} is below minLength {}", hi, lo));
    return quoted(repeat(string_char(), lo, hi));
  }

  static ExprPtr quoted(ExprPtr content) { return seq({literal("\""), std::move(content), literal("\"")}); }

  ExprPtr string_char() {
    if (string_char_) return string_char_;
    ExprPtr plain = utf8_expr(CodepointSet::of(0x20, CodepointSet::kMaxCodepoint)
                                  .minus(CodepointSet::of('"', '"'))
                                  .minus(CodepointSet::of('\\', '\\')));
    ByteSet simple;
    for (char c : std::string_view("\"\\/bfnrt")) simple.set(static_cast<uint8_t>(c));
    ByteSet hex;
    for (char c : std::string_view("0123456789abcdefABCDEF")) hex.set(static_cast<uint8_t>(c));
    ByteSet hex_not_d = hex;
    hex_not_d.reset('d');
    hex_not_d.reset('D');
    ExprPtr h = bytes(hex);
    // \uXXXX outside the surrogates, or a high+low surrogate pair (one character).
    ExprPtr single = seq({literal("u"), alt({seq({bytes(hex_not_d), h, h, h}),
                                             seq({bytes(ByteSet().set('d').set('D')), byte_range('0', '7'), h, h})})});
    ByteSet high;
    for (char c : std::string_view("89abAB")) high.set(static_cast<uint8_t>(c));
    ByteSet low;
    for (char c : std::string_view("cdefCDEF")) low.set(static_cast<uint8_t>(c));
    ExprPtr dd = bytes(ByteSet().set('d').set('D'));
    ExprPtr pair = seq({literal("u"), dd, bytes(high), h, h, literal("\\u"), dd, bytes(low), h, h});
    string_char_ = alt({plain, seq({literal("\\"), alt({bytes(simple), single, pair})})});
    return string_char_;
  }

  ExprPtr format_expr(const ojson& f, const std::string& ptr) {
    if (!f.is_string()) error(ErrorKind::kInvalidArgument, ptr, "expected a format name");
    static const std::string kDate = "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])";
    static const std::string kTime =
        "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])";
    static const std::string kOctet = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
    static const std::map<std::string, std::string> kFormats = {
        {"date", kDate},
        {"time", kTime},
        {"date-time", kDate + "T" + kTime},
        {"email", "[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\\.[A-Za-z0-9-]{1,63}){0,3}\\.[A-Za-z]{2,24}"},
        {"uuid", "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"},
        {"ipv4", "(" + kOctet + "\\.){3}" + kOctet},
    };
    auto it = kFormats.find(f.get<std::string>());
    if (it == kFormats.end())
      error(ErrorKind::kUnsupported, ptr,
            fmt::format("unsupported format \"{}\" (supported: date, time, date-time, email, uuid, ipv4)",
                        f.get<std::string>()));
    return parse_regex(it->second, "json schema " + ptr);
  }

  // JSON schema patterns search anywhere in the string unless anchored with ^ / $.
  ExprPtr pattern_expr(const ojson& p, const std::string& ptr) {
    if (!p.is_string()) error(ErrorKind::kInvalidArgument, ptr, "expected a regular expression string");
    std::string text = p.get<std::string>();
    bool anchored_start = !text.empty() && text[0] == '^';
    size_t backslashes = 0;
    for (size_t i = text.size(); i >= 2 && text[i - 2] == '\\'; --i) ++backslashes;
    bool anchored_end = !text.empty() && text.back() == '$' && backslashes % 2 == 0;
    ExprPtr anything = repeat(utf8_expr(CodepointSet::all()), 0, kUnbounded);
    ExprPtr body = parse_regex(text, "json schema " + ptr);
    return json_escape(seq({anchored_start ? empty() : anything, body, anchored_end ? empty() : anything}));
  }

  // Raw text -> the JSON string content that spells it (control characters, quote and backslash escaped).
  static ExprPtr json_escape(const ExprPtr& e) {
    switch (e->kind) {
      case ExprKind::kBytes: {
        ByteSet unsafe;
        for (int b = 0; b < 0x20; ++b) unsafe.set(static_cast<size_t>(b));
        unsafe.set('"');
        unsafe.set('\\');
        ByteSet hit = e->bytes & unsafe;
        if (hit.none()) return e;
        std::vector<ExprPtr> parts{bytes(e->bytes & ~unsafe)};
        for (int b = 0; b < 256; ++b) {
          if (!hit.test(static_cast<size_t>(b))) continue;
          static const std::map<int, std::string> kShort = {{'"', "\\\""}, {'\\', "\\\\"}, {'\n', "\\n"}, {'\t', "\\t"},
                                                            {'\r', "\\r"}, {'\b', "\\b"},  {'\f', "\\f"}};
          auto it = kShort.find(b);
          parts.push_back(literal(it != kShort.end() ? it->second : fmt::format("\\u{:04x}", b)));
        }
        return alt(std::move(parts));
      }
      case ExprKind::kSeq:
      case ExprKind::kAlt: {
        std::vector<ExprPtr> items;
        for (const auto& it : e->items) items.push_back(json_escape(it));
        return e->kind == ExprKind::kSeq ? seq(std::move(items)) : alt(std::move(items));
      }
      case ExprKind::kRepeat:
        return repeat(json_escape(e->items[0]), e->min, e->max);
      default:
        return e;
    }
  }

  std::optional<SignedBound> bound(const ojson& s, const char* key, const char* exclusive_key, bool integer,
                                   bool lower, const std::string& ptr) {
    std::optional<SignedBound> out;
    auto read = [&](const ojson& v, const std::string& at, bool exclusive) {
      if (!v.is_number()) error(ErrorKind::kInvalidArgument, at, fmt::format("expected a number, found {}", v.dump()));
      if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
        error(ErrorKind::kUnsupported, at, "bounds beyond the int64 range");
      SignedBound b{0, exclusive};
      if (v.is_number_float()) {
        double d = v.get<double>();
        if (!(std::fabs(d) < 9e18)) error(ErrorKind::kUnsupported, at, "bounds beyond the int64 range");
        if (std::floor(d) != d) {
          if (!integer)
            error(ErrorKind::kUnsupported, at,
                  fmt::format("bound {} of a number: only integral bounds are supported for type number", v.dump()));
          // For integers a fractional bound rounds inwards and becomes inclusive.
          b = {static_cast<int64_t>(lower ? std::ceil(d) : std::floor(d)), false};
          return b;
        }
        b.value = static_cast<int64_t>(d);
      } else {
        b.value = v.get<int64_t>();
      }
      return b;
    };
    auto tighter = [&](SignedBound b) {
      if (!out) {
        out = b;
        return;
      }
      bool better = lower ? (b.value > out->value || (b.value == out->value && b.exclusive))
                          : (b.value < out->value || (b.value == out->value && b.exclusive));
      if (better) out = b;
    };
    if (s.contains(key)) tighter(read(s[key], ptr + "/" + key, false));
    if (s.contains(exclusive_key)) {
      const ojson& x = s[exclusive_key];
      if (x.is_boolean()) {
        if (!s.contains(key))
          error(ErrorKind::kInvalidArgument, ptr + "/" + exclusive_key,
                fmt::format("boolean {} without {}", exclusive_key, key));
        if (x.get<bool>()) out->exclusive = true;
      } else {
        tighter(read(x, ptr + "/" + exclusive_key, true));
      }
    }
    return out;
  }

  ExprPtr number_expr(const ojson& s, const std::string& ptr, bool integer) {
    auto lo = bound(s, "minimum", "exclusiveMinimum", integer, true, ptr);
    auto hi = bound(s, "maximum", "exclusiveMaximum", integer, false, ptr);
    int max_digits = integer ? kMaxIntegerDigits : kMaxIntPartDigits;
    if (!lo && !hi) {
      ExprPtr int_part = alt({literal("0"), seq({byte_range('1', '9'), repeat(digit(), 0, max_digits - 1)})});
      if (integer) return seq({optional(literal("-")), int_part});
      ExprPtr frac = optional(seq({literal("."), repeat(digit(), 1, kMaxFractionDigits)}));
      ExprPtr exp = optional(seq({bytes(ByteSet().set('e').set('E')), optional(bytes(ByteSet().set('+').set('-'))),
                                  repeat(digit(), 1, kMaxExponentDigits)}));
      return seq({optional(literal("-")), int_part, frac, exp});
    }
    std::vector<ExprPtr> parts;
    // x >= 0
    if (!hi || hi->value > 0 || (hi->value == 0 && !hi->exclusive)) {
      Bound lower = lo && lo->value >= 0 ? Bound{static_cast<uint64_t>(lo->value), lo->exclusive} : Bound{0, false};
      std::optional<Bound> upper;
      if (hi) upper = Bound{static_cast<uint64_t>(hi->value), hi->exclusive};
      parts.push_back(magnitude(lower, upper, !integer, max_digits));
    }
    // x < 0: "-" and a magnitude above zero
    if (!lo || lo->value < 0) {
      Bound lower = hi && hi->value < 0 ? Bound{negated(hi->value), hi->exclusive} : Bound{0, true};
      std::optional<Bound> upper;
      if (lo) upper = Bound{negated(lo->value), lo->exclusive};
      parts.push_back(seq({literal("-"), magnitude(lower, upper, !integer, max_digits)}));
    }
    ExprPtr e = alt(std::move(parts));
    if (e->kind == ExprKind::kNothing)
      error(ErrorKind::kInvalidArgument, ptr, "the bounds leave no value (minimum above maximum)");
    return e;
  }

  ExprPtr object_rule(const ojson& s, const std::string& ptr) {
    std::string key = ptr + "#object";
    auto it = object_rules_.find(key);
    if (it != object_rules_.end()) return rule_ref(it->second);
    int rule = new_rule("#" + ptr, false);
    object_rules_[key] = rule;
    ExprPtr body = object_body(s, ptr);
    g_.rules[static_cast<size_t>(rule)].body = std::move(body);
    return rule_ref(rule);
  }

  ExprPtr object_body(const ojson& s, const std::string& ptr) {
    ListParts parts;
    parts.sep = seq({ws_, literal(","), ws_});
    parts.tail = ws_;
    std::vector<std::string> names;
    std::set<std::string> required;
    if (s.contains("required")) {
      const ojson& r = s["required"];
      if (!r.is_array()) error(ErrorKind::kInvalidArgument, ptr + "/required", "expected an array of property names");
      for (const auto& name : r) {
        if (!name.is_string())
          error(ErrorKind::kInvalidArgument, ptr + "/required", "expected property names (strings)");
        required.insert(name.get<std::string>());
      }
    }
    bool has_properties = s.contains("properties");
    if (has_properties) {
      const ojson& props = s["properties"];
      if (!props.is_object())
        error(ErrorKind::kInvalidArgument, ptr + "/properties", "expected an object of property schemas");
      for (const auto& [name, sub] : props.items()) {
        std::string sub_ptr = ptr + "/properties/" + pointer_token(name);
        std::string quoted_name = dump(ojson(name), sub_ptr);
        ExprPtr member = seq({literal(quoted_name), ws_, literal(":"), ws_, compile(sub, sub_ptr)});
        parts.members.push_back({member, required.count(name) > 0});
        names.push_back(quoted_name);
      }
    }
    ExprPtr additional;
    if (s.contains("additionalProperties")) {
      const ojson& a = s["additionalProperties"];
      if (a.is_boolean()) {
        if (a.get<bool>()) additional = any_value();
      } else {
        additional = compile(a, ptr + "/additionalProperties");
      }
    } else if (!has_properties) {
      additional = any_value();
    }
    for (const std::string& name : required)
      if (std::find(names.begin(), names.end(), dump(ojson(name), ptr + "/required")) == names.end())
        error(ErrorKind::kUnsupported, ptr + "/required",
              fmt::format("required property \"{}\" is not listed in properties (expected every required property "
                          "to be declared there)",
                          name));
    if (additional) {
      parts.rest = seq({except(any_string(), names), ws_, literal(":"), ws_, additional});
      parts.rest_min = 0;
      parts.rest_max = kUnbounded;
    }
    return seq({literal("{"), ws_, list(std::move(parts)), literal("}")});
  }

  ExprPtr array_rule(const ojson& s, const std::string& ptr) {
    std::string key = ptr + "#array";
    auto it = object_rules_.find(key);
    if (it != object_rules_.end()) return rule_ref(it->second);
    int rule = new_rule("#" + ptr, false);
    object_rules_[key] = rule;
    if (s.contains("uniqueItems") && !(s["uniqueItems"].is_boolean() && !s["uniqueItems"].get<bool>()))
      error(ErrorKind::kUnsupported, ptr + "/uniqueItems", "uniqueItems true is not supported");
    ExprPtr item;
    if (!s.contains("items")) {
      item = any_value();
    } else if (s["items"].is_array()) {
      error(ErrorKind::kUnsupported, ptr + "/items", "tuple form (an array of schemas) is not supported");
    } else {
      item = compile(s["items"], ptr + "/items");
    }
    auto min_items = count(s, "minItems", ptr);
    auto max_items = count(s, "maxItems", ptr);
    ListParts parts;
    parts.sep = seq({ws_, literal(","), ws_});
    parts.tail = ws_;
    parts.rest = item;
    parts.rest_min = clamp_count(min_items.value_or(0));
    parts.rest_max = max_items ? clamp_count(*max_items) : kUnbounded;
    if (parts.rest_max != kUnbounded && parts.rest_max < parts.rest_min)
      error(ErrorKind::kInvalidArgument, ptr, fmt::format("maxItems {} is below minItems {}", parts.rest_max, parts.rest_min));
    if (parts.rest_min > 1000 || parts.rest_max > 1000)
      error(ErrorKind::kUnsupported, ptr, "minItems / maxItems above 1000");
    g_.rules[static_cast<size_t>(rule)].body = seq({literal("["), ws_, list(std::move(parts)), literal("]")});
    return rule_ref(rule);
  }

  ExprPtr any_string() { return quoted(repeat(string_char(), 0, kUnbounded)); }

  int any_object_rule() {
    any_value();
    return any_object_;
  }

  // Any JSON value; objects and arrays are two recursive rules whose members are any values again.
  ExprPtr any_value() {
    if (any_value_) return any_value_;
    any_object_ = new_rule("any object", false);
    any_array_ = new_rule("any array", false);
    ojson unbounded_number = ojson::object();
    any_value_ = alt({rule_ref(any_object_), rule_ref(any_array_), any_string(),
                      number_expr(unbounded_number, "", false), literal("true"), literal("false"), literal("null")});
    ListParts members;
    members.sep = seq({ws_, literal(","), ws_});
    members.tail = ws_;
    ListParts items = members;
    members.rest = seq({any_string(), ws_, literal(":"), ws_, any_value_});
    items.rest = any_value_;
    g_.rules[static_cast<size_t>(any_object_)].body = seq({literal("{"), ws_, list(std::move(members)), literal("}")});
    g_.rules[static_cast<size_t>(any_array_)].body = seq({literal("["), ws_, list(std::move(items)), literal("]")});
    return any_value_;
  }

  const ojson& root_;
  JsonOptions options_;
  Grammar g_;
  ExprPtr ws_;
  ExprPtr string_char_;
  ExprPtr any_value_;
  int any_object_ = -1;
  int any_array_ = -1;
  std::map<std::string, int> ref_rules_;
  std::map<std::string, int> object_rules_;
};

}  // namespace

Grammar json_schema_grammar(const nlohmann::ordered_json& schema, const JsonOptions& options) {
  return SchemaCompiler(schema, options).schema_grammar();
}

Grammar json_object_grammar(const JsonOptions& options) {
  ojson none;
  return SchemaCompiler(none, options).object_grammar();
}

}  // namespace exl::constrain::detail
