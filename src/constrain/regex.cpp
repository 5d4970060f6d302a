// Regular expressions -> Expr. The practical subset of docs/constrained-output.md: literals (UTF-8), '.', classes
// with ranges and negation, \d \w \s (ASCII) and their negations, character escapes, groups (capturing, (?:...),
// named), alternation, ? * + {m} {m,} {m,n} {,n} (lazy and possessive suffixes accepted: the language is the same),
// ^ at the start and $ at the end. Everything else is a kUnsupported error naming the construct and its offset.
#include "constrain/front_ends.h"
#include "core/error.h"

namespace exl::constrain::detail {
namespace {

constexpr int kMaxRepeat = 1000;

class RegexParser {
 public:
  RegexParser(std::string_view src, const std::string& what) : src_(src), what_(what) {}

  ExprPtr parse() {
    ExprPtr e = parse_alt(true);
    if (pos_ < src_.size()) error(ErrorKind::kInvalidArgument, "unmatched ')'");
    return e;
  }

 private:
  [[noreturn]] void error(ErrorKind kind, std::string_view message) const {
    fail(kind, "{}: {} at offset {} in \"{}\"", what_, message, pos_, src_);
  }

  bool at_end() const { return pos_ >= src_.size(); }
  char peek(size_t ahead = 0) const { return pos_ + ahead < src_.size() ? src_[pos_ + ahead] : '\0'; }

  ExprPtr parse_alt(bool top) {
    std::vector<ExprPtr> branches{parse_seq(top)};
    while (!at_end() && peek() == '|') {
      ++pos_;
      branches.push_back(parse_seq(top));
    }
    return alt(std::move(branches));
  }

  ExprPtr parse_seq(bool top) {
    std::vector<ExprPtr> items;
    if (top && peek() == '^') ++pos_;
    while (!at_end() && peek() != '|' && peek() != ')') {
      if (peek() == '$') {
        if (top && (pos_ + 1 == src_.size() || peek(1) == '|')) {
          ++pos_;
          break;
        }
        error(ErrorKind::kUnsupported, "'$' is supported only at the end of the pattern (matches are whole anyway)");
      }
      if (peek() == '^') error(ErrorKind::kUnsupported, "'^' is supported only at the start of the pattern");
      items.push_back(parse_quantified());
    }
    return seq(std::move(items));
  }

  // {m}, {m,}, {m,n}, {,n} at pos_; false (pos_ unchanged) if the brace does not start a quantifier.
  bool parse_braces(int& min, int& max) {
    size_t p = pos_ + 1;
    auto number = [&](int& out) {
      size_t start = p;
      long long v = 0;
      while (p < src_.size() && src_[p] >= '0' && src_[p] <= '9') {
        v = std::min<long long>(v * 10 + (src_[p] - '0'), 1'000'000'000);
        ++p;
      }
      out = static_cast<int>(v);
      return p > start;
    };
    int lo = 0;
    int hi = 0;
    bool has_lo = number(lo);
    if (p < src_.size() && src_[p] == '}') {
      if (!has_lo) return false;
      hi = lo;
    } else if (p < src_.size() && src_[p] == ',') {
      ++p;
      bool has_hi = number(hi);
      if (!has_lo && !has_hi) return false;
      if (!has_hi) hi = kUnbounded;
      if (p >= src_.size() || src_[p] != '}') return false;
    } else {
      return false;
    }
    pos_ = p + 1;
    if (lo > kMaxRepeat || hi > kMaxRepeat)
      error(ErrorKind::kUnsupported, fmt::format("repetition counts above {} are not supported", kMaxRepeat));
    if (hi != kUnbounded && hi < lo) error(ErrorKind::kInvalidArgument, "repetition {m,n} with n < m");
    min = lo;
    max = hi;
    return true;
  }

  bool parse_quantifier(int& min, int& max) {
    switch (peek()) {
      case '*':
        ++pos_;
        min = 0;
        max = kUnbounded;
        return true;
      case '+':
        ++pos_;
        min = 1;
        max = kUnbounded;
        return true;
      case '?':
        ++pos_;
        min = 0;
        max = 1;
        return true;
      case '{':
        return parse_braces(min, max);
      default:
        return false;
    }
  }

  ExprPtr parse_quantified() {
    ExprPtr atom = parse_atom();
    int min = 1;
    int max = 1;
    if (!parse_quantifier(min, max)) return atom;
    if (peek() == '?' || peek() == '+') ++pos_;  // lazy / possessive: same language
    int ignored_min = 0;
    int ignored_max = 0;
    size_t at = pos_;
    if (parse_quantifier(ignored_min, ignored_max)) {
      pos_ = at;
      error(ErrorKind::kInvalidArgument, "multiple repetition operators in a row (use a group)");
    }
    return repeat(std::move(atom), min, max);
  }

  uint32_t parse_codepoint() {
    uint32_t cp = 0;
    auto c = static_cast<uint8_t>(src_[pos_]);
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || pos_ + static_cast<size_t>(len) > src_.size()) error(ErrorKind::kInvalidArgument, "invalid UTF-8");
    cp = len == 1 ? c : c & (0xFF >> (len + 1));
    for (int k = 1; k < len; ++k) {
      auto cc = static_cast<uint8_t>(src_[pos_ + static_cast<size_t>(k)]);
      if ((cc & 0xC0) != 0x80) error(ErrorKind::kInvalidArgument, "invalid UTF-8");
      cp = (cp << 6) | (cc & 0x3F);
    }
    pos_ += static_cast<size_t>(len);
    return cp;
  }

  uint32_t parse_hex(int digits) {
    uint32_t v = 0;
    for (int k = 0; k < digits; ++k) {
      char c = peek();
      int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
      if (d < 0) error(ErrorKind::kInvalidArgument, fmt::format("expected {} hex digits in the escape", digits));
      v = v * 16 + static_cast<uint32_t>(d);
      ++pos_;
    }
    return v;
  }

  static CodepointSet class_set(char c) {
    CodepointSet s;
    switch (c) {
      case 'd':
        s.add('0', '9');
        break;
      case 'w':
        s.add('0', '9');
        s.add('A', 'Z');
        s.add('a', 'z');
        s.add('_', '_');
        break;
      default:  // 's'
        s.add('\t', '\r');
        s.add(' ', ' ');
        break;
    }
    return s;
  }

  // After a backslash. Returns a set (for \d etc.) or a single code point (set of one, `single` = true).
  CodepointSet parse_escape(bool in_class, bool& single) {
    if (at_end()) error(ErrorKind::kInvalidArgument, "pattern ends with a backslash");
    char c = src_[pos_++];
    single = true;
    auto one = [](uint32_t cp) { return CodepointSet::of(cp, cp); };
    switch (c) {
      case 'd':
      case 'w':
      case 's':
        single = false;
        return class_set(c);
      case 'D':
      case 'W':
      case 'S':
        single = false;
        return class_set(static_cast<char>(c - 'A' + 'a')).complement();
      case 'n':
        return one('\n');
      case 't':
        return one('\t');
      case 'r':
        return one('\r');
      case 'f':
        return one('\f');
      case 'v':
        return one('\v');
      case '0':
        return one(0);
      case 'x':
        return one(parse_hex(2));
      case 'u': {
        uint32_t cp = parse_hex(4);
        if (cp >= 0xD800 && cp <= 0xDFFF) error(ErrorKind::kUnsupported, "surrogate code points in \\u escapes");
        return one(cp);
      }
      case 'b':
        if (in_class) return one(8);
        break;
      default:
        break;
    }
    if (c >= '1' && c <= '9') error(ErrorKind::kUnsupported, "backreferences are not supported");
    if (c == 'b' || c == 'B' || c == 'A' || c == 'z' || c == 'Z' || c == 'G')
      error(ErrorKind::kUnsupported, fmt::format("the anchor \\{} is not supported", c));
    if (c == 'p' || c == 'P') error(ErrorKind::kUnsupported, "Unicode property classes (\\p, \\P) are not supported");
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
      error(ErrorKind::kInvalidArgument, fmt::format("unknown escape \\{}", c));
    --pos_;
    return one(parse_codepoint());
  }

  ExprPtr parse_class() {
    ++pos_;  // '['
    bool negate = false;
    if (peek() == '^') {
      negate = true;
      ++pos_;
    }
    CodepointSet set;
    bool first = true;
    while (true) {
      if (at_end()) error(ErrorKind::kInvalidArgument, "unterminated character class");
      if (peek() == ']' && !first) {
        ++pos_;
        break;
      }
      if (peek() == '[' && peek(1) == ':') error(ErrorKind::kUnsupported, "POSIX classes like [:alpha:]");
      first = false;
      bool single = true;
      CodepointSet lo_set = parse_class_atom(single);
      if (single && peek() == '-' && peek(1) != ']' && pos_ + 1 < src_.size()) {
        ++pos_;
        bool hi_single = true;
        CodepointSet hi_set = parse_class_atom(hi_single);
        if (!hi_single) error(ErrorKind::kInvalidArgument, "a class escape like \\d cannot end a range");
        uint32_t lo = lo_set.ranges()[0].lo;
        uint32_t hi = hi_set.ranges()[0].lo;
        if (hi < lo) error(ErrorKind::kInvalidArgument, "character range out of order");
        set.add(lo, hi);
      } else {
        set.add(lo_set);
      }
    }
    if (negate) set = set.complement();
    if (set.empty()) error(ErrorKind::kInvalidArgument, "the character class matches nothing");
    return utf8_expr(set);
  }

  CodepointSet parse_class_atom(bool& single) {
    if (peek() == '\\') {
      ++pos_;
      return parse_escape(true, single);
    }
    single = true;
    uint32_t cp = parse_codepoint();
    return CodepointSet::of(cp, cp);
  }

  ExprPtr parse_atom() {
    char c = peek();
    switch (c) {
      case '(': {
        ++pos_;
        if (peek() == '?') {
          if (peek(1) == ':') {
            pos_ += 2;
          } else if ((peek(1) == 'P' && peek(2) == '<') || (peek(1) == '<' && peek(2) != '=' && peek(2) != '!')) {
            size_t close = src_.find('>', pos_);
            if (close == std::string_view::npos) error(ErrorKind::kInvalidArgument, "unterminated group name");
            pos_ = close + 1;
          } else {
            error(ErrorKind::kUnsupported,
                  "group constructs other than (?:...) and named groups (lookaround, flags, conditionals)");
          }
        }
        ExprPtr inner = parse_alt(false);
        if (peek() != ')') error(ErrorKind::kInvalidArgument, "missing ')'");
        ++pos_;
        return inner;
      }
      case '[':
        return parse_class();
      case '.':
        ++pos_;
        return utf8_expr(CodepointSet::of('\n', '\n').complement());
      case '\\': {
        ++pos_;
        bool single = true;
        return utf8_expr(parse_escape(false, single));
      }
      case '*':
      case '+':
      case '?':
        error(ErrorKind::kInvalidArgument, fmt::format("nothing to repeat before '{}'", c));
      case '{': {
        int min = 0;
        int max = 0;
        size_t at = pos_;
        if (parse_braces(min, max)) {
          pos_ = at;
          error(ErrorKind::kInvalidArgument, "nothing to repeat before '{'");
        }
        ++pos_;
        return literal("{");
      }
      default: {
        std::string text;
        append_utf8(text, parse_codepoint());
        return literal(text);
      }
    }
  }

  std::string_view src_;
  const std::string& what_;
  size_t pos_ = 0;
};

}  // namespace

ExprPtr parse_regex(std::string_view pattern, const std::string& what) { return RegexParser(pattern, what).parse(); }

}  // namespace exl::constrain::detail
