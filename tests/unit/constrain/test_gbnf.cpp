// GBNF grammars: literals, classes, repetition, recursion (random walks checked by a small parser), comments and
// multi-line rules, and errors (undefined rules, no root, left recursion, rules that can never complete).
#include <gtest/gtest.h>

#include "constrain_test_util.h"
#include "core/error.h"

namespace exl::constrain::test {
namespace {

bool full_match(const Constraint& c, std::string_view text) {
  Matcher m(c);
  return m.advance(text) == text.size() && m.accepting();
}

TEST(ConstrainGbnf, RepetitionForcesTheOutput) {
  // llama.cpp's server test: the output must be "aaaaa" whatever the model prefers.
  Constraint c = Constraint::grammar("root ::= \"a\"{5,5}");
  EXPECT_TRUE(full_match(c, "aaaaa"));
  EXPECT_FALSE(full_match(c, "aaaa"));
  Matcher m(c);
  EXPECT_EQ(m.advance(std::string_view("aaaaaa")), 5u);
  EXPECT_TRUE(m.finished());
  TokenMasker masker(demo_vocabulary(), c);
  for (int32_t t : masker.allowed_tokens()) {
    const std::string& b = demo_vocabulary().token_bytes(t);
    EXPECT_EQ(b.find_first_not_of('a'), std::string::npos) << b;
  }
}

TEST(ConstrainGbnf, SyntaxCoverage) {
  Constraint c = Constraint::grammar(R"(
    # a comment line
    root   ::= greeting ", " name ("!" | "?")? tail
    greeting ::= "hello" | "hi"   # trailing comment
               | "hey"
    name ::= [A-Z] [a-z]* | "\u00e9t\xC3\xA9"
    tail ::= [^\n]{0,3} "\n"
  )");
  EXPECT_TRUE(full_match(c, "hello, Bob!\n"));
  EXPECT_TRUE(full_match(c, "hey, X?ab\n"));
  EXPECT_TRUE(full_match(c, "hi, \xC3\xA9t\xC3\x83\xC2\xA9\n"));
  EXPECT_FALSE(full_match(c, "hello, bob\n"));
  EXPECT_FALSE(full_match(c, "hi, Al!abcd\n"));
}

// expr ::= term (("+" | "-") term)*, term ::= factor (("*" | "/") factor)*, factor ::= digits | "(" expr ")"
bool parse_expr(const std::string& s, size_t& i);
bool parse_factor(const std::string& s, size_t& i) {
  if (i < s.size() && s[i] == '(') {
    ++i;
    if (!parse_expr(s, i) || i >= s.size() || s[i] != ')') return false;
    ++i;
    return true;
  }
  size_t start = i;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  return i > start;
}
bool parse_term(const std::string& s, size_t& i) {
  if (!parse_factor(s, i)) return false;
  while (i < s.size() && (s[i] == '*' || s[i] == '/')) {
    ++i;
    if (!parse_factor(s, i)) return false;
  }
  return true;
}
bool parse_expr(const std::string& s, size_t& i) {
  if (!parse_term(s, i)) return false;
  while (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    ++i;
    if (!parse_term(s, i)) return false;
  }
  return true;
}

TEST(ConstrainGbnf, RecursiveArithmetic) {
  Constraint c = Constraint::grammar(R"g(
    root ::= expr
    expr ::= term (("+" | "-") term)*
    term ::= factor (("*" | "/") factor)*
    factor ::= [0-9]+ | "(" expr ")"
  )g");
  EXPECT_TRUE(full_match(c, "1+2*(3-4)"));
  EXPECT_TRUE(full_match(c, "((7))"));
  Matcher m(c);
  EXPECT_EQ(m.advance(std::string_view("1+*2")), 2u);
  for (const Vocabulary* vocab : {&demo_vocabulary(), &synthetic_vocabulary()}) {
    for (int seed = 0; seed < 60; ++seed) {
      Walk w = random_walk(*vocab, c, static_cast<uint64_t>(seed), seed % 40);
      ASSERT_TRUE(w.failure.empty()) << w.failure;
      size_t i = 0;
      EXPECT_TRUE(parse_expr(w.text, i) && i == w.text.size()) << w.text;
    }
  }
}

void expect_error(const char* grammar, const std::string& needle) {
  try {
    Constraint::grammar(grammar);
    ADD_FAILURE() << "no error for " << grammar;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << grammar << ": " << e.what();
  }
}

TEST(ConstrainGbnf, ClearErrors) {
  expect_error("start ::= \"a\"", "no rule named \"root\"");
  expect_error("root ::= item", "rule \"item\" is used");
  expect_error("root ::= root \"a\" | \"a\"", "left recursion: root -> root");
  expect_error("root ::= a\na ::= b \"x\"\nb ::= a | \"y\"", "left recursion");
  expect_error("root ::= \"a\" root", "matches nothing");
  expect_error("root ::= \"abc", "line 1 column 10: unterminated string");
  expect_error("root ::= \"a\"\nroot ::= \"b\"", "defined twice");
  expect_error("root ::= [b-a]", "out of order");
  expect_error("root ::= \"\\q\"", "unknown escape");
  expect_error("root ::= \"a\"{3,1}", "n < m");
  expect_error("root \"a\"", "expected '::='");
  expect_error("root ::= (\"a\"", "missing ')'");
  expect_error("root ::= \"a\" ;", "unexpected character ';'");
}

}  // namespace
}  // namespace exl::constrain::test
