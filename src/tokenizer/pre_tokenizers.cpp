// Pre-tokenizers: Sequence, Split, ByteLevel, Metaspace, Whitespace, WhitespaceSplit, Digits, Punctuation,
// BertPreTokenizer, CharDelimiterSplit.
#include <algorithm>
#include <array>
#include <optional>

#include "tokenizer/byte_level.h"
#include "tokenizer/components.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace exl::tokenizer::detail {

namespace {

// What happens to the matched delimiters when a piece is split (the `behavior` field).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct Segment {
  size_t start;
  size_t end;
  bool flag;  // is_match before the behavior is applied, "remove" after
};

// Splits `piece` at `matches` (sorted, non-overlapping) and appends the sub-pieces to `out`.
void split_piece(Piece&& piece, const std::vector<MatchRange>& matches, SplitBehavior behavior, bool invert,
                 std::vector<Piece>& out) {
  const std::string& text = piece.text;
  if (matches.empty()) {
    // The whole piece is one non-match (or one match when inverted).
    bool is_match = invert;
    if (!(behavior == SplitBehavior::kRemoved && is_match) && !text.empty()) out.push_back(std::move(piece));
    return;
  }
  std::vector<Segment> segs;
  segs.reserve(matches.size() * 2 + 1);
  size_t prev = 0;
  for (const auto& m : matches) {
    if (m.start > prev) segs.push_back({prev, m.start, invert});
    segs.push_back({m.start, m.end, !invert});
    prev = m.end;
  }
  if (prev < text.size()) segs.push_back({prev, text.size(), invert});

  std::vector<Segment> result;
  result.reserve(segs.size());
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const auto& s : segs) result.push_back({s.start, s.end, false});
      break;
    case SplitBehavior::kRemoved:
      result = segs;
      break;
    case SplitBehavior::kContiguous: {
      bool previous_match = false;
      for (const auto& s : segs) {
        if (s.flag == previous_match && !result.empty()) {
          result.back().end = s.end;
        } else {
          result.push_back({s.start, s.end, false});
        }
        previous_match = s.flag;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const auto& s : segs) {
        if (s.flag && !previous_match && !result.empty()) {
          result.back().end = s.end;
        } else {
          result.push_back({s.start, s.end, false});
        }
        previous_match = s.flag;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous_match = false;
      for (size_t k = segs.size(); k-- > 0;) {
        const auto& s = segs[k];
        if (s.flag && !previous_match && !result.empty()) {
          result.back().start = s.start;
        } else {
          result.push_back({s.start, s.end, false});
        }
        previous_match = s.flag;
      }
      std::reverse(result.begin(), result.end());
      break;
    }
  }
  for (const auto& r : result) {
    if (r.flag || r.end <= r.start) continue;
    out.push_back({text.substr(r.start, r.end - r.start), piece.at_start && r.start == 0});
  }
}

// Match ranges of every character satisfying `pred`, one range per character.
template <typename Pred>
void char_matches(std::string_view text, Pred pred, std::vector<MatchRange>& out) {
  size_t i = 0;
  while (i < text.size()) {
    size_t at = i;
    char32_t c = next_char(text, i);
    if (pred(c)) out.push_back({at, i});
  }
}

void literal_matches(std::string_view text, std::string_view literal, std::vector<MatchRange>& out) {
  if (literal.empty()) return;
  size_t pos = text.find(literal);
  while (pos != std::string_view::npos) {
    out.push_back({pos, pos + literal.size()});
    pos = text.find(literal, pos + literal.size());
  }
}

// Applies a matcher (text → match ranges) to every piece.
template <typename Matcher>
void split_all(std::vector<Piece>& pieces, Matcher&& matcher, SplitBehavior behavior, bool invert) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 4);
  std::vector<MatchRange> matches;
  for (auto& piece : pieces) {
    matches.clear();
    matcher(std::string_view(piece.text), matches);
    split_piece(std::move(piece), matches, behavior, invert, out);
  }
  pieces = std::move(out);
}

SplitBehavior read_behavior(const Json& j, const std::string& path, SplitBehavior fallback) {
  std::optional<std::string> b = optional_string(j, "behavior", path);
  if (!b) return fallback;
  if (*b == "Removed") return SplitBehavior::kRemoved;
  if (*b == "Isolated") return SplitBehavior::kIsolated;
  if (*b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (*b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (*b == "Contiguous") return SplitBehavior::kContiguous;
  config_fail(ErrorKind::kUnsupported, child_path(path, "behavior"),
              fmt::format("unsupported \"{}\" (supported: Removed, Isolated, MergedWithPrevious, MergedWithNext, "
                          "Contiguous)",
                          *b));
}

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (const auto& p : parts_) p->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(const PatternSpec& pattern, SplitBehavior behavior, bool invert, const std::string& where)
      : behavior_(behavior), invert_(invert) {
    if (pattern.kind == PatternSpec::Kind::kRegex) {
      regex_.emplace(pattern.text, where);
    } else {
      literal_ = pattern.text;
    }
  }
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    if (regex_) {
      split_all(pieces, [&](std::string_view t, std::vector<MatchRange>& m) { regex_->find_all(t, m); }, behavior_,
                invert_);
    } else {
      split_all(pieces, [&](std::string_view t, std::vector<MatchRange>& m) { literal_matches(t, literal_, m); },
                behavior_, invert_);
    }
  }

 private:
  std::optional<Regex> regex_;
  std::string literal_;
  SplitBehavior behavior_;
  bool invert_;
};

// The GPT-2 pre-tokenization regex.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_.emplace(kGpt2Pattern, "ByteLevel GPT-2 pattern");
  }
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    if (add_prefix_space_) {
      for (auto& p : pieces) {
        if (p.text.empty() || p.text[0] != ' ') p.text.insert(0, 1, ' ');
      }
    }
    if (regex_) {
      split_all(pieces, [&](std::string_view t, std::vector<MatchRange>& m) { regex_->find_all(t, m); },
                SplitBehavior::kIsolated, false);
    }
    const auto& table = byte_to_unicode();
    std::string mapped;
    for (auto& p : pieces) {
      mapped.clear();
      for (char ch : p.text) mapped += table[static_cast<unsigned char>(ch)];
      p.text.swap(mapped);
    }
  }

 private:
  bool add_prefix_space_;
  std::optional<Regex> regex_;
};

enum class PrependScheme { kFirst, kAlways, kNever };

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (auto& p : pieces) {
      std::string out;
      out.reserve(p.text.size() + 8);
      for (char ch : p.text) {
        if (ch == ' ') {
          out += replacement_;
        } else {
          out.push_back(ch);
        }
      }
      bool starts = out.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts && (scheme_ == PrependScheme::kAlways || (scheme_ == PrependScheme::kFirst && p.at_start))) {
        out.insert(0, replacement_);
      }
      p.text = std::move(out);
    }
    if (split_) {
      split_all(pieces, [&](std::string_view t, std::vector<MatchRange>& m) { literal_matches(t, replacement_, m); },
                SplitBehavior::kMergedWithNext, false);
    }
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

class PredicatePreTokenizer final : public PreTokenizer {
 public:
  using Pred = bool (*)(char32_t);
  PredicatePreTokenizer(Pred pred, SplitBehavior behavior) : pred_(pred), behavior_(behavior) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_all(pieces, [&](std::string_view t, std::vector<MatchRange>& m) { char_matches(t, pred_, m); }, behavior_,
              false);
  }

 private:
  Pred pred_;
  SplitBehavior behavior_;
};

class WhitespacePreTokenizer final : public PreTokenizer {
 public:
  WhitespacePreTokenizer() : regex_(R"(\w+|[^\w\s]+)", "Whitespace pattern") {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_all(pieces, [&](std::string_view t, std::vector<MatchRange>& m) { regex_.find_all(t, m); },
              SplitBehavior::kRemoved, true);
  }

 private:
  Regex regex_;
};

class CharDelimiterPreTokenizer final : public PreTokenizer {
 public:
  explicit CharDelimiterPreTokenizer(std::string delimiter) : delimiter_(std::move(delimiter)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_all(pieces, [&](std::string_view t, std::vector<MatchRange>& m) { literal_matches(t, delimiter_, m); },
              SplitBehavior::kRemoved, false);
  }

 private:
  std::string delimiter_;
};

PrependScheme read_prepend_scheme(const Json& j, const std::string& path) {
  if (std::optional<std::string> s = optional_string(j, "prepend_scheme", path)) {
    if (*s == "first") return PrependScheme::kFirst;
    if (*s == "always") return PrependScheme::kAlways;
    if (*s == "never") return PrependScheme::kNever;
    config_fail(ErrorKind::kUnsupported, child_path(path, "prepend_scheme"),
                fmt::format("unsupported \"{}\" (supported: first, always, never)", *s));
  }
  return optional_bool(j, "add_prefix_space", path, true) ? PrependScheme::kAlways : PrependScheme::kNever;
}

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const Json& j, const std::string& path) {
  if (j.is_null()) return nullptr;
  std::string type = component_type(j, path);
  if (type == "Sequence") {
    const Json& list = require_array(j, "pretokenizers", path);
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (size_t i = 0; i < list.size(); ++i) {
      auto p = make_pre_tokenizer(list[i], index_path(child_path(path, "pretokenizers"), i));
      if (p) parts.push_back(std::move(p));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  if (type == "Split") {
    PatternSpec pattern = read_pattern(j, "pattern", path);
    return std::make_unique<SplitPreTokenizer>(pattern, read_behavior(j, path, SplitBehavior::kIsolated),
                                               optional_bool(j, "invert", path, false),
                                               "tokenizer.json: " + child_path(path, "pattern"));
  }
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelPreTokenizer>(optional_bool(j, "add_prefix_space", path, true),
                                                   optional_bool(j, "use_regex", path, true));
  }
  if (type == "Metaspace") {
    std::string replacement = optional_string(j, "replacement", path).value_or("\xE2\x96\x81");
    if (replacement.empty() || utf8_length(static_cast<unsigned char>(replacement[0])) != replacement.size()) {
      config_fail(ErrorKind::kCorruptFile, child_path(path, "replacement"), "expected a single character");
    }
    return std::make_unique<MetaspacePreTokenizer>(replacement, read_prepend_scheme(j, path),
                                                   optional_bool(j, "split", path, true));
  }
  if (type == "Whitespace") return std::make_unique<WhitespacePreTokenizer>();
  if (type == "WhitespaceSplit") {
    return std::make_unique<PredicatePreTokenizer>(&is_whitespace, SplitBehavior::kRemoved);
  }
  if (type == "Digits") {
    bool individual = optional_bool(j, "individual_digits", path, false);
    return std::make_unique<PredicatePreTokenizer>(&is_numeric,
                                                   individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous);
  }
  if (type == "Punctuation") {
    return std::make_unique<PredicatePreTokenizer>(&is_punctuation,
                                                   read_behavior(j, path, SplitBehavior::kIsolated));
  }
  if (type == "BertPreTokenizer") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    parts.push_back(std::make_unique<PredicatePreTokenizer>(&is_whitespace, SplitBehavior::kRemoved));
    parts.push_back(std::make_unique<PredicatePreTokenizer>(&is_punctuation, SplitBehavior::kIsolated));
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  if (type == "CharDelimiterSplit") {
    return std::make_unique<CharDelimiterPreTokenizer>(require_string(j, "delimiter", path));
  }
  unsupported_type(path, type,
                   {"Sequence", "Split", "ByteLevel", "Metaspace", "Whitespace", "WhitespaceSplit", "Digits",
                    "Punctuation", "BertPreTokenizer", "CharDelimiterSplit"});
}

}  // namespace exl::tokenizer::detail
