// Each cmd_*.cpp adds its subcommands to the CLI app. The CLI only parses arguments and prints.
#pragma once

#include <CLI/CLI.hpp>

namespace exl::cli {

void add_model_commands(CLI::App& app);      // cmd_model.cpp: inspect, logits, perplexity, generate, bench ...
void add_tokenizer_commands(CLI::App& app);  // cmd_tokenizer.cpp: tokenize, detokenize
void add_chat_commands(CLI::App& app);       // cmd_chat.cpp: chat-template
void add_chat_session_command(CLI::App& app);  // cmd_chat_session.cpp: chat

// Exit status used for exl::Error (the message goes to stderr).
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitTemplateRaised = 3;

}  // namespace exl::cli

#include <string>

#include "model/evaluate.h"
#include "runner_select.h"

namespace exl::cli {

// Shared by the perplexity command (cmd_perplexity.cpp).
model::TokenRows read_token_rows_file(const std::string& path);
model::PerplexityResult run_perplexity_rows(const std::string& dir, const model::TokenRows& rows,
                                            const RunnerChoice& choice, const std::string& source);
void print_perplexity(const model::PerplexityResult& r, bool as_json);
void add_perplexity_command(CLI::App& app);  // cmd_perplexity.cpp
void add_generate_command(CLI::App& app);    // cmd_generate.cpp
void add_random_model_command(CLI::App& app);  // cmd_random_model.cpp
void add_bench_command(CLI::App& app);         // cmd_bench.cpp
// Tokenizes a text file (no special tokens) and cuts rows of `length` tokens after skipping `offset_tokens`.
model::TokenRows tokenize_text_rows(const std::string& model_dir, const std::string& text_file, int64_t length,
                                    int64_t offset_tokens, int64_t max_rows);

}  // namespace exl::cli
