// The GPT-2 byte ↔ printable character mapping used by ByteLevel pre-tokenizers and decoders.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace exl::tokenizer::detail {

// UTF-8 of the printable character that stands for each byte.
const std::array<std::string, 256>& byte_to_unicode();
// The byte a character stands for, or -1 if the character is not one of the 256.
int unicode_to_byte(char32_t c);

}  // namespace exl::tokenizer::detail
