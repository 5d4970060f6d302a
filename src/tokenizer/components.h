// Internal interfaces of the tokenizer pipeline (normalizer → pre-tokenizer → model → post-processor; decoder) and
// the helpers that read their tokenizer.json sections with errors naming the JSON path.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace exl::tokenizer::detail {

using Json = nlohmann::json;

// A piece of (normalized) input text on its way through the pre-tokenizers. at_start: the piece begins at offset 0
// of the original input (Metaspace's prepend_scheme "first" depends on it).
struct Piece {
  std::string text;
  bool at_start = false;
};

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` by their sub-pieces; empty pieces are dropped.
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};

class Model {
 public:
  virtual ~Model() = default;
  virtual void tokenize(std::string_view piece, std::vector<int32_t>& out) const = 0;
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  virtual const std::string* id_to_token(int32_t id) const = 0;  // null where no token has the id
  virtual int32_t size() const = 0;                               // max id + 1
};

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual void process(std::vector<int32_t>& ids, AddSpecialTokens add) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
  virtual bool has_byte_fallback() const { return false; }
};

// The byte of a byte-fallback token "<0xAB>", or -1 if `token` is not one.
int parse_byte_fallback_token(std::string_view token);

// ---- JSON access with paths: errors read `tokenizer.json: <path>: <what>`.

[[noreturn]] void config_fail(ErrorKind kind, const std::string& path, const std::string& what);
std::string child_path(const std::string& path, std::string_view key);
std::string index_path(const std::string& path, size_t index);

const Json& require_member(const Json& obj, std::string_view key, const std::string& path);
const Json* find_member(const Json& obj, std::string_view key);  // null if absent or JSON null
std::string require_string(const Json& obj, std::string_view key, const std::string& path);
std::optional<std::string> optional_string(const Json& obj, std::string_view key, const std::string& path);
bool optional_bool(const Json& obj, std::string_view key, const std::string& path, bool fallback);
int64_t optional_int(const Json& obj, std::string_view key, const std::string& path, int64_t fallback);
const Json& require_array(const Json& obj, std::string_view key, const std::string& path);
// The "type" field of a component object.
std::string component_type(const Json& obj, const std::string& path);
[[noreturn]] void unsupported_type(const std::string& path, std::string_view type,
                                   std::initializer_list<std::string_view> supported);

// A {"String": s} or {"Regex": r} pattern.
struct PatternSpec {
  enum class Kind { kString, kRegex };
  Kind kind = Kind::kString;
  std::string text;
};
PatternSpec read_pattern(const Json& obj, std::string_view key, const std::string& path);

// ---- Factories (json null → nullptr).

std::unique_ptr<Normalizer> make_normalizer(const Json& j, const std::string& path);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const Json& j, const std::string& path);
std::unique_ptr<PostProcessor> make_post_processor(const Json& j, const std::string& path);
std::unique_ptr<Decoder> make_decoder(const Json& j, const std::string& path);

}  // namespace exl::tokenizer::detail
