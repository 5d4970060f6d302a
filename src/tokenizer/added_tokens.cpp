#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "tokenizer/unicode.h"

namespace exl::tokenizer::detail {

namespace {

bool is_word_char(char32_t c) { return c == '_' || is_alphanumeric(c); }

// The character that ends `s` (valid UTF-8, non-empty).
char32_t last_char(std::string_view s) {
  size_t at = s.size() - 1;
  while (at > 0 && (static_cast<unsigned char>(s[at]) & 0xC0) == 0x80) --at;
  return next_char(s, at);
}

// Start of the run of whitespace that ends `s`.
size_t trailing_space_start(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t at = end - 1;
    while (at > 0 && (static_cast<unsigned char>(s[at]) & 0xC0) == 0x80) --at;
    size_t i = at;
    if (!is_whitespace(next_char(s, i))) break;
    end = at;
  }
  return end;
}

// Length of the run of whitespace that starts `s`.
size_t leading_space_length(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t at = i;
    if (!is_whitespace(next_char(s, i))) return at;
  }
  return s.size();
}

}  // namespace

void AddedTokenMatcher::add(const AddedToken& token, std::string pattern) {
  if (pattern.empty()) return;
  auto index = static_cast<uint32_t>(entries_.size());
  by_first_byte_[static_cast<unsigned char>(pattern[0])].push_back(index);
  entries_.push_back({std::move(pattern), token});
}

void AddedTokenMatcher::finish() {
  for (auto& bucket : by_first_byte_) {
    std::stable_sort(bucket.begin(), bucket.end(), [&](uint32_t a, uint32_t b) {
      return entries_[a].pattern.size() > entries_[b].pattern.size();
    });
  }
}

void AddedTokenMatcher::split(std::string_view text, std::vector<TextSpan>& out) const {
  size_t consumed = 0;  // end of what has been emitted
  size_t pos = 0;
  while (pos < text.size()) {
    const auto& bucket = by_first_byte_[static_cast<unsigned char>(text[pos])];
    const Entry* found = nullptr;
    for (uint32_t idx : bucket) {
      const Entry& e = entries_[idx];
      if (text.size() - pos >= e.pattern.size() && text.compare(pos, e.pattern.size(), e.pattern) == 0) {
        found = &e;
        break;
      }
    }
    if (found == nullptr) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + found->pattern.size();
    pos = stop;  // the search goes on after the match, whether or not it is kept
    const AddedToken& tok = found->token;
    if (start < consumed) continue;
    if (tok.single_word) {
      bool start_ok = start == 0 || !is_word_char(last_char(text.substr(0, start)));
      bool stop_ok = stop == text.size() || [&] {
        size_t i = stop;
        return !is_word_char(next_char(text, i));
      }();
      if (!start_ok || !stop_ok) continue;
    }
    if (tok.lstrip) start = std::max(trailing_space_start(text.substr(0, start)), consumed);
    if (tok.rstrip) stop += leading_space_length(text.substr(stop));
    if (consumed < start) out.push_back({consumed, start, -1});
    out.push_back({start, stop, tok.id});
    consumed = stop;
  }
  if (consumed < text.size()) out.push_back({consumed, text.size(), -1});
}

}  // namespace exl::tokenizer::detail
