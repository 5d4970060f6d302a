// Python str semantics on UTF-8 text: code point decoding, whitespace, simple case mapping, strip/split/splitlines.
// Invalid UTF-8 bytes decode to U+DC80+byte (Python's surrogateescape) and encode back to the same byte, so every
// byte string round-trips unchanged.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace exl::chat {

std::u32string decode_utf8(std::string_view text);
std::string encode_utf8(std::u32string_view text);
void append_utf8(std::string& out, char32_t code_point);
size_t count_code_points(std::string_view text);

// str.isspace() for one code point.
bool is_py_space(char32_t c);
// Letters that have a case (enough for title/capitalize): ASCII, Latin-1, Latin Extended-A, Greek, Cyrillic.
bool is_cased_letter(char32_t c);
char32_t to_upper(char32_t c);
char32_t to_lower(char32_t c);

std::string str_upper(std::string_view text);
std::string str_lower(std::string_view text);

enum class StripSide { kBoth, kLeft, kRight };
// str.strip() when chars is null (whitespace), else str.strip(chars).
std::string py_strip(std::string_view text, const std::string* chars, StripSide side);

// str.split(sep, maxsplit) / str.rsplit; sep == nullptr splits on runs of whitespace.
std::vector<std::string> py_split(std::string_view text, const std::string* sep, long long maxsplit);
std::vector<std::string> py_rsplit(std::string_view text, const std::string* sep, long long maxsplit);

// str.splitlines() (keepends=False).
std::vector<std::string> py_splitlines(std::string_view text);

// str.replace(old, new, count); count < 0 means all.
std::string py_replace(std::string_view text, std::string_view from, std::string_view to, long long count);

}  // namespace exl::chat
