#include <algorithm>
#include <array>
#include <bit>

#include "constrain/vocab_index.h"
#include "core/error.h"

namespace exl::constrain {
namespace {

// GPT-2's byte-level alphabet: printable Latin-1 bytes stand for themselves; the others (controls, space, DEL,
// the C1 range and the soft hyphen) are given code points 256, 257, ... in byte order.
std::array<int32_t, 324> make_char_to_byte() {
  std::array<int32_t, 324> map{};
  map.fill(-1);
  uint32_t extra = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    map[printable ? b : extra++] = static_cast<int32_t>(b);
  }
  return map;
}

// Decodes one UTF-8 code point at s[i]; returns false on malformed input.
bool next_codepoint(std::string_view s, size_t& i, uint32_t& cp) {
  auto c = static_cast<uint8_t>(s[i]);
  int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (len == 0 || i + static_cast<size_t>(len) > s.size()) return false;
  cp = len == 1 ? c : c & (0xFF >> (len + 1));
  for (int k = 1; k < len; ++k) {
    auto cc = static_cast<uint8_t>(s[i + static_cast<size_t>(k)]);
    if ((cc & 0xC0) != 0x80) return false;
    cp = (cp << 6) | (cc & 0x3F);
  }
  i += static_cast<size_t>(len);
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void build_trie(detail::VocabIndex& v) {
  std::vector<int32_t> order;
  for (size_t id = 0; id < v.bytes.size(); ++id)
    if (v.kinds[id] == TokenKind::kText && !v.bytes[id].empty()) order.push_back(static_cast<int32_t>(id));
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return v.bytes[static_cast<size_t>(a)] < v.bytes[static_cast<size_t>(b)];
  });
  std::vector<uint32_t> path;  // path[d] = node at depth d + 1 on the current prefix
  const std::string* prev = nullptr;
  for (int32_t id : order) {
    const std::string& s = v.bytes[static_cast<size_t>(id)];
    size_t common = 0;
    if (prev) {
      size_t limit = std::min({prev->size(), s.size(), path.size()});
      while (common < limit && (*prev)[common] == s[common]) ++common;
    }
    while (path.size() > common) {
      v.node_end[path.back()] = static_cast<uint32_t>(v.node_byte.size());
      path.pop_back();
    }
    for (size_t d = common; d < s.size(); ++d) {
      path.push_back(static_cast<uint32_t>(v.node_byte.size()));
      v.node_byte.push_back(static_cast<uint8_t>(s[d]));
      v.node_depth.push_back(static_cast<uint32_t>(d + 1));
      v.node_end.push_back(0);
      v.node_first.push_back(static_cast<uint32_t>(v.sorted.size()));
    }
    v.sorted.push_back(id);
    v.max_length = std::max(v.max_length, s.size());
    prev = &s;
  }
  while (!path.empty()) {
    v.node_end[path.back()] = static_cast<uint32_t>(v.node_byte.size());
    path.pop_back();
  }
  v.node_first.push_back(static_cast<uint32_t>(v.sorted.size()));
}

}  // namespace

Vocabulary::Vocabulary(std::vector<std::string> token_bytes, std::vector<TokenKind> kinds) {
  EXL_CHECK(token_bytes.size() == kinds.size(), kInvalidArgument,
            "constrain::Vocabulary: {} token byte strings but {} token kinds (expected one kind per token)",
            token_bytes.size(), kinds.size());
  EXL_CHECK(!token_bytes.empty() && token_bytes.size() < (size_t{1} << 31), kInvalidArgument,
            "constrain::Vocabulary: expected 1 to 2^31-1 tokens, found {}", token_bytes.size());
  auto v = std::make_shared<detail::VocabIndex>();
  v->bytes = std::move(token_bytes);
  v->kinds = std::move(kinds);
  for (size_t id = 0; id < v->kinds.size(); ++id)
    if (v->kinds[id] == TokenKind::kEos) v->eos.push_back(static_cast<int32_t>(id));
  build_trie(*v);
  index_ = std::move(v);
}

int32_t Vocabulary::size() const { return static_cast<int32_t>(index_->bytes.size()); }

const std::string& Vocabulary::token_bytes(int32_t id) const {
  EXL_CHECK(id >= 0 && id < size(), kInvalidArgument, "constrain::Vocabulary: token id {} outside [0, {})", id,
            size());
  return index_->bytes[static_cast<size_t>(id)];
}

TokenKind Vocabulary::kind(int32_t id) const {
  EXL_CHECK(id >= 0 && id < size(), kInvalidArgument, "constrain::Vocabulary: token id {} outside [0, {})", id,
            size());
  return index_->kinds[static_cast<size_t>(id)];
}

const std::vector<int32_t>& Vocabulary::eos_ids() const { return index_->eos; }

size_t Vocabulary::max_token_length() const { return index_->max_length; }

std::optional<std::string> Vocabulary::decode_byte_level(std::string_view token) {
  static const std::array<int32_t, 324> char_to_byte = make_char_to_byte();
  std::string out;
  size_t i = 0;
  while (i < token.size()) {
    uint32_t cp = 0;
    if (!next_codepoint(token, i, cp) || cp >= char_to_byte.size() || char_to_byte[cp] < 0) return std::nullopt;
    out += static_cast<char>(char_to_byte[cp]);
  }
  return out;
}

std::string Vocabulary::decode_sentencepiece(std::string_view token) {
  if (token.size() == 6 && token.substr(0, 3) == "<0x" && token[5] == '>') {
    int hi = hex_value(token[3]);
    int lo = hex_value(token[4]);
    if (hi >= 0 && lo >= 0) return std::string(1, static_cast<char>(hi * 16 + lo));
  }
  static constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581
  std::string out;
  for (size_t i = 0; i < token.size();) {
    if (token.substr(i, kSpaceMark.size()) == kSpaceMark) {
      out += ' ';
      i += kSpaceMark.size();
    } else {
      out += token[i++];
    }
  }
  return out;
}

int32_t TokenBitmask::count() const {
  int32_t n = 0;
  for (uint64_t w : words_) n += std::popcount(w);
  return n;
}

std::vector<int32_t> TokenBitmask::ids() const {
  std::vector<int32_t> out;
  for (size_t w = 0; w < words_.size(); ++w) {
    uint64_t bits = words_[w];
    while (bits) {
      out.push_back(static_cast<int32_t>(w * 64 + static_cast<size_t>(std::countr_zero(bits))));
      bits &= bits - 1;
    }
  }
  return out;
}

}  // namespace exl::constrain
