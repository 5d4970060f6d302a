// exl generate: tokenize a prompt, prefill, then stream sampled text until max tokens or an end-of-sequence id.
#include <chrono>
#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "cache/page_allocator.h"
#include "commands.h"
#include "core/error.h"
#include "model/model_weights.h"
#include "tokenizer/tokenizer.h"

namespace exl::cli {
namespace {

struct GenerateOptions {
  std::string dir, prompt;
  int64_t max_tokens = 128;
  float temperature = 0.0f;
  int top_k = 0;
  float top_p = 1.0f;
  uint64_t seed = 0;
  bool stream = false;
  bool ignore_eos = false;
  RunnerChoice choice{.backend = "auto"};
};

void run_generate(const GenerateOptions& o) {
  EXL_CHECK(o.max_tokens > 0, kInvalidArgument, "--max-tokens must be positive, found {}", o.max_tokens);
  EXL_CHECK(o.top_p > 0.0f && o.top_p <= 1.0f, kInvalidArgument, "--top-p must be in (0, 1], found {}", o.top_p);
  EXL_CHECK(o.top_k >= 0, kInvalidArgument, "--top-k must be >= 0, found {}", o.top_k);
  const auto tok = tokenizer::Tokenizer::from_dir(o.dir);
  std::vector<int32_t> prompt = tok.encode(o.prompt, tokenizer::AddSpecialTokens::kYes);
  EXL_CHECK(!prompt.empty(), kInvalidArgument, "the prompt encodes to no tokens (give a non-empty --prompt)");
  const auto weights = model::ModelWeights::load(o.dir, {}, o.choice.overrides);
  const int64_t total = static_cast<int64_t>(prompt.size()) + o.max_tokens;
  EXL_CHECK(total <= weights.spec.max_seq_len, kInvalidArgument,
            "prompt ({} tokens) + --max-tokens {} exceeds the model's maximum sequence length {} (config "
            "max_position_embeddings, or --max-seq-len)", prompt.size(), o.max_tokens, weights.spec.max_seq_len);
  RunnerChoice choice = o.choice;
  choice.cache_tokens = total;
  auto runner = make_runner(weights, choice);

  cache::PageAllocator allocator(runner->num_pages());
  cache::SequenceCache seq;
  cache::reserve_tokens(allocator, seq, total, runner->page_size());
  const auto t0 = std::chrono::steady_clock::now();
  if (prompt.size() > 1) {
    std::vector<float> logits;
    const model::SequenceStep prefill{std::span<const int32_t>(prompt.data(), prompt.size() - 1), 0, seq.pages};
    runner->forward({&prefill, 1}, model::LogitsFor::kLastToken, &logits);
  }
  const double prefill_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  model::DecodeRequest req;
  req.last_token = prompt.back();
  req.start_pos = static_cast<int64_t>(prompt.size()) - 1;
  req.pages = &seq.pages;
  req.max_new_tokens = o.max_tokens;
  req.sampling = {o.temperature, o.top_k, o.top_p, o.seed};
  if (!o.ignore_eos) {
    for (int32_t id : tok.eos_ids()) req.stop_tokens.push_back(id);
    for (int64_t id : weights.config.eos_token_ids) req.stop_tokens.push_back(static_cast<int32_t>(id));
  }
  std::fputs(o.prompt.c_str(), stdout);
  std::fflush(stdout);
  tokenizer::StreamDecoder decoder(tok, tokenizer::SkipSpecialTokens::kYes);
  const model::DecodeStats stats = runner->decode(req, [&](int32_t id) {
    const std::string piece = decoder.push(id);
    if (!piece.empty()) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }
    return true;
  });
  const std::string rest = decoder.flush();
  std::fwrite(rest.data(), 1, rest.size(), stdout);
  std::fputs("\n", stdout);
  std::fflush(stdout);
  std::fprintf(stderr, "[%s] prompt: %zu tokens in %.3f s (%.1f tok/s); generation: %lld tokens in %.3f s (%.1f tok/s)\n",
               runner->backend_name().c_str(), prompt.size(), prefill_s,
               prefill_s > 0 ? static_cast<double>(prompt.size() - 1) / prefill_s : 0.0,
               static_cast<long long>(stats.tokens), stats.seconds,
               stats.seconds > 0 ? static_cast<double>(stats.tokens) / stats.seconds : 0.0);
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto o = std::make_shared<GenerateOptions>();
  auto* cmd = app.add_subcommand("generate", "Generate text from a prompt, streaming it as it is produced");
  cmd->add_option("--model", o->dir, "Model directory")->required();
  cmd->add_option("--prompt", o->prompt, "Prompt text")->required();
  cmd->add_option("--max-tokens", o->max_tokens, "Most tokens to generate")->capture_default_str();
  cmd->add_option("--temperature", o->temperature, "Sampling temperature (0: greedy)")->capture_default_str();
  cmd->add_option("--top-k", o->top_k, "Keep the k most likely tokens (0: off)")->capture_default_str();
  cmd->add_option("--top-p", o->top_p, "Nucleus sampling threshold (1: off)")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Random seed")->capture_default_str();
  cmd->add_option("--backend", o->choice.backend, "cpu, cuda or auto")->capture_default_str();
  add_override_options(cmd, &o->choice.overrides);
  cmd->add_flag("--stream", o->stream, "Stream text as it is produced (always on; accepted for compatibility)");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Do not stop at end-of-sequence tokens");
  cmd->callback([o] { run_generate(*o); });
}

}  // namespace exl::cli
