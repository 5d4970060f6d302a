// JSON schema compile errors name the JSON pointer and what was expected; plus the semantics of the choices the
// subset makes (property order, absent additionalProperties, integer bounds, nullable, empty schema).
#include <gtest/gtest.h>

#include "constrain_test_util.h"
#include "core/error.h"

namespace exl::constrain::test {
namespace {

bool full_match(const Constraint& c, std::string_view text) {
  Matcher m(c);
  return m.advance(text) == text.size() && m.accepting();
}

void expect_error(const std::string& schema, ErrorKind kind, std::initializer_list<std::string> needles) {
  try {
    Constraint::json_schema_text(schema);
    ADD_FAILURE() << "no error for " << schema;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << schema << ": " << e.what();
    for (const std::string& needle : needles)
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << schema << ": " << e.what();
  }
}

TEST(ConstrainSchemaErrors, NameThePointerAndTheProblem) {
  using K = ErrorKind;
  expect_error(R"({"type": "object", "properties": {"a": {"type": "string", "patternProperties": {}}}})",
               K::kUnsupported, {"json schema /properties/a/patternProperties", "unsupported keyword"});
  expect_error(R"({"type": "strin"})", K::kInvalidArgument, {"/type", "unknown type \"strin\""});
  expect_error(R"({"$ref": "#/$defs/missing"})", K::kInvalidArgument, {"/$ref", "points to nothing"});
  expect_error(R"({"$ref": "https://example.com/s.json"})", K::kUnsupported, {"only references into this document"});
  expect_error(R"({"type": "number", "minimum": 0.5})", K::kUnsupported, {"/minimum", "integral bounds"});
  expect_error(R"({"type": "integer", "minimum": 5, "maximum": 3})", K::kInvalidArgument, {"no value"});
  expect_error(R"({"type": "string", "format": "hostname"})", K::kUnsupported,
               {"/format", "unsupported format \"hostname\"", "date-time"});
  expect_error(R"({"type": "object", "properties": {"a": {}}, "required": ["b"]})", K::kUnsupported,
               {"/required", "\"b\" is not listed in properties"});
  expect_error(R"({"enum": []})", K::kInvalidArgument, {"/enum", "non-empty array"});
  expect_error(R"({"type": "object",)", K::kInvalidArgument, {"does not parse"});
  expect_error(R"j({"properties": {"p": {"type": "string", "pattern": "a(?=b)"}}})j", K::kUnsupported,
               {"/properties/p/pattern", "lookaround"});
  expect_error(R"({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"})", K::kInvalidArgument,
               {"matches nothing"});
  expect_error(R"({"$defs": {"a": {"anyOf": [{"$ref": "#/$defs/a"}, {"type": "null"}]}}, "$ref": "#/$defs/a"})",
               K::kInvalidArgument, {"left recursion: #/$defs/a -> #/$defs/a"});
  expect_error(R"(false)", K::kInvalidArgument, {"matches nothing"});
  expect_error(R"({"type": "array", "uniqueItems": true})", K::kUnsupported, {"/uniqueItems"});
  expect_error(R"({"type": "object", "anyOf": [{"required": ["a"]}]})", K::kUnsupported,
               {"\"anyOf\" together with \"type\""});
  expect_error(R"({"type": "string", "maxLength": 200000})", K::kUnsupported, {"too large"});
  expect_error(R"({"type": "string", "minLength": -1})", K::kInvalidArgument, {"/minLength", "non-negative integer"});
  expect_error(R"({"type": "array", "items": [{"type": "string"}]})", K::kUnsupported, {"/items", "tuple form"});
  expect_error(R"({"allOf": [{"type": "string"}, {"maxLength": 2}]})", K::kUnsupported, {"exactly one schema"});
  expect_error(R"({"type": "string", "pattern": "^a$", "maxLength": 3})", K::kUnsupported, {"\"pattern\" together"});
  expect_error(R"({"type": "array", "minItems": 3, "maxItems": 2})", K::kInvalidArgument, {"maxItems 2"});
  expect_error(R"([1, 2])", K::kInvalidArgument, {"json schema /", "expected a schema"});
}

TEST(ConstrainSchemaSemantics, PropertyOrder) {
  const char* text = R"({"type": "object", "properties": {"b": {"type": "null"}, "a": {"type": "null"}},
                         "required": ["a", "b"], "additionalProperties": false})";
  // Text (and ordered_json) keep the schema's order.
  Constraint ordered = Constraint::json_schema_text(text);
  EXPECT_TRUE(full_match(ordered, R"({"b": null, "a": null})"));
  EXPECT_FALSE(full_match(ordered, R"({"a": null, "b": null})"));
  // nlohmann::json sorts keys.
  Constraint sorted = Constraint::json_schema(json::parse(text));
  EXPECT_TRUE(full_match(sorted, R"({"a": null, "b": null})"));
  EXPECT_FALSE(full_match(sorted, R"({"b": null, "a": null})"));
}

TEST(ConstrainSchemaSemantics, AdditionalPropertiesDefault) {
  // With properties and no additionalProperties: no other keys (OpenAI's strict mode). Without properties: any keys.
  Constraint declared = Constraint::json_schema_text(R"({"type": "object", "properties": {"a": {"type": "integer"}}})");
  EXPECT_TRUE(full_match(declared, R"({"a": 1})"));
  EXPECT_TRUE(full_match(declared, R"({})"));
  EXPECT_FALSE(full_match(declared, R"({"a": 1, "b": 2})"));
  Constraint open = Constraint::json_schema_text(R"({"type": "object"})");
  EXPECT_TRUE(full_match(open, R"({"x": [1, {"y": null}], "x": "dup"})"));
  Constraint additional = Constraint::json_schema_text(
      R"({"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": true})");
  EXPECT_TRUE(full_match(additional, R"({"a": 1, "b": [true]})"));
  EXPECT_TRUE(full_match(additional, R"({"b": {}, "c": 2})"));
  EXPECT_FALSE(full_match(additional, R"({"b": {}, "a": 2})"));  // declared properties come first
}

TEST(ConstrainSchemaSemantics, NumbersAndBounds) {
  Constraint frac = Constraint::json_schema_text(R"({"type": "integer", "minimum": 1.5, "maximum": 3.5})");
  EXPECT_FALSE(full_match(frac, "1"));
  EXPECT_TRUE(full_match(frac, "2"));
  EXPECT_TRUE(full_match(frac, "3"));
  EXPECT_FALSE(full_match(frac, "4"));
  Constraint excl = Constraint::json_schema_text(R"({"type": "number", "exclusiveMinimum": -2, "maximum": 0})");
  for (const char* yes : {"-1.999", "-1", "0", "0.0", "-0.5", "-1.0000001"}) EXPECT_TRUE(full_match(excl, yes)) << yes;
  for (const char* no : {"-2", "-2.0", "0.1", "1", "-3", "-2.5"}) EXPECT_FALSE(full_match(excl, no)) << no;
  Constraint big = Constraint::json_schema_text(R"({"type": "integer", "minimum": 1000000})");
  EXPECT_TRUE(full_match(big, "1000000"));
  EXPECT_TRUE(full_match(big, "123456789012345678"));
  EXPECT_FALSE(full_match(big, "999999"));
  EXPECT_FALSE(full_match(big, "1234567890123456789"));  // 19 digits: beyond the unbounded integer limit
  Constraint any = Constraint::json_schema_text(R"({"type": "number"})");
  for (const char* yes : {"0", "-0", "1.5e10", "-2E-3", "3.25", "1234567890123456"})
    EXPECT_TRUE(full_match(any, yes)) << yes;
  for (const char* no : {"01", ".5", "1.", "1e", "+1", "1e123", "NaN"}) EXPECT_FALSE(full_match(any, no)) << no;
  Constraint old_style =
      Constraint::json_schema_text(R"({"type": "integer", "minimum": 0, "exclusiveMinimum": true, "maximum": 3})");
  EXPECT_FALSE(full_match(old_style, "0"));
  EXPECT_TRUE(full_match(old_style, "1"));
}

TEST(ConstrainSchemaSemantics, EmptySchemaNullableConst) {
  Constraint any = Constraint::json_schema_text("{}");
  for (const char* yes : {"1", "\"x\"", "[1, \"a\", {}]", "null", "{\"a\": {\"b\": []}}"})
    EXPECT_TRUE(full_match(any, yes)) << yes;
  EXPECT_TRUE(full_match(Constraint::json_schema_text("true"), "[]"));
  Constraint nullable = Constraint::json_schema_text(R"({"type": "string", "nullable": true, "maxLength": 2})");
  EXPECT_TRUE(full_match(nullable, "null"));
  EXPECT_TRUE(full_match(nullable, "\"ab\""));
  Constraint c = Constraint::json_schema_text(R"({"const": {"k": [1, "\u00e9"]}})");
  EXPECT_TRUE(full_match(c, "{\"k\":[1,\"\xC3\xA9\"]}"));
  EXPECT_FALSE(full_match(c, "{\"k\": [1, \"\xC3\xA9\"]}"));  // const values are written compactly
  Constraint pattern = Constraint::json_schema_text(R"({"type": "string", "pattern": "a\"b"})");
  EXPECT_TRUE(full_match(pattern, R"("a\"b")"));
  EXPECT_TRUE(full_match(pattern, R"("xxa\"byy")"));  // unanchored patterns search
  EXPECT_FALSE(full_match(pattern, R"("a"b")"));
}

}  // namespace
}  // namespace exl::constrain::test
