// StreamDecoder: incremental decode over a sliding window of ids. Text is emitted once it can no longer change:
// the window's decode must extend the previous step's text and must not end in U+FFFD (an incomplete character),
// and with a ByteFallback decoder nothing is emitted while the last kept token is a byte token, because a later
// byte can turn the whole run of byte tokens into U+FFFD characters.
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"

namespace exl::tokenizer {

namespace {

constexpr std::string_view kReplacementUtf8 = "\xEF\xBF\xBD";

bool ends_with_replacement(const std::string& s) {
  return s.size() >= kReplacementUtf8.size() &&
         s.compare(s.size() - kReplacementUtf8.size(), kReplacementUtf8.size(), kReplacementUtf8) == 0;
}

}  // namespace

StreamDecoder::StreamDecoder(const Tokenizer& tok, SkipSpecialTokens skip) : tok_(&tok), skip_(skip) {}

bool StreamDecoder::holds_open_byte_run() const {
  const detail::TokenizerImpl& im = *tok_->impl_;
  if (!im.decoder || !im.decoder->has_byte_fallback()) return false;
  for (size_t k = window_.size(); k-- > prefix_count_;) {
    const std::string* t = im.decode_token(window_[k], skip_);
    if (t == nullptr) continue;  // skipped special token
    return im.added_token(window_[k]) == nullptr && detail::parse_byte_fallback_token(*t) >= 0;
  }
  return false;
}

std::string StreamDecoder::push(int32_t id) {
  const detail::TokenizerImpl& im = *tok_->impl_;
  im.decode_token(id, skip_);  // validates the id before it enters the window
  window_.push_back(id);
  if (holds_open_byte_run()) return {};
  std::string text = im.decode(window_, skip_);
  if (text.size() <= prefix_text_.size() || ends_with_replacement(text) ||
      text.compare(0, prefix_text_.size(), prefix_text_) != 0) {
    return {};
  }
  std::string fresh = text.substr(prefix_text_.size());
  window_.erase(window_.begin(), window_.begin() + static_cast<ptrdiff_t>(prefix_count_));
  prefix_count_ = window_.size();
  prefix_text_ = im.decode(window_, skip_);
  return fresh;
}

std::string StreamDecoder::flush() {
  const detail::TokenizerImpl& im = *tok_->impl_;
  std::string text = im.decode(window_, skip_);
  std::string fresh;
  if (text.size() > prefix_text_.size() && text.compare(0, prefix_text_.size(), prefix_text_) == 0) {
    fresh = text.substr(prefix_text_.size());
  }
  // Later pushes continue from here, with everything pushed so far as context.
  prefix_count_ = window_.size();
  prefix_text_ = std::move(text);
  return fresh;
}

}  // namespace exl::tokenizer
