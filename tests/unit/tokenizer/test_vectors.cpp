// Reference vectors from llama.cpp, swift-transformers and the belladore JS tokenizers, each against the tokenizer
// the vectors were made with (see ../shared/testdata/README.md).
#include <string>
#include <vector>

#include "tokenizer/unicode.h"
#include "vector_util.h"

namespace exl::tokenizer::test {
namespace {

using nlohmann::json;

// What decode(encode(x)) gives back for tokenizers whose normalizer is NFC (qwen): the NFC form.
std::string round_trip_text(const std::string& tokenizer, const std::string& text) {
  if (tokenizer.rfind("qwen", 0) == 0) return detail::normalize_form(text, detail::NormalForm::kNfc);
  return text;
}

bool cleans_up_spaces(const std::string& tokenizer) {
  json cfg = read_json(testdata_dir() / "tokenizers" / tokenizer / "tokenizer_config.json");
  return cfg.value("clean_up_tokenization_spaces", false);
}

std::vector<std::string> split_inp(const std::string& content) {
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> out;
  size_t pos = 0;
  while (true) {
    size_t next = content.find(sep, pos);
    if (next == std::string::npos) break;
    out.push_back(content.substr(pos, next - pos));
    pos = next + sep.size();
  }
  return out;
}

std::vector<int32_t> parse_ids_line(const std::string& line) {
  std::vector<int32_t> ids;
  std::istringstream ss(line);
  int32_t v;
  while (ss >> v) ids.push_back(v);
  return ids;
}

struct LlamaCppCase {
  std::string vocab;      // file stem under tokenizer-vectors/llama.cpp
  std::string tokenizer;  // folder under tokenizers/
};

class LlamaCppVectors : public ::testing::TestWithParam<LlamaCppCase> {};

TEST_P(LlamaCppVectors, EncodeDecodeStream) {
  EXL_REQUIRE_TESTDATA();
  const auto& param = GetParam();
  auto base = testdata_dir() / "tokenizer-vectors" / "llama.cpp" / param.vocab;
  std::vector<std::string> inputs = split_inp(read_file(base.string() + ".inp"));
  std::istringstream out(read_file(base.string() + ".out"));
  const Tokenizer& tok = load_tokenizer(param.tokenizer);
  VectorSet set("llama.cpp " + param.vocab + " -> " + param.tokenizer, tok);
  ASSERT_EQ(inputs.size(), 46u);
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::string line;
    std::getline(out, line);
    std::vector<int32_t> expected = parse_ids_line(line);
    std::string label = std::to_string(i);
    set.check_encode(label, inputs[i], expected, AddSpecialTokens::kNo);
    set.check_decode(label, expected, SkipSpecialTokens::kNo, round_trip_text(param.tokenizer, inputs[i]), false);
    set.check_round_trip(label, inputs[i], round_trip_text(param.tokenizer, inputs[i]));
    set.check_stream(label, expected);
  }
  set.finish();
}

INSTANTIATE_TEST_SUITE_P(
    All, LlamaCppVectors,
    ::testing::Values(LlamaCppCase{"ggml-vocab-llama-spm.gguf", "llama2"},
                      LlamaCppCase{"ggml-vocab-phi-3.gguf", "phi-3-mini"},
                      LlamaCppCase{"ggml-vocab-llama-bpe.gguf", "llama3-8b"},
                      LlamaCppCase{"ggml-vocab-llama-bpe.gguf", "llama3.2"},
                      LlamaCppCase{"ggml-vocab-qwen2.gguf", "qwen2.5"},
                      LlamaCppCase{"ggml-vocab-qwen2.gguf", "qwen3"},
                      LlamaCppCase{"ggml-vocab-gpt-2.gguf", "gpt2"},
                      LlamaCppCase{"pre-2025-05/ggml-vocab-pixtral.gguf", "mistral-nemo-tekken"},
                      LlamaCppCase{"pre-2025-05/ggml-vocab-deepseek-r1-qwen.gguf", "qwen2.5"}),
    [](const ::testing::TestParamInfo<LlamaCppCase>& p) {
      std::string n = p.param.vocab.substr(p.param.vocab.rfind('/') + 1) + "_" + p.param.tokenizer;
      for (char& c : n) {
        if (!isalnum(static_cast<unsigned char>(c))) c = '_';
      }
      return n;
    });

// swift-transformers *_encoded.json: one long paragraph, ids as transformers encodes it (with BOS where the
// tokenizer adds one) and its decode with special tokens.
TEST(SwiftTransformers, EncodedParagraphs) {
  EXL_REQUIRE_TESTDATA();
  struct Case {
    const char* file;
    const char* tokenizer;
  };
  for (const Case& c : {Case{"gemma_encoded.json", "gemma2"}, Case{"llama_encoded.json", "llama2"},
                        Case{"llama_3.2_encoded.json", "llama3.2"}, Case{"gpt2_encoded_tokens.json", "gpt2"}}) {
    json j = read_json(testdata_dir() / "tokenizer-vectors" / "swift-transformers" / c.file);
    const Tokenizer& tok = load_tokenizer(c.tokenizer);
    VectorSet set(std::string("swift-transformers ") + c.file + " -> " + c.tokenizer, tok);
    std::string text = j["text"];
    auto ids = j["token_ids"].get<std::vector<int32_t>>();
    set.check_encode("paragraph", text, ids, AddSpecialTokens::kYes);
    set.check_decode("paragraph", ids, SkipSpecialTokens::kNo, j["decoded_text"], cleans_up_spaces(c.tokenizer));
    set.check_round_trip("paragraph", text, text);
    set.check_stream("paragraph", ids);
    set.finish();
  }
}

// swift-transformers tokenizer_tests.json edge cases, for the models whose tokenizers are in the test data.
TEST(SwiftTransformers, TokenizerTests) {
  EXL_REQUIRE_TESTDATA();
  json all = read_json(testdata_dir() / "tokenizer-vectors" / "swift-transformers" / "tokenizer_tests.json");
  struct Case {
    const char* model;
    const char* tokenizer;
  };
  for (const Case& c : {Case{"distilgpt2", "gpt2"}, Case{"coreml-projects/Llama-2-7b-chat-coreml", "llama2"},
                        Case{"pcuenq/gemma-tokenizer", "gemma2"},
                        Case{"pcuenq/Llama-3.2-1B-Instruct-tokenizer", "llama3.2"}}) {
    const Tokenizer& tok = load_tokenizer(c.tokenizer);
    bool cleanup = cleans_up_spaces(c.tokenizer);
    VectorSet set(std::string("swift-transformers tests ") + c.model + " -> " + c.tokenizer, tok);
    int n = 0;
    for (const auto& e : all[c.model]) {
      std::string label = std::to_string(n++);
      std::string input = e["input"];
      auto ids = e["encoded"]["input_ids"].get<std::vector<int32_t>>();
      // Known data difference: the llama2 tokenizer.json in the test data has every U+00A0 of the original vocabulary
      // replaced by a plain space (token 8655 is "  ", not "\u00a0\u00a0"; the same edit produced its 3 merges with
      // literal spaces), so the two "you…\u00a0\u00a0" cases made with the original vocabulary cannot match.
      if (std::string(c.tokenizer) == "llama2" && input.find("\xC2\xA0") != std::string::npos) {
        set.note_known_difference(label);
        continue;
      }
      set.check_encode(label, input, ids, AddSpecialTokens::kYes);
      set.check_decode(label + " with special", ids, SkipSpecialTokens::kNo, e["decoded_with_special"], cleanup);
      set.check_decode(label + " skip special", ids, SkipSpecialTokens::kYes, e["decoded_without_special"], cleanup);
      set.check_round_trip(label, input, input);
      set.check_stream(label, ids);
    }
    set.finish();
  }
}

// swift-transformers multilingual conformance: 83 inputs with transformers baselines.
TEST(SwiftTransformers, Multilingual) {
  EXL_REQUIRE_TESTDATA();
  auto dir = testdata_dir() / "tokenizer-vectors" / "swift-transformers" / "multilingual-conformance-pr360";
  json inputs = read_json(dir / "inputs.json");
  std::map<std::string, std::string> text_by_id;
  for (const auto& in : inputs) text_by_id[in["id"]] = in["text"];
  ASSERT_EQ(text_by_id.size(), 83u);
  struct Case {
    const char* file;
    const char* tokenizer;
  };
  for (const Case& c : {Case{"qwen2_5_multilingual.json", "qwen2.5"}, Case{"tinyllama_multilingual.json", "llama2"},
                        Case{"gpt2_multilingual.json", "gpt2"}}) {
    json base = read_json(dir / c.file);
    const Tokenizer& tok = load_tokenizer(c.tokenizer);
    bool cleanup = false;  // these baselines were decoded without transformers' space clean-up
    VectorSet set(std::string("multilingual ") + c.file + " -> " + c.tokenizer, tok);
    for (const auto& e : base["entries"]) {
      std::string id = e["id"];
      const std::string& text = text_by_id.at(id);
      auto ids = e["input_ids"].get<std::vector<int32_t>>();
      set.check_encode(id, text, ids, AddSpecialTokens::kYes);
      set.check_decode(id + " with special", ids, SkipSpecialTokens::kNo, e["decoded_with_special"], cleanup);
      set.check_decode(id + " skip special", ids, SkipSpecialTokens::kYes, e["decoded_skip_special"], cleanup);
      set.check_round_trip(id, text, round_trip_text(c.tokenizer, text));
      set.check_stream(id, ids);
    }
    set.finish();
  }
}

// belladore JS tokenizers' test cases: ids without special tokens, plus BOS/EOS as each case asks.
TEST(Belladore, Cases) {
  EXL_REQUIRE_TESTDATA();
  struct Case {
    const char* file;
    const char* tokenizer;
    const char* eos;  // the JS library's end-of-sequence token
  };
  for (const Case& c : {Case{"llama-tokenizer-js-1.2.2.cases.json", "llama2", "</s>"},
                        Case{"mistral-tokenizer-js-1.0.0.cases.json", "mistral-7b-v0.1", "</s>"},
                        Case{"llama3-tokenizer-js-1.2.0.cases.json", "llama3-8b", "<|end_of_text|>"},
                        Case{"llama3-tokenizer-js-1.2.0.cases.json", "llama3.2", "<|end_of_text|>"}}) {
    json j = read_json(testdata_dir() / "tokenizer-vectors" / "belladore-js" / c.file);
    const Tokenizer& tok = load_tokenizer(c.tokenizer);
    VectorSet set(std::string("belladore ") + c.file + " -> " + c.tokenizer, tok);
    ASSERT_TRUE(tok.bos_id().has_value());
    ASSERT_TRUE(tok.token_to_id(c.eos).has_value());
    int n = 0;
    for (const auto& e : j["cases"]) {
      std::string label = std::to_string(n++);
      std::string input = e["input"];
      auto ids = e["expected_ids"].get<std::vector<int32_t>>();
      // llama3-tokenizer-js 1.2.0 uses the Llama 3.1 special tokens (<|eom_id|> = 128008, reserved tokens
      // renumbered); the Llama 3 (8B) file names 128008 <|reserved_special_token_3|>. Llama 3.2 shares 3.1's names.
      if (std::string(c.tokenizer) == "llama3-8b" && input.find("<|eom_id|>") != std::string::npos) {
        set.note_known_difference(label);
        continue;
      }
      if (std::string(c.tokenizer) == "llama3-8b" && input.find("<|reserved_special_token_9|>") != std::string::npos) {
        set.note_known_difference(label);
        continue;
      }
      std::vector<int32_t> prefix, suffix;
      if (e["add_bos"].get<bool>()) prefix.push_back(*tok.bos_id());
      if (e["add_eos"].get<bool>()) suffix.push_back(*tok.token_to_id(c.eos));
      set.check_encode(label, input, ids, AddSpecialTokens::kNo, prefix, suffix);
      std::vector<int32_t> body(ids.begin() + static_cast<ptrdiff_t>(prefix.size()),
                                ids.end() - static_cast<ptrdiff_t>(suffix.size()));
      set.check_decode(label, body, SkipSpecialTokens::kNo, input, false);
      set.check_round_trip(label, input, input);
      set.check_stream(label, ids);
    }
    set.finish();
  }
}

// The tokenizers shipped with the test models load and round-trip text they can represent (tinystories' small
// vocabulary has no byte tokens for characters it never saw, so it gets a simple story).
TEST(ModelTokenizers, LoadAndRoundTrip) {
  EXL_REQUIRE_TESTDATA();
  std::string eval = read_file(testdata_dir() / "models" / "tiny-llama" / "eval_text.txt").substr(0, 20000);
  std::string story = "Once upon a time, there was a little girl named Lily. She liked to play in the park.\n"
                      "One day, she saw a big dog. \"Hello!\" said Lily. The dog was happy.";
  struct Case {
    const char* dir;
    const std::string* text;
  };
  for (const Case& c : {Case{"models/tiny-llama/fp16", &eval}, Case{"models/tinystories-656k", &story}}) {
    const Tokenizer& tok = load_tokenizer(c.dir);
    EXPECT_GT(tok.vocab_size(), 1000) << c.dir;
    std::vector<int32_t> ids = tok.encode(*c.text, AddSpecialTokens::kYes);
    ASSERT_TRUE(tok.bos_id().has_value()) << c.dir;
    EXPECT_EQ(ids.front(), *tok.bos_id()) << c.dir;
    EXPECT_TRUE(tok.add_bos_token()) << c.dir;
    EXPECT_TRUE(tok.decode(ids, SkipSpecialTokens::kYes) == *c.text) << c.dir << ": round trip differs";
    EXPECT_TRUE(stream_decode(tok, ids, SkipSpecialTokens::kNo) == tok.decode(ids, SkipSpecialTokens::kNo))
        << c.dir << ": stream decode differs";
  }
}

}  // namespace
}  // namespace exl::tokenizer::test
