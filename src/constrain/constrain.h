// Constrained output: JSON schemas, "any JSON object", regular expressions and GBNF grammars compiled into one
// byte-level automaton (a recursive transition network: one DFA per rule plus a call stack), and per-step masks of
// the vocabulary tokens that keep the output inside the language. Independent of the sampler: a generator asks a
// TokenMasker for the allowed tokens, samples one, and advances the masker with it. Design, supported subset,
// whitespace rules and measured mask times: docs/constrained-output.md.
//
//   auto c = constrain::Constraint::json_schema_text(R"({"type": "object", "properties": {...}})");
//   constrain::TokenMasker masker(vocab, c);           // one per job; copies share the mask cache
//   while (!masker.finished()) {
//     std::vector<int32_t> allowed = masker.allowed_tokens();   // EOS ids included exactly when accepting()
//     int32_t t = sample_from(logits, allowed);
//     if (vocab.kind(t) == constrain::TokenKind::kEos) break;
//     masker.advance(t);
//   }
#pragma once

#include <nlohmann/json.hpp>

#include <bitset>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "constrain/runtime.h"

namespace exl::constrain {

struct JsonOptions {
  // Whitespace at each place JSON allows it (after '{', '[', ',' and ':', before '}', ']', ',' and ':'): at most
  // this many bytes of space, tab, newline or carriage return per place; none before or after the whole value.
  // 0 gives compact JSON. Bounded so that a model cannot emit whitespace forever.
  int max_whitespace = 20;
  // Deepest nesting that recursion can reach (json_object, recursive $ref): an object or array that would start
  // at this depth through a recursive rule is refused. Nesting the schema spells out without recursion is never
  // limited (it is bounded by the schema).
  int max_depth = 32;
};

// A compiled constraint: immutable, cheap to copy (shared), usable from any thread.
class Constraint {
 public:
  // The JSON schema subset of docs/constrained-output.md. With nlohmann::json (keys sorted) properties are
  // generated in alphabetical order; use json_schema_text or ordered_json to keep the schema's order.
  static Constraint json_schema(const nlohmann::json& schema, const JsonOptions& options = {});
  static Constraint json_schema(const nlohmann::ordered_json& schema, const JsonOptions& options = {});
  static Constraint json_schema_text(std::string_view schema_text, const JsonOptions& options = {});
  // Any JSON value of type object (OpenAI's response_format {"type": "json_object"}).
  static Constraint json_object(const JsonOptions& options = {});
  // The whole output must match the pattern (anchored at both ends). Syntax: docs/constrained-output.md.
  static Constraint regex(std::string_view pattern);
  // A llama.cpp-style GBNF grammar; the start rule is `root`.
  static Constraint grammar(std::string_view gbnf);

  const std::string& what() const;  // "json schema", "regex", "grammar"
  int32_t num_states() const;       // automaton states (a size measure)
  int32_t num_rules() const;
  const std::shared_ptr<const detail::Program>& program() const { return program_; }

 private:
  explicit Constraint(std::shared_ptr<const detail::Program> program) : program_(std::move(program)) {}
  std::shared_ptr<const detail::Program> program_;
};

// Byte-level matching of one output. Copies are independent positions sharing the stack table (thread-safe).
class Matcher {
 public:
  explicit Matcher(const Constraint& constraint);

  // Consumes the byte if it can follow; returns false (and changes nothing) if not.
  bool advance(uint8_t byte);
  // Consumes bytes up to the first that cannot follow; returns how many were consumed.
  size_t advance(std::string_view bytes);
  bool accepting() const;  // the output may end here
  bool finished() const;   // it must end here: accepting and no byte can follow
  std::bitset<256> next_bytes() const;
  // The shortest byte string that makes the output complete (empty if accepting), found by breadth-first search
  // over at most `max_positions` positions; nullopt if none was found within that.
  std::optional<std::string> shortest_completion(size_t max_positions = 200000) const;
  void reset();

  const detail::Position& position() const { return position_; }
  const std::shared_ptr<detail::Runtime>& runtime() const { return runtime_; }

 private:
  friend class TokenMasker;
  Matcher(std::shared_ptr<detail::Runtime> runtime);
  std::shared_ptr<detail::Runtime> runtime_;
  detail::Position position_;
};

enum class TokenKind : uint8_t {
  kText,     // its bytes are output text
  kSpecial,  // never allowed (BOS, PAD, chat markers, ids without a token)
  kEos,      // allowed exactly when the constraint accepts; ends the output
};

namespace detail {
struct VocabIndex;
}

// The vocabulary as byte strings: token id -> the bytes it adds to the output. Immutable, cheap to copy, shared.
// Text tokens with no bytes are never allowed (they would let the output stall).
class Vocabulary {
 public:
  Vocabulary(std::vector<std::string> token_bytes, std::vector<TokenKind> kinds);

  int32_t size() const;
  const std::string& token_bytes(int32_t id) const;
  TokenKind kind(int32_t id) const;
  const std::vector<int32_t>& eos_ids() const;
  size_t max_token_length() const;  // longest text token, in bytes
  const detail::VocabIndex& index() const { return *index_; }

  // tokenizer.json vocabulary strings -> bytes. Byte-level BPE (GPT-2 style: every byte stands for one printable
  // character): nullopt if a character is not one of the 256 stand-ins (e.g. an added token's plain text).
  static std::optional<std::string> decode_byte_level(std::string_view token);
  // SentencePiece-style BPE: "▁" is a space and "<0xAB>" is the byte 0xAB.
  static std::string decode_sentencepiece(std::string_view token);

 private:
  std::shared_ptr<const detail::VocabIndex> index_;
};

class TokenBitmask {
 public:
  explicit TokenBitmask(int32_t size) : size_(size), words_((static_cast<size_t>(size) + 63) / 64, 0) {}
  int32_t size() const { return size_; }
  bool test(int32_t id) const { return (words_[static_cast<size_t>(id) >> 6] >> (id & 63)) & 1; }
  void set(int32_t id) { words_[static_cast<size_t>(id) >> 6] |= uint64_t{1} << (id & 63); }
  int32_t count() const;
  std::vector<int32_t> ids() const;  // ascending
  const std::vector<uint64_t>& words() const { return words_; }

 private:
  friend class TokenMasker;
  int32_t size_;
  std::vector<uint64_t> words_;
};

struct MaskerOptions {
  // Masks kept per constraint (shared by copies of a masker); cleared when full.
  size_t mask_cache_bytes = size_t{16} << 20;
};

// Token masks for one output. Copies (clones, e.g. one per job of a request with n > 1) continue independently
// and share the mask cache; they may be used from different threads.
class TokenMasker {
 public:
  TokenMasker(const Vocabulary& vocab, const Constraint& constraint, const MaskerOptions& options = {});
  TokenMasker clone() const { return *this; }  // same as a copy

  // The tokens allowed next: text tokens whose bytes can follow, plus every EOS id when accepting(). After an EOS
  // token was consumed nothing is allowed.
  std::shared_ptr<const TokenBitmask> mask() const;
  std::vector<int32_t> allowed_tokens() const;
  std::vector<int32_t> blocked_tokens() const;  // the complement (shorter where most tokens are allowed)
  void fill_allowed(std::vector<uint8_t>& allowed) const;  // resized to the vocabulary; 1 = allowed
  bool is_allowed(int32_t token) const;

  // Consumes a token; kInvalidArgument naming the token and the offending byte if it is not allowed.
  void advance(int32_t token);
  // Consumes forced text (e.g. a prefix the caller inserted); kInvalidArgument if it cannot follow.
  void advance_bytes(std::string_view bytes);

  bool accepting() const;  // EOS is allowed now
  bool finished() const;   // only EOS can follow, or EOS was consumed
  bool ended() const { return ended_; }
  void reset();

  const Matcher& matcher() const { return matcher_; }
  const Vocabulary& vocabulary() const { return vocab_; }

  struct CacheStats {
    uint64_t hits = 0;
    uint64_t misses = 0;
    size_t entries = 0;
    size_t bytes = 0;
  };
  CacheStats cache_stats() const;
  // The mask computed without the cache (for benchmarks and tests).
  std::shared_ptr<const TokenBitmask> compute_mask_uncached() const;

 private:
  std::shared_ptr<const TokenBitmask> compute_mask_locked() const;

  Vocabulary vocab_;
  Matcher matcher_;
  MaskerOptions options_;
  bool ended_ = false;
};

}  // namespace exl::constrain
