// UTF-8 and Unicode helpers for the tokenizer: decoding, repair of invalid input, character classes with the
// meanings Rust's `char` methods give them (what the `tokenizers` library uses), and normalization forms.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace exl::tokenizer::detail {

inline constexpr char32_t kReplacementChar = 0xFFFD;

// Length of the UTF-8 sequence that starts with lead byte `b` (1 for invalid lead bytes).
inline size_t utf8_length(unsigned char b) {
  if (b < 0x80) return 1;
  if ((b & 0xE0) == 0xC0) return 2;
  if ((b & 0xF0) == 0xE0) return 3;
  if ((b & 0xF8) == 0xF0) return 4;
  return 1;
}

// Decodes the character at s[i] (s must be valid UTF-8) and advances i.
char32_t next_char(std::string_view s, size_t& i);
void append_utf8(std::string& out, char32_t c);

// Whether `s` is valid UTF-8.
bool is_valid_utf8(std::string_view s);
// `s` with each maximal invalid subsequence replaced by U+FFFD (Python's bytes.decode(errors="replace")).
std::string repair_utf8(std::string_view s);

bool is_whitespace(char32_t c);    // Unicode White_Space (Rust char::is_whitespace)
bool is_numeric(char32_t c);       // Nd, Nl, No (Rust char::is_numeric)
bool is_alphanumeric(char32_t c);  // letters and numbers
bool is_punctuation(char32_t c);   // ASCII punctuation or a P* category

enum class NormalForm { kNfc, kNfd, kNfkc, kNfkd };
std::string normalize_form(std::string_view s, NormalForm form);
std::string to_lowercase(std::string_view s);

}  // namespace exl::tokenizer::detail
