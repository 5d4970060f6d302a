// exl perplexity: mean next-token NLL over token rows (--tokens IDS.json) or over a text file cut into rows.
#include <memory>

#include "commands.h"
#include "core/error.h"

namespace exl::cli {

void add_perplexity_command(CLI::App& app) {
  struct Options {
    std::string dir, tokens, text_file;
    int64_t length = 512;
    int64_t offset_tokens = 0;
    int64_t max_rows = 0;
    bool as_json = false;
    RunnerChoice choice{.backend = "auto"};
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("perplexity", "Perplexity of a model on token rows or a text file");
  cmd->add_option("--model", o->dir, "Model directory")->required();
  auto* tokens = cmd->add_option("--tokens", o->tokens, "JSON file: array of equal-length arrays of token ids");
  auto* text = cmd->add_option("--text-file", o->text_file, "UTF-8 text, tokenized and cut into rows of --length");
  tokens->excludes(text);
  cmd->add_option("--length", o->length, "Row length in tokens for --text-file")->capture_default_str();
  cmd->add_option("--offset-tokens", o->offset_tokens, "For --text-file: skip this many tokens first")
      ->capture_default_str();
  cmd->add_option("--max-rows", o->max_rows, "For --text-file: use at most this many rows (0: all)")
      ->capture_default_str();
  cmd->add_option("--backend", o->choice.backend, "cpu, cuda or auto")->capture_default_str();
  cmd->add_option("--cache", o->choice.cache,
                  "KV cache format: fp32, fp16, q8, q6 or q4 (default: the backend's exact one, fp32 on cpu, fp16 on "
                  "cuda; cuda has only fp16 so far)");
  add_override_options(cmd, &o->choice.overrides);
  cmd->add_flag("--json", o->as_json, "Print {\"tokens\": N, \"nll\": x, \"ppl\": y}");
  cmd->callback([o] {
    model::TokenRows rows;
    std::string source;
    if (!o->tokens.empty()) {
      rows = read_token_rows_file(o->tokens);
      source = o->tokens;
    } else if (!o->text_file.empty()) {
      rows = tokenize_text_rows(o->dir, o->text_file, o->length, o->offset_tokens, o->max_rows);
      source = o->text_file;
    } else {
      fail(ErrorKind::kInvalidArgument, "perplexity: give --tokens IDS.json or --text-file F");
    }
    print_perplexity(run_perplexity_rows(o->dir, rows, o->choice, source), o->as_json);
  });
}

}  // namespace exl::cli
