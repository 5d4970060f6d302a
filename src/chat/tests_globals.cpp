// jinja2's built-in tests (tests.py), the environment's global functions (including transformers'
// raise_exception and strftime_now), and call argument binding.
#include <algorithm>
#include <cmath>
#include <ctime>

#include "chat/builtins.h"
#include "chat/builtins_util.h"
#include "chat/chat_template.h"
#include "chat/interpreter.h"
#include "chat/unicode.h"
#include "core/error.h"

namespace exl::chat {

namespace {

constexpr int64_t kMaxRange = 100000;  // jinja's sandbox MAX_RANGE

bool test_defined(Interpreter&, const Value& v, CallArgs& a) { return bind_args("defined", a, {}), !v.is_undefined(); }
bool test_undefined(Interpreter&, const Value& v, CallArgs& a) {
  return bind_args("undefined", a, {}), v.is_undefined();
}
bool test_none(Interpreter&, const Value& v, CallArgs& a) { return bind_args("none", a, {}), v.is_none(); }
bool test_boolean(Interpreter&, const Value& v, CallArgs& a) { return bind_args("boolean", a, {}), v.is_bool(); }
bool test_true(Interpreter&, const Value& v, CallArgs& a) {
  return bind_args("true", a, {}), v.is_bool() && v.as_bool();
}
bool test_false(Interpreter&, const Value& v, CallArgs& a) {
  return bind_args("false", a, {}), v.is_bool() && !v.as_bool();
}
bool test_integer(Interpreter&, const Value& v, CallArgs& a) { return bind_args("integer", a, {}), v.is_int(); }
bool test_float(Interpreter&, const Value& v, CallArgs& a) { return bind_args("float", a, {}), v.is_float(); }
bool test_number(Interpreter&, const Value& v, CallArgs& a) { return bind_args("number", a, {}), v.is_number(); }
bool test_string(Interpreter&, const Value& v, CallArgs& a) { return bind_args("string", a, {}), v.is_string(); }
bool test_mapping(Interpreter&, const Value& v, CallArgs& a) { return bind_args("mapping", a, {}), v.is_dict(); }

bool test_iterable(Interpreter&, const Value& v, CallArgs& a) {
  bind_args("iterable", a, {});
  return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict() ||
         (v.is_object() && dynamic_cast<const GeneratorObject*>(&v.as_object()) != nullptr);
}

bool test_sequence(Interpreter&, const Value& v, CallArgs& a) {
  bind_args("sequence", a, {});
  return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
}

bool test_callable(Interpreter&, const Value& v, CallArgs& a) {
  bind_args("callable", a, {});
  return v.is_object() && v.as_object().is_callable();
}

bool test_sameas(Interpreter&, const Value& v, CallArgs& a) {
  const auto args = bind_args("sameas", a, {{"other", Value(), ParamKind::kRequired}});
  const Value& other = args[0];
  if (v.type() != other.type()) return false;
  switch (v.type()) {
    case ValueType::kList: return v.list_ptr() == other.list_ptr();
    case ValueType::kDict: return v.dict_ptr() == other.dict_ptr();
    case ValueType::kObject: return v.object_ptr() == other.object_ptr();
    case ValueType::kUndefined: return false;
    default: return py_equal(v, other);
  }
}

bool compare_test(Interpreter& interpreter, const Value& v, CallArgs& a, std::string_view name, CompareOp op) {
  const auto args = bind_args(name, a, {{"other", Value(), ParamKind::kRequired}});
  // Reuse the interpreter's comparison through a tiny expression-free path.
  switch (op) {
    case CompareOp::kEq: return py_equal(v, args[0]);
    case CompareOp::kNe: return !py_equal(v, args[0]);
    default: break;
  }
  (void)interpreter;
  if (v.is_undefined()) Interpreter::fail_undefined(v);
  if (args[0].is_undefined()) Interpreter::fail_undefined(args[0]);
  switch (op) {
    case CompareOp::kLt: return py_less(v, args[0]);
    case CompareOp::kLe: return !py_less(args[0], v);
    case CompareOp::kGt: return py_less(args[0], v);
    case CompareOp::kGe: return !py_less(v, args[0]);
    default: return false;
  }
}

bool test_eq(Interpreter& i, const Value& v, CallArgs& a) { return compare_test(i, v, a, "eq", CompareOp::kEq); }
bool test_ne(Interpreter& i, const Value& v, CallArgs& a) { return compare_test(i, v, a, "ne", CompareOp::kNe); }
bool test_lt(Interpreter& i, const Value& v, CallArgs& a) { return compare_test(i, v, a, "lt", CompareOp::kLt); }
bool test_le(Interpreter& i, const Value& v, CallArgs& a) { return compare_test(i, v, a, "le", CompareOp::kLe); }
bool test_gt(Interpreter& i, const Value& v, CallArgs& a) { return compare_test(i, v, a, "gt", CompareOp::kGt); }
bool test_ge(Interpreter& i, const Value& v, CallArgs& a) { return compare_test(i, v, a, "ge", CompareOp::kGe); }

bool test_in(Interpreter& interpreter, const Value& v, CallArgs& a) {
  const auto args = bind_args("in", a, {{"seq", Value(), ParamKind::kRequired}});
  const Value& seq = args[0];
  if (seq.is_string()) {
    EXL_CHECK(v.is_string(), kInvalidArgument, "'in <string>' requires string as left operand, not {}",
              v.type_name());
    return seq.as_string().find(v.as_string()) != std::string::npos;
  }
  if (seq.is_dict()) return seq.as_dict().find(v) != nullptr;
  const List items = interpreter.iterate(seq);
  return std::any_of(items.begin(), items.end(), [&](const Value& item) { return py_equal(item, v); });
}

Value remainder(Interpreter& interpreter, const Value& v, const Value& divisor) {
  return interpreter.binary(BinaryOp::kMod, v, divisor);
}

bool test_odd(Interpreter& i, const Value& v, CallArgs& a) {
  bind_args("odd", a, {});
  return py_equal(remainder(i, v, Value::integer(2)), Value::integer(1));
}
bool test_even(Interpreter& i, const Value& v, CallArgs& a) {
  bind_args("even", a, {});
  return py_equal(remainder(i, v, Value::integer(2)), Value::integer(0));
}
bool test_divisibleby(Interpreter& i, const Value& v, CallArgs& a) {
  const auto args = bind_args("divisibleby", a, {{"num", Value(), ParamKind::kRequired}});
  return py_equal(remainder(i, v, args[0]), Value::integer(0));
}

bool has_cased(const std::u32string& text, bool want_lower) {
  bool any = false;
  for (char32_t c : text) {
    if (!is_cased_letter(c)) continue;
    any = true;
    const bool lower = to_lower(c) == c;
    if (lower != want_lower) return false;
  }
  return any;
}

bool test_lower(Interpreter&, const Value& v, CallArgs& a) {
  bind_args("lower", a, {});
  return has_cased(decode_utf8(to_str(v)), true);
}
bool test_upper(Interpreter&, const Value& v, CallArgs& a) {
  bind_args("upper", a, {});
  return has_cased(decode_utf8(to_str(v)), false);
}
bool test_escaped(Interpreter&, const Value&, CallArgs& a) { return bind_args("escaped", a, {}), false; }
bool test_filter(Interpreter&, const Value& v, CallArgs& a) {
  bind_args("filter", a, {});
  return v.is_string() && find_filter(v.as_string()) != nullptr;
}
bool test_test(Interpreter&, const Value& v, CallArgs& a) {
  bind_args("test", a, {});
  return v.is_string() && find_test(v.as_string()) != nullptr;
}

struct TestEntry {
  std::string_view name;
  TestFn fn;
};

constexpr TestEntry kTests[] = {
    {"!=", test_ne},          {"<", test_lt},
    {"<=", test_le},          {"==", test_eq},
    {">", test_gt},           {">=", test_ge},
    {"boolean", test_boolean}, {"callable", test_callable},
    {"defined", test_defined}, {"divisibleby", test_divisibleby},
    {"eq", test_eq},          {"equalto", test_eq},
    {"escaped", test_escaped}, {"even", test_even},
    {"false", test_false},    {"filter", test_filter},
    {"float", test_float},    {"ge", test_ge},
    {"greaterthan", test_gt}, {"gt", test_gt},
    {"in", test_in},          {"integer", test_integer},
    {"iterable", test_iterable}, {"le", test_le},
    {"lessthan", test_lt},    {"lower", test_lower},
    {"lt", test_lt},          {"mapping", test_mapping},
    {"ne", test_ne},          {"none", test_none},
    {"number", test_number},  {"odd", test_odd},
    {"sameas", test_sameas},  {"sequence", test_sequence},
    {"string", test_string},  {"test", test_test},
    {"true", test_true},      {"undefined", test_undefined},
    {"upper", test_upper},
};

// ---- globals ----

Value global_range(Interpreter& interpreter, CallArgs& args) {
  EXL_CHECK(args.keyword.empty(), kInvalidArgument, "range() takes no keyword arguments");
  EXL_CHECK(!args.positional.empty() && args.positional.size() <= 3, kInvalidArgument,
            "range expected 1 to 3 arguments, got {}", args.positional.size());
  int64_t bounds[3] = {0, 0, 1};
  for (size_t i = 0; i < args.positional.size(); ++i) {
    const Value& v = args.positional[i];
    if (v.is_undefined()) Interpreter::fail_undefined(v);
    EXL_CHECK(v.is_int() || v.is_bool(), kInvalidArgument, "'{}' object cannot be interpreted as an integer",
              v.type_name());
  }
  if (args.positional.size() == 1) {
    bounds[1] = args.positional[0].as_int();
  } else {
    bounds[0] = args.positional[0].as_int();
    bounds[1] = args.positional[1].as_int();
    if (args.positional.size() == 3) bounds[2] = args.positional[2].as_int();
  }
  const int64_t step = bounds[2];
  EXL_CHECK(step != 0, kInvalidArgument, "range() arg 3 must not be zero");
  List items;
  for (int64_t v = bounds[0]; step > 0 ? v < bounds[1] : v > bounds[1]; v += step) {
    EXL_CHECK(static_cast<int64_t>(items.size()) < kMaxRange, kInvalidArgument,
              "Range too big. The sandbox blocks ranges larger than MAX_RANGE ({}).", kMaxRange);
    items.push_back(Value::integer(v));
    if ((step > 0 && v > INT64_MAX - step) || (step < 0 && v < INT64_MIN - step)) break;
  }
  interpreter.charge(items.size());
  return Value::list(std::move(items));
}

// dict(*args, **kwargs) of Python: a mapping or an iterable of pairs, then keyword arguments.
Dict build_dict(Interpreter& interpreter, const CallArgs& args, std::string_view function) {
  EXL_CHECK(args.positional.size() <= 1, kInvalidArgument, "{} expected at most 1 argument, got {}", function,
            args.positional.size());
  Dict dict;
  if (!args.positional.empty()) {
    const Value& source = args.positional[0];
    if (source.is_dict()) {
      dict = source.as_dict();
    } else {
      for (const Value& pair : interpreter.iterate(source)) {
        const List items = interpreter.iterate(pair);
        EXL_CHECK(items.size() == 2, kInvalidArgument,
                  "dictionary update sequence element has length {}; 2 is required", items.size());
        dict.set(items[0], items[1]);
      }
    }
  }
  for (const auto& [key, value] : args.keyword) dict.set(Value::string(key), value);
  return dict;
}

Value global_dict(Interpreter& interpreter, CallArgs& args) {
  return Value::dict(build_dict(interpreter, args, "dict"));
}

Value global_namespace(Interpreter& interpreter, CallArgs& args) {
  auto ns = std::make_shared<NamespaceObject>();
  const Dict attrs = build_dict(interpreter, args, "namespace");
  for (const auto& [key, value] : attrs.entries()) {
    ns->set(to_str(key), value);
  }
  interpreter.track(ns);
  return Value::object(std::move(ns));
}

class CyclerObject : public Object, public std::enable_shared_from_this<CyclerObject> {
 public:
  explicit CyclerObject(List items) : items_(std::move(items)) {}
  std::string_view type_name() const override { return "Cycler"; }
  void release_references() override { items_ = List{Value::none()}; }
  Value get_attr(std::string_view name) const override {
    auto self = std::const_pointer_cast<CyclerObject>(shared_from_this());
    if (name == "current") return items_[position_];
    if (name == "next") {
      return make_native("next", [self](Interpreter&, CallArgs&) {
        Value current = self->items_[self->position_];
        self->position_ = (self->position_ + 1) % self->items_.size();
        return current;
      });
    }
    if (name == "reset") {
      return make_native("reset", [self](Interpreter&, CallArgs&) {
        self->position_ = 0;
        return Value::none();
      });
    }
    return Object::get_attr(name);
  }

 private:
  List items_;
  size_t position_ = 0;
};

Value global_cycler(Interpreter& interpreter, CallArgs& args) {
  EXL_CHECK(!args.positional.empty(), kInvalidArgument, "at least one item has to be provided");
  auto cycler = std::make_shared<CyclerObject>(args.positional);
  interpreter.track(cycler);
  return Value::object(std::move(cycler));
}

Value global_joiner(Interpreter&, CallArgs& args) {
  const auto a = bind_args("joiner", args, {{"sep", Value::string(", ")}});
  auto used = std::make_shared<bool>(false);
  const std::string separator = to_str(a[0]);
  return make_native("joiner", [used, separator](Interpreter&, CallArgs&) {
    if (!*used) {
      *used = true;
      return Value::string("");
    }
    return Value::string(separator);
  });
}

Value global_lipsum(Interpreter&, CallArgs&) {
  fail(ErrorKind::kUnsupported, "lipsum() is not supported by exl (it is random)");
}

Value global_raise_exception(Interpreter&, CallArgs& args) {
  const auto a = bind_args("raise_exception", args, {{"message", Value(), ParamKind::kRequired}});
  throw ChatTemplateRaised(to_str(a[0]));
}

Value global_strftime_now(Interpreter& interpreter, CallArgs& args) {
  const auto a = bind_args("strftime_now", args, {{"format", Value(), ParamKind::kRequired}});
  const std::string format = expect_string(a[0], "strftime_now", "format");
  EXL_CHECK(format.size() <= 1024, kInvalidArgument, "strftime_now: format longer than 1024 bytes");
  const std::time_t now = std::chrono::system_clock::to_time_t(interpreter.now());
  std::tm local{};
  localtime_r(&now, &local);
  std::string buffer(format.size() * 32 + 64, '\0');
  const size_t length = format.empty() ? 0 : std::strftime(buffer.data(), buffer.size(), format.c_str(), &local);
  buffer.resize(length);
  return Value::string(std::move(buffer));
}

}  // namespace

TestFn find_test(std::string_view name) {
  for (const auto& entry : kTests) {
    if (entry.name == name) return entry.fn;
  }
  return nullptr;
}

Value find_global(std::string_view name) {
  static const std::pair<std::string_view, NativeFunction::Fn> kGlobals[] = {
      {"range", global_range},
      {"dict", global_dict},
      {"namespace", global_namespace},
      {"cycler", global_cycler},
      {"joiner", global_joiner},
      {"lipsum", global_lipsum},
      {"raise_exception", global_raise_exception},
      {"strftime_now", global_strftime_now},
  };
  for (const auto& [global_name, fn] : kGlobals) {
    if (global_name == name) return make_native(std::string(name), fn);
  }
  return Value::undefined(fmt::format("'{}' is undefined", name));
}

std::vector<Value> bind_args(std::string_view function, const CallArgs& args, std::initializer_list<Param> params) {
  const std::vector<Param> list(params);
  std::vector<Value> values(list.size());
  std::vector<bool> given(list.size(), false);
  EXL_CHECK(args.positional.size() <= list.size(), kInvalidArgument,
            "{}() takes at most {} argument(s) ({} given)", function, list.size(), args.positional.size());
  for (size_t i = 0; i < args.positional.size(); ++i) {
    values[i] = args.positional[i];
    given[i] = true;
  }
  for (const auto& keyword : args.keyword) {
    const std::string& key = keyword.first;
    const auto it = std::find_if(list.begin(), list.end(), [&](const Param& p) { return p.name == key; });
    EXL_CHECK(it != list.end(), kInvalidArgument, "{}() got an unexpected keyword argument '{}'", function, key);
    const auto index = static_cast<size_t>(it - list.begin());
    EXL_CHECK(!given[index], kInvalidArgument, "{}() got multiple values for argument '{}'", function, key);
    values[index] = keyword.second;
    given[index] = true;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    if (given[i]) continue;
    EXL_CHECK(list[i].kind != ParamKind::kRequired, kInvalidArgument, "{}() missing required argument '{}'",
              function, list[i].name);
    values[i] = list[i].default_value;
  }
  return values;
}

}  // namespace exl::chat
