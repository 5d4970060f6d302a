// The front ends: each turns its source language into a Grammar (or an expression) for compile_grammar.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

#include "constrain/constrain.h"
#include "constrain/program.h"

namespace exl::constrain::detail {

Grammar json_schema_grammar(const nlohmann::ordered_json& schema, const JsonOptions& options);
Grammar json_object_grammar(const JsonOptions& options);

// A regular expression matching the whole input (leading ^ and trailing $ are accepted and change nothing).
// `what` prefixes errors (e.g. "regex" or "json schema /properties/a/pattern").
ExprPtr parse_regex(std::string_view pattern, const std::string& what);

Grammar gbnf_grammar(std::string_view text);

}  // namespace exl::constrain::detail
