// Post-processors: TemplateProcessing, RobertaProcessing, BertProcessing, ByteLevel (ids unchanged), Sequence.
// Only single sequences are encoded, so only the "single" template matters.
#include "tokenizer/components.h"

namespace exl::tokenizer::detail {

namespace {

class SequencePostProcessor final : public PostProcessor {
 public:
  explicit SequencePostProcessor(std::vector<std::unique_ptr<PostProcessor>> parts) : parts_(std::move(parts)) {}
  void process(std::vector<int32_t>& ids, AddSpecialTokens add) const override {
    for (const auto& p : parts_) p->process(ids, add);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> parts_;
};

// ByteLevel's post-processing only trims offsets; ids are untouched.
class IdentityPostProcessor final : public PostProcessor {
 public:
  void process(std::vector<int32_t>& /*ids*/, AddSpecialTokens /*add*/) const override {}
};

// The single-sequence template: special token ids before and after the sequence.
class TemplatePostProcessor final : public PostProcessor {
 public:
  TemplatePostProcessor(std::vector<int32_t> before, std::vector<int32_t> after)
      : before_(std::move(before)), after_(std::move(after)) {}
  void process(std::vector<int32_t>& ids, AddSpecialTokens add) const override {
    if (add == AddSpecialTokens::kNo) return;
    ids.insert(ids.begin(), before_.begin(), before_.end());
    ids.insert(ids.end(), after_.begin(), after_.end());
  }

 private:
  std::vector<int32_t> before_;
  std::vector<int32_t> after_;
};

int32_t read_id(const Json& v, const std::string& path) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX) {
    config_fail(ErrorKind::kCorruptFile, path, fmt::format("expected a token id, found {}", v.dump()));
  }
  return static_cast<int32_t>(v.get<int64_t>());
}

// "cls": ["<s>", 0]
int32_t read_token_pair(const Json& j, std::string_view key, const std::string& path) {
  const Json& pair = require_member(j, key, path);
  std::string p = child_path(path, key);
  if (!pair.is_array() || pair.size() != 2) config_fail(ErrorKind::kCorruptFile, p, "expected [token, id]");
  return read_id(pair[1], index_path(p, 1));
}

std::unique_ptr<PostProcessor> make_template(const Json& j, const std::string& path) {
  const Json& single = require_array(j, "single", path);
  std::string single_path = child_path(path, "single");
  const Json* specials = find_member(j, "special_tokens");
  std::vector<int32_t> before, after;
  bool seen_sequence = false;
  for (size_t i = 0; i < single.size(); ++i) {
    std::string item_path = index_path(single_path, i);
    const Json& item = single[i];
    if (find_member(item, "Sequence") != nullptr) {
      seen_sequence = true;
      continue;
    }
    const Json* special = find_member(item, "SpecialToken");
    if (special == nullptr) config_fail(ErrorKind::kCorruptFile, item_path, "expected SpecialToken or Sequence");
    std::string name = require_string(*special, "id", child_path(item_path, "SpecialToken"));
    const Json* entry = specials != nullptr ? find_member(*specials, name) : nullptr;
    if (entry == nullptr) {
      config_fail(ErrorKind::kCorruptFile, child_path(item_path, "SpecialToken.id"),
                  fmt::format("\"{}\" is not listed in {}.special_tokens", name, path));
    }
    std::string entry_path = child_path(child_path(path, "special_tokens"), name);
    const Json& ids = require_array(*entry, "ids", entry_path);
    auto& target = seen_sequence ? after : before;
    for (size_t k = 0; k < ids.size(); ++k) target.push_back(read_id(ids[k], index_path(child_path(entry_path, "ids"), k)));
  }
  return std::make_unique<TemplatePostProcessor>(std::move(before), std::move(after));
}

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const Json& j, const std::string& path) {
  if (j.is_null()) return nullptr;
  std::string type = component_type(j, path);
  if (type == "Sequence") {
    const Json& list = require_array(j, "processors", path);
    std::vector<std::unique_ptr<PostProcessor>> parts;
    for (size_t i = 0; i < list.size(); ++i) {
      auto p = make_post_processor(list[i], index_path(child_path(path, "processors"), i));
      if (p) parts.push_back(std::move(p));
    }
    return std::make_unique<SequencePostProcessor>(std::move(parts));
  }
  if (type == "ByteLevel") return std::make_unique<IdentityPostProcessor>();
  if (type == "TemplateProcessing") return make_template(j, path);
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    int32_t cls = read_token_pair(j, "cls", path), sep = read_token_pair(j, "sep", path);
    return std::make_unique<TemplatePostProcessor>(std::vector<int32_t>{cls}, std::vector<int32_t>{sep});
  }
  unsupported_type(path, type, {"Sequence", "ByteLevel", "TemplateProcessing", "RobertaProcessing", "BertProcessing"});
}

}  // namespace exl::tokenizer::detail
