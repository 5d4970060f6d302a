#include "tokenizer/tokenizer_json.h"

#include <climits>

namespace exl::tokenizer::detail {

namespace {

class TokenizerJsonSax final : public nlohmann::json_sax<Json> {
 public:
  explicit TokenizerJsonSax(TokenizerJsonDoc& doc) : doc_(doc) {}

  const std::string& error() const { return error_; }

  bool null() override { return value(Json(nullptr)); }
  bool boolean(bool v) override { return value(Json(v)); }
  bool number_integer(number_integer_t v) override {
    if (mode_ == Mode::kVocab) return vocab_entry(v);
    return value(Json(v));
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (mode_ == Mode::kVocab) return vocab_entry(v > static_cast<number_unsigned_t>(INT64_MAX) ? -1 : static_cast<int64_t>(v));
    return value(Json(v));
  }
  bool number_float(number_float_t v, const string_t& /*s*/) override { return value(Json(v)); }
  bool binary(binary_t& /*v*/) override { return reject("unexpected binary value"); }

  bool string(string_t& s) override {
    if (mode_ == Mode::kMerges) {
      if (merge_depth_ == 1) {
        pair_.push_back(std::move(s));
        return true;
      }
      return string_merge(s);
    }
    if (mode_ == Mode::kVocab) return reject(fmt::format("model.vocab[\"{}\"]: expected an integer id", vocab_key_));
    return value(Json(std::move(s)));
  }

  bool key(string_t& k) override {
    if (mode_ == Mode::kVocab) {
      vocab_key_ = std::move(k);
    } else {
      key_ = std::move(k);
    }
    return true;
  }

  bool start_object(std::size_t /*n*/) override {
    if (mode_ == Mode::kVocab) return reject(fmt::format("model.vocab[\"{}\"]: expected an integer id", vocab_key_));
    if (mode_ == Mode::kMerges) return reject("model.merges: expected strings \"a b\" or pairs [\"a\", \"b\"]");
    if (at_model_member("vocab")) {
      mode_ = Mode::kVocab;
      doc_.has_vocab = true;
      doc_.vocab.reserve(160000);
      return true;
    }
    open(Json::object());
    return true;
  }
  bool end_object() override {
    if (mode_ == Mode::kVocab) {
      mode_ = Mode::kDom;
      vocab_done_ = true;
      return true;
    }
    close();
    return true;
  }

  bool start_array(std::size_t /*n*/) override {
    if (mode_ == Mode::kMerges) {
      if (merge_depth_ != 0) return reject("model.merges: expected strings \"a b\" or pairs [\"a\", \"b\"]");
      merge_depth_ = 1;
      pair_.clear();
      return true;
    }
    if (mode_ == Mode::kVocab) return reject(fmt::format("model.vocab[\"{}\"]: expected an integer id", vocab_key_));
    if (at_model_member("merges")) {
      mode_ = Mode::kMerges;
      merge_depth_ = 0;
      doc_.has_merges = true;
      if (vocab_done_) {
        doc_.merges.ids.reserve(1 << 20);
      } else {
        doc_.merges.strings.reserve(1 << 19);
      }
      return true;
    }
    open(Json::array());
    return true;
  }
  bool end_array() override {
    if (mode_ == Mode::kMerges) {
      if (merge_depth_ == 1) {
        if (pair_.size() != 2) {
          return reject(fmt::format("model.merges[{}]: expected a pair [\"a\", \"b\"], found {} strings",
                                    merge_count_, pair_.size()));
        }
        if (!add_merge(pair_[0], pair_[1])) return false;
        ++merge_count_;
        merge_depth_ = 0;
      } else {
        mode_ = Mode::kDom;
      }
      return true;
    }
    close();
    return true;
  }

  bool parse_error(std::size_t position, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& ex) override {
    if (error_.empty()) error_ = fmt::format("malformed JSON at byte {}: {}", position, ex.what());
    return false;
  }

 private:
  enum class Mode { kDom, kVocab, kMerges };

  bool reject(std::string message) {
    error_ = std::move(message);
    return false;
  }

  bool at_model_member(std::string_view name) const {
    return stack_.size() == 2 && keys_[1] == "model" && stack_.back()->is_object() && key_ == name;
  }

  bool vocab_entry(int64_t id) {
    if (id < 0 || id > INT32_MAX) return reject(fmt::format("model.vocab[\"{}\"]: id {} out of range", vocab_key_, id));
    doc_.vocab.insert_or_assign(vocab_key_, static_cast<int32_t>(id));
    return true;
  }

  bool string_merge(const std::string& s) {
    size_t space = s.find(' ');
    if (space != std::string::npos && s.find(' ', space + 1) != std::string::npos) {
      ++merge_count_;
      ++doc_.skipped_merges;
      return true;
    }
    if (space == std::string::npos || space == 0 || space + 1 == s.size()) {
      return reject(fmt::format("model.merges[{}]: \"{}\" is not of the form \"a b\"", merge_count_, s));
    }
    std::string_view view(s);
    if (!add_merge(view.substr(0, space), view.substr(space + 1))) return false;
    ++merge_count_;
    return true;
  }

  // With the vocabulary read, a merge is kept as two ids; before it, as two strings resolved later.
  bool add_merge(std::string_view left, std::string_view right) {
    if (!vocab_done_) {
      doc_.merges.strings.emplace_back(left);
      doc_.merges.strings.emplace_back(right);
      return true;
    }
    int32_t l = doc_.vocab.find(left), r = doc_.vocab.find(right);
    if (l < 0 || r < 0) {
      return reject(fmt::format("model.merges[{}]: merge \"{} {}\" uses token \"{}\" that is not in model.vocab",
                                merge_count_, left, right, l < 0 ? left : right));
    }
    doc_.merges.ids.push_back(l);
    doc_.merges.ids.push_back(r);
    return true;
  }

  bool value(Json v) {
    if (mode_ == Mode::kVocab) return reject(fmt::format("model.vocab[\"{}\"]: expected an integer id", vocab_key_));
    if (mode_ == Mode::kMerges) return reject("model.merges: expected strings \"a b\" or pairs [\"a\", \"b\"]");
    if (stack_.empty()) {
      doc_.root = std::move(v);
    } else if (stack_.back()->is_object()) {
      (*stack_.back())[key_] = std::move(v);
    } else {
      stack_.back()->push_back(std::move(v));
    }
    return true;
  }

  void open(Json v) {
    Json* slot = nullptr;
    if (stack_.empty()) {
      doc_.root = std::move(v);
      slot = &doc_.root;
      keys_.emplace_back();
    } else if (stack_.back()->is_object()) {
      slot = &((*stack_.back())[key_] = std::move(v));
      keys_.push_back(key_);
    } else {
      stack_.back()->push_back(std::move(v));
      slot = &stack_.back()->back();
      keys_.emplace_back();
    }
    stack_.push_back(slot);
  }

  void close() {
    stack_.pop_back();
    keys_.pop_back();
  }

  TokenizerJsonDoc& doc_;
  std::vector<Json*> stack_;
  std::vector<std::string> keys_;
  std::string key_;
  std::string vocab_key_;
  Mode mode_ = Mode::kDom;
  bool vocab_done_ = false;
  int merge_depth_ = 0;
  size_t merge_count_ = 0;
  std::vector<std::string> pair_;
  std::string error_;
};

}  // namespace

TokenizerJsonDoc parse_tokenizer_json(std::string_view text) {
  TokenizerJsonDoc doc;
  TokenizerJsonSax sax(doc);
  bool ok = Json::sax_parse(text.begin(), text.end(), &sax);
  if (!ok) fail(ErrorKind::kCorruptFile, "tokenizer.json: {}", sax.error().empty() ? "malformed JSON" : sax.error());
  return doc;
}

}  // namespace exl::tokenizer::detail
