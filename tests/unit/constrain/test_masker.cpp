// TokenMasker: masks equal a brute-force check of every token, copies are independent and share the cache (also
// across threads), special / empty / EOS tokens, error messages, whitespace and nesting bounds, completions.
#include <gtest/gtest.h>

#include <thread>

#include "constrain_test_util.h"
#include "core/error.h"

namespace exl::constrain::test {
namespace {

// Token t is allowed iff it is EOS and the output may end, or a non-empty text token whose bytes can follow.
std::vector<uint8_t> brute_force_mask(const Vocabulary& vocab, const TokenMasker& masker) {
  std::vector<uint8_t> out(static_cast<size_t>(vocab.size()), 0);
  for (int32_t t = 0; t < vocab.size(); ++t) {
    if (vocab.kind(t) == TokenKind::kEos) {
      out[static_cast<size_t>(t)] = masker.accepting();
    } else if (vocab.kind(t) == TokenKind::kText && !vocab.token_bytes(t).empty()) {
      Matcher m = masker.matcher();
      out[static_cast<size_t>(t)] = m.advance(std::string_view(vocab.token_bytes(t))) == vocab.token_bytes(t).size();
    }
  }
  return out;
}

std::vector<Constraint> mask_constraints() {
  return {Constraint::json_object(),
          Constraint::json_schema_text(R"({"type": "object", "properties": {"id": {"type": "integer"}},
              "required": ["id"], "additionalProperties": {"type": "string", "maxLength": 4}})"),
          Constraint::json_schema_text(R"({"$defs": {"n": {"type": "object", "properties": {"v": {"type": "integer"},
              "c": {"type": "array", "items": {"$ref": "#/$defs/n"}}}, "required": ["v"],
              "additionalProperties": false}}, "$ref": "#/$defs/n"})"),
          Constraint::json_schema_text(R"({"anyOf": [{"type": "object", "properties": {"a": {"type": "string"}}},
              {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "null"}}}]})"),
          Constraint::regex("(\\w+ ){0,3}[0-9]{2,4}\\."),
          Constraint::grammar("root ::= \"(\" root* \")\" | [a-c]+")};
}

void check_masks(const Vocabulary& vocab, int seeds, int steps) {
  for (const Constraint& c : mask_constraints()) {
    for (int seed = 0; seed < seeds; ++seed) {
      TokenMasker masker(vocab, c);
      std::mt19937_64 rng(static_cast<uint64_t>(seed) + 77);
      for (int step = 0; step < steps && !masker.finished(); ++step) {
        auto mask = masker.mask();
        std::vector<uint8_t> expected = brute_force_mask(vocab, masker);
        for (int32_t t = 0; t < vocab.size(); ++t)
          ASSERT_EQ(mask->test(t), expected[static_cast<size_t>(t)] != 0)
              << c.what() << " seed " << seed << " step " << step << " token " << t << " (\""
              << vocab.token_bytes(t) << "\")";
        int32_t pick = -1;
        for (int attempt = 0; attempt < 8 && pick < 0; ++attempt) {
          int32_t t = nth_allowed(*mask, static_cast<int32_t>(rng() % static_cast<uint64_t>(mask->count())));
          if (vocab.kind(t) == TokenKind::kText) pick = t;
        }
        if (pick < 0) break;
        masker.advance(pick);
      }
    }
  }
}

TEST(ConstrainMasker, MasksEqualBruteForceDemoVocabulary) { check_masks(demo_vocabulary(), 3, 30); }

TEST(ConstrainMasker, MasksEqualBruteForceSyntheticVocabulary) { check_masks(synthetic_vocabulary(), 5, 40); }

TEST(ConstrainMasker, MasksEqualBruteForceLargeVocabulary) {
  EXL_REQUIRE_TESTDATA(large_tokenizer_dir());
  const Vocabulary& vocab = vocabulary_at(large_tokenizer_dir());
  Constraint c = Constraint::json_schema_text(R"({"type": "object", "properties": {"name": {"type": "string"},
      "n": {"type": "array", "items": {"type": "number"}}}, "required": ["name", "n"], "additionalProperties": false})");
  TokenMasker masker(vocab, c);
  for (const char* text : {"", "{", "{\"name\": \"a", "{\"name\": \"ab\", \"n\": [1.5", "{\"name\": \"\", \"n\": []"}) {
    TokenMasker m = masker;
    m.advance_bytes(text);
    auto mask = m.mask();
    std::vector<uint8_t> expected = brute_force_mask(vocab, m);
    int32_t mismatches = 0;
    for (int32_t t = 0; t < vocab.size(); ++t) mismatches += mask->test(t) != (expected[static_cast<size_t>(t)] != 0);
    EXPECT_EQ(mismatches, 0) << "after \"" << text << "\"";
  }
}

TEST(ConstrainMasker, SpecialEmptyAndEosTokens) {
  const Vocabulary& vocab = synthetic_vocabulary();
  int32_t eos = vocab.eos_ids().at(0);
  int32_t empty_token = -1;
  for (int32_t t = 0; t < vocab.size(); ++t)
    if (vocab.kind(t) == TokenKind::kText && vocab.token_bytes(t).empty()) empty_token = t;
  ASSERT_GE(empty_token, 0);
  TokenMasker masker(vocab, Constraint::regex("a+"));
  EXPECT_FALSE(masker.mask()->test(0));  // special
  EXPECT_FALSE(masker.mask()->test(empty_token));
  EXPECT_FALSE(masker.mask()->test(eos));
  EXPECT_FALSE(masker.accepting());
  EXPECT_THROW(masker.advance(0), Error);
  EXPECT_THROW(masker.advance(empty_token), Error);
  try {
    masker.advance(eos);
    ADD_FAILURE() << "EOS accepted before the output is complete";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("incomplete"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("a"), std::string::npos) << e.what();
  }
  masker.advance_bytes("aa");
  EXPECT_TRUE(masker.accepting());
  EXPECT_FALSE(masker.finished());
  EXPECT_TRUE(masker.mask()->test(eos));
  EXPECT_FALSE(masker.mask()->test(0));
  masker.advance(eos);
  EXPECT_TRUE(masker.ended());
  EXPECT_TRUE(masker.finished());
  EXPECT_TRUE(masker.allowed_tokens().empty());
  EXPECT_THROW(masker.advance(eos), Error);
  masker.reset();
  EXPECT_FALSE(masker.ended());
  EXPECT_FALSE(masker.accepting());
}

TEST(ConstrainMasker, AdvanceErrorNamesTheTokenAndByte) {
  const Vocabulary& vocab = demo_vocabulary();
  TokenMasker masker(vocab, Constraint::json_schema_text(R"({"type": "integer"})"));
  auto tokens = greedy_tokens(vocab, "12a");
  ASSERT_TRUE(tokens.has_value());
  int32_t bad = tokens->back();
  masker.advance_bytes("12");
  try {
    masker.advance(bad);
    ADD_FAILURE() << "token accepted";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(msg.find("token " + std::to_string(bad)), std::string::npos) << msg;
    EXPECT_NE(msg.find("cannot follow"), std::string::npos) << msg;
    EXPECT_NE(msg.find("0 1 2"), std::string::npos) << msg;  // the digits that could follow
  }
  EXPECT_THROW(masker.advance(-1), Error);
  EXPECT_THROW(masker.advance(vocab.size()), Error);
  EXPECT_THROW(masker.advance_bytes("x"), Error);
}

TEST(ConstrainMasker, CopiesAreIndependentAndShareTheCache) {
  const Vocabulary& vocab = demo_vocabulary();
  TokenMasker a(vocab, Constraint::json_object());
  a.advance_bytes("{\"k\": ");
  TokenMasker b = a;
  b.advance_bytes("[1");
  EXPECT_TRUE(a.matcher().next_bytes().test('['));
  EXPECT_FALSE(b.matcher().next_bytes().test('['));
  auto before = a.cache_stats();
  a.mask();
  b.mask();
  TokenMasker c = b.clone();
  c.mask();  // same position as b: served from the shared cache
  auto after = c.cache_stats();
  EXPECT_EQ(after.misses, before.misses + 2);
  EXPECT_EQ(after.hits, before.hits + 1);
  EXPECT_EQ(after.entries, before.entries + 2);
}

TEST(ConstrainMasker, ThreadsWithCopiesGiveTheSameWalks) {
  const Vocabulary& vocab = demo_vocabulary();
  Constraint c = Constraint::json_schema_text(R"({"type": "object", "properties": {"xs": {"type": "array",
      "items": {"type": "string", "maxLength": 6}}, "ok": {"type": "boolean"}}, "required": ["xs", "ok"]})");
  std::vector<std::string> serial;
  for (int seed = 0; seed < 8; ++seed) serial.push_back(random_walk(vocab, c, static_cast<uint64_t>(seed), 30).text);
  TokenMasker shared(vocab, c);
  std::vector<std::string> parallel(8);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (int seed = k; seed < 8; seed += 4)
        parallel[static_cast<size_t>(seed)] = random_walk(shared, static_cast<uint64_t>(seed), 30).text;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(parallel, serial);
}

TEST(ConstrainMasker, WhitespaceIsBounded) {
  JsonOptions options;
  options.max_whitespace = 3;
  Matcher m(Constraint::json_object(options));
  EXPECT_EQ(m.advance(std::string_view("{   ")), 4u);
  EXPECT_FALSE(m.advance(' '));
  EXPECT_FALSE(m.advance('\n'));
  EXPECT_TRUE(m.advance('}'));
  EXPECT_TRUE(m.finished());
  // No whitespace around the whole value.
  Matcher top(Constraint::json_object());
  EXPECT_FALSE(top.advance(' '));
  EXPECT_EQ(top.advance(std::string_view("{} ")), 2u);
  options.max_whitespace = 0;
  Matcher compact(Constraint::json_object(options));
  EXPECT_EQ(compact.advance(std::string_view("{\"a\":[1,2]}")), 11u);
  Matcher compact2(Constraint::json_object(options));
  EXPECT_EQ(compact2.advance(std::string_view("{\"a\": 1}")), 5u);
}

TEST(ConstrainMasker, NestingIsBounded) {
  JsonOptions options;
  options.max_depth = 4;
  Constraint c = Constraint::json_object(options);
  Matcher m(c);
  // The object is one level, each array one more.
  EXPECT_EQ(m.advance(std::string_view("{\"a\": [[[[")), 9u);
  auto completion = m.shortest_completion();
  ASSERT_TRUE(completion.has_value());
  EXPECT_EQ(*completion, "]]]}");
  EXPECT_EQ(m.advance(std::string_view(*completion)), 4u);
  EXPECT_TRUE(m.finished());
}

TEST(ConstrainMasker, ShortestCompletionAndFinished) {
  Constraint c = Constraint::json_schema_text(R"({"type": "object", "properties": {"name": {"type": "string"},
      "age": {"type": "integer"}}, "required": ["name", "age"], "additionalProperties": false})");
  Matcher m(c);
  EXPECT_EQ(m.advance(std::string_view("{\"name\": \"A")), 11u);
  EXPECT_EQ(m.shortest_completion(), std::optional<std::string>("\",\"age\":0}"));
  m.advance(std::string_view("\",\"age\":0}"));
  EXPECT_TRUE(m.accepting());
  EXPECT_TRUE(m.finished());
  EXPECT_EQ(m.shortest_completion(), std::optional<std::string>(""));
  EXPECT_TRUE(m.next_bytes().none());
}

TEST(ConstrainMasker, FillAllowedAndAllowedTokensAgree) {
  const Vocabulary& vocab = demo_vocabulary();
  TokenMasker masker(vocab, Constraint::json_schema_text(R"({"enum": ["yes", "no"]})"));
  std::vector<uint8_t> flags;
  masker.fill_allowed(flags);
  std::vector<int32_t> ids = masker.allowed_tokens();
  std::vector<int32_t> blocked = masker.blocked_tokens();
  EXPECT_EQ(ids.size() + blocked.size(), static_cast<size_t>(vocab.size()));
  for (int32_t id : blocked) EXPECT_FALSE(flags[static_cast<size_t>(id)]);
  ASSERT_EQ(flags.size(), static_cast<size_t>(vocab.size()));
  size_t set = 0;
  for (uint8_t f : flags) set += f;
  EXPECT_EQ(set, ids.size());
  for (int32_t id : ids) {
    EXPECT_TRUE(flags[static_cast<size_t>(id)]);
    EXPECT_TRUE(masker.is_allowed(id));
    EXPECT_EQ(vocab.token_bytes(id)[0], '"');
  }
}

TEST(ConstrainMasker, VocabularyDecoding) {
  EXPECT_EQ(Vocabulary::decode_byte_level("\xC4\xA0hello"), std::optional<std::string>(" hello"));
  EXPECT_EQ(Vocabulary::decode_byte_level("\xC4\x8A"), std::optional<std::string>("\n"));
  EXPECT_EQ(Vocabulary::decode_byte_level("\xC3\xA2\xC4\xA2\xC2\xA6"), std::optional<std::string>("\xE2\x80\xA6"));
  EXPECT_EQ(Vocabulary::decode_byte_level("a b"), std::nullopt);
  EXPECT_EQ(Vocabulary::decode_sentencepiece("\xE2\x96\x81the"), " the");
  EXPECT_EQ(Vocabulary::decode_sentencepiece("<0x0A>"), "\n");
  EXPECT_EQ(Vocabulary::decode_sentencepiece("<0xZZ>"), "<0xZZ>");
  EXPECT_THROW(Vocabulary({"a"}, {}), Error);
  // The demo vocabulary: byte-level, every single byte is a token, EOS from generation_config.
  const Vocabulary& demo = demo_vocabulary();
  EXPECT_EQ(demo.size(), 4096);
  EXPECT_EQ(demo.eos_ids(), std::vector<int32_t>{1});
  EXPECT_EQ(demo.kind(0), TokenKind::kSpecial);
  auto space = greedy_tokens(demo, " ");
  ASSERT_TRUE(space.has_value());
  EXPECT_EQ(demo.token_bytes(space->at(0)), " ");
}

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<uint8_t>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k)
      if ((static_cast<uint8_t>(s[i + k]) & 0xC0) != 0x80) return false;
    i += len;
  }
  return true;
}

// Token bytes agree with the tokenizer library's decode wherever the bytes are whole UTF-8 characters.
void check_token_bytes_against_decode(const std::filesystem::path& dir) {
  auto tok = tokenizer::Tokenizer::from_dir(dir);
  const Vocabulary& vocab = vocabulary_at(dir);
  int32_t compared = 0;
  for (int32_t id = 0; id < vocab.size(); ++id) {
    if (vocab.kind(id) != TokenKind::kText || !valid_utf8(vocab.token_bytes(id))) continue;
    std::vector<int32_t> ids{id};
    ASSERT_EQ(vocab.token_bytes(id), tok.decode(ids, tokenizer::SkipSpecialTokens::kNo)) << "token " << id;
    ++compared;
  }
  EXPECT_GT(compared, vocab.size() / 2);
}

TEST(ConstrainMasker, TokenBytesMatchTheTokenizer) {
  check_token_bytes_against_decode(demo_model_dir());
  if (std::filesystem::exists(large_tokenizer_dir())) check_token_bytes_against_decode(large_tokenizer_dir());
}

}  // namespace
}  // namespace exl::constrain::test
