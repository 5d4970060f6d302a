// Template values with Python semantics: undefined, None, bool, int, float, str, list/tuple, dict (insertion
// ordered), and objects (callables, namespaces, loop contexts). Lists and dicts are immutable once built and shared.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace exl::chat {

class Value;
class Dict;
class Object;
class Interpreter;

using List = std::vector<Value>;
using ListPtr = std::shared_ptr<const List>;
using DictPtr = std::shared_ptr<const Dict>;
using ObjectPtr = std::shared_ptr<Object>;

// Lists and dicts nest at most this deep, so that printing, comparing and destroying values cannot exhaust the stack.
inline constexpr int kMaxValueDepth = 600;

enum class ValueType : uint8_t { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kObject };
enum class SequenceKind : uint8_t { kList, kTuple };
// An unsafe undefined is what the sandbox returns for a forbidden attribute: calling it is a security error.
enum class UndefinedKind : uint8_t { kPlain, kUnsafe };

class Value {
 public:
  Value() = default;  // undefined
  static Value undefined(std::string hint, UndefinedKind kind = UndefinedKind::kPlain);
  static Value none();
  static Value boolean(bool value);
  static Value integer(int64_t value);
  static Value floating(double value);
  static Value string(std::string value);
  static Value list(List items, SequenceKind kind = SequenceKind::kList);
  static Value list(ListPtr items, SequenceKind kind = SequenceKind::kList);
  static Value dict(Dict items);
  static Value dict(DictPtr items);
  static Value object(ObjectPtr object);

  ValueType type() const { return type_; }
  bool is_undefined() const { return type_ == ValueType::kUndefined; }
  bool is_none() const { return type_ == ValueType::kNone; }
  bool is_bool() const { return type_ == ValueType::kBool; }
  bool is_int() const { return type_ == ValueType::kInt; }
  bool is_float() const { return type_ == ValueType::kFloat; }
  bool is_number() const { return type_ == ValueType::kBool || type_ == ValueType::kInt || is_float(); }
  bool is_string() const { return type_ == ValueType::kString; }
  bool is_list() const { return type_ == ValueType::kList; }
  bool is_tuple() const { return is_list() && sequence_kind_ == SequenceKind::kTuple; }
  bool is_dict() const { return type_ == ValueType::kDict; }
  bool is_object() const { return type_ == ValueType::kObject; }

  bool as_bool() const { return std::get<bool>(data_); }
  int64_t as_int() const;        // bool or int
  double as_double() const;      // bool, int or float
  const std::string& as_string() const { return std::get<std::string>(data_); }
  const List& as_list() const { return *std::get<ListPtr>(data_); }
  const ListPtr& list_ptr() const { return std::get<ListPtr>(data_); }
  const Dict& as_dict() const { return *std::get<DictPtr>(data_); }
  const DictPtr& dict_ptr() const { return std::get<DictPtr>(data_); }
  Object& as_object() const { return *std::get<ObjectPtr>(data_); }
  const ObjectPtr& object_ptr() const { return std::get<ObjectPtr>(data_); }
  const std::string& undefined_hint() const { return std::get<std::string>(data_); }
  UndefinedKind undefined_kind() const { return undefined_kind_; }
  // Nesting height of lists/dicts (0 for scalars and objects); bounded by kMaxValueDepth.
  int depth() const { return depth_; }

  // Python truthiness (undefined is false).
  bool truthy() const;
  // Python type name, as in error messages ("str", "int", "dict", "NoneType").
  std::string_view type_name() const;

 private:
  ValueType type_ = ValueType::kUndefined;
  SequenceKind sequence_kind_ = SequenceKind::kList;
  UndefinedKind undefined_kind_ = UndefinedKind::kPlain;
  uint16_t depth_ = 0;
  std::variant<std::monostate, bool, int64_t, double, std::string, ListPtr, DictPtr, ObjectPtr> data_;
};

// An insertion-ordered dict. String keys are indexed; other keys (rare: ints in dict literals) are scanned.
class Dict {
 public:
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  void set(Value key, Value value);
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  const std::vector<std::pair<Value, Value>>& entries() const { return entries_; }

 private:
  std::vector<std::pair<Value, Value>> entries_;
  std::unordered_map<std::string, size_t> string_index_;
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

class Object {
 public:
  virtual ~Object() = default;
  virtual std::string_view type_name() const = 0;
  // Attribute lookup; the default has no attributes (returns undefined).
  virtual Value get_attr(std::string_view name) const;
  virtual bool is_callable() const { return false; }
  virtual Value call(Interpreter& interpreter, CallArgs& args);
  // str() of the object; depth is the current printing depth (for nested values inside objects).
  virtual std::string to_str(int depth) const;
  // Drops references to other values (called once rendering ends, to break reference cycles).
  virtual void release_references() {}
};

// Python str(value); undefined prints as "".
std::string to_str(const Value& value);
// Python repr(value) (used for items inside printed lists and dicts).
std::string to_repr(const Value& value, int depth = 0);
// Python repr of a float (shortest round-trip, "1.0", "1e-05", "inf").
std::string float_repr(double value);

// Python ==.
bool py_equal(const Value& a, const Value& b);
// Python <; throws kInvalidArgument for unorderable types.
bool py_less(const Value& a, const Value& b);

// JSON (from the caller) to values, keeping object key order (hence ordered_json: nlohmann::json sorts keys).
Value from_json(const nlohmann::ordered_json& json);

struct JsonDumpOptions {
  std::optional<std::string> indent;  // nullopt: one line; else newline + indent per level
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
  bool ensure_ascii = false;
};
// Python json.dumps(value, ...); throws kInvalidArgument for values JSON cannot represent (undefined, objects).
std::string json_dumps(const Value& value, const JsonDumpOptions& options);

// Integer arithmetic helpers that fail on int64 overflow instead of wrapping.
int64_t checked_add(int64_t a, int64_t b);
int64_t checked_sub(int64_t a, int64_t b);
int64_t checked_mul(int64_t a, int64_t b);

}  // namespace exl::chat
