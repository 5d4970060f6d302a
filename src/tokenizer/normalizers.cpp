// Normalizers: Sequence, Prepend, Replace, NFC/NFD/NFKC/NFKD, Lowercase, Strip.
#include <optional>

#include "tokenizer/components.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace exl::tokenizer::detail {

namespace {

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  void normalize(std::string& text) const override {
    for (const auto& p : parts_) p->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

// Replaces every occurrence of a literal string or every match of a regex by `content` (taken literally).
class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(const PatternSpec& pattern, std::string content, const std::string& where)
      : literal_(pattern.kind == PatternSpec::Kind::kString ? pattern.text : std::string()),
        content_(std::move(content)) {
    if (pattern.kind == PatternSpec::Kind::kRegex) regex_.emplace(pattern.text, where);
  }

  void normalize(std::string& text) const override {
    if (regex_) {
      std::vector<MatchRange> matches;
      regex_->find_all(text, matches);
      if (matches.empty()) return;
      std::string out;
      out.reserve(text.size());
      size_t prev = 0;
      for (const auto& m : matches) {
        out.append(text, prev, m.start - prev);
        out += content_;
        prev = m.end;
      }
      out.append(text, prev, std::string::npos);
      text = std::move(out);
      return;
    }
    if (literal_.empty()) return;
    size_t pos = text.find(literal_);
    if (pos == std::string::npos) return;
    std::string out;
    out.reserve(text.size() + text.size() / 4);
    size_t prev = 0;
    while (pos != std::string::npos) {
      out.append(text, prev, pos - prev);
      out += content_;
      prev = pos + literal_.size();
      pos = text.find(literal_, prev);
    }
    out.append(text, prev, std::string::npos);
    text = std::move(out);
  }

 private:
  std::string literal_;
  std::optional<Regex> regex_;
  std::string content_;
};

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(NormalForm form) : form_(form) {}
  void normalize(std::string& text) const override { text = normalize_form(text, form_); }

 private:
  NormalForm form_;
};

class LowercaseNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text) const override { text = to_lowercase(text); }
};

class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override {
    size_t begin = 0, end = text.size();
    if (left_) {
      size_t i = 0;
      while (i < text.size()) {
        size_t at = i;
        if (!is_whitespace(next_char(text, i))) {
          begin = at;
          break;
        }
        begin = i;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t at = end - 1;
        while (at > begin && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) --at;
        size_t i = at;
        if (!is_whitespace(next_char(text, i))) break;
        end = at;
      }
    }
    text = text.substr(begin, end - begin);
  }

 private:
  bool left_;
  bool right_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const Json& j, const std::string& path) {
  if (j.is_null()) return nullptr;
  std::string type = component_type(j, path);
  if (type == "Sequence") {
    const Json& list = require_array(j, "normalizers", path);
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (size_t i = 0; i < list.size(); ++i) {
      auto p = make_normalizer(list[i], index_path(child_path(path, "normalizers"), i));
      if (p) parts.push_back(std::move(p));
    }
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(require_string(j, "prepend", path));
  if (type == "Replace") {
    PatternSpec pattern = read_pattern(j, "pattern", path);
    return std::make_unique<ReplaceNormalizer>(pattern, require_string(j, "content", path),
                                               "tokenizer.json: " + child_path(path, "pattern"));
  }
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(NormalForm::kNfc);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(NormalForm::kNfd);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(NormalForm::kNfkc);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(NormalForm::kNfkd);
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "Strip") {
    return std::make_unique<StripNormalizer>(optional_bool(j, "strip_left", path, true),
                                             optional_bool(j, "strip_right", path, true));
  }
  unsupported_type(path, type, {"Sequence", "Prepend", "Replace", "NFC", "NFD", "NFKC", "NFKD", "Lowercase", "Strip"});
}

}  // namespace exl::tokenizer::detail
