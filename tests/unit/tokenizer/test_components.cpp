// Component behaviour on small hand-written tokenizer.json files, and bad input: malformed JSON, unsupported
// component types, invalid UTF-8, out-of-range ids.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "vector_util.h"

namespace exl::tokenizer::test {
namespace {

using nlohmann::json;

// A byte-level-free character BPE over a small alphabet, with the given pipeline pieces.
json tiny_tokenizer() {
  json vocab = json::object();
  int id = 0;
  for (const char* t : {"<unk>", "<s>", "</s>", "a", "b", "c", " ", "ab", "abc", "\xE2\x96\x81", "\xE2\x96\x81"
                                                                                                   "a"}) {
    vocab[t] = id++;
  }
  json j;
  j["version"] = "1.0";
  j["added_tokens"] = json::array({
      {{"id", 1}, {"content", "<s>"}, {"special", true}, {"normalized", false}, {"lstrip", false},
       {"rstrip", false}, {"single_word", false}},
      {{"id", 2}, {"content", "</s>"}, {"special", true}, {"normalized", false}, {"lstrip", false},
       {"rstrip", false}, {"single_word", false}},
  });
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = nullptr;
  j["post_processor"] = nullptr;
  j["decoder"] = nullptr;
  j["model"] = {{"type", "BPE"},
                {"unk_token", "<unk>"},
                {"fuse_unk", true},
                {"byte_fallback", false},
                {"vocab", vocab},
                {"merges", json::array({"a b", "ab c", "\xE2\x96\x81 a"})}};
  return j;
}

Tokenizer make(const json& j, const std::string& config = "") { return Tokenizer::from_json(j.dump(), config); }

std::vector<int32_t> enc(const Tokenizer& t, const std::string& s) { return t.encode(s, AddSpecialTokens::kNo); }

TEST(TokenizerModel, MergesByRankAndFusesUnknown) {
  Tokenizer t = make(tiny_tokenizer());
  EXPECT_EQ(enc(t, "abc"), (std::vector<int32_t>{8}));
  EXPECT_EQ(enc(t, "abab"), (std::vector<int32_t>{7, 7}));
  EXPECT_EQ(enc(t, "axyb"), (std::vector<int32_t>{3, 0, 4}));  // "xy" fused into one <unk>
  EXPECT_EQ(t.vocab_size(), 11);
  EXPECT_EQ(t.token_to_id("abc"), 8);
  EXPECT_EQ(t.id_to_token(7), "ab");
  EXPECT_TRUE(t.is_special(1));
  EXPECT_FALSE(t.is_special(3));
}

TEST(TokenizerModel, MergesAsPairs) {
  json j = tiny_tokenizer();
  j["model"]["merges"] = json::array({json::array({"a", "b"}), json::array({"ab", "c"})});
  EXPECT_EQ(enc(make(j), "abc"), (std::vector<int32_t>{8}));
}

TEST(TokenizerModel, ByteFallback) {
  json j = tiny_tokenizer();
  for (int b = 0; b < 256; ++b) j["model"]["vocab"][fmt::format("<0x{:02X}>", b)] = 100 + b;
  j["model"]["byte_fallback"] = true;
  j["decoder"] = {{"type", "Sequence"}, {"decoders", json::array({{{"type", "ByteFallback"}}, {{"type", "Fuse"}}})}};
  Tokenizer t = make(j);
  std::vector<int32_t> ids = enc(t, "a\xC3\xA9");  // "aé"
  EXPECT_EQ(ids, (std::vector<int32_t>{3, 100 + 0xC3, 100 + 0xA9}));
  EXPECT_EQ(t.decode(ids, SkipSpecialTokens::kNo), "a\xC3\xA9");
  // An incomplete sequence decodes to one U+FFFD per byte, as the tokenizers library does.
  std::vector<int32_t> partial{3, 100 + 0xE2, 100 + 0x82};
  EXPECT_EQ(t.decode(partial, SkipSpecialTokens::kNo), "a\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(stream_decode(t, partial, SkipSpecialTokens::kNo), t.decode(partial, SkipSpecialTokens::kNo));
  // Streaming never emits part of a character, and a later byte that breaks the run changes nothing emitted.
  StreamDecoder sd(t, SkipSpecialTokens::kNo);
  EXPECT_EQ(sd.push(3), "a");
  EXPECT_EQ(sd.push(100 + 0xE2), "");
  EXPECT_EQ(sd.push(100 + 0x82), "");
  EXPECT_EQ(sd.push(100 + 0xAC), "");
  EXPECT_EQ(sd.push(4), "\xE2\x82\xAC" "b");
  EXPECT_EQ(sd.flush(), "");
}

TEST(TokenizerAddedTokens, SpecialTokensAreSplitOut) {
  json j = tiny_tokenizer();
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                                 {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                                 {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}})},
                         {"pair", json::array()},
                         {"special_tokens",
                          {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}},
                           {"</s>", {{"id", "</s>"}, {"ids", {2}}, {"tokens", {"</s>"}}}}}}};
  Tokenizer t = make(j, R"({"bos_token": "<s>", "eos_token": {"content": "</s>"}})");
  EXPECT_EQ(enc(t, "ab<s>c</s>"), (std::vector<int32_t>{7, 1, 5, 2}));
  EXPECT_EQ(t.encode("ab", AddSpecialTokens::kYes), (std::vector<int32_t>{1, 7, 2}));
  EXPECT_EQ(t.decode(std::vector<int32_t>{1, 7, 2}, SkipSpecialTokens::kYes), "ab");
  EXPECT_EQ(t.decode(std::vector<int32_t>{1, 7, 2}, SkipSpecialTokens::kNo), "<s> ab </s>");  // no decoder: joined by spaces
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_ids(), (std::vector<int32_t>{2}));
  EXPECT_EQ(t.eos_token(), "</s>");
  EXPECT_TRUE(t.add_bos_token());
}

TEST(TokenizerAddedTokens, LstripRstripSingleWord) {
  json j = tiny_tokenizer();
  j["added_tokens"].push_back({{"id", 20}, {"content", "[M]"}, {"special", true}, {"normalized", false},
                               {"lstrip", true}, {"rstrip", true}, {"single_word", false}});
  j["added_tokens"].push_back({{"id", 21}, {"content", "cab"}, {"special", false}, {"normalized", false},
                               {"lstrip", false}, {"rstrip", false}, {"single_word", true}});
  Tokenizer t = make(j);
  EXPECT_EQ(enc(t, "a  [M]  b"), (std::vector<int32_t>{3, 20, 4}));
  EXPECT_EQ(enc(t, "cab"), (std::vector<int32_t>{21}));
  EXPECT_EQ(enc(t, "acab"), (std::vector<int32_t>{3, 5, 7}));  // not a whole word
  EXPECT_EQ(t.vocab_size(), 22);
}

TEST(TokenizerPreTokenizers, SplitBehaviors) {
  json j = tiny_tokenizer();
  auto run = [&](const std::string& behavior, bool invert) {
    j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", "c"}}}, {"behavior", behavior},
                          {"invert", invert}};
    return enc(make(j), "abcab");
  };
  // "abcab": "ab" "c" "ab" → merges apply within pieces only.
  EXPECT_EQ(run("Isolated", false), (std::vector<int32_t>{7, 5, 7}));
  EXPECT_EQ(run("Removed", false), (std::vector<int32_t>{7, 7}));
  EXPECT_EQ(run("MergedWithPrevious", false), (std::vector<int32_t>{8, 7}));
  EXPECT_EQ(run("MergedWithNext", false), (std::vector<int32_t>{7, 5, 7}));
  EXPECT_EQ(run("Contiguous", false), (std::vector<int32_t>{7, 5, 7}));
  EXPECT_EQ(run("Removed", true), (std::vector<int32_t>{5}));
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "\\p{L}"}}}, {"behavior", "Isolated"},
                        {"invert", false}};
  EXPECT_EQ(enc(make(j), "abc"), (std::vector<int32_t>{3, 4, 5}));
}

TEST(TokenizerPreTokenizers, MetaspaceAndDigits) {
  json j = tiny_tokenizer();
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "always"},
                        {"split", true}};
  j["decoder"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "always"},
                  {"split", true}};
  Tokenizer t = make(j);
  EXPECT_EQ(enc(t, "a a"), (std::vector<int32_t>{10, 10}));
  EXPECT_EQ(t.decode(enc(t, "a a"), SkipSpecialTokens::kNo), "a a");
  j["pre_tokenizer"] = {{"type", "Digits"}, {"individual_digits", true}};
  j["model"]["vocab"]["1"] = 30;
  j["model"]["vocab"]["2"] = 31;
  EXPECT_EQ(enc(make(j), "a12"), (std::vector<int32_t>{3, 30, 31}));
}

TEST(TokenizerNormalizers, SequenceOfNormalizers) {
  json j = tiny_tokenizer();
  j["normalizer"] = {{"type", "Sequence"},
                     {"normalizers", json::array({{{"type", "NFKC"}},
                                                  {{"type", "Lowercase"}},
                                                  {{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}},
                                                  {{"type", "Replace"}, {"pattern", {{"Regex", "x+"}}}, {"content", "c"}}})}};
  EXPECT_EQ(enc(make(j), "  ABxxx  "), (std::vector<int32_t>{8}));
}

// ---- Bad input

void expect_error(const std::function<void()>& fn, ErrorKind kind, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "expected an exl::Error containing: " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(TokenizerErrors, MalformedJson) {
  expect_error([] { Tokenizer::from_json("{\"model\": {", ""); }, ErrorKind::kCorruptFile, "malformed JSON");
  expect_error([] { Tokenizer::from_json("[]", ""); }, ErrorKind::kCorruptFile, "expected a JSON object");
  expect_error([] { Tokenizer::from_json("{}", ""); }, ErrorKind::kCorruptFile, "model: missing");
  json j = tiny_tokenizer();
  j["model"]["vocab"]["a"] = "three";
  expect_error([&] { make(j); }, ErrorKind::kCorruptFile, "model.vocab[\"a\"]: expected an integer id");
  j = tiny_tokenizer();
  j["model"]["merges"] = json::array({"a q"});
  expect_error([&] { make(j); }, ErrorKind::kCorruptFile, "model.merges[0]");
  expect_error([&] { make(tiny_tokenizer(), "{bad"); }, ErrorKind::kCorruptFile, "tokenizer_config.json");
}

TEST(TokenizerErrors, UnsupportedComponents) {
  json j = tiny_tokenizer();
  j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", json::array({{{"type", "ByteLevel"}}, {{"type", "Foo"}}})}};
  expect_error([&] { make(j); }, ErrorKind::kUnsupported,
               "tokenizer.json: pre_tokenizer.pretokenizers[1].type: unsupported \"Foo\" (supported: ");
  j = tiny_tokenizer();
  j["normalizer"] = {{"type", "Precompiled"}};
  expect_error([&] { make(j); }, ErrorKind::kUnsupported, "normalizer.type: unsupported \"Precompiled\"");
  j = tiny_tokenizer();
  j["decoder"] = {{"type", "CTC"}};
  expect_error([&] { make(j); }, ErrorKind::kUnsupported, "decoder.type: unsupported \"CTC\"");
  j = tiny_tokenizer();
  j["post_processor"] = {{"type", "Bogus"}};
  expect_error([&] { make(j); }, ErrorKind::kUnsupported, "post_processor.type: unsupported \"Bogus\"");
  j = tiny_tokenizer();
  j["model"]["type"] = "Unigram";
  expect_error([&] { make(j); }, ErrorKind::kUnsupported, "model.type: unsupported \"Unigram\" (supported: BPE)");
  j = tiny_tokenizer();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  expect_error([&] { make(j); }, ErrorKind::kUnsupported, "pre_tokenizer.pattern");
  expect_error([] { Tokenizer::from_dir("/nonexistent/dir"); }, ErrorKind::kNotFound, "tokenizer.json");
}

TEST(TokenizerErrors, IdsOutOfRange) {
  Tokenizer t = make(tiny_tokenizer());
  expect_error([&] { t.decode(std::vector<int32_t>{3, 11}, SkipSpecialTokens::kNo); }, ErrorKind::kInvalidArgument,
               "token id 11 is out of range (vocab_size 11)");
  expect_error([&] { t.decode(std::vector<int32_t>{-1}, SkipSpecialTokens::kNo); }, ErrorKind::kInvalidArgument,
               "token id -1");
  StreamDecoder sd(t, SkipSpecialTokens::kNo);
  expect_error([&] { sd.push(99); }, ErrorKind::kInvalidArgument, "token id 99");
  EXPECT_FALSE(t.id_to_token(99).has_value());
}

TEST(TokenizerErrors, InvalidUtf8BecomesReplacementCharacter) {
  EXL_REQUIRE_TESTDATA();
  const Tokenizer& t = load_tokenizer("llama3-8b");
  // Python: b"a\xffb\xe2\x82".decode("utf-8", errors="replace") == "a\ufffdb\ufffd"
  EXPECT_EQ(t.encode("a\xFF" "b\xE2\x82", AddSpecialTokens::kNo),
            t.encode("a\xEF\xBF\xBD" "b\xEF\xBF\xBD", AddSpecialTokens::kNo));
  // Surrogates and overlong forms are invalid too; each maximal invalid subpart is one U+FFFD.
  EXPECT_EQ(t.encode("\xED\xA0\x80x\xC0\xAF", AddSpecialTokens::kNo),
            t.encode("\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDx\xEF\xBF\xBD\xEF\xBF\xBD", AddSpecialTokens::kNo));
  EXPECT_EQ(t.encode("", AddSpecialTokens::kNo), std::vector<int32_t>{});
}

TEST(TokenizerConfig, SpecialTokensFromConfigs) {
  EXL_REQUIRE_TESTDATA();
  const Tokenizer& llama2 = load_tokenizer("llama2");
  EXPECT_EQ(llama2.bos_id(), 1);
  EXPECT_EQ(llama2.eos_ids(), (std::vector<int32_t>{2}));
  EXPECT_EQ(llama2.unk_id(), 0);
  EXPECT_FALSE(llama2.pad_id().has_value());
  EXPECT_TRUE(llama2.add_bos_token());
  const Tokenizer& qwen = load_tokenizer("qwen2.5");
  EXPECT_FALSE(qwen.bos_id().has_value());
  EXPECT_EQ(qwen.eos_token(), "<|im_end|>");
  EXPECT_EQ(qwen.pad_token(), "<|endoftext|>");
  EXPECT_FALSE(qwen.add_bos_token());
  EXPECT_FALSE(qwen.chat_template().empty());
  const Tokenizer& stories = load_tokenizer("models/tinystories-656k");  // eos from generation_config / config
  EXPECT_FALSE(stories.eos_ids().empty());
  const Tokenizer& tiny = load_tokenizer("models/tiny-llama/fp16");
  EXPECT_EQ(tiny.bos_id(), 2043);
  EXPECT_FALSE(tiny.chat_template().empty());
}

TEST(TokenizerThreads, ConcurrentEncodeMatchesSerial) {
  EXL_REQUIRE_TESTDATA();
  const Tokenizer& t = load_tokenizer("qwen2.5");
  std::string text = read_file(testdata_dir() / "corpora" / "multilingual.utf8").substr(0, 60000);
  std::vector<int32_t> expected = t.encode(text, AddSpecialTokens::kNo);
  std::vector<std::vector<int32_t>> got(4);
  std::vector<std::thread> threads;
  for (size_t k = 0; k < got.size(); ++k) {
    threads.emplace_back([&, k] { got[k] = t.encode(text, AddSpecialTokens::kNo); });
  }
  for (auto& th : threads) th.join();
  for (const auto& g : got) EXPECT_EQ(g, expected);
}

}  // namespace
}  // namespace exl::tokenizer::test
