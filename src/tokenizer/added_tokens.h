// Added tokens (special or not) and how they are cut out of the input text before the model sees it: leftmost-longest
// matching with the single_word / lstrip / rstrip rules of the tokenizers library's AddedVocabulary.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace exl::tokenizer::detail {

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
};

// A range of the text: an added token (id >= 0) or plain text (id == -1).
struct TextSpan {
  size_t start;
  size_t end;
  int32_t id;
};

class AddedTokenMatcher {
 public:
  // patterns[i] is what token i is matched as (its content, or its normalized content).
  void add(const AddedToken& token, std::string pattern);
  void finish();  // call once after the last add()
  // Covers all of `text` with spans; plain spans are never empty.
  void split(std::string_view text, std::vector<TextSpan>& out) const;
  bool empty() const { return entries_.empty(); }

 private:
  struct Entry {
    std::string pattern;
    AddedToken token;
  };
  std::vector<Entry> entries_;
  // Per first byte: entry indices, longest pattern first (ties: first added first).
  std::array<std::vector<uint32_t>, 256> by_first_byte_;
};

}  // namespace exl::tokenizer::detail
