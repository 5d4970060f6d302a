// exl chat: an interactive conversation. Each line read from stdin is a user turn; the whole conversation is rendered
// with the model's chat template, and the reply streams to stdout. The generator's prefix cache keeps the pages of
// earlier turns, so each turn computes only what the template appended since the previous one (the conversation so
// far is never prefilled twice while it fits the cache). Lines starting with '/' are commands: /reset, /quit.
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "chat/chat_template.h"
#include "commands.h"
#include "core/error.h"
#include "core/json_util.h"
#include "generator/generator.h"
#include "generator/runner_step.h"
#include "model/model_weights.h"
#include "runner_select.h"
#include "tokenizer/tokenizer.h"

namespace exl::cli {
namespace {

struct ChatOptions {
  std::string dir, system, template_file;
  int64_t max_tokens = 512;
  int64_t cache_tokens = 16384;
  float temperature = 0.0f;
  int top_k = 0;
  float top_p = 1.0f;
  uint64_t seed = 0;
  bool stats = false;
  RunnerChoice choice{.backend = "auto"};
};

void run_chat(const ChatOptions& o) {
  EXL_CHECK(o.max_tokens > 0, kInvalidArgument, "--max-tokens must be positive, found {}", o.max_tokens);
  EXL_CHECK(o.top_p > 0.0f && o.top_p <= 1.0f, kInvalidArgument, "--top-p must be in (0, 1], found {}", o.top_p);
  EXL_CHECK(o.top_k >= 0, kInvalidArgument, "--top-k must be >= 0, found {}", o.top_k);
  const auto tok = tokenizer::Tokenizer::from_dir(o.dir);
  const chat::TokenizerChatConfig config = chat::load_tokenizer_chat_config(o.dir);
  chat::ChatTemplateInputs inputs;
  const std::string source =
      o.template_file.empty() ? config.select_template(inputs) : read_text_file(o.template_file);
  const chat::ChatTemplate tmpl = chat::ChatTemplate::parse(source);
  const auto weights = model::ModelWeights::load(o.dir, {}, o.choice.overrides);
  RunnerChoice choice = o.choice;
  choice.cache_tokens = o.cache_tokens;
  auto runner = make_runner(weights, choice);
  generator::RunnerStepRunner step_runner(*runner, {.max_seq_len = weights.spec.max_seq_len});
  generator::Generator gen(step_runner);
  std::vector<int32_t> stop;
  for (int32_t id : tok.eos_ids()) stop.push_back(id);
  for (int64_t id : weights.config.eos_token_ids) stop.push_back(static_cast<int32_t>(id));

  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  auto reset = [&] {
    messages = nlohmann::ordered_json::array();
    if (!o.system.empty()) messages.push_back({{"role", "system"}, {"content", o.system}});
  };
  reset();
  std::string line;
  int64_t turn = 0;
  while (std::getline(std::cin, line)) {
    if (line == "/quit" || line == "/exit") break;
    if (line == "/reset") {
      reset();
      continue;
    }
    if (line.empty()) continue;
    messages.push_back({{"role", "user"}, {"content", line}});
    inputs.messages = messages;
    inputs.add_generation_prompt = true;
    // As transformers' apply_chat_template(tokenize=True): the template writes the special tokens it wants.
    const std::string prompt = tmpl.render(inputs, config.special_tokens);
    generator::JobParams jp;
    jp.input_ids = tok.encode(prompt, tokenizer::AddSpecialTokens::kNo);
    EXL_CHECK(!jp.input_ids.empty(), kInvalidArgument, "the chat template rendered an empty prompt");
    jp.max_new_tokens = o.max_tokens;
    jp.sampling = {o.temperature, o.top_k, o.top_p, o.seed + static_cast<uint64_t>(turn)};
    jp.stop_tokens = stop;
    auto decoder = std::make_shared<tokenizer::StreamDecoder>(tok, tokenizer::SkipSpecialTokens::kYes);
    jp.text = {[decoder](int32_t t) { return decoder->push(t); }, [decoder] { return decoder->flush(); }};
    std::string reply;
    generator::JobEvent last;
    jp.on_event = [&](const generator::JobEvent& e) {
      reply += e.text;
      std::fwrite(e.text.data(), 1, e.text.size(), stdout);
      std::fflush(stdout);
      if (e.finished) last = e;
    };
    gen.enqueue(std::move(jp));
    gen.run_until_idle();
    std::fputs("\n", stdout);
    std::fflush(stdout);
    EXL_CHECK(last.reason != generator::FinishReason::kError, kInternal, "generation failed: {}", last.error);
    if (o.stats)
      std::fprintf(stderr, "[turn %lld: %lld prompt tokens (%lld from the cache), %lld generated, %s]\n",
                   static_cast<long long>(turn), static_cast<long long>(last.prompt_tokens),
                   static_cast<long long>(last.cached_tokens), static_cast<long long>(last.generated_tokens),
                   std::string(generator::finish_reason_name(last.reason)).c_str());
    messages.push_back({{"role", "assistant"}, {"content", reply}});
    ++turn;
  }
}

}  // namespace

void add_chat_session_command(CLI::App& app) {
  auto o = std::make_shared<ChatOptions>();
  auto* cmd = app.add_subcommand(
      "chat", "Chat with a model: each stdin line is a user turn, the reply streams to stdout (/reset, /quit)");
  cmd->add_option("--model", o->dir, "Model directory")->required();
  cmd->add_option("--system", o->system, "System message");
  cmd->add_option("--template", o->template_file, "Use this Jinja chat template instead of the model's")
      ->check(CLI::ExistingFile);
  cmd->add_option("--max-tokens", o->max_tokens, "Most tokens per reply")->capture_default_str();
  cmd->add_option("--cache-tokens", o->cache_tokens, "KV cache size in tokens (the conversation's pages stay cached)")
      ->capture_default_str();
  cmd->add_option("--temperature", o->temperature, "Sampling temperature (0: greedy)")->capture_default_str();
  cmd->add_option("--top-k", o->top_k, "Keep the k most likely tokens (0: off)")->capture_default_str();
  cmd->add_option("--top-p", o->top_p, "Nucleus sampling threshold (1: off)")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Random seed (turn n uses seed + n)")->capture_default_str();
  cmd->add_option("--backend", o->choice.backend, "cpu, cuda or auto")->capture_default_str();
  cmd->add_flag("--stats", o->stats, "After each reply, print its token counts (and prefix-cache reuse) to stderr");
  add_override_options(cmd, &o->choice.overrides);
  cmd->callback([o] { run_chat(*o); });
}

}  // namespace exl::cli
