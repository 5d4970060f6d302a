// Hugging Face chat templates: a Jinja2 engine that renders tokenizer_config.json's chat_template byte-identically
// to transformers' apply_chat_template (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
// tojson, raise_exception, strftime_now). The supported subset and the differences are in docs/chat-templates.md.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chat/interpreter.h"
#include "core/error.h"

namespace exl::chat {

// What apply_chat_template passes to the template. JSON objects keep their key order (tojson and dict iteration
// depend on it), hence ordered_json.
struct ChatTemplateInputs {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  nlohmann::ordered_json tools;      // null (the template sees None) or an array of tool schemas
  nlohmann::ordered_json documents;  // null or an array
  bool add_generation_prompt = false;
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();  // extra template variables (kwargs)
};

// transformers passes each special token that is set (non-empty) as a variable; an absent one is undefined.
struct SpecialTokenStrings {
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  std::optional<std::string> unk_token;
  std::optional<std::string> pad_token;
  std::optional<std::string> sep_token;
  std::optional<std::string> cls_token;
  std::optional<std::string> mask_token;
  std::vector<std::string> additional_special_tokens;
};

struct RenderOptions {
  RenderLimits limits;
  Clock clock;  // time seen by strftime_now(); empty: the system clock
};

// raise_exception("message") in a template: what() is exactly the message.
class ChatTemplateRaised : public Error {
 public:
  explicit ChatTemplateRaised(const std::string& message) : Error(ErrorKind::kInvalidArgument, message) {}
};

class ChatTemplate {
 public:
  // Syntax errors, unknown filters/tests: kInvalidArgument naming line and column; jinja features exl does not
  // implement (include, extends, ...): kUnsupported.
  static ChatTemplate parse(std::string_view source);

  // Template errors are exl::Error naming the line; raise_exception throws ChatTemplateRaised.
  std::string render(const ChatTemplateInputs& inputs, const SpecialTokenStrings& tokens,
                     const RenderOptions& options = {}) const;

  const std::string& source() const { return parsed_->source; }

 private:
  std::shared_ptr<const ParsedTemplate> parsed_;
};

// The chat template(s) and special tokens of a tokenizer_config.json.
struct TokenizerChatConfig {
  std::map<std::string, std::string> templates;  // name -> source; a single string template is named "default"
  SpecialTokenStrings special_tokens;

  // The template apply_chat_template picks without an explicit name: "tool_use" when tools are given and it
  // exists, else "default". kNotFound when there is none.
  const std::string& select_template(const ChatTemplateInputs& inputs) const;
};

TokenizerChatConfig parse_tokenizer_chat_config(const nlohmann::json& tokenizer_config);

// Reads <model_dir>/tokenizer_config.json (and <model_dir>/chat_template.jinja, which newer transformers versions
// write instead of the chat_template field).
TokenizerChatConfig load_tokenizer_chat_config(const std::filesystem::path& model_dir);

}  // namespace exl::chat
