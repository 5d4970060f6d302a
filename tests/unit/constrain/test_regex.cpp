// Regular expressions: whole-match semantics on bytes, UTF-8 classes, random walks checked with std::regex, and
// clear errors for what is unsupported or malformed.
#include <gtest/gtest.h>

#include <regex>

#include "constrain_test_util.h"
#include "core/error.h"

namespace exl::constrain::test {
namespace {

bool full_match(const Constraint& c, std::string_view text) {
  Matcher m(c);
  return m.advance(text) == text.size() && m.accepting();
}

void expect_matches(const char* pattern, std::initializer_list<const char*> yes, std::initializer_list<const char*> no) {
  Constraint c = Constraint::regex(pattern);
  for (const char* s : yes) EXPECT_TRUE(full_match(c, s)) << pattern << " should match \"" << s << "\"";
  for (const char* s : no) EXPECT_FALSE(full_match(c, s)) << pattern << " should not match \"" << s << "\"";
}

TEST(ConstrainRegex, LiteralsGroupsAlternation) {
  expect_matches("a(b|cd)*e?", {"a", "abcdbe", "ae"}, {"", "abc", "ae e", "b"});
  expect_matches("(?:foo|bar)baz", {"foobaz", "barbaz"}, {"baz", "foobarbaz"});
  expect_matches("(?P<year>[0-9]{4})-(?<m>[0-9]{2})", {"2024-05"}, {"2024-5"});
  expect_matches("^ab$|^cd$", {"ab", "cd"}, {"abcd", ""});
  expect_matches("a\\.b\\{\\}\\(\\)\\[\\]\\*\\+\\?\\|\\^\\$\\\\", {"a.b{}()[]*+?|^$\\"}, {"aXb{}()[]*+?|^$\\"});
  expect_matches("a{", {"a{"}, {"a"});
  expect_matches("x{2,}y{,2}", {"xx", "xxxxyy", "xxy"}, {"x", "xxyyy"});
  expect_matches("(ab|a)(bc|c)", {"abc", "abbc", "ac"}, {"ab", "bc"});
  expect_matches("a*?b+?c??", {"b", "aabbc"}, {"c"});
  expect_matches("", {""}, {"a"});
}

TEST(ConstrainRegex, ClassesAndEscapes) {
  expect_matches("[a-cx-z_]+", {"abc", "zz_x"}, {"d", "", "ab-"});
  expect_matches("[^a-z]", {"A", "0", "\xC3\xA9", "\xF0\x9F\x98\x80", "\n"}, {"a", "AB", ""});
  expect_matches("[]a]", {"]", "a"}, {"b"});
  expect_matches("[a-]", {"a", "-"}, {"b"});
  expect_matches("\\d\\w\\s\\D\\W\\S", {"1a x!x", "9_\tA.b"}, {"aa xxx", "1a xx!"});
  expect_matches("[\\d.]+", {"3.14", "..."}, {"3,14"});
  expect_matches("\\x41\\u00e9\\t\\n", {"A\xC3\xA9\t\n"}, {"Ae\t\n"});
  expect_matches(".", {"a", "\xC3\xA9", "\xE2\x82\xAC", "\xF4\x8F\xBF\xBF"}, {"\n", "", "\xC3", "\xED\xA0\x80"});
  expect_matches("[\xCE\xB1-\xCF\x89]+", {"\xCE\xB1\xCE\xB2\xCF\x89"}, {"a", "\xCE\x91"});
  expect_matches("[\xE4\xB8\x80-\xE9\xBE\xA5]{2}", {"\xE4\xB8\xAD\xE6\x96\x87"}, {"\xE4\xB8\xAD"});
}

TEST(ConstrainRegex, RejectsAtTheFirstBadByte) {
  Constraint c = Constraint::regex("[0-9]{3}-[0-9]{4}");
  Matcher m(c);
  EXPECT_EQ(m.advance(std::string_view("555-12x4")), 6u);
  EXPECT_FALSE(m.accepting());
  EXPECT_EQ(m.advance(std::string_view("34")), 2u);
  EXPECT_TRUE(m.accepting());
  EXPECT_TRUE(m.finished());
}

TEST(ConstrainRegex, RandomWalksMatchStdRegex) {
  const char* patterns[] = {"[a-z]{2,5}(-[0-9]+)?",
                            "(foo|bar|baz)+",
                            "\\d{3}-\\d{4}",
                            "[A-Z][a-z]*( [A-Z][a-z]*){0,3}",
                            "(ab|a)(bc|c)",
                            "(yes|no|maybe), because [a-z ]{1,40}\\.",
                            "-?(0|[1-9][0-9]*)(\\.[0-9]+)?"};
  for (const Vocabulary* vocab : {&demo_vocabulary(), &synthetic_vocabulary()}) {
    for (const char* pattern : patterns) {
      Constraint c = Constraint::regex(pattern);
      std::regex re(pattern);
      for (int seed = 0; seed < 40; ++seed) {
        Walk w = random_walk(*vocab, c, static_cast<uint64_t>(seed) + 1000, seed % 25);
        ASSERT_TRUE(w.failure.empty()) << pattern << " seed " << seed << ": " << w.failure;
        EXPECT_TRUE(std::regex_match(w.text, re)) << pattern << " produced \"" << w.text << "\"";
      }
    }
  }
}

void expect_error(const char* pattern, ErrorKind kind, const std::string& needle) {
  try {
    Constraint::regex(pattern);
    ADD_FAILURE() << "no error for " << pattern;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << pattern << ": " << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << pattern << ": " << e.what();
    EXPECT_NE(std::string(e.what()).find("regex:"), std::string::npos) << e.what();
  }
}

TEST(ConstrainRegex, ClearErrors) {
  expect_error("a(?=b)", ErrorKind::kUnsupported, "lookaround");
  expect_error("(a)\\1", ErrorKind::kUnsupported, "backreferences");
  expect_error("\\bword", ErrorKind::kUnsupported, "anchor \\b");
  expect_error("\\p{L}", ErrorKind::kUnsupported, "Unicode property");
  expect_error("a**", ErrorKind::kInvalidArgument, "multiple repetition");
  expect_error("*a", ErrorKind::kInvalidArgument, "nothing to repeat");
  expect_error("{2}", ErrorKind::kInvalidArgument, "nothing to repeat");
  expect_error("(ab", ErrorKind::kInvalidArgument, "missing ')'");
  expect_error("ab)", ErrorKind::kInvalidArgument, "unmatched ')'");
  expect_error("[ab", ErrorKind::kInvalidArgument, "unterminated character class");
  expect_error("[z-a]", ErrorKind::kInvalidArgument, "out of order");
  expect_error("a{1001}", ErrorKind::kUnsupported, "above 1000");
  expect_error("a{3,2}", ErrorKind::kInvalidArgument, "n < m");
  expect_error("a^b", ErrorKind::kUnsupported, "'^'");
  expect_error("a$b", ErrorKind::kUnsupported, "'$'");
  expect_error("\\q", ErrorKind::kInvalidArgument, "unknown escape");
  expect_error("[^\\x00-\\x{10}]", ErrorKind::kInvalidArgument, "hex digits");
  expect_error("(?i)abc", ErrorKind::kUnsupported, "flags");
  expect_error("a\\", ErrorKind::kInvalidArgument, "backslash");
  // The offset of the problem is part of the message.
  expect_error("abc(?!x)", ErrorKind::kUnsupported, "offset 4");
}

TEST(ConstrainRegex, LargeRepetitionsCompileWithinLimits) {
  Constraint c = Constraint::regex("[a-z]{1,1000}");
  EXPECT_TRUE(full_match(c, std::string(1000, 'q')));
  EXPECT_FALSE(full_match(c, std::string(1001, 'q')));
  try {
    Constraint::regex("(([a-z]{1,1000}){1,1000}){1,1000}");
    ADD_FAILURE() << "expected a size error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("too large"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace exl::constrain::test
