// Jinja2 parser: the token stream of lexer.h to the tree of ast.h, following jinja2's grammar (parser.py).
#pragma once

#include <string>
#include <string_view>

#include "chat/ast.h"

namespace exl::chat {

struct ParsedTemplate {
  std::string source;  // normalized source, for error locations
  Body body;
};

// Throws exl::Error (kInvalidArgument for syntax errors and unknown filters/tests, kUnsupported for jinja
// constructs exl does not implement) naming line and column.
ParsedTemplate parse_template(std::string_view source);

}  // namespace exl::chat
