// The public API: errors (syntax, unknown filters, unsupported constructs, raise_exception), bounded work, inputs
// (special tokens, tools, kwargs, key order), tokenizer_config.json loading, and the injectable clock.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "chat/chat_template.h"

namespace exl::chat {
namespace {

std::string render(std::string_view source, const nlohmann::ordered_json& extra = nlohmann::ordered_json::object(),
                   const SpecialTokenStrings& tokens = {}, const RenderOptions& options = {}) {
  ChatTemplateInputs inputs;
  inputs.extra = extra;
  return ChatTemplate::parse(source).render(inputs, tokens, options);
}

// Runs fn, expecting exl::Error of `kind` whose message contains every fragment.
template <typename Fn>
void expect_error(Fn fn, ErrorKind kind, std::initializer_list<std::string_view> fragments) {
  try {
    fn();
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    for (std::string_view fragment : fragments) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what() << " lacks: " << fragment;
    }
  }
}

TEST(ChatTemplateErrors, SyntaxErrorNamesLineColumnAndToken) {
  expect_error([] { ChatTemplate::parse("hello\n  {% if %}x{% endif %}"); }, ErrorKind::kInvalidArgument,
               {"syntax error", "line 2, column 9", "Expected an expression, got 'end of statement block'"});
  expect_error([] { ChatTemplate::parse("{{ 1 ! 2 }}"); }, ErrorKind::kInvalidArgument,
               {"line 1, column 6", "unexpected char '!'"});
  expect_error([] { ChatTemplate::parse("{% for x in y %}"); }, ErrorKind::kInvalidArgument,
               {"Unexpected end of template", "'endfor' or 'else'", "innermost block that needs to be closed is 'for'"});
  expect_error([] { ChatTemplate::parse("{% if x %}{% endfor %}"); }, ErrorKind::kInvalidArgument,
               {"Encountered unknown tag 'endfor'", "'elif' or 'else' or 'endif'"});
  expect_error([] { ChatTemplate::parse("{# open"); }, ErrorKind::kInvalidArgument, {"Missing end of comment tag"});
  expect_error([] { ChatTemplate::parse("{{ x "); }, ErrorKind::kInvalidArgument,
               {"unexpected end of template, expected 'end of print statement'"});
  expect_error([] { ChatTemplate::parse("{{ 'unterminated }}"); }, ErrorKind::kInvalidArgument,
               {"unexpected char '''"});
  expect_error([] { ChatTemplate::parse("{{ (1] }}"); }, ErrorKind::kInvalidArgument, {"unexpected ']', expected ')'"});
  expect_error([] { ChatTemplate::parse("{% set none = 1 %}"); }, ErrorKind::kInvalidArgument,
               {"can't assign to 'const'"});
  expect_error([] { ChatTemplate::parse("{% break %}"); }, ErrorKind::kInvalidArgument, {"'break' outside of a for loop"});
  expect_error([] { ChatTemplate::parse("{% macro m(a=1, b) %}{% endmacro %}"); }, ErrorKind::kInvalidArgument,
               {"non-default argument follows default argument"});
}

TEST(ChatTemplateErrors, UnknownFiltersAndTestsFailAtParseTime) {
  expect_error([] { ChatTemplate::parse("ok\n{{ x|nosuch }}"); }, ErrorKind::kInvalidArgument,
               {"no filter named 'nosuch'", "line 2"});
  expect_error([] { ChatTemplate::parse("{% for x in y %}{{ x is nosuch }}{% endfor %}"); },
               ErrorKind::kInvalidArgument, {"no test named 'nosuch'"});
  // Inside an if (jinja's "soft" frames) the error waits until the filter is evaluated.
  const ChatTemplate deferred = ChatTemplate::parse("{% if x %}{{ x|nosuch }}{% endif %}ok");
  EXPECT_EQ(deferred.render({}, {}), "ok");
  expect_error([] { render("{% if x %}{{ x|nosuch }}{% endif %}", {{"x", 1}}); }, ErrorKind::kInvalidArgument,
               {"No filter named 'nosuch' found."});
}

TEST(ChatTemplateErrors, UnsupportedConstructsAreNamed) {
  expect_error([] { ChatTemplate::parse("{% include 'other.j2' %}"); }, ErrorKind::kUnsupported,
               {"'{% include %}'", "line 1", "not supported"});
  expect_error([] { ChatTemplate::parse("{% extends 'base' %}"); }, ErrorKind::kUnsupported, {"extends"});
  expect_error([] { ChatTemplate::parse("{{ f(*args) }}"); }, ErrorKind::kUnsupported, {"*args"});
  // A jinja filter exl lacks parses, and fails only when applied.
  const ChatTemplate tmpl = ChatTemplate::parse("{% if false %}{{ x|wordwrap }}{% endif %}fine");
  EXPECT_EQ(tmpl.render({}, {}), "fine");
  expect_error([] { render("\n{{ 'a b'|wordwrap(1) }}"); }, ErrorKind::kUnsupported,
               {"filter 'wordwrap' is not supported", "line 2"});
  expect_error([] { render("{{ [1]|select }}"); }, ErrorKind::kUnsupported, {"generator", "|list"});
}

TEST(ChatTemplateErrors, RaiseExceptionCarriesTheMessage) {
  try {
    render("{% if true %}{{ raise_exception('Conversation roles must alternate user/assistant') }}{% endif %}");
    ADD_FAILURE() << "expected ChatTemplateRaised";
  } catch (const ChatTemplateRaised& e) {
    EXPECT_STREQ(e.what(), "Conversation roles must alternate user/assistant");
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
  }
}

TEST(ChatTemplateErrors, RuntimeErrorsNameTheLine) {
  expect_error([] { render("a\nb\n{{ foo.bar }}"); }, ErrorKind::kInvalidArgument,
               {"line 3", "'foo' is undefined"});
  expect_error([] { render("{{ 'a' + 1 }}"); }, ErrorKind::kInvalidArgument, {"can only concatenate str"});
  expect_error([] { render("{% set xs = [] %}{{ xs.append(1) }}"); }, ErrorKind::kInvalidArgument,
               {"SecurityError", "append", "unsafe"});
  // A missing key prints as empty, but using it in arithmetic is an error (as in jinja).
  EXPECT_EQ(render("[{{ m.content }}]", {{"m", {{"role", "user"}}}}), "[]");
  expect_error([] { render("{{ m.content + 'x' }}", {{"m", {{"role", "user"}}}}); }, ErrorKind::kInvalidArgument,
               {"'dict object' has no attribute 'content'"});
}

TEST(ChatTemplateLimits, LoopsAreBounded) {
  RenderOptions options;
  options.limits.max_steps = 100000;
  expect_error([&] { render("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", {}, {},
                            options); },
               ErrorKind::kInvalidArgument, {"evaluation steps"});
}

TEST(ChatTemplateLimits, RecursionIsBounded) {
  expect_error([] { render("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"); }, ErrorKind::kInvalidArgument,
               {"nested deeper than"});
  expect_error([] { render("{% for x in [[1]] recursive %}{{ loop([[x]]) }}{% endfor %}"); },
               ErrorKind::kInvalidArgument, {"nested deeper than"});
}

TEST(ChatTemplateLimits, OutputAndValuesAreBounded) {
  RenderOptions options;
  options.limits.max_output_bytes = 1 << 20;
  expect_error([&] { render("{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}", {}, {}, options); },
               ErrorKind::kInvalidArgument, {"exceeds"});
  expect_error([&] { render("{{ 'x' * 1000000000000 }}", {}, {}, options); }, ErrorKind::kInvalidArgument,
               {"exceeds"});
  expect_error([&] { render("{{ 2 ** 64 }}"); }, ErrorKind::kUnsupported, {"overflow"});
}

TEST(ChatTemplateLimits, DeepNestingIsRejectedNotCrashing) {
  expect_error([] { ChatTemplate::parse("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}"); },
               ErrorKind::kInvalidArgument, {"nested deeper"});
  std::string chain = "{{ 1";
  for (int i = 0; i < 5000; ++i) chain += " + 1";
  expect_error([&] { ChatTemplate::parse(chain + " }}"); }, ErrorKind::kInvalidArgument, {"nested deeper"});
  std::string ifs;
  for (int i = 0; i < 1000; ++i) ifs += "{% if true %}";
  expect_error([&] { ChatTemplate::parse(ifs); }, ErrorKind::kInvalidArgument, {"nested deeper"});
  expect_error([] { ChatTemplate::parse("{{ " + std::string(3000, '-') + "1 }}"); }, ErrorKind::kInvalidArgument,
               {"nested deeper"});
}

TEST(ChatTemplateInputsTest, SpecialTokensAreUndefinedWhenAbsent) {
  EXPECT_EQ(render("{{ bos_token is defined }}|{{ eos_token }}"), "False|");
  SpecialTokenStrings tokens;
  tokens.bos_token = "<s>";
  tokens.eos_token = "</s>";
  tokens.additional_special_tokens = {"<a>", "<b>"};
  EXPECT_EQ(render("{{ bos_token }}{{ eos_token }}{{ additional_special_tokens|join(',') }}", {}, tokens),
            "<s></s><a>,<b>");
  // kwargs override special tokens, as in transformers.
  EXPECT_EQ(render("{{ bos_token }}", {{"bos_token", "X"}}, tokens), "X");
}

TEST(ChatTemplateInputsTest, ToolsAndDocumentsAreNoneWhenAbsent) {
  const ChatTemplate tmpl = ChatTemplate::parse(
      "{{ tools is none }}{{ documents is none }}{{ add_generation_prompt }}{{ messages|length }}");
  ChatTemplateInputs inputs;
  EXPECT_EQ(tmpl.render(inputs, {}), "TrueTrueFalse0");
  inputs.tools = nlohmann::ordered_json::array({{{"type", "function"}}});
  inputs.add_generation_prompt = true;
  inputs.messages = nlohmann::ordered_json::array({{{"role", "user"}, {"content", "hi"}}});
  EXPECT_EQ(tmpl.render(inputs, {}), "FalseTrueTrue1");
  inputs.extra = {{"messages", 1}};
  expect_error([&] { tmpl.render(inputs, {}); }, ErrorKind::kInvalidArgument, {"kwargs must not contain 'messages'"});
  inputs.extra = nlohmann::ordered_json::object();
  inputs.tools = 5;
  expect_error([&] { tmpl.render(inputs, {}); }, ErrorKind::kInvalidArgument, {"tools must be null or an array"});
}

TEST(ChatTemplateInputsTest, JsonKeyOrderAndBytesArePreserved) {
  const auto tool = nlohmann::ordered_json::parse(R"({"z": 1, "a": {"y": [1.0, 2.5e-7], "b": "é\u0001"}})");
  EXPECT_EQ(render("{{ t|tojson }}|{% for k in t %}{{ k }}{% endfor %}", {{"t", tool}}),
            "{\"z\": 1, \"a\": {\"y\": [1.0, 2.5e-07], \"b\": \"é\\u0001\"}}|za");
  // Text is passed through byte for byte, even when it is not valid UTF-8.
  const std::string odd = "caf\xc3\xa9 \xff\xfe end";
  EXPECT_EQ(render("{{ s }}|{{ s|length }}|{{ s[::-1][::-1] }}", {{"s", odd}}), odd + "|11|" + odd);
}

TEST(ChatTemplateInputsTest, StrftimeNowUsesTheInjectedClock) {
  RenderOptions options;
  options.clock = [] {
    std::tm tm{};
    tm.tm_year = 2031 - 1900;
    tm.tm_mon = 0;
    tm.tm_mday = 2;
    tm.tm_hour = 12;
    return std::chrono::system_clock::from_time_t(mktime(&tm));
  };
  EXPECT_EQ(render("{{ strftime_now('%d %b %Y') }}", {}, {}, options), "02 Jan 2031");
}

TEST(ChatTemplateConstructs, GenerationBlockRendersItsBodyInAScope) {
  EXPECT_EQ(render("{% generation %}x{% set y = 1 %}{{ y }}{% endgeneration %}{{ y is defined }}"), "x1False");
}

TEST(ChatTemplateConstructs, WhitespaceControlCorners) {
  // trim_blocks removes one newline after a block tag, not after a variable tag.
  EXPECT_EQ(render("{% if true %}\n\nA{% endif %}\n{{ 'B' }}\nC"), "\nAB\nC");
  // lstrip_blocks does not apply to variable tags, and only strips whitespace-only line prefixes.
  EXPECT_EQ(render("  {{ 'A' }}\n  x {% if true %}B{% endif %}"), "  A\n  x B");
  // '-' strips newlines too, on the side it is written.
  EXPECT_EQ(render("A\n\n  {%- if true %}B{% endif -%}\n\n  C"), "ABC");
  // The last newline of the template is dropped (keep_trailing_newline=False), only one.
  EXPECT_EQ(render("A\n\n"), "A\n");
  EXPECT_EQ(render("A\r\nB"), "A\nB");
}

TEST(ChatTemplateConfig, ParsesTokensAndTemplates) {
  const auto config = parse_tokenizer_chat_config(nlohmann::json::parse(R"({
    "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false},
    "eos_token": "</s>", "unk_token": null, "pad_token": "",
    "additional_special_tokens": ["<x>", {"content": "<y>"}],
    "chat_template": [{"name": "default", "template": "D"}, {"name": "tool_use", "template": "T"}]})"));
  EXPECT_EQ(config.special_tokens.bos_token, "<s>");
  EXPECT_EQ(config.special_tokens.eos_token, "</s>");
  EXPECT_FALSE(config.special_tokens.unk_token.has_value());
  EXPECT_FALSE(config.special_tokens.pad_token.has_value());
  EXPECT_EQ(config.special_tokens.additional_special_tokens, (std::vector<std::string>{"<x>", "<y>"}));
  ChatTemplateInputs inputs;
  EXPECT_EQ(config.select_template(inputs), "D");
  inputs.tools = nlohmann::ordered_json::array();
  EXPECT_EQ(config.select_template(inputs), "T");

  const auto none = parse_tokenizer_chat_config(nlohmann::json::parse(R"({"eos_token": "</s>"})"));
  expect_error([&] { none.select_template({}); }, ErrorKind::kNotFound, {"no chat template"});
  expect_error([] { parse_tokenizer_chat_config(nlohmann::json::parse(R"({"chat_template": 5})")); },
               ErrorKind::kCorruptFile, {"chat_template"});
}

TEST(ChatTemplateConfig, LoadsChatTemplateJinjaNextToTheConfig) {
  const auto dir = std::filesystem::temp_directory_path() / "exl_chat_template_test";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer_config.json") << R"({"bos_token": "<b>"})";
  std::ofstream(dir / "chat_template.jinja") << "{{ bos_token }}{{ messages[0].content }}\n";
  const auto config = load_tokenizer_chat_config(dir);
  ChatTemplateInputs inputs;
  inputs.messages = nlohmann::ordered_json::parse(R"([{"role": "user", "content": "hi"}])");
  EXPECT_EQ(ChatTemplate::parse(config.select_template(inputs)).render(inputs, config.special_tokens), "<b>hi");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace exl::chat
