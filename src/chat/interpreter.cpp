#include "chat/interpreter.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "chat/builtins.h"
#include "chat/chat_template.h"
#include "chat/lexer.h"
#include "chat/unicode.h"
#include "core/error.h"

namespace exl::chat {

// ---- objects ----

class LoopObject : public Object {
 public:
  LoopObject(ListPtr items, int depth0, const Stmt& stmt, std::shared_ptr<Scope> scope)
      : items_(std::move(items)), depth0_(depth0), stmt_(stmt), scope_(std::move(scope)) {}

  std::string_view type_name() const override { return "LoopContext"; }
  bool is_callable() const override { return true; }
  std::string to_str(int /*depth*/) const override {
    return fmt::format("<LoopContext {}/{}>", index0_ + 1, items_->size());
  }
  void release_references() override {
    last_changed_->reset();
    scope_.reset();
  }

  Value call(Interpreter& interpreter, CallArgs& args) override {
    if (!stmt_.recursive) {
      fail(ErrorKind::kInvalidArgument, "Tried to call non recursive loop. Maybe you forgot the 'recursive' modifier.");
    }
    EXL_CHECK(args.positional.size() == 1 && args.keyword.empty(), kInvalidArgument,
              "loop() takes exactly one iterable argument");
    return Value::string(interpreter.run_recursive_loop(*this, args.positional[0]));
  }

  Value get_attr(std::string_view name) const override {
    const auto length = static_cast<int64_t>(items_->size());
    const auto index0 = static_cast<int64_t>(index0_);
    if (name == "index") return Value::integer(index0 + 1);
    if (name == "index0") return Value::integer(index0);
    if (name == "revindex") return Value::integer(length - index0);
    if (name == "revindex0") return Value::integer(length - index0 - 1);
    if (name == "first") return Value::boolean(index0 == 0);
    if (name == "last") return Value::boolean(index0 == length - 1);
    if (name == "length") return Value::integer(length);
    if (name == "depth") return Value::integer(depth0_ + 1);
    if (name == "depth0") return Value::integer(depth0_);
    if (name == "previtem") {
      return index0 > 0 ? (*items_)[index0_ - 1] : Value::undefined("there is no previous item");
    }
    if (name == "nextitem") {
      return index0 + 1 < length ? (*items_)[index0_ + 1] : Value::undefined("there is no next item");
    }
    if (name == "cycle") {
      const size_t index = index0_;
      return make_native("cycle", [index](Interpreter&, CallArgs& args) {
        EXL_CHECK(!args.positional.empty(), kInvalidArgument, "no items for cycling given");
        return args.positional[index % args.positional.size()];
      });
    }
    if (name == "changed") {
      auto last = last_changed_;
      return make_native("changed", [last](Interpreter&, CallArgs& args) {
        const Value current = Value::list(args.positional);
        if (last->has_value() && py_equal(**last, current)) return Value::boolean(false);
        *last = current;
        return Value::boolean(true);
      });
    }
    return Object::get_attr(name);
  }

  void set_index(size_t index0) { index0_ = index0; }
  int depth0() const { return depth0_; }
  const Stmt& stmt() const { return stmt_; }
  const std::shared_ptr<Scope>& scope() const { return scope_; }

 private:
  ListPtr items_;
  size_t index0_ = 0;
  int depth0_;
  const Stmt& stmt_;
  std::shared_ptr<Scope> scope_;  // where the loop runs (recursive calls run there again)
  std::shared_ptr<std::optional<Value>> last_changed_ = std::make_shared<std::optional<Value>>();
};

Value MacroObject::get_attr(std::string_view name) const {
  if (name == "name") return Value::string(name_);
  if (name == "arguments") {
    List params;
    for (const auto& param : stmt_.params) params.push_back(Value::string(param));
    return Value::list(std::move(params), SequenceKind::kTuple);
  }
  if (name == "catch_kwargs") return Value::boolean(stmt_.uses_kwargs);
  if (name == "catch_varargs") return Value::boolean(stmt_.uses_varargs);
  if (name == "caller") return Value::boolean(stmt_.uses_caller);
  return Object::get_attr(name);
}

Value make_native(std::string name, NativeFunction::Fn fn) {
  return Value::object(std::make_shared<NativeFunction>(std::move(name), std::move(fn)));
}

Value NamespaceObject::get_attr(std::string_view name) const {
  const Value* value = attrs_.find(name);
  if (value != nullptr) return *value;
  return Value::undefined(fmt::format("'Namespace' object has no attribute '{}'", name));
}

std::string NamespaceObject::to_str(int depth) const {
  if (printing_) return "<Namespace {...}>";
  printing_ = true;
  std::string out = "<Namespace {";
  try {
    bool first = true;
    for (const auto& [key, value] : attrs_.entries()) {
      if (!first) out += ", ";
      first = false;
      out += to_repr(key, depth + 1) + ": " + to_repr(value, depth + 1);
    }
  } catch (...) {
    printing_ = false;
    throw;
  }
  printing_ = false;
  return out + "}>";
}

std::string GeneratorObject::to_str(int /*depth*/) const {
  fail(ErrorKind::kUnsupported,
       "printing a {} object is not supported (Python prints its memory address); convert it with |list",
       type_name_);
}

List GeneratorObject::take() {
  if (consumed_) return {};
  consumed_ = true;
  return std::move(items_);
}

Value make_generator(List items, std::string type_name) {
  return Value::object(std::make_shared<GeneratorObject>(std::move(type_name), std::move(items)));
}

// ---- scopes ----

const Value* Scope::lookup(std::string_view name) const {
  for (const Scope* scope = this; scope != nullptr; scope = scope->parent_.get()) {
    for (const auto& [key, value] : scope->vars_) {
      if (key == name) return &value;
    }
  }
  return nullptr;
}

void Scope::set(std::string_view name, Value value) {
  for (auto& [key, existing] : vars_) {
    if (key == name) {
      existing = std::move(value);
      return;
    }
  }
  vars_.emplace_back(std::string(name), std::move(value));
}

// ---- interpreter ----

void Interpreter::fail_too_deep(int max_depth) {
  fail(ErrorKind::kInvalidArgument, "evaluation nested deeper than {} levels (recursive macro?)", max_depth);
}

Interpreter::Interpreter(const ParsedTemplate& parsed, const RenderLimits& limits, Clock clock)
    : parsed_(parsed), limits_(limits), clock_(std::move(clock)) {}

Interpreter::~Interpreter() {
  // Clearing in creation order keeps destruction shallow even for long chains (ns.x = namespace(prev=ns.x)).
  for (const auto& scope : tracked_scopes_) scope->clear();
  for (const auto& object : tracked_objects_) object->release_references();
}

std::string Interpreter::render(const std::vector<std::pair<std::string, Value>>& context) {
  auto globals = std::make_shared<Scope>(nullptr);
  for (std::string_view name : {"range", "dict", "namespace", "cycler", "joiner", "lipsum", "raise_exception",
                                "strftime_now"}) {
    globals->set(name, find_global(name));
  }
  auto root = std::make_shared<Scope>(globals);
  for (const auto& [name, value] : context) root->set(name, value);
  std::string out;
  try {
    exec_body(parsed_.body, root, out);
  } catch (const ChatTemplateRaised&) {
    throw;
  } catch (const Error& e) {
    throw Error(e.kind(), fmt::format("chat template: error at {}: {}", describe_location(parsed_.source, offset_),
                                      e.what()));
  }
  return out;
}

void Interpreter::fail_undefined(const Value& undefined) {
  if (undefined.undefined_kind() == UndefinedKind::kUnsafe) {
    fail(ErrorKind::kInvalidArgument, "SecurityError: {}", undefined.undefined_hint());
  }
  fail(ErrorKind::kInvalidArgument, "UndefinedError: {}", undefined.undefined_hint());
}

void Interpreter::charge(uint64_t steps) {
  steps_ += steps;
  EXL_CHECK(steps_ <= limits_.max_steps, kInvalidArgument,
            "template exceeded {} evaluation steps (infinite loop or very large input?)", limits_.max_steps);
}

void Interpreter::check_size(size_t bytes) const {
  EXL_CHECK(bytes <= limits_.max_output_bytes, kInvalidArgument, "template value of {} bytes exceeds the {} byte limit",
            bytes, limits_.max_output_bytes);
}

void Interpreter::emit(std::string& out, std::string_view text) {
  emitted_ += text.size();
  EXL_CHECK(emitted_ <= limits_.max_output_bytes, kInvalidArgument, "template output exceeds {} bytes",
            limits_.max_output_bytes);
  out.append(text);
}

std::string Interpreter::capture(const Body& body, const std::shared_ptr<Scope>& scope) {
  std::string text;
  exec_body(body, scope, text);
  return text;
}

Interpreter::Flow Interpreter::exec_body(const Body& body, const std::shared_ptr<Scope>& scope, std::string& out) {
  for (const auto& stmt : body) {
    const Flow flow = exec(*stmt, scope, out);
    if (flow != Flow::kNormal) return flow;
  }
  return Flow::kNormal;
}

Interpreter::Flow Interpreter::exec(const Stmt& stmt, const std::shared_ptr<Scope>& scope, std::string& out) {
  DepthGuard guard(*this);
  charge(1);
  offset_ = stmt.offset;
  switch (stmt.kind) {
    case StmtKind::kOutput: emit(out, stmt.text); break;
    case StmtKind::kPrint:
      for (const auto& expr : stmt.exprs) emit(out, to_str(eval(*expr, scope)));
      break;
    case StmtKind::kIf:
      for (const auto& branch : stmt.branches) {
        if (!branch.test || eval(*branch.test, scope).truthy()) return exec_body(branch.body, scope, out);
      }
      break;
    case StmtKind::kFor: {
      const Value iterable = eval(*stmt.exprs[0], scope);
      offset_ = stmt.offset;
      exec_for(stmt, iterate(iterable), scope, 0, out);
      break;
    }
    case StmtKind::kSet: {
      const Value value = eval(*stmt.exprs[0], scope);
      offset_ = stmt.offset;
      assign(stmt.targets[0], value, *scope);
      break;
    }
    case StmtKind::kSetBlock: {
      Value value = Value::string(capture(stmt.body, std::make_shared<Scope>(scope)));
      if (stmt.filter) {
        block_inputs_.push_back(std::move(value));
        value = eval(*stmt.filter, scope);
        block_inputs_.pop_back();
      }
      offset_ = stmt.offset;
      assign(stmt.targets[0], value, *scope);
      break;
    }
    case StmtKind::kFilterBlock: {
      block_inputs_.push_back(Value::string(capture(stmt.body, std::make_shared<Scope>(scope))));
      const Value value = eval(*stmt.filter, scope);
      block_inputs_.pop_back();
      emit(out, to_str(value));
      break;
    }
    case StmtKind::kMacro:
      track(scope);
      scope->set(stmt.name, Value::object(std::make_shared<MacroObject>(stmt, scope, stmt.name)));
      break;
    case StmtKind::kCallBlock: exec_call_block(stmt, scope, out); break;
    case StmtKind::kWith: {
      std::vector<Value> values;
      for (const auto& expr : stmt.exprs) values.push_back(eval(*expr, scope));
      auto inner = std::make_shared<Scope>(scope);
      for (size_t i = 0; i < values.size(); ++i) assign(stmt.targets[i], values[i], *inner);
      return exec_body(stmt.body, inner, out);
    }
    case StmtKind::kScope: return exec_body(stmt.body, std::make_shared<Scope>(scope), out);
    case StmtKind::kBreak: return Flow::kBreak;
    case StmtKind::kContinue: return Flow::kContinue;
  }
  return Flow::kNormal;
}

void Interpreter::exec_for(const Stmt& stmt, const List& all_items, const std::shared_ptr<Scope>& scope, int depth,
                           std::string& out) {
  const Target& target = stmt.targets[0];
  List items;
  if (stmt.exprs.size() > 1) {
    for (const Value& item : all_items) {
      charge(1);
      auto test_scope = std::make_shared<Scope>(scope);
      assign(target, item, *test_scope);
      if (eval(*stmt.exprs[1], test_scope).truthy()) items.push_back(item);
    }
  } else {
    items = all_items;
  }
  if (items.empty()) {
    if (!stmt.else_body.empty()) exec_body(stmt.else_body, std::make_shared<Scope>(scope), out);
    return;
  }
  auto shared_items = std::make_shared<const List>(std::move(items));
  auto loop = std::make_shared<LoopObject>(shared_items, depth, stmt, scope);
  track(scope);
  track(loop);
  const Value loop_value = Value::object(loop);
  for (size_t i = 0; i < shared_items->size(); ++i) {
    charge(1);
    loop->set_index(i);
    auto iteration = std::make_shared<Scope>(scope);
    iteration->set("loop", loop_value);
    offset_ = stmt.offset;
    assign(target, (*shared_items)[i], *iteration);
    if (exec_body(stmt.body, iteration, out) == Flow::kBreak) break;
  }
}

std::string Interpreter::run_recursive_loop(const LoopObject& loop, const Value& iterable) {
  DepthGuard guard(*this);
  std::string out;
  exec_for(loop.stmt(), iterate(iterable), loop.scope(), loop.depth0() + 1, out);
  return out;
}

void Interpreter::exec_call_block(const Stmt& stmt, const std::shared_ptr<Scope>& scope, std::string& out) {
  const Expr& call = *stmt.exprs[0];
  const Value callee = eval(*call.children[0], scope);
  CallArgs args = eval_args(call, scope, 1);
  track(scope);
  args.keyword.emplace_back("caller", Value::object(std::make_shared<MacroObject>(stmt, scope, "caller")));
  offset_ = stmt.offset;
  emit(out, to_str(this->call(callee, args)));
}

void Interpreter::assign(const Target& target, const Value& value, Scope& scope) {
  switch (target.kind) {
    case Target::Kind::kName: scope.set(target.name, value); return;
    case Target::Kind::kNamespaceAttr: {
      const Value* ns = scope.lookup(target.name);
      auto* object = ns != nullptr && ns->is_object() ? dynamic_cast<NamespaceObject*>(&ns->as_object()) : nullptr;
      EXL_CHECK(object != nullptr, kInvalidArgument, "cannot assign attribute on non-namespace object '{}'",
                target.name);
      object->set(target.attr, value);
      return;
    }
    case Target::Kind::kTuple: {
      const List items = iterate(value);
      EXL_CHECK(items.size() >= target.items.size(), kInvalidArgument,
                "not enough values to unpack (expected {}, got {})", target.items.size(), items.size());
      EXL_CHECK(items.size() <= target.items.size(), kInvalidArgument, "too many values to unpack (expected {})",
                target.items.size());
      for (size_t i = 0; i < items.size(); ++i) assign(target.items[i], items[i], scope);
      return;
    }
  }
}

Value Interpreter::invoke_macro(const MacroObject& macro, CallArgs& args) {
  DepthGuard guard(*this);
  charge(1);
  const Stmt& stmt = macro.stmt();
  auto scope = std::make_shared<Scope>(macro.closure());
  const size_t num_params = stmt.params.size();
  std::vector<bool> bound(num_params, false);
  List varargs;
  for (size_t i = 0; i < args.positional.size(); ++i) {
    if (i < num_params) {
      scope->set(stmt.params[i], args.positional[i]);
      bound[i] = true;
    } else if (stmt.uses_varargs) {
      varargs.push_back(args.positional[i]);
    } else {
      fail(ErrorKind::kInvalidArgument, "macro '{}' takes not more than {} argument(s)", macro.name(), num_params);
    }
  }
  Dict kwargs;
  Value caller = Value::undefined("No caller defined");
  for (auto& [key, value] : args.keyword) {
    const auto it = std::find(stmt.params.begin(), stmt.params.end(), key);
    if (it != stmt.params.end()) {
      const auto index = static_cast<size_t>(it - stmt.params.begin());
      EXL_CHECK(!bound[index], kInvalidArgument, "macro '{}' got multiple values for argument '{}'", macro.name(),
                key);
      scope->set(key, value);
      bound[index] = true;
    } else if (key == "caller" && stmt.uses_caller) {
      caller = value;
    } else if (stmt.uses_kwargs) {
      kwargs.set(Value::string(key), value);
    } else {
      fail(ErrorKind::kInvalidArgument, "macro '{}' takes no keyword argument '{}'", macro.name(), key);
    }
  }
  const size_t first_default = num_params - stmt.defaults.size();
  for (size_t i = 0; i < num_params; ++i) {
    if (bound[i]) continue;
    if (i >= first_default) {
      scope->set(stmt.params[i], eval(*stmt.defaults[i - first_default], scope));
    } else {
      scope->set(stmt.params[i], Value::undefined(fmt::format("parameter '{}' was not provided", stmt.params[i])));
    }
  }
  if (stmt.uses_varargs) scope->set("varargs", Value::list(std::move(varargs), SequenceKind::kTuple));
  if (stmt.uses_kwargs) scope->set("kwargs", Value::dict(std::move(kwargs)));
  if (stmt.uses_caller) scope->set("caller", caller);
  std::string out;
  exec_body(stmt.body, scope, out);
  return Value::string(std::move(out));
}

List Interpreter::iterate(const Value& iterable) {
  switch (iterable.type()) {
    case ValueType::kUndefined: return {};
    case ValueType::kList: charge(iterable.as_list().size()); return iterable.as_list();
    case ValueType::kDict: {
      List keys;
      keys.reserve(iterable.as_dict().size());
      for (const auto& entry : iterable.as_dict().entries()) keys.push_back(entry.first);
      charge(keys.size());
      return keys;
    }
    case ValueType::kString: {
      List chars;
      for (char32_t c : decode_utf8(iterable.as_string())) {
        std::string text;
        append_utf8(text, c);
        chars.push_back(Value::string(std::move(text)));
      }
      charge(chars.size());
      return chars;
    }
    case ValueType::kObject:
      if (auto* generator = dynamic_cast<GeneratorObject*>(&iterable.as_object())) {
        List items = generator->take();
        charge(items.size());
        return items;
      }
      [[fallthrough]];
    default: fail(ErrorKind::kInvalidArgument, "'{}' object is not iterable", iterable.type_name());
  }
}

}  // namespace exl::chat
