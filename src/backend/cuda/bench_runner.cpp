#include "backend/cuda/bench_runner.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <random>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_runner.h"
#include "backend/cuda/device_buffer.h"
#include "cache/page_allocator.h"
#include "sampling/sampler.h"

namespace exl::cuda {
namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double spread(const std::vector<double>& v) {
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  const double m = median(v);
  return m > 0 ? (*hi - *lo) / m : 0.0;
}

double copy_bandwidth(int repetitions) {
  constexpr size_t kBytes = size_t{1} << 30;
  DeviceBuffer a(kBytes), b(kBytes);
  EXL_CUDA_CHECK(cudaMemset(a.get(), 1, kBytes));
  Stream stream;
  Event start, stop;
  std::vector<double> rates;
  for (int i = 0; i < repetitions + 1; ++i) {
    start.record(stream.get());
    EXL_CUDA_CHECK(cudaMemcpyAsync(b.get(), a.get(), kBytes, cudaMemcpyDeviceToDevice, stream.get()));
    stop.record(stream.get());
    const double s = stop.elapsed_ms_since(start) / 1000.0;
    if (i > 0) rates.push_back(2.0 * kBytes / s);  // the first copy warms up
  }
  return median(rates);
}

double weight_bytes(const model::ModelWeights& w) {
  double bytes = static_cast<double>(w.head.stored_bytes()) +
                 static_cast<double>(w.config.hidden_size) * static_cast<double>(dtype_size(w.embedding.dtype()));
  // A mixture-of-experts layer reads the weights of top_k of its experts per token: count top_k / num_experts of
  // the experts' bytes (the mean expert), so the ceiling is that of the weights actually read.
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const model::LayerWeights& l = w.layers[i];
    bytes += static_cast<double>(l.nbytes());
    if (l.experts.empty()) continue;
    double experts = 0.0;
    for (const model::ExpertWeights& e : l.experts)
      for (const quant::LinearWeight* lw : {&e.gate_proj, &e.up_proj, &e.down_proj})
        experts += static_cast<double>(lw->stored_bytes());
    const model::MoeSpec& moe = w.spec.layers[i].mlp.moe;
    bytes -= experts * (1.0 - static_cast<double>(moe.top_k) / static_cast<double>(l.experts.size()));
  }
  return bytes + static_cast<double>(w.final_norm.nbytes());
}

std::vector<int32_t> random_tokens(std::mt19937& rng, int64_t n, int64_t vocab) {
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = pick(rng);
  return t;
}

// Fills positions [0, n) of `pages` with random tokens through forward() (chunked by the runner).
void fill_context(model::Runner& runner, std::mt19937& rng, int64_t n, const std::vector<int32_t>& pages) {
  if (n <= 0) return;
  const std::vector<int32_t> tokens = random_tokens(rng, n, runner.config().vocab_size);
  const model::SequenceStep step{tokens, 0, pages};
  std::vector<float> logits;
  runner.forward({&step, 1}, model::LogitsFor::kLastToken, &logits);
}

}  // namespace

BenchResult run_decode_bench(const model::ModelWeights& weights, const BenchOptions& opt) {
  EXL_CHECK(opt.prompt_tokens > 0 && opt.decode_tokens > 0 && opt.repetitions > 0, kInvalidArgument,
            "bench: prompt_tokens ({}), decode_tokens ({}) and repetitions ({}) must be positive", opt.prompt_tokens,
            opt.decode_tokens, opt.repetitions);
  BenchResult result;
  EXL_CUDA_CHECK(cudaSetDevice(opt.device));
  cudaDeviceProp prop{};
  EXL_CUDA_CHECK(cudaGetDeviceProperties(&prop, opt.device));
  result.device_name = prop.name;
  result.tuning = tuning_changes(opt.tuning);
  result.copy_bandwidth = copy_bandwidth(std::max(opt.repetitions, 5));
  result.weight_bytes = weight_bytes(weights);

  const io::ModelConfig& c = weights.config;
  int64_t max_ctx = opt.prompt_tokens;
  for (int64_t ctx : opt.contexts) max_ctx = std::max(max_ctx, ctx + opt.decode_tokens);
  auto runner = make_cuda_runner(
      weights, {.cache_tokens = max_ctx + opt.page_size, .page_size = opt.page_size, .device = opt.device,
                .max_batch_tokens = opt.prompt_tokens, .timing_skip = opt.skip_kernels, .tuning = opt.tuning});
  std::mt19937 rng(static_cast<uint32_t>(opt.seed));
  cache::PageAllocator alloc(runner->num_pages());
  cache::SequenceCache seq;
  cache::reserve_tokens(alloc, seq, max_ctx, runner->page_size());

  // Prefill and time to first token (first repetition is a warm-up).
  const std::vector<int32_t> prompt = random_tokens(rng, opt.prompt_tokens, c.vocab_size);
  std::vector<double> prefill_s;
  std::vector<float> logits;
  for (int i = 0; i <= opt.repetitions; ++i) {
    const model::SequenceStep step{prompt, 0, seq.pages};
    const auto t0 = std::chrono::steady_clock::now();
    runner->forward({&step, 1}, model::LogitsFor::kLastToken, &logits);
    volatile int32_t first = sampling::argmax(logits);
    (void)first;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (i > 0) prefill_s.push_back(s);
  }
  result.time_to_first_token_ms = median(prefill_s) * 1000.0;
  result.prefill_tokens_per_second = static_cast<double>(opt.prompt_tokens) / median(prefill_s);

  const double kv_per_token = 2.0 * static_cast<double>(c.num_layers * c.num_kv_heads * c.head_dim) * 2.0;
  for (int64_t ctx : opt.contexts) {
    fill_context(*runner, rng, ctx, seq.pages);
    std::vector<double> rates;
    for (int i = 0; i <= opt.repetitions; ++i) {
      model::DecodeRequest req;
      req.last_token = 1;
      req.start_pos = ctx;
      req.pages = &seq.pages;
      req.max_new_tokens = i == 0 ? std::min<int64_t>(8, opt.decode_tokens) : opt.decode_tokens;
      const model::DecodeStats st = runner->decode(req, [](int32_t) { return true; });
      result.launches_per_token = st.launches_per_token;
      if (i > 0) rates.push_back(static_cast<double>(st.tokens) / st.seconds);
    }
    DecodePoint p;
    p.context = ctx;
    p.tokens_per_second = median(rates);
    p.spread = spread(rates);
    p.bytes_per_token =
        result.weight_bytes + kv_per_token * (static_cast<double>(ctx) + static_cast<double>(opt.decode_tokens) / 2);
    p.ceiling_tokens_per_second = result.copy_bandwidth / p.bytes_per_token;
    p.fraction_of_ceiling = p.tokens_per_second / p.ceiling_tokens_per_second;
    result.decode.push_back(p);
  }
  return result;
}

std::string BenchResult::to_json() const {
  nlohmann::json j;
  j["device"] = device_name;
  if (!tuning.empty()) j["tuning"] = tuning;
  j["copy_bandwidth_gb_s"] = copy_bandwidth / 1e9;
  j["weight_bytes"] = weight_bytes;
  j["prefill_tok_s"] = prefill_tokens_per_second;
  j["time_to_first_token_ms"] = time_to_first_token_ms;
  j["launches_per_token"] = launches_per_token;
  for (const DecodePoint& p : decode)
    j["decode"].push_back({{"context", p.context},
                           {"tok_s", p.tokens_per_second},
                           {"spread", p.spread},
                           {"bytes_per_token", p.bytes_per_token},
                           {"ceiling_tok_s", p.ceiling_tokens_per_second},
                           {"fraction_of_ceiling", p.fraction_of_ceiling}});
  return j.dump(2);
}

std::string BenchResult::to_table() const {
  std::string s = fmt::format("device {}  copy bandwidth {:.0f} GB/s  weights {:.3f} GB\n", device_name,
                              copy_bandwidth / 1e9, weight_bytes / 1e9);
  if (!tuning.empty()) s += fmt::format("tuning {}\n", tuning);
  s += fmt::format("prefill {:.0f} tok/s  time to first token {:.1f} ms  launches/token {:.0f}\n",
                   prefill_tokens_per_second, time_to_first_token_ms, launches_per_token);
  s += "context  decode tok/s  spread  GB/token  ceiling tok/s  of ceiling\n";
  for (const DecodePoint& p : decode)
    s += fmt::format("{:>7}  {:>12.1f}  {:>5.1f}%  {:>8.3f}  {:>13.1f}  {:>9.1f}%\n", p.context, p.tokens_per_second,
                     100.0 * p.spread, p.bytes_per_token / 1e9, p.ceiling_tokens_per_second,
                     100.0 * p.fraction_of_ceiling);
  return s;
}

}  // namespace exl::cuda
