#include "chat/lexer.h"

#include <cerrno>
#include <cstdlib>
#include <limits>

#include "chat/unicode.h"
#include "core/error.h"

namespace exl::chat {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80; }
bool is_name_char(unsigned char c) { return is_name_start(c) || is_digit(static_cast<char>(c)); }

std::string normalize_newlines(std::string_view input) {
  std::string out;
  out.reserve(input.size());
  for (size_t i = 0; i < input.size(); ++i) {
    if (input[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < input.size() && input[i + 1] == '\n') ++i;
    } else {
      out.push_back(input[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string source) : src_(std::move(source)) {}

  LexedTemplate run() {
    while (pos_ < src_.size()) lex_root();
    push(TokenType::kEof, "", src_.size());
    return LexedTemplate{std::move(src_), std::move(tokens_)};
  }

 private:
  [[noreturn]] void fail_at(size_t offset, const std::string& message) const { fail_syntax(src_, offset, message); }

  // Byte length of the Python whitespace code point at pos, or 0.
  size_t space_at(size_t pos) const {
    if (pos >= src_.size()) return 0;
    const auto c = static_cast<unsigned char>(src_[pos]);
    if (c < 0x80) return is_py_space(c) ? 1 : 0;
    size_t end = pos + 1;
    while (end < src_.size() && (static_cast<unsigned char>(src_[end]) & 0xC0) == 0x80 && end - pos < 4) ++end;
    const std::u32string decoded = decode_utf8(std::string_view(src_).substr(pos, end - pos));
    if (decoded.size() != 1 || !is_py_space(decoded[0])) return 0;
    return end - pos;
  }

  size_t skip_spaces(size_t pos) const {
    for (size_t n = space_at(pos); n > 0; n = space_at(pos)) pos += n;
    return pos;
  }

  bool starts_with(size_t pos, std::string_view what) const {
    return pos + what.size() <= src_.size() && src_.compare(pos, what.size(), what) == 0;
  }

  void push(TokenType type, std::string text, size_t offset) {
    Token token;
    token.type = type;
    token.text = std::move(text);
    token.offset = offset;
    tokens_.push_back(std::move(token));
  }

  // True when text (the data before a tag) ends with a line holding only whitespace, which lstrip_blocks removes.
  std::string_view apply_strip(std::string_view text, char sign, bool lstrip_allowed) const {
    if (sign == '-') {
      const std::string stripped = py_strip(text, nullptr, StripSide::kRight);
      return text.substr(0, stripped.size());
    }
    if (sign == '+' || !lstrip_allowed) return text;
    const size_t newline = text.rfind('\n');
    const size_t line_pos = newline == std::string_view::npos ? 0 : newline + 1;
    if (line_pos == 0 && !line_starting_) return text;
    if (line_pos == text.size()) return text;
    const std::string rest = py_strip(text.substr(line_pos), nullptr, StripSide::kLeft);
    return rest.empty() ? text.substr(0, line_pos) : text;
  }

  void emit_data(std::string_view text, size_t offset) {
    if (!text.empty()) push(TokenType::kData, std::string(text), offset);
  }

  void lex_root() {
    size_t tag = pos_;
    while (true) {
      tag = src_.find('{', tag);
      if (tag == std::string::npos || tag + 1 >= src_.size()) {
        emit_data(std::string_view(src_).substr(pos_), pos_);
        pos_ = src_.size();
        return;
      }
      const char kind = src_[tag + 1];
      if (kind == '{' || kind == '%' || kind == '#') break;
      ++tag;
    }
    const char kind = src_[tag + 1];
    size_t after = tag + 2;
    char sign = 0;
    if (after < src_.size() && (src_[after] == '-' || src_[after] == '+')) sign = src_[after++];
    const size_t raw_end = kind == '%' ? match_raw_begin(after) : 0;
    const std::string_view text = std::string_view(src_).substr(pos_, tag - pos_);
    emit_data(apply_strip(text, sign, kind != '{'), pos_);
    if (raw_end != 0) {
      line_starting_ = src_[raw_end - 1] == '\n';
      lex_raw_body(tag, raw_end);
      return;
    }
    if (kind == '#') {
      lex_comment(tag, after);
      return;
    }
    line_starting_ = false;
    push(kind == '{' ? TokenType::kVariableBegin : TokenType::kBlockBegin, "", tag);
    pos_ = after;
    lex_expression(kind == '%');
  }

  // Matches `\s*raw\s*(-%}\s*|%})` at pos; returns the end offset or 0.
  size_t match_raw_begin(size_t pos) const {
    pos = skip_spaces(pos);
    if (!starts_with(pos, "raw")) return 0;
    pos = skip_spaces(pos + 3);
    if (starts_with(pos, "-%}")) return skip_spaces(pos + 3);
    if (starts_with(pos, "%}")) return pos + 2;
    return 0;
  }

  // Matches `{%(-|+|)\s*endraw\s*(+%}|-%}\s*|%}\n?)` at pos; returns the end offset or 0, and the sign.
  size_t match_raw_end(size_t pos, char& sign) const {
    if (!starts_with(pos, "{%")) return 0;
    pos += 2;
    sign = 0;
    if (pos < src_.size() && (src_[pos] == '-' || src_[pos] == '+')) sign = src_[pos++];
    pos = skip_spaces(pos);
    if (!starts_with(pos, "endraw")) return 0;
    return match_block_end(skip_spaces(pos + 6));
  }

  // Matches the end of a block tag at pos (trim_blocks applies); returns the end offset or 0.
  size_t match_block_end(size_t pos) const {
    if (starts_with(pos, "+%}")) return pos + 3;
    if (starts_with(pos, "-%}")) return skip_spaces(pos + 3);
    if (starts_with(pos, "%}")) return (pos + 2 < src_.size() && src_[pos + 2] == '\n') ? pos + 3 : pos + 2;
    return 0;
  }

  void lex_raw_body(size_t tag, size_t body_start) {
    for (size_t pos = src_.find("{%", body_start); pos != std::string::npos; pos = src_.find("{%", pos + 1)) {
      char sign = 0;
      const size_t end = match_raw_end(pos, sign);
      if (end == 0) continue;
      const std::string_view body = std::string_view(src_).substr(body_start, pos - body_start);
      emit_data(apply_strip(body, sign, true), body_start);
      line_starting_ = src_[end - 1] == '\n';
      pos_ = end;
      return;
    }
    fail_at(tag, "Missing end of raw directive");
  }

  void lex_comment(size_t tag, size_t body_start) {
    for (size_t pos = body_start; pos < src_.size(); ++pos) {
      size_t end = 0;
      if (starts_with(pos, "+#}")) {
        end = pos + 3;
      } else if (starts_with(pos, "-#}")) {
        end = skip_spaces(pos + 3);
      } else if (starts_with(pos, "#}")) {
        end = (pos + 2 < src_.size() && src_[pos + 2] == '\n') ? pos + 3 : pos + 2;
      }
      if (end != 0) {
        line_starting_ = src_[end - 1] == '\n';
        pos_ = end;
        return;
      }
    }
    fail_at(tag, "Missing end of comment tag");
  }

  void lex_expression(bool block) {
    std::string balance;  // expected closing brackets
    while (true) {
      if (pos_ >= src_.size()) return;  // the parser reports the missing end of tag
      if (balance.empty()) {
        size_t end = 0;
        if (block) {
          end = match_block_end(pos_);
        } else if (starts_with(pos_, "-}}")) {
          end = skip_spaces(pos_ + 3);
        } else if (starts_with(pos_, "}}")) {
          end = pos_ + 2;
        }
        if (end != 0) {
          push(block ? TokenType::kBlockEnd : TokenType::kVariableEnd, "", pos_);
          line_starting_ = src_[end - 1] == '\n';
          pos_ = end;
          return;
        }
      }
      const size_t spaces = skip_spaces(pos_);
      if (spaces != pos_) {
        pos_ = spaces;
        continue;
      }
      if (lex_number() || lex_name() || lex_string()) continue;
      lex_operator(balance);
    }
  }

  // (\d+_)*\d+ at pos; returns the end or npos.
  size_t digits(size_t pos) const {
    if (pos >= src_.size() || !is_digit(src_[pos])) return std::string::npos;
    while (pos < src_.size() && is_digit(src_[pos])) {
      ++pos;
      if (pos + 1 < src_.size() && src_[pos] == '_' && is_digit(src_[pos + 1])) ++pos;
    }
    return pos;
  }

  size_t exponent(size_t pos) const {
    if (pos >= src_.size() || (src_[pos] != 'e' && src_[pos] != 'E')) return std::string::npos;
    ++pos;
    if (pos < src_.size() && (src_[pos] == '+' || src_[pos] == '-')) ++pos;
    return digits(pos);
  }

  size_t match_float(size_t pos) const {
    if (pos > 0 && src_[pos - 1] == '.') return std::string::npos;
    const size_t whole = digits(pos);
    if (whole == std::string::npos) return std::string::npos;
    if (whole < src_.size() && src_[whole] == '.') {
      const size_t fraction = digits(whole + 1);
      if (fraction != std::string::npos) {
        const size_t with_exponent = exponent(fraction);
        if (with_exponent != std::string::npos) return with_exponent;
      }
    }
    const size_t with_exponent = exponent(whole);
    if (with_exponent != std::string::npos) return with_exponent;
    if (whole < src_.size() && src_[whole] == '.') return digits(whole + 1);
    return std::string::npos;
  }

  // Integer literal: 0b.., 0o.., 0x.., [1-9](_?\d)*, 0(_?0)*. Returns end and base.
  size_t match_integer(size_t pos, int& base) const {
    auto run = [&](size_t p, auto is_valid) {
      size_t end = std::string::npos;
      while (p < src_.size()) {
        size_t q = p;
        if (src_[q] == '_') ++q;
        if (q < src_.size() && is_valid(src_[q])) {
          p = q + 1;
          end = p;
        } else {
          break;
        }
      }
      return end;
    };
    if (src_[pos] == '0' && pos + 1 < src_.size()) {
      const char prefix = static_cast<char>(src_[pos + 1] | 0x20);
      size_t end = std::string::npos;
      if (prefix == 'b') {
        end = run(pos + 2, [](char c) { return c == '0' || c == '1'; });
        base = 2;
      } else if (prefix == 'o') {
        end = run(pos + 2, [](char c) { return c >= '0' && c <= '7'; });
        base = 8;
      } else if (prefix == 'x') {
        end = run(pos + 2, [](char c) {
          return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
        });
        base = 16;
      }
      if (end != std::string::npos) return end;
    }
    base = 10;
    if (src_[pos] == '0') {
      const size_t end = run(pos + 1, [](char c) { return c == '0'; });
      return end == std::string::npos ? pos + 1 : end;
    }
    if (src_[pos] >= '1' && src_[pos] <= '9') {
      const size_t end = run(pos + 1, is_digit);
      return end == std::string::npos ? pos + 1 : end;
    }
    return std::string::npos;
  }

  bool lex_number() {
    const size_t start = pos_;
    if (!is_digit(src_[start])) return false;
    std::string text;
    const size_t float_end = match_float(start);
    if (float_end != std::string::npos) {
      for (size_t i = start; i < float_end; ++i) {
        if (src_[i] != '_') text.push_back(src_[i]);
      }
      push(TokenType::kFloat, text, start);
      tokens_.back().float_value = std::strtod(text.c_str(), nullptr);
      pos_ = float_end;
      return true;
    }
    int base = 10;
    const size_t end = match_integer(start, base);
    if (end == std::string::npos) return false;
    const size_t digits_start = base == 10 ? start : start + 2;
    for (size_t i = digits_start; i < end; ++i) {
      if (src_[i] != '_') text.push_back(src_[i]);
    }
    errno = 0;
    const unsigned long long value = std::strtoull(text.c_str(), nullptr, base);
    if (errno == ERANGE || value > static_cast<unsigned long long>(std::numeric_limits<int64_t>::max())) {
      fail_at(start, "integer literal does not fit in 64 bits (exl limitation)");
    }
    push(TokenType::kInteger, std::string(src_.substr(start, end - start)), start);
    tokens_.back().int_value = static_cast<int64_t>(value);
    pos_ = end;
    return true;
  }

  bool lex_name() {
    const size_t start = pos_;
    if (!is_name_start(static_cast<unsigned char>(src_[start]))) return false;
    size_t end = start;
    while (end < src_.size() && is_name_char(static_cast<unsigned char>(src_[end])) && space_at(end) == 0) ++end;
    if (end == start) return false;
    push(TokenType::kName, src_.substr(start, end - start), start);
    pos_ = end;
    return true;
  }

  bool lex_string() {
    const size_t start = pos_;
    const char quote = src_[start];
    if (quote != '\'' && quote != '"') return false;
    size_t pos = start + 1;
    while (pos < src_.size() && src_[pos] != quote) pos += src_[pos] == '\\' ? 2 : 1;
    if (pos >= src_.size()) return false;  // unterminated: reported as an unexpected character
    push(TokenType::kString, unescape(start + 1, pos), start);
    pos_ = pos + 1;
    return true;
  }

  uint32_t hex_escape(size_t& pos, size_t end, int count, size_t escape_start) const {
    uint32_t value = 0;
    for (int i = 0; i < count; ++i, ++pos) {
      const char c = pos < end ? src_[pos] : '\0';
      const char lower = static_cast<char>(c | 0x20);
      if (is_digit(c)) {
        value = value * 16 + static_cast<uint32_t>(c - '0');
      } else if (lower >= 'a' && lower <= 'f') {
        value = value * 16 + static_cast<uint32_t>(lower - 'a' + 10);
      } else {
        fail_at(escape_start, "truncated escape sequence in string literal");
      }
    }
    return value;
  }

  // Python's unicode-escape decoding of a string literal body (after backslashreplace of non-ASCII).
  std::string unescape(size_t begin, size_t end) const {
    std::string out;
    size_t pos = begin;
    while (pos < end) {
      const char c = src_[pos];
      if (c != '\\' || pos + 1 >= end) {
        out.push_back(c);
        ++pos;
        continue;
      }
      const size_t escape_start = pos;
      const char e = src_[pos + 1];
      pos += 2;
      switch (e) {
        case '\n': break;
        case '\\': out.push_back('\\'); break;
        case '\'': out.push_back('\''); break;
        case '"': out.push_back('"'); break;
        case 'a': out.push_back('\a'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'v': out.push_back('\v'); break;
        case 'x': append_utf8(out, hex_escape(pos, end, 2, escape_start)); break;
        case 'u': append_utf8(out, hex_escape(pos, end, 4, escape_start)); break;
        case 'U': {
          const uint32_t value = hex_escape(pos, end, 8, escape_start);
          if (value > 0x10FFFF) fail_at(escape_start, "illegal Unicode character in string literal");
          append_utf8(out, value);
          break;
        }
        case 'N': fail_at(escape_start, "\\N{...} escapes are not supported by exl");
        default:
          if (e >= '0' && e <= '7') {
            uint32_t value = static_cast<uint32_t>(e - '0');
            for (int i = 0; i < 2 && pos < end && src_[pos] >= '0' && src_[pos] <= '7'; ++i, ++pos) {
              value = value * 8 + static_cast<uint32_t>(src_[pos] - '0');
            }
            append_utf8(out, value);
          } else if (static_cast<unsigned char>(e) >= 0x80) {
            // backslashreplace turned the character into \xNN/\uNNNN text; the escaped backslash before it stays.
            size_t stop = pos;
            while (stop < end && (static_cast<unsigned char>(src_[stop]) & 0xC0) == 0x80) ++stop;
            const std::u32string decoded = decode_utf8(std::string_view(src_).substr(pos - 1, stop - pos + 1));
            pos = stop;
            const auto cp = static_cast<unsigned>(decoded.empty() ? 0 : decoded[0]);
            out.push_back('\\');
            out += cp < 0x100 ? fmt::format("x{:02x}", cp)
                              : cp < 0x10000 ? fmt::format("u{:04x}", cp) : fmt::format("U{:08x}", cp);
          } else {
            out.push_back('\\');
            out.push_back(e);
          }
      }
    }
    return out;
  }

  void lex_operator(std::string& balance) {
    static constexpr std::string_view kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
    for (std::string_view op : kTwo) {
      if (starts_with(pos_, op)) {
        push(TokenType::kOperator, std::string(op), pos_);
        pos_ += 2;
        return;
      }
    }
    const char c = src_[pos_];
    static constexpr std::string_view kOne = "+-/*%~[](){}><=.:|,;";
    if (kOne.find(c) == std::string_view::npos) {
      const std::u32string decoded = decode_utf8(std::string_view(src_).substr(pos_, 4));
      std::string shown;
      append_utf8(shown, decoded.empty() ? U'?' : decoded[0]);
      fail_at(pos_, fmt::format("unexpected char '{}'", shown));
    }
    if (c == '(' || c == '[' || c == '{') {
      balance.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    } else if (c == ')' || c == ']' || c == '}') {
      if (balance.empty()) fail_at(pos_, fmt::format("unexpected '{}'", c));
      if (balance.back() != c) fail_at(pos_, fmt::format("unexpected '{}', expected '{}'", c, balance.back()));
      balance.pop_back();
    }
    push(TokenType::kOperator, std::string(1, c), pos_);
    ++pos_;
  }

  std::string src_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  bool line_starting_ = true;
};

}  // namespace

std::string describe_location(std::string_view source, size_t offset) {
  offset = std::min(offset, source.size());
  size_t line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < offset; ++i) {
    if (source[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  const size_t column = count_code_points(source.substr(line_start, offset - line_start)) + 1;
  return fmt::format("line {}, column {}", line, column);
}

void fail_syntax(std::string_view source, size_t offset, const std::string& message) {
  fail(ErrorKind::kInvalidArgument, "chat template: syntax error at {}: {}", describe_location(source, offset),
       message);
}

LexedTemplate lex_template(std::string_view source) { return Lexer(normalize_newlines(source)).run(); }

}  // namespace exl::chat
