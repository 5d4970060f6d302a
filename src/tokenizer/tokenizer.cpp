// Tokenizer: loading tokenizer.json, the encode pipeline and decode.
#include "tokenizer/tokenizer.h"

#include <algorithm>

#include "core/json_util.h"
#include "tokenizer/bpe.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/unicode.h"

namespace exl::tokenizer {

namespace detail {

namespace {

std::unique_ptr<Model> make_model(TokenizerJsonDoc& doc) {
  const Json& model = require_member(doc.root, "model", "");
  std::string type;
  if (find_member(model, "type") != nullptr) {
    type = require_string(model, "type", "model");
  } else if (doc.has_merges) {
    type = "BPE";  // old files omit the type
  } else {
    config_fail(ErrorKind::kCorruptFile, "model.type", "missing");
  }
  if (type != "BPE") {
    config_fail(ErrorKind::kUnsupported, "model.type",
                fmt::format("unsupported \"{}\" (supported: BPE)", type));
  }
  if (!doc.has_vocab) config_fail(ErrorKind::kCorruptFile, "model.vocab", "missing (expected an object token → id)");
  BpeOptions options;
  options.unk_token = optional_string(model, "unk_token", "model");
  options.fuse_unk = optional_bool(model, "fuse_unk", "model", false);
  options.byte_fallback = optional_bool(model, "byte_fallback", "model", false);
  options.ignore_merges = optional_bool(model, "ignore_merges", "model", false);
  options.continuing_subword_prefix = optional_string(model, "continuing_subword_prefix", "model").value_or("");
  options.end_of_word_suffix = optional_string(model, "end_of_word_suffix", "model").value_or("");
  auto bpe = std::make_unique<BpeModel>(std::move(doc.vocab), doc.merges, std::move(options));
  doc.merges = MergeList();
  return bpe;
}

void load_added_tokens(TokenizerImpl& impl, const Json& root) {
  const Json* list = find_member(root, "added_tokens");
  int32_t max_id = impl.model->size() - 1;
  if (list != nullptr) {
    if (!list->is_array()) config_fail(ErrorKind::kCorruptFile, "added_tokens", "expected an array");
    for (size_t i = 0; i < list->size(); ++i) {
      std::string path = index_path("added_tokens", i);
      const Json& t = (*list)[i];
      AddedToken tok;
      tok.content = require_string(t, "content", path);
      int64_t id = optional_int(t, "id", path, -1);
      if (id < 0 || id > INT32_MAX - 1) config_fail(ErrorKind::kCorruptFile, child_path(path, "id"), "missing or out of range");
      tok.id = static_cast<int32_t>(id);
      tok.special = optional_bool(t, "special", path, false);
      tok.single_word = optional_bool(t, "single_word", path, false);
      tok.lstrip = optional_bool(t, "lstrip", path, false);
      tok.rstrip = optional_bool(t, "rstrip", path, false);
      tok.normalized = optional_bool(t, "normalized", path, !tok.special);
      max_id = std::max(max_id, tok.id);
      impl.added_tokens.push_back(std::move(tok));
    }
  }
  impl.vocab_size = max_id + 1;
  impl.added_index.assign(static_cast<size_t>(impl.vocab_size), -1);
  for (size_t i = 0; i < impl.added_tokens.size(); ++i) {
    const AddedToken& tok = impl.added_tokens[i];
    impl.added_index[static_cast<size_t>(tok.id)] = static_cast<int32_t>(i);
    if (tok.normalized) {
      std::string pattern = tok.content;
      if (impl.normalizer) impl.normalizer->normalize(pattern);
      impl.normalized_matcher.add(tok, std::move(pattern));
    } else {
      impl.raw_matcher.add(tok, tok.content);
    }
  }
  impl.raw_matcher.finish();
  impl.normalized_matcher.finish();
}

std::unique_ptr<TokenizerImpl> build(std::string_view tokenizer_json, std::string_view tokenizer_config_json,
                                     std::string_view generation_config_json, std::string_view model_config_json) {
  TokenizerJsonDoc doc = parse_tokenizer_json(tokenizer_json);
  if (!doc.root.is_object()) config_fail(ErrorKind::kCorruptFile, "", "expected a JSON object");
  auto impl = std::make_unique<TokenizerImpl>();
  auto section = [&](std::string_view key) -> const Json& {
    static const Json kNull;
    const Json* j = find_member(doc.root, key);
    return j != nullptr ? *j : kNull;
  };
  impl->normalizer = make_normalizer(section("normalizer"), "normalizer");
  impl->pre_tokenizer = make_pre_tokenizer(section("pre_tokenizer"), "pre_tokenizer");
  impl->post_processor = make_post_processor(section("post_processor"), "post_processor");
  impl->decoder = make_decoder(section("decoder"), "decoder");
  impl->model_unk_token = optional_string(require_member(doc.root, "model", ""), "unk_token", "model");
  impl->model = make_model(doc);
  load_added_tokens(*impl, doc.root);
  load_special_config(*impl, tokenizer_config_json, generation_config_json, model_config_json);
  return impl;
}

std::string read_optional(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return {};
  return read_text_file(path);
}

}  // namespace

const std::string* TokenizerImpl::decode_token(int32_t id, SkipSpecialTokens skip) const {
  if (id < 0 || id >= vocab_size) {
    fail(ErrorKind::kInvalidArgument, "token id {} is out of range (vocab_size {})", id, vocab_size);
  }
  if (const AddedToken* tok = added_token(id)) {
    if (tok->special && skip == SkipSpecialTokens::kYes) return nullptr;
    return &tok->content;
  }
  return model->id_to_token(id);
}

std::string TokenizerImpl::decode(std::span<const int32_t> ids, SkipSpecialTokens skip) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (const std::string* t = decode_token(id, skip)) tokens.push_back(*t);
  }
  std::string out;
  if (decoder) {
    decoder->decode_chain(tokens);
    for (const auto& t : tokens) out += t;
  } else {
    for (size_t k = 0; k < tokens.size(); ++k) {
      if (k > 0) out.push_back(' ');
      out += tokens[k];
    }
  }
  return out;
}

std::optional<int32_t> TokenizerImpl::token_to_id(std::string_view token) const {
  for (const auto& t : added_tokens) {
    if (t.content == token) return t.id;
  }
  return model->token_to_id(token);
}

}  // namespace detail

using detail::TokenizerImpl;

Tokenizer::Tokenizer(std::unique_ptr<TokenizerImpl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json) {
  return Tokenizer(detail::build(tokenizer_json, tokenizer_config_json, {}, {}));
}

Tokenizer Tokenizer::from_dir(const std::filesystem::path& dir) {
  std::filesystem::path main = dir / "tokenizer.json";
  std::error_code ec;
  if (!std::filesystem::exists(main, ec)) {
    fail(ErrorKind::kNotFound, "{}: not found (the model directory needs a Hugging Face tokenizer.json)", main.string());
  }
  std::string text = read_text_file(main);
  std::string config = detail::read_optional(dir / "tokenizer_config.json");
  std::string generation = detail::read_optional(dir / "generation_config.json");
  std::string model_config = detail::read_optional(dir / "config.json");
  try {
    return Tokenizer(detail::build(text, config, generation, model_config));
  } catch (const Error& e) {
    throw Error(e.kind(), fmt::format("{}: {}", dir.string(), e.what()));
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, AddSpecialTokens add) const {
  const TokenizerImpl& im = *impl_;
  std::string repaired;
  if (!detail::is_valid_utf8(text)) {
    repaired = detail::repair_utf8(text);
    text = repaired;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  std::vector<detail::TextSpan> raw_spans, norm_spans;
  std::vector<detail::Piece> pieces;
  if (im.raw_matcher.empty()) {
    raw_spans.push_back({0, text.size(), -1});
  } else {
    im.raw_matcher.split(text, raw_spans);
  }
  for (const auto& span : raw_spans) {
    if (span.id >= 0) {
      ids.push_back(span.id);
      continue;
    }
    std::string segment(text.substr(span.start, span.end - span.start));
    if (im.normalizer) im.normalizer->normalize(segment);
    norm_spans.clear();
    if (im.normalized_matcher.empty()) {
      norm_spans.push_back({0, segment.size(), -1});
    } else {
      im.normalized_matcher.split(segment, norm_spans);
    }
    for (const auto& ns : norm_spans) {
      if (ns.id >= 0) {
        ids.push_back(ns.id);
        continue;
      }
      if (ns.end <= ns.start) continue;
      pieces.clear();
      pieces.push_back({segment.substr(ns.start, ns.end - ns.start), span.start == 0 && ns.start == 0});
      if (im.pre_tokenizer) im.pre_tokenizer->pre_tokenize(pieces);
      for (const auto& p : pieces) im.model->tokenize(p.text, ids);
    }
  }
  if (im.post_processor) im.post_processor->process(ids, add);
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, SkipSpecialTokens skip) const {
  return impl_->decode(ids, skip);
}

int32_t Tokenizer::vocab_size() const { return impl_->vocab_size; }

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const { return impl_->token_to_id(token); }

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  if (id < 0 || id >= impl_->vocab_size) return std::nullopt;
  if (const detail::AddedToken* t = impl_->added_token(id)) return t->content;
  if (const std::string* s = impl_->model->id_to_token(id)) return *s;
  return std::nullopt;
}

bool Tokenizer::is_special(int32_t id) const {
  const detail::AddedToken* t = impl_->added_token(id);
  return t != nullptr && t->special;
}

std::optional<int32_t> Tokenizer::bos_id() const { return impl_->config.bos_id; }
std::optional<int32_t> Tokenizer::pad_id() const { return impl_->config.pad_id; }
std::optional<int32_t> Tokenizer::unk_id() const { return impl_->config.unk_id; }
std::vector<int32_t> Tokenizer::eos_ids() const { return impl_->config.eos_ids; }
std::optional<std::string> Tokenizer::bos_token() const { return impl_->config.bos_token; }
std::optional<std::string> Tokenizer::eos_token() const { return impl_->config.eos_token; }
std::optional<std::string> Tokenizer::unk_token() const { return impl_->config.unk_token; }
std::optional<std::string> Tokenizer::pad_token() const { return impl_->config.pad_token; }
const std::string& Tokenizer::chat_template() const { return impl_->config.chat_template; }

bool Tokenizer::add_bos_token() const {
  if (impl_->config.add_bos_token) return *impl_->config.add_bos_token;
  if (!impl_->config.bos_id || !impl_->post_processor) return false;
  std::vector<int32_t> ids;
  impl_->post_processor->process(ids, AddSpecialTokens::kYes);
  return !ids.empty() && ids.front() == *impl_->config.bos_id;
}

}  // namespace exl::tokenizer
