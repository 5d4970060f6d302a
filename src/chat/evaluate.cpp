// Expression evaluation of the interpreter: operators, lookups (the sandbox's getattr/getitem), calls, filters,
// tests and slices.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "chat/builtins.h"
#include "chat/interpreter.h"
#include "chat/unicode.h"
#include "core/error.h"

namespace exl::chat {

namespace {

bool is_ascii(std::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

// A slice bound: absent (None or omitted) or an integer. Other values make Python raise TypeError, which the
// sandbox's getitem turns into an undefined result.
struct SliceBound {
  bool valid = true;
  std::optional<int64_t> value;
};

SliceBound slice_bound(const Value* value) {
  if (value == nullptr || value->is_none()) return {};
  if (value->is_int() || value->is_bool()) return {true, value->as_int()};
  return {false, std::nullopt};
}

// Python's PySlice_AdjustIndices; returns the selected indices.
std::vector<int64_t> slice_indices(int64_t length, const SliceBound bounds[3]) {
  const int64_t step = bounds[2].value.value_or(1);
  EXL_CHECK(step != 0, kInvalidArgument, "slice step cannot be zero");
  auto adjust = [&](std::optional<int64_t> index, int64_t default_value) {
    if (!index) return default_value;
    int64_t value = *index;
    if (value < 0) {
      value += length;
      if (value < 0) value = step < 0 ? -1 : 0;
    } else if (value >= length) {
      value = step < 0 ? length - 1 : length;
    }
    return value;
  };
  const int64_t start = adjust(bounds[0].value, step < 0 ? length - 1 : 0);
  const int64_t stop = adjust(bounds[1].value, step < 0 ? -1 : length);
  std::vector<int64_t> indices;
  if (step > 0) {
    for (int64_t i = start; i < stop; i += step) indices.push_back(i);
  } else {
    for (int64_t i = start; i > stop; i += step) indices.push_back(i);
  }
  return indices;
}

int64_t py_floor_div(int64_t a, int64_t b) {
  EXL_CHECK(b != 0, kInvalidArgument, "integer division or modulo by zero");
  EXL_CHECK(!(a == std::numeric_limits<int64_t>::min() && b == -1), kUnsupported, "integer overflow in {} // {}", a, b);
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t py_mod(int64_t a, int64_t b) {
  EXL_CHECK(b != 0, kInvalidArgument, "integer division or modulo by zero");
  if (b == -1) return 0;
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

double py_float_mod(double a, double b) {
  EXL_CHECK(b != 0.0, kInvalidArgument, "float modulo by zero");
  double r = std::fmod(a, b);
  if (r != 0.0) {
    if ((r < 0) != (b < 0)) r += b;
  } else {
    r = std::copysign(0.0, b);
  }
  return r;
}

double py_float_floor_div(double a, double b) {
  EXL_CHECK(b != 0.0, kInvalidArgument, "float floor division by zero");
  const double mod = std::fmod(a, b);
  double div = (a - mod) / b;
  if (mod != 0.0 && ((b < 0) != (mod < 0))) div -= 1.0;
  if (div == 0.0) return std::copysign(0.0, a / b);
  double floor_div = std::floor(div);
  if (div - floor_div > 0.5) floor_div += 1.0;
  return floor_div;
}

int64_t py_int_pow(int64_t base, int64_t exponent) {
  int64_t result = 1;
  while (exponent > 0) {
    if (exponent & 1) result = checked_mul(result, base);
    exponent >>= 1;
    if (exponent > 0) base = checked_mul(base, base);
  }
  return result;
}

[[noreturn]] void fail_operands(std::string_view op, const Value& a, const Value& b) {
  fail(ErrorKind::kInvalidArgument, "unsupported operand type(s) for {}: '{}' and '{}'", op, a.type_name(),
       b.type_name());
}

bool is_int_like(const Value& v) { return v.is_int() || v.is_bool(); }

// Names of attributes that Python numbers have but exl does not model.
bool is_number_attribute(std::string_view name) {
  static constexpr std::string_view kNames[] = {"real", "imag", "numerator", "denominator", "conjugate",
                                                "bit_length", "bit_count", "to_bytes", "as_integer_ratio",
                                                "is_integer", "hex", "fromhex"};
  for (std::string_view known : kNames) {
    if (known == name) return true;
  }
  return false;
}

}  // namespace

Value Interpreter::getattr(const Value& object, std::string_view name) {
  switch (object.type()) {
    case ValueType::kUndefined: fail_undefined(object);
    case ValueType::kObject: return object.as_object().get_attr(name);
    case ValueType::kDict: {
      Value method = find_method(object, name);
      if (!method.is_undefined() || method.undefined_kind() == UndefinedKind::kUnsafe) return method;
      const Value* item = object.as_dict().find(name);
      if (item != nullptr) return *item;
      break;
    }
    case ValueType::kString:
    case ValueType::kList: {
      Value method = find_method(object, name);
      if (!method.is_undefined() || method.undefined_kind() == UndefinedKind::kUnsafe) return method;
      break;
    }
    case ValueType::kBool:
    case ValueType::kInt:
    case ValueType::kFloat:
      if (is_number_attribute(name)) {
        fail(ErrorKind::kUnsupported, "attribute '{}' of a number is not supported by exl", name);
      }
      break;
    case ValueType::kNone: break;
  }
  const std::string type = object.is_none() ? "None" : fmt::format("{} object", object.type_name());
  return Value::undefined(fmt::format("'{}' has no attribute '{}'", type, name));
}

Value Interpreter::getitem(const Value& object, const Value& key) {
  switch (object.type()) {
    case ValueType::kUndefined: fail_undefined(object);
    case ValueType::kList:
      if (is_int_like(key)) {
        const List& items = object.as_list();
        int64_t index = key.as_int();
        if (index < 0) index += static_cast<int64_t>(items.size());
        if (index >= 0 && index < static_cast<int64_t>(items.size())) return items[static_cast<size_t>(index)];
      }
      break;
    case ValueType::kString:
      if (is_int_like(key)) {
        const std::string& text = object.as_string();
        int64_t index = key.as_int();
        if (is_ascii(text)) {
          if (index < 0) index += static_cast<int64_t>(text.size());
          if (index >= 0 && index < static_cast<int64_t>(text.size())) {
            return Value::string(std::string(1, text[static_cast<size_t>(index)]));
          }
        } else {
          const std::u32string chars = decode_utf8(text);
          if (index < 0) index += static_cast<int64_t>(chars.size());
          if (index >= 0 && index < static_cast<int64_t>(chars.size())) {
            std::string out;
            append_utf8(out, chars[static_cast<size_t>(index)]);
            return Value::string(std::move(out));
          }
        }
      }
      break;
    case ValueType::kDict: {
      const Value* item = object.as_dict().find(key);
      if (item != nullptr) return *item;
      break;
    }
    default: break;
  }
  if (key.is_string()) {
    // The sandbox falls back to attribute lookup for string keys (d['items'] is the method).
    if (object.is_dict()) {
      Value method = find_method(object, key.as_string());
      if (!method.is_undefined() || method.undefined_kind() == UndefinedKind::kUnsafe) return method;
    } else {
      Value attr = getattr(object, key.as_string());
      if (!attr.is_undefined() || attr.undefined_kind() == UndefinedKind::kUnsafe) return attr;
    }
    const std::string type = object.is_none() ? "None" : fmt::format("{} object", object.type_name());
    return Value::undefined(fmt::format("'{}' has no attribute '{}'", type, key.as_string()));
  }
  const std::string type = object.is_none() ? "None" : fmt::format("{} object", object.type_name());
  return Value::undefined(fmt::format("{} has no element {}", type, to_repr(key)));
}

Value Interpreter::call(const Value& callee, CallArgs& args) {
  if (callee.is_undefined()) fail_undefined(callee);
  EXL_CHECK(callee.is_object() && callee.as_object().is_callable(), kInvalidArgument, "'{}' object is not callable",
            callee.type_name());
  DepthGuard guard(*this);
  charge(1);
  return callee.as_object().call(*this, args);
}

Value Interpreter::apply_filter(std::string_view name, const Value& input, CallArgs& args) {
  const FilterFn fn = find_filter(name);
  EXL_CHECK(fn != nullptr, kInvalidArgument, "No filter named '{}'.", name);
  EXL_CHECK(fn != &unsupported_filter, kUnsupported, "filter '{}' is not supported by exl", name);
  return fn(*this, input, args);
}

bool Interpreter::apply_test(std::string_view name, const Value& input, CallArgs& args) {
  const TestFn fn = find_test(name);
  EXL_CHECK(fn != nullptr, kInvalidArgument, "No test named '{}'.", name);
  return fn(*this, input, args);
}

CallArgs Interpreter::eval_args(const Expr& expr, const std::shared_ptr<Scope>& scope, size_t first_arg) {
  CallArgs args;
  for (size_t i = first_arg; i < expr.children.size(); ++i) args.positional.push_back(eval(*expr.children[i], scope));
  for (const auto& [key, value] : expr.kwargs) args.keyword.emplace_back(key, eval(*value, scope));
  return args;
}

Value Interpreter::eval_call(const Expr& expr, const std::shared_ptr<Scope>& scope) {
  const Value callee = eval(*expr.children[0], scope);
  CallArgs args = eval_args(expr, scope, 1);
  offset_ = expr.offset;
  return call(callee, args);
}

Value Interpreter::eval_filter(const Expr& expr, const std::shared_ptr<Scope>& scope) {
  const Value input = eval(*expr.children[0], scope);
  CallArgs args = eval_args(expr, scope, 1);
  offset_ = expr.offset;
  EXL_CHECK(expr.filter_fn != nullptr, kInvalidArgument, "No filter named '{}' found.", expr.name);
  EXL_CHECK(expr.filter_fn != &unsupported_filter, kUnsupported,
            "filter '{}' is not supported by exl (see docs/chat-templates.md)", expr.name);
  charge(1);
  return expr.filter_fn(*this, input, args);
}

bool Interpreter::eval_test(const Expr& expr, const std::shared_ptr<Scope>& scope) {
  const Value input = eval(*expr.children[0], scope);
  CallArgs args = eval_args(expr, scope, 1);
  offset_ = expr.offset;
  EXL_CHECK(expr.test_fn != nullptr, kInvalidArgument, "No test named '{}' found.", expr.name);
  charge(1);
  return expr.test_fn(*this, input, args);
}

Value Interpreter::eval_slice(const Expr& expr, const std::shared_ptr<Scope>& scope) {
  const Value object = eval(*expr.children[0], scope);
  SliceBound bounds[3];
  bool valid = true;
  for (size_t i = 0; i < 3; ++i) {
    const auto& child = expr.children[i + 1];
    if (!child) continue;
    const Value bound = eval(*child, scope);
    bounds[i] = slice_bound(&bound);
    valid = valid && bounds[i].valid;
  }
  offset_ = expr.offset;
  if (object.is_undefined()) fail_undefined(object);
  if (valid && object.is_list()) {
    const List& items = object.as_list();
    List out;
    for (int64_t i : slice_indices(static_cast<int64_t>(items.size()), bounds)) {
      out.push_back(items[static_cast<size_t>(i)]);
    }
    charge(out.size());
    return Value::list(std::move(out), object.is_tuple() ? SequenceKind::kTuple : SequenceKind::kList);
  }
  if (valid && object.is_string()) {
    const std::string& text = object.as_string();
    std::string out;
    if (is_ascii(text)) {
      for (int64_t i : slice_indices(static_cast<int64_t>(text.size()), bounds)) {
        out.push_back(text[static_cast<size_t>(i)]);
      }
    } else {
      const std::u32string chars = decode_utf8(text);
      for (int64_t i : slice_indices(static_cast<int64_t>(chars.size()), bounds)) {
        append_utf8(out, chars[static_cast<size_t>(i)]);
      }
    }
    charge(out.size() / 64);
    return Value::string(std::move(out));
  }
  const std::string type = object.is_none() ? "None" : fmt::format("{} object", object.type_name());
  return Value::undefined(fmt::format("{} has no element slice", type));
}

Value Interpreter::binary(BinaryOp op, const Value& a, const Value& b) {
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  const bool ints = is_int_like(a) && is_int_like(b);
  const bool numbers = a.is_number() && b.is_number();
  switch (op) {
    case BinaryOp::kAdd:
      if (ints) return Value::integer(checked_add(a.as_int(), b.as_int()));
      if (numbers) return Value::floating(a.as_double() + b.as_double());
      if (a.is_string() && b.is_string()) {
        check_size(a.as_string().size() + b.as_string().size());
        charge((a.as_string().size() + b.as_string().size()) / 256);
        return Value::string(a.as_string() + b.as_string());
      }
      if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
        List items = a.as_list();
        items.insert(items.end(), b.as_list().begin(), b.as_list().end());
        charge(items.size());
        return Value::list(std::move(items), a.is_tuple() ? SequenceKind::kTuple : SequenceKind::kList);
      }
      if (a.is_string()) {
        fail(ErrorKind::kInvalidArgument, "can only concatenate str (not \"{}\") to str", b.type_name());
      }
      if (a.is_list() && !a.is_tuple()) {
        fail(ErrorKind::kInvalidArgument, "can only concatenate list (not \"{}\") to list", b.type_name());
      }
      fail_operands("+", a, b);
    case BinaryOp::kSub:
      if (ints) return Value::integer(checked_sub(a.as_int(), b.as_int()));
      if (numbers) return Value::floating(a.as_double() - b.as_double());
      fail_operands("-", a, b);
    case BinaryOp::kMul: {
      if (ints) return Value::integer(checked_mul(a.as_int(), b.as_int()));
      if (numbers) return Value::floating(a.as_double() * b.as_double());
      const Value& sequence = is_int_like(a) ? b : a;
      const Value& count_value = is_int_like(a) ? a : b;
      if (!is_int_like(count_value) || !(sequence.is_string() || sequence.is_list())) fail_operands("*", a, b);
      const int64_t count = std::max<int64_t>(0, count_value.as_int());
      if (sequence.is_string()) {
        const std::string& text = sequence.as_string();
        check_size(text.empty() ? 0 : static_cast<size_t>(checked_mul(static_cast<int64_t>(text.size()), count)));
        charge(text.size() * static_cast<uint64_t>(count) / 256);
        std::string out;
        for (int64_t i = 0; i < count; ++i) out += text;
        return Value::string(std::move(out));
      }
      const List& items = sequence.as_list();
      const int64_t total = items.empty() ? 0 : checked_mul(static_cast<int64_t>(items.size()), count);
      check_size(static_cast<size_t>(total) * sizeof(Value));
      charge(static_cast<uint64_t>(total));
      List out;
      for (int64_t i = 0; i < count && !items.empty(); ++i) out.insert(out.end(), items.begin(), items.end());
      return Value::list(std::move(out), sequence.is_tuple() ? SequenceKind::kTuple : SequenceKind::kList);
    }
    case BinaryOp::kDiv:
      if (!numbers) fail_operands("/", a, b);
      EXL_CHECK(b.as_double() != 0.0, kInvalidArgument, "division by zero");
      return Value::floating(a.as_double() / b.as_double());
    case BinaryOp::kFloorDiv:
      if (ints) return Value::integer(py_floor_div(a.as_int(), b.as_int()));
      if (numbers) return Value::floating(py_float_floor_div(a.as_double(), b.as_double()));
      fail_operands("//", a, b);
    case BinaryOp::kMod:
      if (ints) return Value::integer(py_mod(a.as_int(), b.as_int()));
      if (numbers) return Value::floating(py_float_mod(a.as_double(), b.as_double()));
      if (a.is_string()) {
        std::string out = python_percent_format(a.as_string(), b);
        check_size(out.size());
        return Value::string(std::move(out));
      }
      fail_operands("%", a, b);
    case BinaryOp::kPow:
      if (ints && b.as_int() >= 0) return Value::integer(py_int_pow(a.as_int(), b.as_int()));
      if (numbers) {
        const double base = a.as_double();
        const double exponent = b.as_double();
        EXL_CHECK(!(base == 0.0 && exponent < 0), kInvalidArgument, "0.0 cannot be raised to a negative power");
        EXL_CHECK(!(base < 0 && exponent != std::floor(exponent)), kUnsupported,
                  "negative number raised to a fractional power gives a complex number (not supported)");
        return Value::floating(std::pow(base, exponent));
      }
      fail_operands("** or pow()", a, b);
  }
  fail(ErrorKind::kInternal, "unknown binary operator");
}

bool Interpreter::compare(CompareOp op, const Value& a, const Value& b) {
  switch (op) {
    case CompareOp::kEq: return py_equal(a, b);
    case CompareOp::kNe: return !py_equal(a, b);
    case CompareOp::kIn:
    case CompareOp::kNotIn: {
      bool found = false;
      if (b.is_string()) {
        if (a.is_undefined()) fail_undefined(a);
        EXL_CHECK(a.is_string(), kInvalidArgument, "'in <string>' requires string as left operand, not {}",
                  a.type_name());
        found = b.as_string().find(a.as_string()) != std::string::npos;
      } else if (b.is_dict()) {
        EXL_CHECK(!a.is_list() || a.is_tuple(), kInvalidArgument, "unhashable type: '{}'", a.type_name());
        EXL_CHECK(!a.is_dict(), kInvalidArgument, "unhashable type: 'dict'");
        found = b.as_dict().find(a) != nullptr;
      } else if (b.is_list()) {
        for (const Value& item : b.as_list()) {
          if (py_equal(item, a)) {
            found = true;
            break;
          }
        }
        charge(b.as_list().size() / 16);
      } else if (!b.is_undefined()) {
        fail(ErrorKind::kInvalidArgument, "argument of type '{}' is not iterable", b.type_name());
      }
      return op == CompareOp::kIn ? found : !found;
    }
    default: break;
  }
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  const char* spelling = op == CompareOp::kLt ? "<" : op == CompareOp::kLe ? "<=" : op == CompareOp::kGt ? ">" : ">=";
  const bool comparable = (a.is_number() && b.is_number()) || (a.is_string() && b.is_string()) ||
                          (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple());
  EXL_CHECK(comparable, kInvalidArgument, "'{}' not supported between instances of '{}' and '{}'", spelling,
            a.type_name(), b.type_name());
  switch (op) {
    case CompareOp::kLt: return py_less(a, b);
    case CompareOp::kLe: return !py_less(b, a);
    case CompareOp::kGt: return py_less(b, a);
    case CompareOp::kGe: return !py_less(a, b);
    default: return false;
  }
}

Value Interpreter::eval(const Expr& expr, const std::shared_ptr<Scope>& scope) {
  DepthGuard guard(*this);
  offset_ = expr.offset;
  switch (expr.kind) {
    case ExprKind::kLiteral: return expr.literal;
    case ExprKind::kName: {
      const Value* value = scope->lookup(expr.name);
      return value != nullptr ? *value : Value::undefined(fmt::format("'{}' is undefined", expr.name));
    }
    case ExprKind::kList:
    case ExprKind::kTuple: {
      List items;
      for (const auto& child : expr.children) items.push_back(eval(*child, scope));
      return Value::list(std::move(items), expr.kind == ExprKind::kTuple ? SequenceKind::kTuple : SequenceKind::kList);
    }
    case ExprKind::kDict: {
      Dict dict;
      for (size_t i = 0; i + 1 < expr.children.size(); i += 2) {
        Value key = eval(*expr.children[i], scope);
        Value value = eval(*expr.children[i + 1], scope);
        EXL_CHECK(!(key.is_list() && !key.is_tuple()) && !key.is_dict() && !key.is_undefined(), kInvalidArgument,
                  "unhashable type: '{}'", key.type_name());
        dict.set(std::move(key), std::move(value));
      }
      return Value::dict(std::move(dict));
    }
    case ExprKind::kAttr: {
      const Value object = eval(*expr.children[0], scope);
      offset_ = expr.offset;
      return getattr(object, expr.name);
    }
    case ExprKind::kItem: {
      const Value object = eval(*expr.children[0], scope);
      const Value key = eval(*expr.children[1], scope);
      offset_ = expr.offset;
      return getitem(object, key);
    }
    case ExprKind::kSlice: return eval_slice(expr, scope);
    case ExprKind::kCall: return eval_call(expr, scope);
    case ExprKind::kFilter: return eval_filter(expr, scope);
    case ExprKind::kTest: return Value::boolean(eval_test(expr, scope));
    case ExprKind::kNeg:
    case ExprKind::kPos: {
      const Value value = eval(*expr.children[0], scope);
      offset_ = expr.offset;
      if (value.is_undefined()) fail_undefined(value);
      const bool negate = expr.kind == ExprKind::kNeg;
      if (is_int_like(value)) return Value::integer(negate ? checked_sub(0, value.as_int()) : value.as_int());
      if (value.is_float()) return Value::floating(negate ? -value.as_double() : value.as_double());
      fail(ErrorKind::kInvalidArgument, "bad operand type for unary {}: '{}'", negate ? '-' : '+', value.type_name());
    }
    case ExprKind::kNot: return Value::boolean(!eval(*expr.children[0], scope).truthy());
    case ExprKind::kBinary: {
      const Value left = eval(*expr.children[0], scope);
      const Value right = eval(*expr.children[1], scope);
      offset_ = expr.offset;
      return binary(expr.binary_op, left, right);
    }
    case ExprKind::kConcat: {
      std::string out;
      for (const auto& child : expr.children) {
        out += to_str(eval(*child, scope));
        check_size(out.size());
      }
      charge(out.size() / 256);
      return Value::string(std::move(out));
    }
    case ExprKind::kCompare: {
      Value left = eval(*expr.children[0], scope);
      for (size_t i = 0; i < expr.compare_ops.size(); ++i) {
        Value right = eval(*expr.children[i + 1], scope);
        offset_ = expr.offset;
        if (!compare(expr.compare_ops[i], left, right)) return Value::boolean(false);
        left = std::move(right);
      }
      return Value::boolean(true);
    }
    case ExprKind::kAnd: {
      Value left = eval(*expr.children[0], scope);
      return left.truthy() ? eval(*expr.children[1], scope) : left;
    }
    case ExprKind::kOr: {
      Value left = eval(*expr.children[0], scope);
      return left.truthy() ? left : eval(*expr.children[1], scope);
    }
    case ExprKind::kCondExpr: {
      if (eval(*expr.children[1], scope).truthy()) return eval(*expr.children[0], scope);
      if (expr.children[2]) return eval(*expr.children[2], scope);
      return Value::undefined("the inline if-expression evaluated to false and no else section was defined.");
    }
    case ExprKind::kBlockInput:
      EXL_CHECK(!block_inputs_.empty(), kInternal, "block filter input missing");
      return block_inputs_.back();
  }
  fail(ErrorKind::kInternal, "unknown expression kind");
}

}  // namespace exl::chat
