// PCRE2 regex (UTF + Unicode properties, JIT-compiled) used by Split / Replace and the ByteLevel pre-tokenizer.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace exl::tokenizer::detail {

struct MatchRange {
  size_t start;
  size_t end;
};

class Regex {
 public:
  // `where` names the pattern in errors (e.g. "tokenizer.json: pre_tokenizer.pattern.Regex").
  Regex(std::string_view pattern, const std::string& where);
  Regex(Regex&& other) noexcept;
  Regex& operator=(Regex&& other) noexcept;
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  ~Regex();

  // Appends every non-empty, non-overlapping match of `text` (valid UTF-8), left to right.
  void find_all(std::string_view text, std::vector<MatchRange>& out) const;

  // A pattern that matches `literal` exactly.
  static std::string escape(std::string_view literal);

 private:
  void* code_ = nullptr;  // pcre2_code_8
  bool jit_ = false;
};

}  // namespace exl::tokenizer::detail
