// Each cmd_*.cpp adds its subcommands to the CLI app. The CLI only parses arguments and prints.
#pragma once

#include <CLI/CLI.hpp>

namespace exl::cli {

void add_model_commands(CLI::App& app);      // cmd_model.cpp: inspect, logits, perplexity, generate, bench ...
void add_tokenizer_commands(CLI::App& app);  // cmd_tokenizer.cpp: tokenize, detokenize
void add_chat_commands(CLI::App& app);       // cmd_chat.cpp: chat-template

// Exit status used for exl::Error (the message goes to stderr).
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitTemplateRaised = 3;

}  // namespace exl::cli
