// Shared helpers for the tokenizer tests: test data location, a cache of loaded tokenizers, and a checker that runs
// encode / decode / StreamDecoder / round-trip checks on one case and tallies the results per vector set.
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace exl::tokenizer::test {

inline std::filesystem::path testdata_dir() { return std::filesystem::path(EXL_TESTDATA_DIR); }

inline bool have_testdata() { return std::filesystem::exists(testdata_dir() / "tokenizers"); }

#define EXL_REQUIRE_TESTDATA()                                                                                   \
  do {                                                                                                           \
    if (!::exl::tokenizer::test::have_testdata()) {                                                              \
      GTEST_SKIP() << "test data not found at " << EXL_TESTDATA_DIR << " (expected ../shared/testdata/tokenizers)"; \
    }                                                                                                            \
  } while (0)

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline nlohmann::json read_json(const std::filesystem::path& p) { return nlohmann::json::parse(read_file(p)); }

// name: a folder under tokenizers/, or a path relative to the test data root (e.g. "models/tiny-llama/fp16").
inline const Tokenizer& load_tokenizer(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return *it->second;
  std::filesystem::path dir = testdata_dir() / "tokenizers" / name;
  if (!std::filesystem::exists(dir)) dir = testdata_dir() / name;
  auto tok = std::make_unique<Tokenizer>(Tokenizer::from_dir(dir));
  return *cache.emplace(name, std::move(tok)).first->second;
}

inline std::string ids_str(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t k = 0; k < ids.size(); ++k) s += (k ? "," : "") + std::to_string(ids[k]);
  return s + "]";
}

inline std::string json_quoted(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

inline std::string stream_decode(const Tokenizer& tok, const std::vector<int32_t>& ids, SkipSpecialTokens skip) {
  StreamDecoder sd(tok, skip);
  std::string out;
  for (int32_t id : ids) out += sd.push(id);
  out += sd.flush();
  return out;
}

// The clean-up transformers applies to decoded text when clean_up_tokenization_spaces is set.
inline std::string transformers_cleanup(std::string s) {
  const std::pair<std::string, std::string> repl[] = {{" .", "."},   {" ?", "?"},   {" !", "!"},   {" ,", ","},
                                                      {" ' ", "'"},  {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"},
                                                      {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : repl) {
    for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
      s.replace(pos, from.size(), to);
    }
  }
  return s;
}

// Tallies one vector set; failures are reported (first few in full) by finish().
class VectorSet {
 public:
  VectorSet(std::string name, const Tokenizer& tok) : name_(std::move(name)), tok_(tok) {}

  // Encode check: encode(text, add) == expected (expected may carry BOS/EOS added by the caller's convention,
  // passed as prefix/suffix ids).
  void check_encode(const std::string& label, const std::string& text, const std::vector<int32_t>& expected,
                    AddSpecialTokens add, const std::vector<int32_t>& prefix = {},
                    const std::vector<int32_t>& suffix = {}) {
    ++encode_total_;
    std::vector<int32_t> got;
    try {
      got = tok_.encode(text, add);
    } catch (const std::exception& e) {
      fail(fmt_case("encode", label, text) + " threw " + e.what());
      return;
    }
    got.insert(got.begin(), prefix.begin(), prefix.end());
    got.insert(got.end(), suffix.begin(), suffix.end());
    if (got == expected) {
      ++encode_pass_;
    } else {
      fail(fmt_case("encode", label, text) + "\n      expected " + ids_str(expected) + "\n      got      " + ids_str(got));
    }
  }

  // Decode check against a known text.
  void check_decode(const std::string& label, const std::vector<int32_t>& ids, SkipSpecialTokens skip,
                    const std::string& expected, bool cleanup) {
    ++decode_total_;
    std::string got = tok_.decode(ids, skip);
    if (cleanup) got = transformers_cleanup(got);
    if (got == expected) {
      ++decode_pass_;
    } else {
      fail(fmt_case("decode", label, expected) + " got " + json_quoted(got));
    }
  }

  // decode(encode(text)) == expected_text (the text, or its normalized form for lossy normalizers).
  void check_round_trip(const std::string& label, const std::string& text, const std::string& expected_text) {
    ++round_total_;
    std::string got = tok_.decode(tok_.encode(text, AddSpecialTokens::kNo), SkipSpecialTokens::kNo);
    if (got == expected_text) {
      ++round_pass_;
    } else {
      fail(fmt_case("round trip", label, text) + " got " + json_quoted(got));
    }
  }

  // StreamDecoder over ids equals decode(ids), in both skip modes.
  void check_stream(const std::string& label, const std::vector<int32_t>& ids) {
    for (auto skip : {SkipSpecialTokens::kNo, SkipSpecialTokens::kYes}) {
      ++stream_total_;
      std::string full = tok_.decode(ids, skip);
      std::string streamed = stream_decode(tok_, ids, skip);
      if (full == streamed) {
        ++stream_pass_;
      } else {
        fail(fmt_case("stream", label, full) + " streamed " + json_quoted(streamed));
      }
    }
  }

  // A case left out because the vectors and the test data's tokenizer file genuinely differ (documented at the call).
  void note_known_difference(const std::string& label) { known_.push_back(label); }

  void finish() {
    std::string known;
    for (const auto& k : known_) known += (known.empty() ? "" : ",") + k;
    std::printf("[ vectors  ] %-48s encode %d/%d  decode %d/%d  round-trip %d/%d  stream %d/%d%s%s\n", name_.c_str(),
                encode_pass_, encode_total_, decode_pass_, decode_total_, round_pass_, round_total_, stream_pass_,
                stream_total_, known.empty() ? "" : "  known differences: ", known.c_str());
    std::string all;
    for (size_t k = 0; k < failures_.size() && k < 8; ++k) all += "\n  " + failures_[k];
    EXPECT_TRUE(failures_.empty()) << name_ << ": " << failures_.size() << " failures" << all;
  }

 private:
  static std::string fmt_case(const char* what, const std::string& label, const std::string& text) {
    std::string t = json_quoted(text);
    if (t.size() > 160) t = t.substr(0, 160) + "...";
    return std::string(what) + " [" + label + "] " + t;
  }
  void fail(std::string msg) { failures_.push_back(std::move(msg)); }

  std::string name_;
  const Tokenizer& tok_;
  std::vector<std::string> failures_;
  std::vector<std::string> known_;
  int encode_total_ = 0, encode_pass_ = 0, decode_total_ = 0, decode_pass_ = 0;
  int round_total_ = 0, round_pass_ = 0, stream_total_ = 0, stream_pass_ = 0;
};

}  // namespace exl::tokenizer::test
