// Jinja2 lexer configured as transformers configures it: trim_blocks, lstrip_blocks, default delimiters,
// keep_trailing_newline=False. Produces a flat token stream (template data, tag delimiters, expression tokens).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace exl::chat {

enum class TokenType : uint8_t {
  kData,
  kVariableBegin,
  kVariableEnd,
  kBlockBegin,
  kBlockEnd,
  kName,
  kString,
  kInteger,
  kFloat,
  kOperator,
  kEof,
};

struct Token {
  TokenType type = TokenType::kEof;
  std::string text;  // data, name, decoded string literal, or operator spelling
  int64_t int_value = 0;
  double float_value = 0.0;
  size_t offset = 0;  // byte offset into the normalized source (for line:column in errors)
};

struct LexedTemplate {
  std::string source;  // newlines normalized to \n, one trailing newline removed
  std::vector<Token> tokens;
};

// Throws exl::Error kInvalidArgument "chat template: syntax error at line L, column C: ..." on bad input.
LexedTemplate lex_template(std::string_view source);

// "line L, column C" (1-based, column in code points) for a byte offset into a normalized source.
std::string describe_location(std::string_view source, size_t offset);

// Throws the syntax error for a position in the normalized source.
[[noreturn]] void fail_syntax(std::string_view source, size_t offset, const std::string& message);

}  // namespace exl::chat
