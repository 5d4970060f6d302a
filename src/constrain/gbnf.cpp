// GBNF (llama.cpp's grammar format) -> Grammar. Rules `name ::= body`; bodies: "literals" with escapes, [classes]
// (ranges, ^ negation, escapes), '.', rule names, ( groups ), '|', postfix * + ? {m} {m,} {m,n}; '#' comments.
// Unlike llama.cpp, a rule ends where the next `name ::=` starts, so alternatives may continue on the next line.
// Each rule compiles to one DFA; non-recursive small rules are inlined by the compiler, recursive ones are called.
#include <map>

#include "constrain/front_ends.h"
#include "core/error.h"

namespace exl::constrain::detail {
namespace {

constexpr int kMaxRepeat = 1000;

class GbnfParser {
 public:
  explicit GbnfParser(std::string_view src) : src_(src) {}

  Grammar parse() {
    g_.what = "grammar";
    skip_space();
    while (!at_end()) {
      size_t at = pos_;
      std::string name = parse_name();
      if (name.empty()) error(at, "expected a rule name");
      skip_space();
      if (src_.substr(pos_, 3) != "::=") error(pos_, fmt::format("expected '::=' after rule name \"{}\"", name));
      pos_ += 3;
      int id = rule_id(name, at);
      if (defined_.count(id)) error(at, fmt::format("rule \"{}\" is defined twice", name));
      defined_[id] = at;
      g_.rules[static_cast<size_t>(id)].body = parse_alt();
      skip_space();
    }
    for (const auto& [name, id] : ids_)
      if (!defined_.count(id))
        fail(ErrorKind::kInvalidArgument, "grammar: rule \"{}\" is used (offset {}) but never defined", name,
             first_use_[id]);
    auto root = ids_.find("root");
    EXL_CHECK(root != ids_.end(), kInvalidArgument, "grammar: no rule named \"root\" (the start rule)");
    g_.start = root->second;
    g_.max_depth = 256;
    return std::move(g_);
  }

 private:
  [[noreturn]] void error(size_t at, const std::string& message) const {
    size_t line = 1;
    size_t col = 1;
    for (size_t i = 0; i < at && i < src_.size(); ++i) {
      if (src_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    fail(ErrorKind::kInvalidArgument, "grammar: line {} column {}: {}", line, col, message);
  }

  bool at_end() const { return pos_ >= src_.size(); }
  char peek(size_t ahead = 0) const { return pos_ + ahead < src_.size() ? src_[pos_ + ahead] : '\0'; }
  static bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  }

  void skip_space() {
    while (!at_end()) {
      char c = peek();
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++pos_;
      } else if (c == '#') {
        while (!at_end() && peek() != '\n') ++pos_;
      } else {
        break;
      }
    }
  }

  std::string parse_name() {
    size_t start = pos_;
    while (!at_end() && name_char(peek())) ++pos_;
    return std::string(src_.substr(start, pos_ - start));
  }

  int rule_id(const std::string& name, size_t at) {
    auto [it, inserted] = ids_.try_emplace(name, static_cast<int>(g_.rules.size()));
    if (inserted) {
      g_.rules.push_back({name, nullptr, true});
      first_use_[it->second] = at;
    }
    return it->second;
  }

  // True if a `name ::=` starts at pos_ (the end of the current rule).
  bool at_definition() const {
    size_t p = pos_;
    while (p < src_.size() && name_char(src_[p])) ++p;
    if (p == pos_) return false;
    while (p < src_.size() && (src_[p] == ' ' || src_[p] == '\t' || src_[p] == '\r' || src_[p] == '\n')) ++p;
    return src_.substr(p, 3) == "::=";
  }

  ExprPtr parse_alt() {
    std::vector<ExprPtr> branches{parse_seq()};
    while (peek() == '|') {
      ++pos_;
      branches.push_back(parse_seq());
    }
    return alt(std::move(branches));
  }

  ExprPtr parse_seq() {
    std::vector<ExprPtr> items;
    while (true) {
      skip_space();
      if (at_end() || peek() == '|' || peek() == ')' || at_definition()) break;
      ExprPtr atom = parse_atom();
      items.push_back(parse_postfix(std::move(atom)));
    }
    return seq(std::move(items));
  }

  ExprPtr parse_postfix(ExprPtr atom) {
    while (true) {
      char c = peek();
      if (c == '*') {
        ++pos_;
        atom = repeat(std::move(atom), 0, kUnbounded);
      } else if (c == '+') {
        ++pos_;
        atom = repeat(std::move(atom), 1, kUnbounded);
      } else if (c == '?') {
        ++pos_;
        atom = optional(std::move(atom));
      } else if (c == '{') {
        size_t at = pos_++;
        skip_space();
        int lo = parse_int(at);
        int hi = lo;
        skip_space();
        if (peek() == ',') {
          ++pos_;
          skip_space();
          hi = peek() == '}' ? kUnbounded : parse_int(at);
          skip_space();
        }
        if (peek() != '}') error(at, "expected '}' to close the repetition");
        ++pos_;
        if (hi != kUnbounded && hi < lo) error(at, "repetition {m,n} with n < m");
        atom = repeat(std::move(atom), lo, hi);
      } else {
        return atom;
      }
    }
  }

  int parse_int(size_t at) {
    if (!(peek() >= '0' && peek() <= '9')) error(at, "expected a number in the repetition");
    long long v = 0;
    while (peek() >= '0' && peek() <= '9') {
      v = v * 10 + (peek() - '0');
      ++pos_;
      if (v > kMaxRepeat) error(at, fmt::format("repetition counts above {} are not supported", kMaxRepeat));
    }
    return static_cast<int>(v);
  }

  uint32_t parse_utf8() {
    auto c = static_cast<uint8_t>(src_[pos_]);
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || pos_ + static_cast<size_t>(len) > src_.size()) error(pos_, "invalid UTF-8");
    uint32_t cp = len == 1 ? c : c & (0xFF >> (len + 1));
    for (int k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<uint8_t>(src_[pos_ + static_cast<size_t>(k)]) & 0x3F);
    pos_ += static_cast<size_t>(len);
    return cp;
  }

  uint32_t parse_char() {
    if (at_end()) error(pos_, "unexpected end of grammar");
    if (peek() != '\\') return parse_utf8();
    size_t at = pos_;
    ++pos_;
    char c = peek();
    ++pos_;
    auto hex = [&](int digits) {
      uint32_t v = 0;
      for (int k = 0; k < digits; ++k) {
        char h = peek();
        int d = (h >= '0' && h <= '9') ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
        if (d < 0) error(at, fmt::format("expected {} hex digits in the escape", digits));
        v = v * 16 + static_cast<uint32_t>(d);
        ++pos_;
      }
      return v;
    };
    switch (c) {
      case 'n':
        return '\n';
      case 'r':
        return '\r';
      case 't':
        return '\t';
      case '\\':
      case '"':
      case '[':
      case ']':
      case '-':
      case '^':
        return static_cast<uint32_t>(c);
      case 'x':
        return hex(2);
      case 'u':
        return hex(4);
      case 'U':
        return hex(8);
      default:
        error(at, fmt::format("unknown escape \\{}", c));
    }
  }

  ExprPtr parse_atom() {
    size_t at = pos_;
    char c = peek();
    if (c == '"') {
      ++pos_;
      std::string text;
      while (true) {
        if (at_end()) error(at, "unterminated string literal");
        if (peek() == '"') {
          ++pos_;
          break;
        }
        append_utf8(text, parse_char());
      }
      return literal(text);
    }
    if (c == '[') {
      ++pos_;
      bool negate = peek() == '^';
      if (negate) ++pos_;
      CodepointSet set;
      while (true) {
        if (at_end()) error(at, "unterminated character class");
        if (peek() == ']') {
          ++pos_;
          break;
        }
        uint32_t lo = parse_char();
        uint32_t hi = lo;
        if (peek() == '-' && peek(1) != ']') {
          ++pos_;
          hi = parse_char();
          if (hi < lo) error(at, "character range out of order");
        }
        set.add(lo, hi);
      }
      if (negate) set = set.complement();
      if (set.empty()) error(at, "the character class matches nothing");
      return utf8_expr(set);
    }
    if (c == '.') {
      ++pos_;
      return utf8_expr(CodepointSet::all());
    }
    if (c == '(') {
      ++pos_;
      ExprPtr inner = parse_alt();
      skip_space();
      if (peek() != ')') error(at, "missing ')'");
      ++pos_;
      return inner;
    }
    if (name_char(c)) {
      std::string name = parse_name();
      return rule_ref(rule_id(name, at));
    }
    error(at, fmt::format("unexpected character '{}'", c));
  }

  std::string_view src_;
  size_t pos_ = 0;
  Grammar g_;
  std::map<std::string, int> ids_;
  std::map<int, size_t> defined_;
  std::map<int, size_t> first_use_;
};

}  // namespace

Grammar gbnf_grammar(std::string_view text) { return GbnfParser(text).parse(); }

}  // namespace exl::constrain::detail
