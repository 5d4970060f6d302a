// Helpers for the constrained-output tests: vocabularies (the demo model's tokenizer through the tokenizer library,
// a ~128k one from the test data, a small synthetic one), greedy tokenization over a vocabulary, a validator for
// the supported JSON schema subset (independent of the compiler: it walks the parsed value), and seeded random walks
// through a TokenMasker that always end in a complete output.
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <bit>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "constrain/constrain.h"
#include "testdata.h"
#include "tokenizer/tokenizer.h"

namespace exl::constrain::test {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

// Token bytes from a Hugging Face tokenizer: byte-level vocabularies (those with GPT-2's "Ġ") map each character
// back to its byte, SentencePiece ones turn "▁" into a space and "<0xAB>" into a byte. EOS ids (tokenizer_config /
// generation_config) are kEos, other special tokens kSpecial.
inline Vocabulary vocabulary_from_tokenizer(const tokenizer::Tokenizer& tok) {
  bool byte_level = tok.token_to_id("\xC4\xA0").has_value();
  std::vector<int32_t> eos = tok.eos_ids();
  std::vector<std::string> bytes(static_cast<size_t>(tok.vocab_size()));
  std::vector<TokenKind> kinds(bytes.size(), TokenKind::kSpecial);
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    auto i = static_cast<size_t>(id);
    if (std::find(eos.begin(), eos.end(), id) != eos.end()) {
      kinds[i] = TokenKind::kEos;
      continue;
    }
    auto s = tok.id_to_token(id);
    if (!s || tok.is_special(id)) continue;
    kinds[i] = TokenKind::kText;
    if (byte_level) {
      bytes[i] = Vocabulary::decode_byte_level(*s).value_or(*s);
    } else {
      bytes[i] = Vocabulary::decode_sentencepiece(*s);
    }
  }
  return Vocabulary(std::move(bytes), std::move(kinds));
}

inline std::filesystem::path demo_model_dir() { return exl::testing::source_dir() / "models" / "demo"; }
inline std::filesystem::path large_tokenizer_dir() {
  return exl::testing::testdata_dir() / "tokenizers" / "llama3-8b";
}

// Cached per directory (the 128k vocabulary takes a moment to load).
inline const Vocabulary& vocabulary_at(const std::filesystem::path& dir) {
  static std::map<std::string, std::unique_ptr<Vocabulary>> cache;
  auto it = cache.find(dir.string());
  if (it != cache.end()) return *it->second;
  auto tok = tokenizer::Tokenizer::from_dir(dir);
  auto v = std::make_unique<Vocabulary>(vocabulary_from_tokenizer(tok));
  return *cache.emplace(dir.string(), std::move(v)).first->second;
}

inline const Vocabulary& demo_vocabulary() { return vocabulary_at(demo_model_dir()); }

// Every single byte, a few JSON-shaped pieces and words; token 0 is a special BOS, the last token EOS.
inline const Vocabulary& synthetic_vocabulary() {
  static const Vocabulary v = [] {
    std::vector<std::string> bytes{"<s>"};
    std::vector<TokenKind> kinds{TokenKind::kSpecial};
    for (int b = 0; b < 256; ++b) {
      bytes.push_back(std::string(1, static_cast<char>(b)));
      kinds.push_back(TokenKind::kText);
    }
    for (const char* s : {"{\"", "\"}", "\":", "\": ", "\", \"", ", ", "true", "false", "null", "12", "345", "0.",
                          "\n  ", "    ", "[{", "}]", "\"name\": \"", "name", "age", "abc", "hello world", "\xC3\xA9",
                          "\xE2\x82", "\\n", "\\u00", "-1", "e+", "2024-", "-01", "T12:", "@example.com", "[]", "{}",
                          ""}) {
      bytes.push_back(s);
      kinds.push_back(TokenKind::kText);
    }
    bytes.push_back("</s>");
    kinds.push_back(TokenKind::kEos);
    return Vocabulary(std::move(bytes), std::move(kinds));
  }();
  return v;
}

// Greedy longest-match split of `text` into text tokens (nullopt if some byte has no token).
inline std::optional<std::vector<int32_t>> greedy_tokens(const Vocabulary& v, std::string_view text) {
  static std::map<const void*, std::map<std::string, int32_t>> tables;
  auto& table = tables[&v.token_bytes(0)];
  if (table.empty())
    for (int32_t id = 0; id < v.size(); ++id)
      if (v.kind(id) == TokenKind::kText && !v.token_bytes(id).empty()) table.emplace(v.token_bytes(id), id);
  std::vector<int32_t> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t best = 0;
    int32_t best_id = -1;
    for (size_t len = std::min(text.size() - pos, v.max_token_length()); len > 0; --len) {
      auto it = table.find(std::string(text.substr(pos, len)));
      if (it != table.end()) {
        best = len;
        best_id = it->second;
        break;
      }
    }
    if (best_id < 0) return std::nullopt;
    out.push_back(best_id);
    pos += best;
  }
  return out;
}

// ---- validator for the supported subset ----

inline size_t codepoints(const std::string& s) {
  size_t n = 0;
  for (char c : s)
    if ((static_cast<uint8_t>(c) & 0xC0) != 0x80) ++n;
  return n;
}

inline bool digits_in(const std::string& s, size_t from, size_t count, int lo, int hi) {
  if (from + count > s.size()) return false;
  int v = 0;
  for (size_t i = from; i < from + count; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  return v >= lo && v <= hi;
}

inline bool valid_date(const std::string& s) {
  return s.size() == 10 && digits_in(s, 0, 4, 0, 9999) && s[4] == '-' && digits_in(s, 5, 2, 1, 12) &&
         s[7] == '-' && digits_in(s, 8, 2, 1, 31);
}

inline bool valid_time(const std::string& s) {
  if (s.size() < 9 || !digits_in(s, 0, 2, 0, 23) || s[2] != ':' || !digits_in(s, 3, 2, 0, 59) || s[5] != ':' ||
      !digits_in(s, 6, 2, 0, 59))
    return false;
  size_t p = 8;
  if (s[p] == '.') {
    size_t q = p + 1;
    while (q < s.size() && s[q] >= '0' && s[q] <= '9') ++q;
    if (q == p + 1) return false;
    p = q;
  }
  if (p < s.size() && s[p] == 'Z') return p + 1 == s.size();
  return p + 6 == s.size() && (s[p] == '+' || s[p] == '-') && digits_in(s, p + 1, 2, 0, 23) && s[p + 3] == ':' &&
         digits_in(s, p + 4, 2, 0, 59);
}

inline bool valid_format(const std::string& format, const std::string& s) {
  if (format == "date") return valid_date(s);
  if (format == "time") return valid_time(s);
  if (format == "date-time") return s.size() > 11 && valid_date(s.substr(0, 10)) && s[10] == 'T' && valid_time(s.substr(11));
  if (format == "uuid") {
    if (s.size() != 36) return false;
    for (size_t i = 0; i < s.size(); ++i) {
      bool dash = i == 8 || i == 13 || i == 18 || i == 23;
      if (dash != (s[i] == '-')) return false;
      if (!dash && !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
    }
    return true;
  }
  if (format == "email") {
    size_t at = s.find('@');
    if (at == std::string::npos || at == 0 || s.find('@', at + 1) != std::string::npos) return false;
    std::string domain = s.substr(at + 1);
    size_t dot = domain.rfind('.');
    return dot != std::string::npos && dot > 0 && domain.size() - dot - 1 >= 2;
  }
  if (format == "ipv4") {
    int parts = 0;
    size_t p = 0;
    while (true) {
      size_t q = p;
      while (q < s.size() && std::isdigit(static_cast<unsigned char>(s[q]))) ++q;
      if (q == p || q - p > 3 || (q - p > 1 && s[p] == '0') || std::stoi(s.substr(p, q - p)) > 255) return false;
      ++parts;
      if (q == s.size()) return parts == 4;
      if (s[q] != '.') return false;
      p = q + 1;
    }
  }
  return false;
}

// Checks `v` against `schema` (the subset, with additionalProperties absent + properties present = false).
// Returns "" if valid, else a reason.
inline std::string validate(const json& v, const ojson& schema, const ojson& root, const std::string& at = "") {
  if (schema.is_boolean()) return schema.get<bool>() ? "" : at + ": schema false";
  if (schema.contains("$ref")) {
    std::string target = schema["$ref"].get<std::string>().substr(1);
    return validate(v, root.at(ojson::json_pointer(target)), root, at);
  }
  if (schema.contains("nullable") && schema["nullable"].get<bool>() && v.is_null()) return "";
  if (schema.contains("const")) return v == json::parse(schema["const"].dump()) ? "" : at + ": not the const";
  if (schema.contains("enum")) {
    for (const auto& e : schema["enum"])
      if (v == json::parse(e.dump())) return "";
    return at + ": not in enum";
  }
  for (const char* key : {"anyOf", "oneOf"}) {
    if (!schema.contains(key)) continue;
    for (const auto& alt : schema[key])
      if (validate(v, alt, root, at).empty()) return "";
    return at + ": no alternative matches";
  }
  if (schema.contains("allOf")) {
    for (const auto& s : schema["allOf"]) {
      std::string r = validate(v, s, root, at);
      if (!r.empty()) return r;
    }
  }
  if (schema.contains("type")) {
    std::vector<std::string> types;
    if (schema["type"].is_string()) {
      types.push_back(schema["type"].get<std::string>());
    } else {
      for (const auto& t : schema["type"]) types.push_back(t.get<std::string>());
    }
    bool ok = false;
    for (const auto& t : types) {
      ok |= (t == "object" && v.is_object()) || (t == "array" && v.is_array()) || (t == "string" && v.is_string()) ||
            (t == "number" && v.is_number()) || (t == "boolean" && v.is_boolean()) || (t == "null" && v.is_null()) ||
            (t == "integer" && (v.is_number_integer() || (v.is_number_float() &&
                                                          std::floor(v.get<double>()) == v.get<double>())));
    }
    if (!ok) return at + ": wrong type " + v.type_name();
  }
  if (v.is_object()) {
    std::vector<std::string> declared;
    if (schema.contains("properties"))
      for (const auto& [name, sub] : schema["properties"].items()) {
        declared.push_back(name);
        if (v.contains(name)) {
          std::string r = validate(v[name], sub, root, at + "/" + name);
          if (!r.empty()) return r;
        }
      }
    if (schema.contains("required"))
      for (const auto& name : schema["required"])
        if (!v.contains(name.get<std::string>())) return at + ": missing " + name.get<std::string>();
    for (const auto& [name, value] : v.items()) {
      if (std::find(declared.begin(), declared.end(), name) != declared.end()) continue;
      if (!schema.contains("additionalProperties")) {
        if (schema.contains("properties")) return at + ": unexpected property " + name;
        continue;
      }
      std::string r = validate(value, schema["additionalProperties"], root, at + "/" + name);
      if (!r.empty()) return r;
    }
  }
  if (v.is_array()) {
    if (schema.contains("minItems") && v.size() < schema["minItems"].get<size_t>()) return at + ": too few items";
    if (schema.contains("maxItems") && v.size() > schema["maxItems"].get<size_t>()) return at + ": too many items";
    if (schema.contains("items"))
      for (size_t i = 0; i < v.size(); ++i) {
        std::string r = validate(v[i], schema["items"], root, at + "/" + std::to_string(i));
        if (!r.empty()) return r;
      }
  }
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    size_t n = codepoints(s);
    if (schema.contains("minLength") && n < schema["minLength"].get<size_t>()) return at + ": too short";
    if (schema.contains("maxLength") && n > schema["maxLength"].get<size_t>()) return at + ": too long";
    if (schema.contains("pattern") && !std::regex_search(s, std::regex(schema["pattern"].get<std::string>())))
      return at + ": pattern mismatch: " + s;
    if (schema.contains("format") && !valid_format(schema["format"].get<std::string>(), s))
      return at + ": bad " + schema["format"].get<std::string>() + ": " + s;
  }
  if (v.is_number()) {
    double x = v.get<double>();
    if (schema.contains("minimum") && x < schema["minimum"].get<double>()) return at + ": below minimum";
    if (schema.contains("maximum") && x > schema["maximum"].get<double>()) return at + ": above maximum";
    if (schema.contains("exclusiveMinimum") && x <= schema["exclusiveMinimum"].get<double>())
      return at + ": not above exclusiveMinimum";
    if (schema.contains("exclusiveMaximum") && x >= schema["exclusiveMaximum"].get<double>())
      return at + ": not below exclusiveMaximum";
  }
  return "";
}

// ---- random walks ----

struct Walk {
  std::string text;
  int tokens = 0;
  std::string failure;  // empty on success
};

inline int32_t nth_allowed(const TokenBitmask& mask, int32_t n) {
  const auto& words = mask.words();
  for (size_t w = 0; w < words.size(); ++w) {
    int c = std::popcount(words[w]);
    if (n >= c) {
      n -= c;
      continue;
    }
    uint64_t bits = words[w];
    for (int k = 0; k < n; ++k) bits &= bits - 1;
    return static_cast<int32_t>(w * 64 + static_cast<size_t>(std::countr_zero(bits)));
  }
  return -1;
}

// Picks uniformly among the allowed text tokens for up to `random_steps` tokens (stopping early, with probability
// 1/3 per step, where the output may end), then completes the output along the shortest completion, tokenized
// greedily: every token taken must be allowed, and at the end EOS must be.
inline Walk random_walk(TokenMasker masker, uint64_t seed, int random_steps) {
  const Vocabulary& vocab = masker.vocabulary();
  Walk walk;
  std::mt19937_64 rng(seed);
  for (int step = 0; step < random_steps && !masker.finished(); ++step) {
    auto mask = masker.mask();
    bool eos_ok = masker.accepting();
    if (eos_ok && rng() % 3 == 0) break;
    int32_t text_count = mask->count() - (eos_ok ? static_cast<int32_t>(vocab.eos_ids().size()) : 0);
    if (text_count <= 0) break;
    int32_t pick = -1;
    for (int attempt = 0; attempt < 8 && pick < 0; ++attempt) {
      int32_t t = nth_allowed(*mask, static_cast<int32_t>(rng() % static_cast<uint64_t>(mask->count())));
      if (vocab.kind(t) == TokenKind::kText) pick = t;
    }
    if (pick < 0) break;
    masker.advance(pick);
    walk.text += vocab.token_bytes(pick);
    ++walk.tokens;
  }
  auto completion = masker.matcher().shortest_completion();
  if (!completion) {
    walk.failure = "no completion after \"" + walk.text + "\"";
    return walk;
  }
  auto tokens = greedy_tokens(vocab, *completion);
  if (!tokens) {
    walk.failure = "completion not tokenizable: " + *completion;
    return walk;
  }
  for (int32_t t : *tokens) {
    if (!masker.mask()->test(t)) {
      walk.failure = "completion token " + std::to_string(t) + " not in the mask after \"" + walk.text + "\"";
      return walk;
    }
    masker.advance(t);
    walk.text += vocab.token_bytes(t);
    ++walk.tokens;
  }
  auto mask = masker.mask();
  if (!masker.accepting() || vocab.eos_ids().empty() || !mask->test(vocab.eos_ids()[0]))
    walk.failure = "EOS not allowed after the completion \"" + walk.text + "\"";
  return walk;
}

inline Walk random_walk(const Vocabulary& vocab, const Constraint& c, uint64_t seed, int random_steps) {
  return random_walk(TokenMasker(vocab, c), seed, random_steps);
}

}  // namespace exl::constrain::test
