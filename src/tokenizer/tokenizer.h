// Hugging Face tokenizer.json tokenizer: encode/decode that match the Python `tokenizers` library, plus the special
// token conventions of tokenizer_config.json / generation_config.json and a streaming detokenizer.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace exl::tokenizer {

enum class AddSpecialTokens { kNo, kYes };   // encode: like add_special_tokens=False/True
enum class SkipSpecialTokens { kNo, kYes };  // decode: like skip_special_tokens=False/True

namespace detail {
struct TokenizerImpl;
}

class Tokenizer {
 public:
  // tokenizer.json, plus tokenizer_config.json, generation_config.json and config.json where present.
  static Tokenizer from_dir(const std::filesystem::path& dir);
  // tokenizer_config_json may be empty.
  static Tokenizer from_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Invalid UTF-8 in `text` is replaced by U+FFFD first (as Python's errors="replace" would).
  std::vector<int32_t> encode(std::string_view text, AddSpecialTokens add) const;
  // An id outside [0, vocab_size) is a kInvalidArgument error.
  std::string decode(std::span<const int32_t> ids, SkipSpecialTokens skip) const;

  int32_t vocab_size() const;  // including added tokens (max id + 1)
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(int32_t id) const;
  bool is_special(int32_t id) const;

  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> pad_id() const;
  std::optional<int32_t> unk_id() const;
  std::vector<int32_t> eos_ids() const;  // tokenizer_config eos_token, then generation_config eos_token_id(s)
  std::optional<std::string> bos_token() const;
  std::optional<std::string> eos_token() const;
  std::optional<std::string> unk_token() const;
  std::optional<std::string> pad_token() const;
  // tokenizer_config add_bos_token when given, else whether the post-processor puts BOS first.
  bool add_bos_token() const;
  // tokenizer_config chat_template (a string, or the "default" entry of a list of {name, template}); "" if none.
  const std::string& chat_template() const;

 private:
  friend class StreamDecoder;
  explicit Tokenizer(std::unique_ptr<detail::TokenizerImpl> impl);
  std::unique_ptr<detail::TokenizerImpl> impl_;
};

// Incremental detokenizer: the concatenation of everything push() and flush() return equals
// decode(all ids pushed). push() never returns a partial UTF-8 sequence. Keeps a reference to the tokenizer.
class StreamDecoder {
 public:
  StreamDecoder(const Tokenizer& tok, SkipSpecialTokens skip);
  std::string push(int32_t id);  // newly finalized text (may be empty)
  std::string flush();           // whatever is held back (invalid trailing bytes become U+FFFD as decode would)

 private:
  bool holds_open_byte_run() const;

  const Tokenizer* tok_;
  SkipSpecialTokens skip_;
  std::vector<int32_t> window_;  // ids whose text is not final yet, preceded by the ids of the last emitted step
  size_t prefix_count_ = 0;      // how many ids at the start of window_ belong to the last emitted step
  std::string prefix_text_;      // decode(window_[0, prefix_count_))
};

}  // namespace exl::tokenizer
