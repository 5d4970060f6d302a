#include <cstdio>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>

#include "chat/chat_template.h"
#include "commands.h"
#include "core/json_util.h"

namespace exl::cli {

namespace {

struct ChatTemplateOptions {
  std::string model_dir;
  std::string template_file;
};

nlohmann::ordered_json read_stdin_json() {
  const std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  try {
    return nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    fail(ErrorKind::kInvalidArgument, "stdin: expected one JSON object {{\"messages\": [...], ...}}: {}", e.what());
  }
}

void run_chat_template(const ChatTemplateOptions& options) {
  EXL_CHECK(!options.model_dir.empty() || !options.template_file.empty(), kInvalidArgument,
            "chat-template: give --model DIR (tokenizer_config.json) or --template FILE");
  const nlohmann::ordered_json request = read_stdin_json();
  EXL_CHECK(request.is_object(), kInvalidArgument, "stdin: expected a JSON object, found {}", request.type_name());
  for (auto it = request.begin(); it != request.end(); ++it) {
    const std::string& key = it.key();
    EXL_CHECK(key == "messages" || key == "add_generation_prompt" || key == "tools" || key == "documents" ||
                  key == "kwargs",
              kInvalidArgument,
              "stdin: unknown field '{}' (expected messages, add_generation_prompt, tools, documents, kwargs)", key);
  }
  EXL_CHECK(request.contains("messages"), kInvalidArgument, "stdin: missing field 'messages'");
  chat::ChatTemplateInputs inputs;
  inputs.messages = request["messages"];
  if (request.contains("add_generation_prompt")) {
    EXL_CHECK(request["add_generation_prompt"].is_boolean(), kInvalidArgument,
              "stdin: add_generation_prompt must be true or false");
    inputs.add_generation_prompt = request["add_generation_prompt"].get<bool>();
  }
  if (request.contains("tools")) inputs.tools = request["tools"];
  if (request.contains("documents")) inputs.documents = request["documents"];
  if (request.contains("kwargs")) inputs.extra = request["kwargs"];

  chat::TokenizerChatConfig config;
  if (!options.model_dir.empty()) config = chat::load_tokenizer_chat_config(options.model_dir);
  const std::string source =
      options.template_file.empty() ? config.select_template(inputs) : read_text_file(options.template_file);
  const chat::ChatTemplate tmpl = chat::ChatTemplate::parse(source);
  std::string rendered;
  try {
    rendered = tmpl.render(inputs, config.special_tokens);
  } catch (const chat::ChatTemplateRaised& e) {
    std::fprintf(stderr, "%s\n", e.what());
    throw CLI::RuntimeError(kExitTemplateRaised);
  }
  std::fwrite(rendered.data(), 1, rendered.size(), stdout);
  std::fflush(stdout);
}

}  // namespace

void add_chat_commands(CLI::App& app) {
  auto options = std::make_shared<ChatTemplateOptions>();
  CLI::App* command = app.add_subcommand(
      "chat-template",
      "Render a model's chat template (as transformers' apply_chat_template does).\n"
      "Reads one JSON object from stdin: {\"messages\": [...], \"add_generation_prompt\": bool, \"tools\": [...], "
      "\"documents\": [...], \"kwargs\": {...}} and prints the rendered text exactly (no added newline). "
      "Exit status 3 when the template calls raise_exception (message on stderr).");
  command->add_option("--model", options->model_dir, "Model or tokenizer directory holding tokenizer_config.json")
      ->check(CLI::ExistingDirectory);
  command->add_option("--template", options->template_file,
                      "Render this Jinja template file instead of the tokenizer's chat_template")
      ->check(CLI::ExistingFile);
  command->callback([options] { run_chat_template(*options); });
}

}  // namespace exl::cli
