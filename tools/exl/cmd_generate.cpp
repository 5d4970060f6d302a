// exl generate: tokenize a prompt, prefill, then stream sampled text until max tokens or an end-of-sequence id.
// With --prompts FILE.jsonl: many prompts at once through the generator (continuous batching, prefix cache), one
// JSON line of results per prompt, in input order.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cache/page_allocator.h"
#include "commands.h"
#include "core/error.h"
#include "generator/generator.h"
#include "generator/runner_step.h"
#include "model/model_weights.h"
#include "tokenizer/tokenizer.h"

namespace exl::cli {
namespace {

struct GenerateOptions {
  std::string dir, prompt, prompts_file;
  int64_t cache_tokens = 0;  // --prompts: KV cache size in tokens (0: enough for every prompt at once, capped)
  int64_t max_tokens = 128;
  float temperature = 0.0f;
  int top_k = 0;
  float top_p = 1.0f;
  uint64_t seed = 0;
  bool stream = false;
  bool ignore_eos = false;
  RunnerChoice choice{.backend = "auto"};
};

// One line of a --prompts file.
struct BatchPrompt {
  std::string prompt;
  int64_t max_tokens = 0;
  model::SamplingParams sampling;
  std::vector<std::string> stop;  // stop strings: the text ends before the first one
};

BatchPrompt parse_prompt_line(const std::string& file, int64_t line_no, const std::string& line,
                              const GenerateOptions& o) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::kInvalidArgument, "{}:{}: not a JSON object ({})", file, line_no, e.what());
  }
  EXL_CHECK(j.is_object(), kInvalidArgument, "{}:{}: expected a JSON object with \"prompt\", found {}", file, line_no,
            j.type_name());
  auto get = [&](const char* key, auto fallback) {
    using T = decltype(fallback);
    if (!j.contains(key) || j[key].is_null()) return fallback;
    try {
      return j[key].get<T>();
    } catch (const nlohmann::json::exception&) {
      fail(ErrorKind::kInvalidArgument, "{}:{}: \"{}\" has the wrong type ({})", file, line_no, key, j[key].type_name());
    }
  };
  BatchPrompt p;
  EXL_CHECK(j.contains("prompt") && j["prompt"].is_string(), kInvalidArgument, "{}:{}: \"prompt\" (a string) is missing",
            file, line_no);
  p.prompt = j["prompt"].get<std::string>();
  p.max_tokens = get("max_tokens", o.max_tokens);
  p.sampling.temperature = get("temperature", o.temperature);
  p.sampling.top_k = get("top_k", o.top_k);
  p.sampling.top_p = get("top_p", o.top_p);
  p.sampling.seed = get("seed", o.seed);
  if (j.contains("stop") && j["stop"].is_string()) p.stop.push_back(j["stop"].get<std::string>());
  else p.stop = get("stop", std::vector<std::string>{});
  EXL_CHECK(p.max_tokens > 0, kInvalidArgument, "{}:{}: max_tokens must be positive, found {}", file, line_no,
            p.max_tokens);
  EXL_CHECK(p.sampling.top_p > 0.0f && p.sampling.top_p <= 1.0f, kInvalidArgument,
            "{}:{}: top_p must be in (0, 1], found {}", file, line_no, p.sampling.top_p);
  EXL_CHECK(p.sampling.top_k >= 0, kInvalidArgument, "{}:{}: top_k must be >= 0, found {}", file, line_no,
            p.sampling.top_k);
  for (const std::string& s : p.stop)
    EXL_CHECK(!s.empty(), kInvalidArgument, "{}:{}: an empty stop string", file, line_no);
  return p;
}

void run_generate_batch(const GenerateOptions& o) {
  std::ifstream in(o.prompts_file);
  EXL_CHECK(in.good(), kNotFound, "--prompts {}: cannot open the file", o.prompts_file);
  std::vector<BatchPrompt> prompts;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n)
    if (line.find_first_not_of(" \t\r") != std::string::npos) prompts.push_back(parse_prompt_line(o.prompts_file, n, line, o));
  EXL_CHECK(!prompts.empty(), kInvalidArgument, "--prompts {}: no prompts (one JSON object per line)", o.prompts_file);

  const auto tok = tokenizer::Tokenizer::from_dir(o.dir);
  const auto weights = model::ModelWeights::load(o.dir, {}, o.choice.overrides);
  std::vector<std::vector<int32_t>> ids;
  int64_t all_tokens = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    ids.push_back(tok.encode(prompts[i].prompt, tokenizer::AddSpecialTokens::kYes));
    EXL_CHECK(!ids.back().empty(), kInvalidArgument, "--prompts {}: prompt {} encodes to no tokens", o.prompts_file, i);
    all_tokens += static_cast<int64_t>(ids.back().size()) + prompts[i].max_tokens;
  }
  RunnerChoice choice = o.choice;
  constexpr int64_t kDefaultCacheCap = 65536;
  choice.cache_tokens = o.cache_tokens > 0 ? o.cache_tokens : std::min(all_tokens, kDefaultCacheCap);
  auto runner = make_runner(weights, choice);
  generator::RunnerStepRunner step_runner(*runner, {.max_seq_len = weights.spec.max_seq_len});
  generator::Generator gen(step_runner);

  struct Result {
    std::string text;
    std::vector<int32_t> tokens;
    std::string reason;
    bool stopped_by_text = false;
  };
  std::vector<Result> results(prompts.size());
  std::vector<uint64_t> job_ids(prompts.size());
  std::vector<std::unique_ptr<tokenizer::StreamDecoder>> decoders;
  std::vector<int32_t> eos;
  for (int32_t id : tok.eos_ids()) eos.push_back(id);
  for (int64_t id : weights.config.eos_token_ids) eos.push_back(static_cast<int32_t>(id));
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < prompts.size(); ++i) {
    const BatchPrompt& p = prompts[i];
    decoders.push_back(std::make_unique<tokenizer::StreamDecoder>(tok, tokenizer::SkipSpecialTokens::kYes));
    tokenizer::StreamDecoder* dec = decoders.back().get();
    generator::JobParams jp;
    jp.input_ids = ids[i];
    jp.max_new_tokens = p.max_tokens;
    jp.sampling = p.sampling;
    if (!o.ignore_eos) jp.stop_tokens = eos;
    jp.text = {[dec](int32_t t) { return dec->push(t); }, [dec] { return dec->flush(); }};
    jp.on_event = [&, i](const generator::JobEvent& e) {
      Result& r = results[i];
      if (r.stopped_by_text) return;
      r.tokens.insert(r.tokens.end(), e.tokens.begin(), e.tokens.end());
      r.text += e.text;
      // Stop strings: the text ends before the first one; the job is cancelled (reported as "stop").
      for (const std::string& s : prompts[i].stop) {
        const size_t at = r.text.find(s);
        if (at == std::string::npos) continue;
        r.text.resize(at);
        r.reason = "stop";
        r.stopped_by_text = true;
        if (!e.finished) gen.cancel(job_ids[i]);
        return;
      }
      if (e.finished) {
        EXL_CHECK(e.reason != generator::FinishReason::kError, kInternal, "prompt {}: {}", i, e.error);
        r.reason = e.reason == generator::FinishReason::kLength ? "length" : "stop";
      }
    };
    job_ids[i] = gen.enqueue(std::move(jp));
  }
  gen.run_until_idle();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int64_t generated = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const Result& r = results[i];
    generated += static_cast<int64_t>(r.tokens.size());
    const nlohmann::ordered_json out = {{"index", i}, {"text", r.text}, {"token_ids", r.tokens}, {"finish_reason", r.reason}};
    std::fputs((out.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n").c_str(), stdout);
  }
  std::fflush(stdout);
  const generator::PoolStats ps = gen.pool().stats();
  std::fprintf(stderr, "[%s] %zu prompts, %lld tokens generated in %.3f s (%.1f tok/s); %lld steps, %lld preemptions, "
               "%lld of %lld prompt tokens from the prefix cache\n",
               runner->backend_name().c_str(), prompts.size(), static_cast<long long>(generated), seconds,
               seconds > 0 ? static_cast<double>(generated) / seconds : 0.0,
               static_cast<long long>(gen.stats().steps), static_cast<long long>(gen.stats().preemptions),
               static_cast<long long>(ps.hit_tokens), static_cast<long long>(ps.lookup_tokens));
}

void run_generate(const GenerateOptions& o) {
  if (!o.prompts_file.empty()) {
    EXL_CHECK(o.prompt.empty(), kInvalidArgument, "give either --prompt or --prompts, not both");
    run_generate_batch(o);
    return;
  }
  EXL_CHECK(!o.prompt.empty(), kInvalidArgument, "give --prompt TEXT or --prompts FILE.jsonl");
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
  cmd->add_option("--prompt", o->prompt, "Prompt text");
  cmd->add_option("--prompts", o->prompts_file,
                  "JSONL file, one {\"prompt\", optional max_tokens, temperature, top_k, top_p, seed, stop} per line: "
                  "all run at once; one JSON result line per prompt, in input order");
  cmd->add_option("--cache-tokens", o->cache_tokens,
                  "--prompts: KV cache size in tokens (0: every prompt's tokens, at most 65536)")
      ->capture_default_str();
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
