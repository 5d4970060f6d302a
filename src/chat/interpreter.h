// Tree-walking evaluator of a parsed template with jinja2's sandboxed semantics: scopes, loops, macros, the
// sandbox's attribute/item lookup, Python operators, and bounded work (steps, nesting, output size).
#pragma once

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat/ast.h"
#include "chat/parser.h"
#include "chat/value.h"

namespace exl::chat {

struct RenderLimits {
  size_t max_output_bytes = size_t{256} << 20;  // total text produced (output and captured blocks) and any one string
  uint64_t max_steps = 200'000'000;             // statements, loop iterations, calls and elements processed
  int max_depth = 200;                          // nested evaluation: expressions, statements, macro calls
};

using Clock = std::function<std::chrono::system_clock::time_point()>;

class Scope {
 public:
  explicit Scope(std::shared_ptr<Scope> parent) : parent_(std::move(parent)) {}
  const Value* lookup(std::string_view name) const;
  void set(std::string_view name, Value value);
  void clear() { vars_.clear(); }

 private:
  std::shared_ptr<Scope> parent_;
  std::vector<std::pair<std::string, Value>> vars_;
};

class MacroObject;
class LoopObject;

class Interpreter {
 public:
  Interpreter(const ParsedTemplate& parsed, const RenderLimits& limits, Clock clock);
  // Breaks the reference cycles that scopes, namespaces and loop contexts can form.
  ~Interpreter();
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  // Renders the template with `context` (render variables) on top of the environment globals.
  std::string render(const std::vector<std::pair<std::string, Value>>& context);

  // ---- services for filters, tests, methods and objects ----
  Value getattr(const Value& object, std::string_view name);
  Value getitem(const Value& object, const Value& key);
  Value call(const Value& callee, CallArgs& args);
  Value apply_filter(std::string_view name, const Value& input, CallArgs& args);
  bool apply_test(std::string_view name, const Value& input, CallArgs& args);
  // Python iteration: list/tuple items, dict keys, string characters; undefined iterates as empty.
  List iterate(const Value& iterable);
  // Accounts for work; fails when max_steps is exceeded.
  void charge(uint64_t steps);
  // Fails when a produced string or collection would exceed the output limit.
  void check_size(size_t bytes) const;
  std::chrono::system_clock::time_point now() const { return clock_(); }
  [[noreturn]] static void fail_undefined(const Value& undefined);

  // Python's binary operators (used by filters such as sum).
  Value binary(BinaryOp op, const Value& left, const Value& right);

  // Registers a scope captured by a macro or loop, or an object holding mutable references; all are cleared, in
  // creation order, when rendering ends.
  void track(const std::shared_ptr<Scope>& scope) { tracked_scopes_.push_back(scope); }
  void track(const ObjectPtr& object) { tracked_objects_.push_back(object); }

  Value invoke_macro(const MacroObject& macro, CallArgs& args);
  std::string run_recursive_loop(const LoopObject& loop, const Value& iterable);

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  class DepthGuard {
   public:
    explicit DepthGuard(Interpreter& interpreter) : interpreter_(interpreter) {
      if (++interpreter_.depth_ > interpreter_.limits_.max_depth) {
        --interpreter_.depth_;
        fail_too_deep(interpreter_.limits_.max_depth);
      }
    }
    ~DepthGuard() { --interpreter_.depth_; }
    DepthGuard(const DepthGuard&) = delete;
    DepthGuard& operator=(const DepthGuard&) = delete;

   private:
    Interpreter& interpreter_;
  };
  [[noreturn]] static void fail_too_deep(int max_depth);

  Flow exec_body(const Body& body, const std::shared_ptr<Scope>& scope, std::string& out);
  Flow exec(const Stmt& stmt, const std::shared_ptr<Scope>& scope, std::string& out);
  void exec_for(const Stmt& stmt, const List& items, const std::shared_ptr<Scope>& scope, int depth,
                std::string& out);
  void exec_call_block(const Stmt& stmt, const std::shared_ptr<Scope>& scope, std::string& out);
  void assign(const Target& target, const Value& value, Scope& scope);
  void emit(std::string& out, std::string_view text);
  std::string capture(const Body& body, const std::shared_ptr<Scope>& scope);

  Value eval(const Expr& expr, const std::shared_ptr<Scope>& scope);
  Value eval_call(const Expr& expr, const std::shared_ptr<Scope>& scope);
  Value eval_filter(const Expr& expr, const std::shared_ptr<Scope>& scope);
  bool eval_test(const Expr& expr, const std::shared_ptr<Scope>& scope);
  Value eval_slice(const Expr& expr, const std::shared_ptr<Scope>& scope);
  CallArgs eval_args(const Expr& expr, const std::shared_ptr<Scope>& scope, size_t first_arg);
  bool compare(CompareOp op, const Value& left, const Value& right);

  const ParsedTemplate& parsed_;
  RenderLimits limits_;
  Clock clock_;
  uint64_t steps_ = 0;
  size_t emitted_ = 0;
  int depth_ = 0;
  size_t offset_ = 0;  // source offset of the node being evaluated (for error locations)
  std::vector<Value> block_inputs_;
  std::vector<std::shared_ptr<Scope>> tracked_scopes_;
  std::vector<ObjectPtr> tracked_objects_;
};

// A macro, or the caller() of a call block, bound to the scope it was defined in.
class MacroObject : public Object {
 public:
  MacroObject(const Stmt& stmt, std::shared_ptr<Scope> closure, std::string name)
      : stmt_(stmt), closure_(std::move(closure)), name_(std::move(name)) {}
  std::string_view type_name() const override { return "Macro"; }
  bool is_callable() const override { return true; }
  Value call(Interpreter& interpreter, CallArgs& args) override { return interpreter.invoke_macro(*this, args); }
  Value get_attr(std::string_view name) const override;
  std::string to_str(int /*depth*/) const override { return fmt::format("<Macro '{}'>", name_); }
  const Stmt& stmt() const { return stmt_; }
  const std::shared_ptr<Scope>& closure() const { return closure_; }
  const std::string& name() const { return name_; }

 private:
  const Stmt& stmt_;
  std::shared_ptr<Scope> closure_;
  std::string name_;
};

// A native function (global, bound method, loop.cycle ...).
class NativeFunction : public Object {
 public:
  using Fn = std::function<Value(Interpreter&, CallArgs&)>;
  NativeFunction(std::string name, Fn fn) : name_(std::move(name)), fn_(std::move(fn)) {}
  std::string_view type_name() const override { return "builtin_function_or_method"; }
  bool is_callable() const override { return true; }
  Value call(Interpreter& interpreter, CallArgs& args) override { return fn_(interpreter, args); }
  std::string to_str(int /*depth*/) const override { return fmt::format("<built-in function {}>", name_); }

 private:
  std::string name_;
  Fn fn_;
};

Value make_native(std::string name, NativeFunction::Fn fn);

// jinja2's Namespace: the one mutable object ({% set ns.attr = value %}).
class NamespaceObject : public Object {
 public:
  std::string_view type_name() const override { return "Namespace"; }
  Value get_attr(std::string_view name) const override;
  std::string to_str(int depth) const override;
  void set(std::string_view name, Value value) { attrs_.set(Value::string(std::string(name)), std::move(value)); }
  void release_references() override { attrs_ = Dict(); }

 private:
  Dict attrs_;
  mutable bool printing_ = false;  // a namespace holding itself prints as <Namespace {...}>, as in Python
};

// A one-shot iterator, as jinja's select/map/selectattr/unique/batch/items filters and reversed() return: always
// true, no len(), not subscriptable, empty once iterated.
class GeneratorObject : public Object {
 public:
  GeneratorObject(std::string type_name, List items) : type_name_(std::move(type_name)), items_(std::move(items)) {}
  std::string_view type_name() const override { return type_name_; }
  std::string to_str(int depth) const override;
  List take();
  void release_references() override { items_.clear(); }

 private:
  std::string type_name_;
  List items_;
  bool consumed_ = false;
};

Value make_generator(List items, std::string type_name = "generator");

}  // namespace exl::chat
