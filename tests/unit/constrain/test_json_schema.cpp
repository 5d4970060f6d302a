// 20 JSON schemas of increasing complexity. For each: 100 seeded random walks on the demo model's vocabulary
// (every output parses and validates), 30 on a synthetic vocabulary, known valid documents fed token by token
// (always allowed, EOS allowed at the end) and known invalid ones (rejected exactly at the first offending byte,
// and the token that carries that byte is the first one refused).
#include <gtest/gtest.h>

#include "constrain_test_util.h"
#include "core/error.h"

namespace exl::constrain::test {
namespace {

struct Invalid {
  std::string ok;    // accepted prefix
  std::string rest;  // its first byte is refused; empty: the whole text is accepted but incomplete
};

struct SchemaCase {
  std::string name;
  std::string schema;  // text; "json_object" = Constraint::json_object() (validated as {"type": "object"})
  std::vector<std::string> valid;
  std::vector<Invalid> invalid;
};

const std::vector<SchemaCase>& cases() {
  static const std::vector<SchemaCase> k = {
      {"Boolean", R"({"type": "boolean"})", {"true", "false"}, {{"", "maybe"}, {"true", " "}, {"fals", "y"}}},
      {"IntegerRange",
       R"({"type": "integer", "minimum": -20, "maximum": 1234})",
       {"0", "-20", "1234", "999", "-7"},
       {{"123", "5"}, {"-2", "1"}, {"0", "1"}, {"-", "0"}, {"12", "."}, {"", "+1"}}},
      {"NumberUnitInterval",
       R"({"type": "number", "minimum": 0, "exclusiveMaximum": 1})",
       {"0", "0.5", "0.999", "0.0"},
       {{"", "1"}, {"", "-"}, {"0.5", "e"}, {"0", "0"}}},
      {"StringLength",
       R"({"type": "string", "minLength": 2, "maxLength": 8})",
       {R"("ab")", "\"h\xC3\xA9llo\"", R"("\n\t")", R"("12345678")", R"("\u00e9\ud83d\ude00")"},
       {{"\"a", "\""}, {"\"12345678", "9"}, {"\"a", "\x01"}, {"\"ab\\", "x"}, {"\"ab", ""}, {"\"a\\u", "g"}}},
      {"Enum",
       R"({"enum": ["red", "green", "blue", 42, null, true]})",
       {R"("red")", "42", "null", "true", R"("blue")"},
       {{"\"re", "x"}, {"4", "3"}, {"", "false"}, {"\"gre", ""}}},
      {"DateFormat",
       R"({"type": "string", "format": "date"})",
       {R"("2024-02-29")", R"("1999-12-31")"},
       {{"\"2024-1", "3"}, {"\"2024-02-3", "2"}, {"\"202", "-"}}},
      {"ObjectRequired",
       R"({"type": "object", "properties": {"name": {"type": "string"},
           "age": {"type": "integer", "minimum": 0, "maximum": 150}},
           "required": ["name", "age"], "additionalProperties": false})",
       {R"({"name": "Ann", "age": 31})", R"({"name":"x","age":0})", "{\n  \"name\": \"Bo\",\n  \"age\": 150\n}"},
       {{R"({"name": "Ann", "age": 15)", "1"},
        {R"({")", "age"},
        {R"({"name": "Ann")", "}"},
        {R"({"name": "Ann", "age": 3)", ","},
        {"{" + std::string(20, ' '), " \"name\""}}},
      {"ObjectOptional",
       R"({"type": "object", "properties": {"a": {"type": "boolean"}, "b": {"type": "null"},
           "c": {"type": "number"}}, "required": ["b"]})",
       {R"({"b": null})", R"({"a": true, "b": null, "c": -1.5e3})", R"({"b":null,"c":0})"},
       {{"{", "}"}, {R"({"b": null, ")", "a"}, {R"({"a": true)", "}"}, {R"({"b": null, "c": 0)", "1"}, {R"({"b": null, "c": 1)", ""}}},
      {"ArrayOfIntegers",
       R"({"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 5})",
       {"[1]", "[1, -2, 3, 4, 5]", "[ 0 ]"},
       {{"[", "]"}, {"[1, 2, 3, 4, 5", ","}, {"[1,", "]"}, {"[1", "."}}},
      {"ArrayOfEnums",
       R"({"type": "array", "items": {"enum": ["x", "y", "z"]}, "maxItems": 3})",
       {"[]", R"(["x", "z", "x"])"},
       {{R"(["x", "y", "z")", ","}, {R"([")", "w"}}},
      {"NestedObjects",
       R"({"type": "object", "properties": {
           "user": {"type": "object", "properties": {"id": {"type": "string", "format": "uuid"},
                    "email": {"type": "string", "format": "email"}}, "required": ["id", "email"],
                    "additionalProperties": false},
           "tags": {"type": "array", "items": {"type": "string", "maxLength": 10}}},
           "required": ["user", "tags"], "additionalProperties": false})",
       {R"({"user": {"id": "123e4567-e89b-12d3-a456-426614174000", "email": "a.b@example.com"}, "tags": ["a", "bcd"]})",
        R"({"user":{"id":"ABCDEF01-0000-0000-0000-000000000000","email":"x@y.org"},"tags":[]})"},
       {{R"({"user": {"id": "123e4567-e89b-12d3-a456-42661417400)", "\""},
        {R"({"user": {"id": "123e4567-e89b-12d3-a456-426614174000", "email": "ab)", "\""},
        {R"({"user": {"id": "123e4567-e89b-12d3-a456-426614174000", "email": "a@b.co"}, "tags": ["0123456789)", "0"}}},
      {"AnyOf",
       R"({"anyOf": [{"type": "string", "maxLength": 5}, {"type": "integer", "minimum": 100},
           {"type": "object", "properties": {"kind": {"const": "point"}, "x": {"type": "number"},
            "y": {"type": "number"}}, "required": ["kind", "x", "y"], "additionalProperties": false}]})",
       {R"("abc")", "100", "12345", R"({"kind": "point", "x": 1, "y": -2.5})"},
       {{"\"abcde", "f"}, {"9", ""}, {"", "-1"}, {R"({"kind": ")", "line"}}},
      {"TypeList",
       R"({"type": ["string", "null"], "maxLength": 3})",
       {"null", R"("abc")", R"("")"},
       {{"\"abc", "d"}, {"null", " "}}},
      {"TimeFormats",
       R"({"type": "object", "properties": {"when": {"type": "string", "format": "date-time"},
           "at": {"type": "string", "format": "time"}, "ip": {"type": "string", "format": "ipv4"}},
           "required": ["when", "at", "ip"], "additionalProperties": false})",
       {R"({"when": "2024-05-01T13:45:00.123+02:00", "at": "08:00:00Z", "ip": "192.168.0.1"})"},
       {{R"({"when": "2024-05-01T2)", "4"},
        {R"({"when": "2024-05-01T13:45:00Z", "at": "08:00:00Z", "ip": "25)", "6"},
        {R"({"when": "2024-05-01T13:45:00Z", "at": "08:00:00)", "\""}}},
      {"RefDefs",
       R"({"$defs": {"address": {"type": "object", "properties": {"street": {"type": "string"},
           "zip": {"type": "string", "pattern": "^[0-9]{5}$"}}, "required": ["street", "zip"],
           "additionalProperties": false}},
           "type": "object", "properties": {"home": {"$ref": "#/$defs/address"}, "work": {"$ref": "#/$defs/address"}},
           "required": ["home"], "additionalProperties": false})",
       {R"({"home": {"street": "Main St 1", "zip": "12345"}})",
        R"({"home": {"street": "a", "zip": "00000"}, "work": {"street": "b\"c", "zip": "99999"}})"},
       {{R"({"home": {"street": "x", "zip": "1234)", "\""}, {R"({"home": {"street": "x", "zip": "12)", "a"}}},
      {"RecursiveRef",
       R"({"$defs": {"node": {"type": "object", "properties": {"value": {"type": "integer"},
           "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}},
           "required": ["value"], "additionalProperties": false}}, "$ref": "#/$defs/node"})",
       {R"({"value": 1})", R"({"value": 1, "children": [{"value": 2}, {"value": 3, "children": []}]})"},
       {{R"({"value": 1, "children": [{"value": 2}, {"value": 3})", ","}, {R"({")", "c"}}},
      {"AdditionalProperties",
       R"({"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"],
           "additionalProperties": {"type": "string", "maxLength": 4}})",
       {R"({"id": 5})", R"({"id": 5, "x": "ab", "yz": "abcd", "idx": ""})"},
       {{R"({"id": 5, "x": "abcd)", "e"}, {R"({"id": 5, "id)", "\""}, {R"({"id": 5, "x": )", "1"}}},
      {"JsonObject",
       "json_object",
       {"{}", R"({"a": [1, 2, {"b": null}], "c": "d", "e": -0.5E+10, "f": true})", "{ }"},
       {{"", "["}, {R"({"a": 1)", "]"}, {"", "\"x\""}, {"{\"a\"", ","}}},
      {"StructuredSteps",
       R"({"type": "object", "properties": {"steps": {"type": "array", "items": {"type": "object",
           "properties": {"explanation": {"type": "string"}, "output": {"type": "string"}},
           "required": ["explanation", "output"], "additionalProperties": false}},
           "final_answer": {"type": "string"}}, "required": ["steps", "final_answer"],
           "additionalProperties": false})",
       {R"({"steps": [{"explanation": "x", "output": "y"}], "final_answer": "z"})",
        R"({"steps": [], "final_answer": ""})"},
       {{R"({"steps": [{")", "o"}, {R"({"steps": [])", "}"}}},
      {"Complex",
       R"({"definitions": {"status": {"enum": ["active", "inactive", "pending"]}},
           "type": "object", "properties": {
             "status": {"$ref": "#/definitions/status"},
             "score": {"type": "number", "minimum": -5, "maximum": 5},
             "count": {"type": "integer", "exclusiveMinimum": 0},
             "note": {"anyOf": [{"type": "string", "pattern": "^[A-Z][a-z]+$"}, {"type": "null"}]},
             "matrix": {"type": "array", "items": {"type": "array", "items": {"type": "integer", "minimum": 0,
                        "maximum": 9}, "minItems": 2, "maxItems": 2}, "maxItems": 3}},
           "required": ["status", "score", "count", "note", "matrix"], "additionalProperties": false})",
       {R"({"status": "active", "score": -4.5, "count": 3, "note": null, "matrix": [[1, 2], [9, 0]]})",
        R"({"status":"pending","score":5,"count":1,"note":"Hello","matrix":[]})"},
       {{R"({"status": "active", "score": 5.)", "5"},
        {R"({"status": "active", "score": 1, "count": )", "0"},
        {R"({"status": "active", "score": 1, "count": 1, "note": ")", "h"},
        {R"({"status": "active", "score": 1, "count": 1, "note": null, "matrix": [[1, 2)", ","},
        {R"({"status": "active", "score": -5.)", "1"}}},
  };
  return k;
}

Constraint constraint_of(const SchemaCase& c) {
  if (c.schema == "json_object") return Constraint::json_object();
  return Constraint::json_schema_text(c.schema);
}

ojson validation_schema(const SchemaCase& c) {
  if (c.schema == "json_object") return ojson::parse(R"({"type": "object"})");
  return ojson::parse(c.schema);
}

class JsonSchemaCases : public ::testing::TestWithParam<SchemaCase> {};

void check_walks(const Vocabulary& vocab, const SchemaCase& c, int seeds) {
  Constraint constraint = constraint_of(c);
  ojson schema = validation_schema(c);
  for (int seed = 0; seed < seeds; ++seed) {
    Walk w = random_walk(vocab, constraint, static_cast<uint64_t>(seed) * 7919 + 1, seed % 50);
    ASSERT_TRUE(w.failure.empty()) << "seed " << seed << ": " << w.failure;
    json value;
    try {
      value = json::parse(w.text);
    } catch (const json::exception& e) {
      FAIL() << "seed " << seed << ": output does not parse: " << e.what() << "\n" << w.text;
    }
    std::string why = validate(value, schema, schema);
    EXPECT_TRUE(why.empty()) << "seed " << seed << ": " << why << "\n" << w.text;
  }
}

TEST_P(JsonSchemaCases, RandomWalksDemoVocabulary) { check_walks(demo_vocabulary(), GetParam(), 100); }

TEST_P(JsonSchemaCases, RandomWalksSyntheticVocabulary) { check_walks(synthetic_vocabulary(), GetParam(), 30); }

TEST_P(JsonSchemaCases, ValidDocumentsAreAllowed) {
  const SchemaCase& c = GetParam();
  Constraint constraint = constraint_of(c);
  ojson schema = validation_schema(c);
  for (const Vocabulary* vocab : {&demo_vocabulary(), &synthetic_vocabulary()}) {
    for (const std::string& doc : c.valid) {
      ASSERT_EQ(validate(json::parse(doc), schema, schema), "") << doc;
      auto tokens = greedy_tokens(*vocab, doc);
      ASSERT_TRUE(tokens.has_value()) << doc;
      TokenMasker masker(*vocab, constraint);
      std::string fed;
      for (int32_t t : *tokens) {
        ASSERT_TRUE(masker.mask()->test(t)) << "token " << t << " refused after \"" << fed << "\" in " << doc;
        masker.advance(t);
        fed += vocab->token_bytes(t);
      }
      EXPECT_TRUE(masker.accepting()) << doc;
      EXPECT_TRUE(masker.mask()->test(vocab->eos_ids()[0])) << doc;
      masker.advance(vocab->eos_ids()[0]);
      EXPECT_TRUE(masker.finished());
      EXPECT_EQ(masker.mask()->count(), 0);
    }
  }
}

TEST_P(JsonSchemaCases, InvalidDocumentsAreRefusedAtTheFirstBadByte) {
  const SchemaCase& c = GetParam();
  Constraint constraint = constraint_of(c);
  for (const Invalid& bad : c.invalid) {
    std::string doc = bad.ok + bad.rest;
    Matcher m(constraint);
    EXPECT_EQ(m.advance(doc), bad.ok.size()) << doc;
    if (bad.rest.empty()) {
      EXPECT_FALSE(m.accepting()) << doc;
      continue;
    }
    // Token level: the first refused token is the one holding the bad byte.
    const Vocabulary& vocab = demo_vocabulary();
    auto tokens = greedy_tokens(vocab, doc);
    ASSERT_TRUE(tokens.has_value());
    TokenMasker masker(vocab, constraint);
    size_t offset = 0;
    for (int32_t t : *tokens) {
      size_t len = vocab.token_bytes(t).size();
      bool allowed = masker.mask()->test(t);
      EXPECT_EQ(allowed, masker.is_allowed(t));
      if (!allowed) {
        EXPECT_LE(offset, bad.ok.size()) << doc;
        EXPECT_GT(offset + len, bad.ok.size()) << doc;
        EXPECT_THROW(masker.advance(t), Error);
        break;
      }
      ASSERT_LE(offset + len, bad.ok.size()) << "token " << t << " allowed past the bad byte in " << doc;
      masker.advance(t);
      offset += len;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Schemas, JsonSchemaCases, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<SchemaCase>& param_info) { return param_info.param.name; });

}  // namespace
}  // namespace exl::constrain::test
