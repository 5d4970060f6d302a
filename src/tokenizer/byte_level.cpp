#include "tokenizer/byte_level.h"

#include "tokenizer/unicode.h"

namespace exl::tokenizer::detail {

namespace {

// Bytes that are printable Latin-1 characters keep their code point; the others take 256, 257, ... in byte order.
std::array<char32_t, 256> make_byte_chars() {
  std::array<char32_t, 256> chars{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    chars[static_cast<size_t>(b)] = printable ? static_cast<char32_t>(b) : next++;
  }
  return chars;
}

const std::array<char32_t, 256>& byte_chars() {
  static const std::array<char32_t, 256> chars = make_byte_chars();
  return chars;
}

}  // namespace

const std::array<std::string, 256>& byte_to_unicode() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    for (size_t b = 0; b < 256; ++b) append_utf8(t[b], byte_chars()[b]);
    return t;
  }();
  return table;
}

int unicode_to_byte(char32_t c) {
  static const std::array<int16_t, 324> reverse = [] {
    std::array<int16_t, 324> r{};
    r.fill(-1);
    for (size_t b = 0; b < 256; ++b) r[byte_chars()[b]] = static_cast<int16_t>(b);
    return r;
  }();
  return c < reverse.size() ? reverse[c] : -1;
}

}  // namespace exl::tokenizer::detail
