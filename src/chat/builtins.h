// Built-in filters, tests, methods of str/dict/list, and global functions of the transformers environment.
#pragma once

#include <string>
#include <string_view>

#include "chat/ast.h"
#include "chat/value.h"

namespace exl::chat {

// Null when jinja has no such filter/test. Filters jinja has but exl does not implement resolve to
// unsupported_filter, which the interpreter reports as kUnsupported when the filter is applied.
FilterFn find_filter(std::string_view name);
TestFn find_test(std::string_view name);
Value unsupported_filter(Interpreter& interpreter, const Value& input, CallArgs& args);

// Attribute access that resolves to a method of a str, dict or list (e.g. "a".startswith, d.items).
// Returns undefined when the type has no such method; an unsafe undefined for mutating methods (the sandbox).
Value find_method(const Value& receiver, std::string_view name);

// Globals of the environment: range, dict, namespace, cycler, joiner, raise_exception, strftime_now.
Value find_global(std::string_view name);

// The "%" operator on a str (printf-style formatting).
std::string python_percent_format(const std::string& format, const Value& args);
// str.format(*args, **kwargs).
std::string python_str_format(const std::string& format, const CallArgs& args);

// Binds call arguments to named parameters (jinja filter/function signatures). Fails with a message naming
// `function` on a missing required, unexpected or duplicate argument. Omitted optional arguments get their default.
enum class ParamKind { kOptional, kRequired };
struct Param {
  std::string_view name;
  Value default_value;
  ParamKind kind = ParamKind::kOptional;
};
std::vector<Value> bind_args(std::string_view function, const CallArgs& args, std::initializer_list<Param> params);

}  // namespace exl::chat
