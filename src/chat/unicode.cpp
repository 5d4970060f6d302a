#include "chat/unicode.h"

#include <algorithm>

namespace exl::chat {

namespace {

constexpr char32_t kEscapeBase = 0xDC80;  // surrogateescape: invalid byte b <-> U+DC80 + (b - 0x80)

// Decodes one code point at text[pos]; advances pos.
char32_t decode_one(std::string_view text, size_t& pos) {
  const auto byte = static_cast<unsigned char>(text[pos]);
  if (byte < 0x80) {
    ++pos;
    return byte;
  }
  int length = 0;
  char32_t value = 0;
  char32_t min_value = 0;
  if ((byte & 0xE0) == 0xC0) {
    length = 2;
    value = byte & 0x1F;
    min_value = 0x80;
  } else if ((byte & 0xF0) == 0xE0) {
    length = 3;
    value = byte & 0x0F;
    min_value = 0x800;
  } else if ((byte & 0xF8) == 0xF0) {
    length = 4;
    value = byte & 0x07;
    min_value = 0x10000;
  }
  if (length == 0 || pos + static_cast<size_t>(length) > text.size()) {
    ++pos;
    return kEscapeBase + (byte - 0x80);
  }
  for (int i = 1; i < length; ++i) {
    const auto next = static_cast<unsigned char>(text[pos + static_cast<size_t>(i)]);
    if ((next & 0xC0) != 0x80) {
      ++pos;
      return kEscapeBase + (byte - 0x80);
    }
    value = (value << 6) | (next & 0x3F);
  }
  if (value < min_value || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) {
    ++pos;
    return kEscapeBase + (byte - 0x80);
  }
  pos += static_cast<size_t>(length);
  return value;
}

bool in_pair_range_even_upper(char32_t c, char32_t first, char32_t last) {
  return c >= first && c <= last && ((c - first) % 2 == 0);
}

}  // namespace

void append_utf8(std::string& out, char32_t c) {
  if (c >= kEscapeBase && c < kEscapeBase + 0x80) {
    out.push_back(static_cast<char>(c - kEscapeBase + 0x80));
  } else if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::u32string decode_utf8(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) out.push_back(decode_one(text, pos));
  return out;
}

std::string encode_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) append_utf8(out, c);
  return out;
}

size_t count_code_points(std::string_view text) {
  size_t count = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    decode_one(text, pos);
    ++count;
  }
  return count;
}

bool is_py_space(char32_t c) {
  if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return true;
  if (c < 0x85) return false;
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

char32_t to_upper(char32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if (c < 0xB5) return c;
  if (c == 0xB5) return 0x39C;
  if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 32;
  if (c == 0xFF) return 0x178;
  if (c >= 0x100 && c <= 0x137 && (c % 2 == 1)) return c - 1;
  if (c >= 0x139 && c <= 0x148 && (c % 2 == 0)) return c - 1;
  if (c >= 0x14A && c <= 0x177 && (c % 2 == 1)) return c - 1;
  if (c >= 0x179 && c <= 0x17E && (c % 2 == 0)) return c - 1;
  if (c == 0x131) return 'I';
  if (c == 0x17F) return 'S';
  if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return c - 32;
  if (c == 0x3C2) return 0x3A3;
  if (c == 0x3AC) return 0x386;
  if (c >= 0x3AD && c <= 0x3AF) return c - 37;
  if (c == 0x3CC) return 0x38C;
  if (c == 0x3CD || c == 0x3CE) return c - 63;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  if ((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF)) return (c % 2 == 1) ? c - 1 : c;
  return c;
}

char32_t to_lower(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c < 0xC0) return c;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
  if (in_pair_range_even_upper(c, 0x100, 0x137) && c != 0x130) return c + 1;
  if (c >= 0x139 && c <= 0x148 && (c % 2 == 1)) return c + 1;
  if (in_pair_range_even_upper(c, 0x14A, 0x177)) return c + 1;
  if (c == 0x178) return 0xFF;
  if (c >= 0x179 && c <= 0x17E && (c % 2 == 1)) return c + 1;
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
  if (c == 0x386) return 0x3AC;
  if (c >= 0x388 && c <= 0x38A) return c + 37;
  if (c == 0x38C) return 0x3CC;
  if (c == 0x38E || c == 0x38F) return c + 63;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  if ((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF)) return (c % 2 == 0) ? c + 1 : c;
  return c;
}

bool is_cased_letter(char32_t c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  if (c == 0xDF || c == 0x131 || c == 0x17F || c == 0xB5) return true;
  return to_upper(c) != c || to_lower(c) != c;
}

std::string str_upper(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const char32_t c = decode_one(text, pos);
    if (c == 0xDF) {
      out += "SS";  // Python: 'ß'.upper() == 'SS'
    } else {
      append_utf8(out, to_upper(c));
    }
  }
  return out;
}

std::string str_lower(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) append_utf8(out, to_lower(decode_one(text, pos)));
  return out;
}

std::string py_strip(std::string_view text, const std::string* chars, StripSide side) {
  const std::u32string s = decode_utf8(text);
  const std::u32string set = chars != nullptr ? decode_utf8(*chars) : std::u32string();
  auto strip_char = [&](char32_t c) {
    return chars == nullptr ? is_py_space(c) : set.find(c) != std::u32string::npos;
  };
  size_t begin = 0;
  size_t end = s.size();
  if (side != StripSide::kRight) {
    while (begin < end && strip_char(s[begin])) ++begin;
  }
  if (side != StripSide::kLeft) {
    while (end > begin && strip_char(s[end - 1])) --end;
  }
  return encode_utf8(std::u32string_view(s).substr(begin, end - begin));
}

std::vector<std::string> py_split(std::string_view text, const std::string* sep, long long maxsplit) {
  std::vector<std::string> parts;
  if (sep != nullptr) {
    size_t start = 0;
    while (maxsplit < 0 || static_cast<long long>(parts.size()) < maxsplit) {
      const size_t found = text.find(*sep, start);
      if (found == std::string_view::npos) break;
      parts.emplace_back(text.substr(start, found - start));
      start = found + sep->size();
    }
    parts.emplace_back(text.substr(start));
    return parts;
  }
  const std::u32string s = decode_utf8(text);
  size_t pos = 0;
  while (pos < s.size()) {
    while (pos < s.size() && is_py_space(s[pos])) ++pos;
    if (pos >= s.size()) break;
    if (maxsplit >= 0 && static_cast<long long>(parts.size()) >= maxsplit) {
      size_t end = s.size();
      while (end > pos && is_py_space(s[end - 1])) --end;
      parts.push_back(encode_utf8(std::u32string_view(s).substr(pos, end - pos)));
      return parts;
    }
    const size_t start = pos;
    while (pos < s.size() && !is_py_space(s[pos])) ++pos;
    parts.push_back(encode_utf8(std::u32string_view(s).substr(start, pos - start)));
  }
  return parts;
}

std::vector<std::string> py_rsplit(std::string_view text, const std::string* sep, long long maxsplit) {
  std::vector<std::string> parts;
  if (sep != nullptr) {
    size_t end = text.size();
    while (maxsplit < 0 || static_cast<long long>(parts.size()) < maxsplit) {
      if (end < sep->size()) break;
      const size_t found = text.rfind(*sep, end - sep->size());
      if (found == std::string_view::npos) break;
      parts.emplace_back(text.substr(found + sep->size(), end - found - sep->size()));
      end = found;
    }
    parts.emplace_back(text.substr(0, end));
    std::reverse(parts.begin(), parts.end());
    return parts;
  }
  const std::u32string s = decode_utf8(text);
  size_t pos = s.size();
  while (pos > 0) {
    while (pos > 0 && is_py_space(s[pos - 1])) --pos;
    if (pos == 0) break;
    if (maxsplit >= 0 && static_cast<long long>(parts.size()) >= maxsplit) {
      size_t begin = 0;
      while (begin < pos && is_py_space(s[begin])) ++begin;
      parts.push_back(encode_utf8(std::u32string_view(s).substr(begin, pos - begin)));
      break;
    }
    const size_t end = pos;
    while (pos > 0 && !is_py_space(s[pos - 1])) --pos;
    parts.push_back(encode_utf8(std::u32string_view(s).substr(pos, end - pos)));
  }
  std::reverse(parts.begin(), parts.end());
  return parts;
}

std::vector<std::string> py_splitlines(std::string_view text) {
  const std::u32string s = decode_utf8(text);
  std::vector<std::string> lines;
  size_t start = 0;
  size_t pos = 0;
  while (pos < s.size()) {
    const char32_t c = s[pos];
    const bool is_break = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || (c >= 0x1C && c <= 0x1E) ||
                          c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!is_break) {
      ++pos;
      continue;
    }
    lines.push_back(encode_utf8(std::u32string_view(s).substr(start, pos - start)));
    pos += (c == '\r' && pos + 1 < s.size() && s[pos + 1] == '\n') ? 2 : 1;
    start = pos;
  }
  if (start < s.size()) lines.push_back(encode_utf8(std::u32string_view(s).substr(start)));
  return lines;
}

std::string py_replace(std::string_view text, std::string_view from, std::string_view to, long long count) {
  std::string out;
  if (from.empty()) {
    // Python inserts `to` before every code point and at the end.
    const std::u32string s = decode_utf8(text);
    long long done = 0;
    for (char32_t c : s) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      append_utf8(out, c);
    }
    if (count < 0 || done < count) out += to;
    return out;
  }
  size_t start = 0;
  long long done = 0;
  while (count < 0 || done < count) {
    const size_t found = text.find(from, start);
    if (found == std::string_view::npos) break;
    out.append(text.substr(start, found - start));
    out.append(to);
    start = found + from.size();
    ++done;
  }
  out.append(text.substr(start));
  return out;
}

}  // namespace exl::chat
