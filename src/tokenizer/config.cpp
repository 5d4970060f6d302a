// Special tokens and the chat template from tokenizer_config.json, generation_config.json and config.json.
#include <algorithm>
#include <climits>

#include "tokenizer/tokenizer_impl.h"

namespace exl::tokenizer::detail {

namespace {

Json parse_config(std::string_view text, std::string_view file) {
  if (text.empty()) return Json::object();
  Json j = Json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded()) fail(ErrorKind::kCorruptFile, "{}: malformed JSON", file);
  if (!j.is_object()) fail(ErrorKind::kCorruptFile, "{}: expected a JSON object", file);
  return j;
}

// A token given as a string or as an AddedToken object {"content": ...}.
std::optional<std::string> token_field(const Json& cfg, std::string_view key, std::string_view file) {
  const Json* v = find_member(cfg, key);
  if (v == nullptr) return std::nullopt;
  if (v->is_string()) return v->get<std::string>();
  if (v->is_object()) {
    const Json* c = find_member(*v, "content");
    if (c != nullptr && c->is_string()) return c->get<std::string>();
  }
  fail(ErrorKind::kCorruptFile, "{}: {}: expected a string or {{\"content\": ...}}, found {}", file, key, v->dump());
}

// An id given as an integer or a list of integers.
std::vector<int32_t> id_field(const Json& cfg, std::string_view key, std::string_view file) {
  std::vector<int32_t> ids;
  const Json* v = find_member(cfg, key);
  if (v == nullptr) return ids;
  auto one = [&](const Json& x) {
    if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > INT32_MAX) {
      fail(ErrorKind::kCorruptFile, "{}: {}: expected token ids, found {}", file, key, v->dump());
    }
    ids.push_back(static_cast<int32_t>(x.get<int64_t>()));
  };
  if (v->is_array()) {
    for (const auto& x : *v) one(x);
  } else {
    one(*v);
  }
  return ids;
}

std::optional<int32_t> first_id(const Json& cfg, std::string_view key, std::string_view file) {
  std::vector<int32_t> ids = id_field(cfg, key, file);
  if (ids.empty()) return std::nullopt;
  return ids.front();
}

std::string read_chat_template(const Json& cfg) {
  const Json* t = find_member(cfg, "chat_template");
  if (t == nullptr) return {};
  if (t->is_string()) return t->get<std::string>();
  if (t->is_array()) {
    for (const auto& entry : *t) {
      const Json* name = find_member(entry, "name");
      const Json* body = find_member(entry, "template");
      if (name != nullptr && name->is_string() && *name == "default" && body != nullptr && body->is_string()) {
        return body->get<std::string>();
      }
    }
    return {};
  }
  fail(ErrorKind::kCorruptFile, "tokenizer_config.json: chat_template: expected a string or a list of {{name, template}}");
}

}  // namespace

void load_special_config(TokenizerImpl& impl, std::string_view tokenizer_config_json,
                         std::string_view generation_config_json, std::string_view model_config_json) {
  constexpr std::string_view kTokCfg = "tokenizer_config.json", kGenCfg = "generation_config.json",
                             kModelCfg = "config.json";
  Json tok_cfg = parse_config(tokenizer_config_json, kTokCfg);
  Json gen_cfg = parse_config(generation_config_json, kGenCfg);
  Json model_cfg = parse_config(model_config_json, kModelCfg);
  SpecialConfig& c = impl.config;

  c.bos_token = token_field(tok_cfg, "bos_token", kTokCfg);
  c.eos_token = token_field(tok_cfg, "eos_token", kTokCfg);
  c.unk_token = token_field(tok_cfg, "unk_token", kTokCfg);
  c.pad_token = token_field(tok_cfg, "pad_token", kTokCfg);
  if (const Json* add_bos = find_member(tok_cfg, "add_bos_token"); add_bos != nullptr && add_bos->is_boolean()) {
    c.add_bos_token = add_bos->get<bool>();
  }
  c.chat_template = read_chat_template(tok_cfg);

  auto id_of = [&](const std::optional<std::string>& token) -> std::optional<int32_t> {
    if (!token) return std::nullopt;
    return impl.token_to_id(*token);
  };
  c.bos_id = id_of(c.bos_token);
  if (!c.bos_id) c.bos_id = first_id(gen_cfg, "bos_token_id", kGenCfg);
  if (!c.bos_id) c.bos_id = first_id(model_cfg, "bos_token_id", kModelCfg);
  c.pad_id = id_of(c.pad_token);
  if (!c.pad_id) c.pad_id = first_id(gen_cfg, "pad_token_id", kGenCfg);
  if (!c.pad_id) c.pad_id = first_id(model_cfg, "pad_token_id", kModelCfg);
  c.unk_id = id_of(c.unk_token);

  auto add_eos = [&](int32_t id) {
    if (std::find(c.eos_ids.begin(), c.eos_ids.end(), id) == c.eos_ids.end()) c.eos_ids.push_back(id);
  };
  if (auto id = id_of(c.eos_token)) add_eos(*id);
  for (int32_t id : id_field(gen_cfg, "eos_token_id", kGenCfg)) add_eos(id);
  if (c.eos_ids.empty()) {
    for (int32_t id : id_field(model_cfg, "eos_token_id", kModelCfg)) add_eos(id);
  }

  auto token_of = [&](std::optional<std::string>& token, const std::optional<int32_t>& id) {
    if (token || !id || *id < 0 || *id >= impl.vocab_size) return;
    if (const AddedToken* t = impl.added_token(*id)) {
      token = t->content;
    } else if (const std::string* s = impl.model->id_to_token(*id)) {
      token = *s;
    }
  };
  token_of(c.bos_token, c.bos_id);
  token_of(c.pad_token, c.pad_id);
  if (!c.eos_ids.empty()) token_of(c.eos_token, c.eos_ids.front());
  if (!c.unk_token) c.unk_token = impl.model_unk_token;
  if (!c.unk_id) c.unk_id = id_of(c.unk_token);
}

}  // namespace exl::tokenizer::detail
