// Decoders: Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, WordPiece, BPEDecoder.
// Each works on the list of token strings, as `decode_chain` does in the tokenizers library.
#include <optional>

#include "tokenizer/byte_level.h"
#include "tokenizer/components.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace exl::tokenizer::detail {

namespace {

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& p : parts_) p->decode_chain(tokens);
  }
  bool has_byte_fallback() const override {
    for (const auto& p : parts_) {
      if (p->has_byte_fallback()) return true;
    }
    return false;
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

// Maps every token's characters back to bytes (a token with a character outside the byte alphabet keeps its own
// UTF-8 bytes) and decodes the concatenation, replacing invalid sequences by U+FFFD.
class ByteLevelDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const auto& t : tokens) {
      size_t mark = bytes.size();
      size_t i = 0;
      bool all_mapped = true;
      while (i < t.size()) {
        int b = unicode_to_byte(next_char(t, i));
        if (b < 0) {
          all_mapped = false;
          break;
        }
        bytes.push_back(static_cast<char>(b));
      }
      if (!all_mapped) {
        bytes.resize(mark);
        bytes += t;
      }
    }
    tokens.clear();
    tokens.push_back(is_valid_utf8(bytes) ? std::move(bytes) : repair_utf8(bytes));
  }
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(const PatternSpec& pattern, std::string content, const std::string& where)
      : literal_(pattern.kind == PatternSpec::Kind::kString ? pattern.text : std::string()),
        content_(std::move(content)) {
    if (pattern.kind == PatternSpec::Kind::kRegex) regex_.emplace(pattern.text, where);
  }
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<MatchRange> matches;
    for (auto& t : tokens) {
      matches.clear();
      if (regex_) {
        regex_->find_all(t, matches);
      } else if (!literal_.empty()) {
        for (size_t pos = t.find(literal_); pos != std::string::npos; pos = t.find(literal_, pos + literal_.size())) {
          matches.push_back({pos, pos + literal_.size()});
        }
      }
      if (matches.empty()) continue;
      std::string out;
      size_t prev = 0;
      for (const auto& m : matches) {
        out.append(t, prev, m.start - prev);
        out += content_;
        prev = m.end;
      }
      out.append(t, prev, std::string::npos);
      t = std::move(out);
    }
  }

 private:
  std::string literal_;
  std::optional<Regex> regex_;
  std::string content_;
};

// Byte tokens "<0xAB>": consecutive ones are joined; a run that is not valid UTF-8 becomes one U+FFFD per byte.
class ByteFallbackDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string run;
    auto flush = [&] {
      if (run.empty()) return;
      if (is_valid_utf8(run)) {
        out.push_back(run);
      } else {
        for (size_t k = 0; k < run.size(); ++k) out.emplace_back("\xEF\xBF\xBD");
      }
      run.clear();
    };
    for (auto& t : tokens) {
      int byte = parse_byte_token(t);
      if (byte >= 0) {
        run.push_back(static_cast<char>(byte));
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens = std::move(out);
  }
  bool has_byte_fallback() const override { return true; }

  static int parse_byte_token(std::string_view t) {
    if (t.size() != 6 || t[0] != '<' || t[1] != '0' || t[2] != 'x' || t[5] != '>') return -1;
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    int hi = hex(t[3]), lo = hex(t[4]);
    return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
  }
};

class FuseDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.clear();
    tokens.push_back(std::move(all));
  }
};

// Removes up to `start` leading and `stop` trailing occurrences of one character from every token.
class StripDecoder final : public Decoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      std::vector<size_t> starts;  // byte offset of each character
      size_t i = 0;
      std::vector<char32_t> chars;
      while (i < t.size()) {
        starts.push_back(i);
        chars.push_back(next_char(t, i));
      }
      size_t begin = 0;
      while (begin < start_ && begin < chars.size() && chars[begin] == content_) ++begin;
      size_t end = chars.size();
      size_t removed = 0;
      while (removed < stop_ && end > begin && chars[end - 1] == content_) {
        --end;
        ++removed;
      }
      size_t byte_begin = begin < starts.size() ? starts[begin] : t.size();
      size_t byte_end = end < starts.size() ? starts[end] : t.size();
      t = t.substr(byte_begin, byte_end - byte_begin);
    }
  }

 private:
  char32_t content_;
  size_t start_;
  size_t stop_;
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first) : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t k = 0; k < tokens.size(); ++k) {
      std::string& t = tokens[k];
      if (t.find(replacement_) == std::string::npos) continue;
      std::string out;
      size_t prev = 0;
      for (size_t pos = t.find(replacement_); pos != std::string::npos; pos = t.find(replacement_, prev)) {
        out.append(t, prev, pos - prev);
        if (!(k == 0 && strip_first_)) out.push_back(' ');
        prev = pos + replacement_.size();
      }
      out.append(t, prev, std::string::npos);
      t = std::move(out);
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
}

class WordPieceDecoder final : public Decoder {
 public:
  WordPieceDecoder(std::string prefix, bool cleanup) : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t k = 0; k < tokens.size(); ++k) {
      std::string& t = tokens[k];
      if (k != 0) {
        if (!prefix_.empty() && t.compare(0, prefix_.size(), prefix_) == 0) {
          t.erase(0, prefix_.size());
        } else {
          t.insert(0, 1, ' ');
        }
      }
      if (cleanup_) {
        for (auto [from, to] : {std::pair<std::string_view, std::string_view>{" .", "."}, {" ?", "?"}, {" !", "!"},
                                {" ,", ","}, {" ' ", "'"}, {" n't", "n't"}, {" 'm", "'m"}, {" do not", " don't"},
                                {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}}) {
          replace_all(t, from, to);
        }
      }
    }
  }

 private:
  std::string prefix_;
  bool cleanup_;
};

class BpeSuffixDecoder final : public Decoder {
 public:
  explicit BpeSuffixDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t k = 0; k < tokens.size(); ++k) {
      replace_all(tokens[k], suffix_, k + 1 == tokens.size() ? "" : " ");
    }
  }

 private:
  std::string suffix_;
};

char32_t single_char(const std::string& s, const std::string& path) {
  size_t i = 0;
  if (s.empty()) config_fail(ErrorKind::kCorruptFile, path, "expected a single character, found \"\"");
  char32_t c = next_char(s, i);
  if (i != s.size()) config_fail(ErrorKind::kCorruptFile, path, fmt::format("expected a single character, found \"{}\"", s));
  return c;
}

}  // namespace

int parse_byte_fallback_token(std::string_view token) { return ByteFallbackDecoder::parse_byte_token(token); }

std::unique_ptr<Decoder> make_decoder(const Json& j, const std::string& path) {
  if (j.is_null()) return nullptr;
  std::string type = component_type(j, path);
  if (type == "Sequence") {
    const Json& list = require_array(j, "decoders", path);
    std::vector<std::unique_ptr<Decoder>> parts;
    for (size_t i = 0; i < list.size(); ++i) {
      auto p = make_decoder(list[i], index_path(child_path(path, "decoders"), i));
      if (p) parts.push_back(std::move(p));
    }
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Replace") {
    PatternSpec pattern = read_pattern(j, "pattern", path);
    return std::make_unique<ReplaceDecoder>(pattern, require_string(j, "content", path),
                                            "tokenizer.json: " + child_path(path, "pattern"));
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    char32_t c = single_char(require_string(j, "content", path), child_path(path, "content"));
    int64_t start = optional_int(j, "start", path, 0), stop = optional_int(j, "stop", path, 0);
    if (start < 0 || stop < 0) config_fail(ErrorKind::kCorruptFile, path, "start and stop must not be negative");
    return std::make_unique<StripDecoder>(c, static_cast<size_t>(start), static_cast<size_t>(stop));
  }
  if (type == "Metaspace") {
    std::string replacement = optional_string(j, "replacement", path).value_or("\xE2\x96\x81");
    single_char(replacement, child_path(path, "replacement"));
    bool strip_first = true;
    if (std::optional<std::string> scheme = optional_string(j, "prepend_scheme", path)) {
      strip_first = *scheme != "never";
    } else {
      strip_first = optional_bool(j, "add_prefix_space", path, true);
    }
    return std::make_unique<MetaspaceDecoder>(replacement, strip_first);
  }
  if (type == "WordPiece") {
    return std::make_unique<WordPieceDecoder>(optional_string(j, "prefix", path).value_or("##"),
                                              optional_bool(j, "cleanup", path, true));
  }
  if (type == "BPEDecoder") {
    return std::make_unique<BpeSuffixDecoder>(optional_string(j, "suffix", path).value_or("</w>"));
  }
  unsupported_type(path, type,
                   {"Sequence", "ByteLevel", "Replace", "ByteFallback", "Fuse", "Strip", "Metaspace", "WordPiece",
                    "BPEDecoder"});
}

}  // namespace exl::tokenizer::detail
