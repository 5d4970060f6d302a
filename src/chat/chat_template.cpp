#include "chat/chat_template.h"

#include <utility>

#include "chat/parser.h"
#include "core/json_util.h"

namespace exl::chat {

namespace {

// A special token in tokenizer_config.json: a string, an AddedToken dict {"content": ...}, or null.
std::optional<std::string> token_string(const nlohmann::json& config, const char* field) {
  const auto it = config.find(field);
  if (it == config.end() || it->is_null()) return std::nullopt;
  std::string text;
  if (it->is_string()) {
    text = it->get<std::string>();
  } else if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    text = (*it)["content"].get<std::string>();
  } else {
    fail(ErrorKind::kCorruptFile, "tokenizer_config.json: {}: expected a string or {{\"content\": ...}}, found {}",
         field, it->type_name());
  }
  if (text.empty()) return std::nullopt;  // transformers passes only truthy special tokens
  return text;
}

Value optional_json(const nlohmann::ordered_json& json, std::string_view field) {
  if (json.is_null()) return Value::none();
  EXL_CHECK(json.is_array(), kInvalidArgument, "chat template input: {} must be null or an array, found {}", field,
            json.type_name());
  return from_json(json);
}

}  // namespace

ChatTemplate ChatTemplate::parse(std::string_view source) {
  ChatTemplate result;
  result.parsed_ = std::make_shared<const ParsedTemplate>(parse_template(source));
  return result;
}

std::string ChatTemplate::render(const ChatTemplateInputs& inputs, const SpecialTokenStrings& tokens,
                                 const RenderOptions& options) const {
  EXL_CHECK(inputs.messages.is_array(), kInvalidArgument, "chat template input: messages must be an array, found {}",
            inputs.messages.type_name());
  EXL_CHECK(inputs.extra.is_null() || inputs.extra.is_object(), kInvalidArgument,
            "chat template input: kwargs must be an object, found {}", inputs.extra.type_name());
  std::vector<std::pair<std::string, Value>> context;
  const std::pair<const char*, const std::optional<std::string>*> named_tokens[] = {
      {"bos_token", &tokens.bos_token}, {"eos_token", &tokens.eos_token}, {"unk_token", &tokens.unk_token},
      {"sep_token", &tokens.sep_token}, {"pad_token", &tokens.pad_token}, {"cls_token", &tokens.cls_token},
      {"mask_token", &tokens.mask_token}};
  for (const auto& [name, value] : named_tokens) {
    if (value->has_value()) context.emplace_back(name, Value::string(**value));
  }
  if (!tokens.additional_special_tokens.empty()) {
    List items;
    for (const auto& token : tokens.additional_special_tokens) items.push_back(Value::string(token));
    context.emplace_back("additional_special_tokens", Value::list(std::move(items)));
  }
  context.emplace_back("messages", from_json(inputs.messages));
  context.emplace_back("tools", optional_json(inputs.tools, "tools"));
  context.emplace_back("documents", optional_json(inputs.documents, "documents"));
  context.emplace_back("add_generation_prompt", Value::boolean(inputs.add_generation_prompt));
  if (inputs.extra.is_object()) {
    for (auto it = inputs.extra.begin(); it != inputs.extra.end(); ++it) {
      const std::string& key = it.key();
      EXL_CHECK(key != "messages" && key != "tools" && key != "documents" && key != "add_generation_prompt",
                kInvalidArgument, "chat template input: kwargs must not contain '{}' (it is a separate input)", key);
      context.emplace_back(key, from_json(it.value()));
    }
  }
  Clock clock = options.clock ? options.clock : Clock([] { return std::chrono::system_clock::now(); });
  Interpreter interpreter(*parsed_, options.limits, std::move(clock));
  return interpreter.render(context);
}

const std::string& TokenizerChatConfig::select_template(const ChatTemplateInputs& inputs) const {
  if (!inputs.tools.is_null()) {
    const auto it = templates.find("tool_use");
    if (it != templates.end()) return it->second;
  }
  const auto it = templates.find("default");
  if (it != templates.end()) return it->second;
  if (templates.empty()) {
    fail(ErrorKind::kNotFound, "the tokenizer has no chat template (tokenizer_config.json has no chat_template and "
                               "there is no chat_template.jinja)");
  }
  std::string names;
  for (const auto& [name, source] : templates) names += (names.empty() ? "" : ", ") + name;
  fail(ErrorKind::kNotFound, "the tokenizer has chat templates named {} but none named 'default'", names);
}

TokenizerChatConfig parse_tokenizer_chat_config(const nlohmann::json& config) {
  EXL_CHECK(config.is_object(), kCorruptFile, "tokenizer_config.json: expected a JSON object, found {}",
            config.type_name());
  TokenizerChatConfig result;
  const auto it = config.find("chat_template");
  if (it != config.end() && !it->is_null()) {
    if (it->is_string()) {
      result.templates["default"] = it->get<std::string>();
    } else if (it->is_array()) {
      for (const auto& entry : *it) {
        EXL_CHECK(entry.is_object() && entry.contains("name") && entry["name"].is_string() &&
                      entry.contains("template") && entry["template"].is_string(),
                  kCorruptFile, "tokenizer_config.json: chat_template: expected entries {{\"name\", \"template\"}}");
        result.templates[entry["name"].get<std::string>()] = entry["template"].get<std::string>();
      }
    } else {
      fail(ErrorKind::kCorruptFile, "tokenizer_config.json: chat_template: expected a string or a list, found {}",
           it->type_name());
    }
  }
  SpecialTokenStrings& tokens = result.special_tokens;
  tokens.bos_token = token_string(config, "bos_token");
  tokens.eos_token = token_string(config, "eos_token");
  tokens.unk_token = token_string(config, "unk_token");
  tokens.pad_token = token_string(config, "pad_token");
  tokens.sep_token = token_string(config, "sep_token");
  tokens.cls_token = token_string(config, "cls_token");
  tokens.mask_token = token_string(config, "mask_token");
  const auto extra = config.find("additional_special_tokens");
  if (extra != config.end() && extra->is_array()) {
    for (const auto& token : *extra) {
      if (token.is_string()) {
        tokens.additional_special_tokens.push_back(token.get<std::string>());
      } else if (token.is_object() && token.contains("content") && token["content"].is_string()) {
        tokens.additional_special_tokens.push_back(token["content"].get<std::string>());
      }
    }
  }
  return result;
}

TokenizerChatConfig load_tokenizer_chat_config(const std::filesystem::path& model_dir) {
  TokenizerChatConfig config = parse_tokenizer_chat_config(read_json_file(model_dir / "tokenizer_config.json"));
  const std::filesystem::path jinja = model_dir / "chat_template.jinja";
  if (config.templates.empty() && std::filesystem::exists(jinja)) config.templates["default"] = read_text_file(jinja);
  return config;
}

}  // namespace exl::chat
