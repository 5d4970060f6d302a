// The generator over the CPU reference runner on a random tiny Llama: a job's tokens do not depend on the jobs it
// shares steps with, on how its prompt is chunked, on prefix caching or on preemption.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <random>
#include <vector>

#include "backend/cpu/cpu_runner.h"
#include "event_log.h"
#include "generator/generator.h"
#include "generator/runner_step.h"
#include "model/model_weights.h"
#include "model/random_model.h"
#include "sampling/sampler.h"
#include "sampling/sampler_chain.h"
#include "core/error.h"

namespace exl::generator {
namespace {

using testing::EventLog;

// Passes steps through and records how they were batched.
class RecordingStepRunner final : public StepRunner {
 public:
  explicit RecordingStepRunner(StepRunner& inner) : inner_(inner) {}
  int64_t page_size() const override { return inner_.page_size(); }
  int64_t num_pages() const override { return inner_.num_pages(); }
  int64_t max_seq_len() const override { return inner_.max_seq_len(); }
  int64_t vocab_size() const override { return inner_.vocab_size(); }
  void step(std::span<const StepSequence> seqs, std::vector<int32_t>* sampled) override {
    max_seqs = std::max(max_seqs, static_cast<int64_t>(seqs.size()));
    bool decode = false, chunk = false;
    for (const auto& s : seqs) {
      decode |= s.tokens.size() == 1 && s.start_pos > 0;
      chunk |= s.tokens.size() > 1 && !s.sample;
    }
    mixed_steps += decode && chunk ? 1 : 0;
    inner_.step(seqs, sampled);
  }
  int64_t max_seqs = 0, mixed_steps = 0;

 private:
  StepRunner& inner_;
};

class CpuGenerator : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::filesystem::temp_directory_path() / ("exl_generator_tiny_" + std::to_string(::getpid()));
    model::RandomModelOptions o;
    o.preset = "tiny";
    o.format = model::RandomFormat::kFp16;
    model::write_random_model(dir_, o);
    weights_ = std::make_unique<model::ModelWeights>(model::ModelWeights::load(dir_));
  }
  static void TearDownTestSuite() {
    weights_.reset();
    std::filesystem::remove_all(dir_);
  }

  static std::vector<int32_t> random_prompt(std::mt19937_64& rng, int64_t n) {
    std::vector<int32_t> v(static_cast<size_t>(n));
    for (auto& t : v) t = static_cast<int32_t>(rng() % 2048);
    return v;
  }
  static JobParams job(std::vector<int32_t> prompt, int64_t max_new) {
    JobParams p;
    p.input_ids = std::move(prompt);
    p.max_new_tokens = max_new;
    return p;
  }
  // The job's tokens when it runs alone, without the prefix cache.
  static std::vector<int32_t> alone(StepRunner& runner, const JobParams& p) {
    Generator gen(runner, {.prefix_caching = false});
    const uint64_t id = gen.enqueue(p);
    EventLog log;
    while (gen.step()) log.add(gen.take_events());
    log.add(gen.take_events());
    EXPECT_EQ(log[id].final.reason, FinishReason::kLength);
    return log[id].tokens;
  }

  static inline std::filesystem::path dir_;
  static inline std::unique_ptr<model::ModelWeights> weights_;
};

TEST_F(CpuGenerator, AloneRunMatchesAPlainGreedyLoop) {
  cpu::CpuRunner runner(*weights_, {.cache_tokens = 1024, .page_size = 16});
  RunnerStepRunner steps(runner);
  EXPECT_EQ(steps.max_seq_len(), 4096);
  EXPECT_EQ(steps.vocab_size(), 2048);
  std::mt19937_64 rng(5);
  const auto prompt = random_prompt(rng, 21);
  const auto got = alone(steps, job(prompt, 8));

  std::vector<int32_t> pages = {0, 1, 2};
  std::vector<int32_t> seq = prompt, expected;
  std::vector<float> logits;
  int64_t pos = 0;
  for (int i = 0; i < 8; ++i) {
    const std::span<const int32_t> fresh = std::span<const int32_t>(seq).subspan(static_cast<size_t>(pos));
    const model::SequenceStep s{fresh, pos, pages};
    runner.forward(std::span(&s, 1), model::LogitsFor::kLastToken, &logits);
    pos = static_cast<int64_t>(seq.size());
    const int32_t t = sampling::argmax(logits);
    expected.push_back(t);
    seq.push_back(t);
  }
  EXPECT_EQ(got, expected);
}

TEST_F(CpuGenerator, SixteenGreedyJobsMatchTheirAloneRuns) {
  cpu::CpuRunner runner(*weights_, {.cache_tokens = 2048, .page_size = 16});
  RunnerStepRunner steps(runner);
  std::mt19937_64 rng(11);
  std::vector<JobParams> jobs;
  std::vector<std::vector<int32_t>> expected;
  for (int i = 0; i < 16; ++i) {
    jobs.push_back(job(random_prompt(rng, 2 + 3 * i), 16));
    expected.push_back(alone(steps, jobs.back()));
  }
  std::vector<std::vector<int32_t>> distinct = expected;
  std::ranges::sort(distinct);
  EXPECT_GE(std::unique(distinct.begin(), distinct.end()) - distinct.begin(), 12);
  // Chunked prefill next to decodes: a small budget, jobs joining at different steps.
  RecordingStepRunner recording(steps);
  Generator gen(recording, {.max_tokens_per_step = 24, .max_seqs_per_step = 8});
  EventLog log;
  std::vector<uint64_t> ids;
  for (int i = 0; i < 16; ++i) {
    ids.push_back(gen.enqueue(jobs[static_cast<size_t>(i)]));
    gen.step();
    log.add(gen.take_events());
  }
  while (gen.step()) log.add(gen.take_events());
  log.add(gen.take_events());
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(log[ids[i]].final.reason, FinishReason::kLength) << log[ids[i]].final.error;
    EXPECT_EQ(log[ids[i]].tokens, expected[static_cast<size_t>(i)]) << "job " << i;
  }
  EXPECT_EQ(recording.max_seqs, 8);
  EXPECT_GT(recording.mixed_steps, 0);  // decode tokens next to prompt chunks that do not sample
}

TEST_F(CpuGenerator, SampledJobsDoNotDependOnTheirBatch) {
  cpu::CpuRunner runner(*weights_, {.cache_tokens = 1024, .page_size = 16});
  RunnerStepRunner steps(runner);
  std::mt19937_64 rng(12);
  std::vector<JobParams> jobs;
  std::vector<std::vector<int32_t>> expected;
  for (int i = 0; i < 4; ++i) {
    JobParams p = job(random_prompt(rng, 5 + 7 * i), 12);
    p.sampling = {.temperature = 1.0f, .top_k = 50, .top_p = 0.9f, .seed = 100 + static_cast<uint64_t>(i)};
    jobs.push_back(p);
    expected.push_back(alone(steps, p));
  }
  Generator gen(steps, {.max_tokens_per_step = 10});
  EventLog log;
  std::vector<uint64_t> ids;
  for (const auto& p : jobs) ids.push_back(gen.enqueue(p));
  while (gen.step()) log.add(gen.take_events());
  log.add(gen.take_events());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(log[ids[i]].tokens, expected[static_cast<size_t>(i)]) << "job " << i;
}

// JobParams::sampler: the full chain (here repetition penalty, min-p, XTC off, temperature) draws each token from the
// job's own context; the tokens equal a hand loop over the same Sampler, and do not depend on the batch.
TEST_F(CpuGenerator, SamplerChainJobsMatchAHandLoopAndTheirBatch) {
  cpu::CpuRunner runner(*weights_, {.cache_tokens = 1024, .page_size = 16});
  RunnerStepRunner steps(runner);
  std::mt19937_64 rng(13);
  std::vector<JobParams> jobs;
  std::vector<std::vector<int32_t>> expected;
  for (int i = 0; i < 3; ++i) {
    JobParams p = job(random_prompt(rng, 6 + 5 * i), 10);
    sampling::SamplerSettings st;
    st.temperature = 0.9f;
    st.min_p = 0.02f;
    st.repetition_penalty = 1.3f;
    st.seed = 7 + static_cast<uint64_t>(i);
    p.sampler = st;
    jobs.push_back(p);
    // The hand loop: forward the whole sequence each time, sample with a fresh chain of the same settings.
    sampling::Sampler chain(st);
    std::vector<int32_t> seq = p.input_ids, out;
    std::vector<int32_t> pages = {0, 1, 2};
    std::vector<float> logits;
    int64_t pos = 0;
    for (uint64_t k = 0; k < 10; ++k) {
      const model::SequenceStep s{std::span<const int32_t>(seq).subspan(static_cast<size_t>(pos)), pos, pages};
      runner.forward(std::span(&s, 1), model::LogitsFor::kLastToken, &logits);
      pos = static_cast<int64_t>(seq.size());
      const int32_t t = chain.sample(logits, seq, k);
      out.push_back(t);
      seq.push_back(t);
    }
    expected.push_back(out);
    EXPECT_EQ(alone(steps, p), out) << "job " << i << " alone";
  }
  Generator gen(steps, {.max_tokens_per_step = 12});
  EventLog log;
  std::vector<uint64_t> ids;
  for (const auto& p : jobs) ids.push_back(gen.enqueue(p));
  while (gen.step()) log.add(gen.take_events());
  log.add(gen.take_events());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(log[ids[i]].tokens, expected[static_cast<size_t>(i)]) << "job " << i;
  // Bad settings are refused at enqueue, naming the setting.
  JobParams bad = job({1, 2, 3}, 4);
  bad.sampler = sampling::SamplerSettings{};
  bad.sampler->top_p = 1.5f;
  try {
    gen.enqueue(bad);
    ADD_FAILURE() << "top_p 1.5 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("top_p"), std::string::npos) << e.what();
  }
}

TEST_F(CpuGenerator, PrefixCacheReusesPagesAndKeepsTheTokens) {
  cpu::CpuRunner runner(*weights_, {.cache_tokens = 1024, .page_size = 16});
  RunnerStepRunner steps(runner);
  std::mt19937_64 rng(13);
  const auto shared = random_prompt(rng, 64);  // 4 pages
  auto a = shared, b = shared;
  const auto ta = random_prompt(rng, 6), tb = random_prompt(rng, 9);
  a.insert(a.end(), ta.begin(), ta.end());
  b.insert(b.end(), tb.begin(), tb.end());
  const auto expected_b = alone(steps, job(b, 12));

  Generator gen(steps);
  EventLog log;
  const uint64_t ia = gen.enqueue(job(a, 12));
  while (gen.step()) log.add(gen.take_events());
  const uint64_t ib = gen.enqueue(job(b, 12));
  while (gen.step()) log.add(gen.take_events());
  log.add(gen.take_events());
  EXPECT_EQ(log[ia].final.cached_tokens, 0);
  EXPECT_EQ(log[ib].final.cached_tokens, 64);
  const PoolStats s = gen.pool().stats();
  EXPECT_EQ(s.hit_tokens, 64);
  EXPECT_EQ(s.lookups, 2);
  EXPECT_EQ(s.used_pages, 0);
  EXPECT_GE(s.cached_pages, 4);
  EXPECT_EQ(log[ib].tokens, expected_b);
}

TEST_F(CpuGenerator, PreemptedJobsRecomputeToTheSameTokens) {
  // 8 pages of 16 tokens; four jobs of 3 pages each cannot all stay.
  cpu::CpuRunner runner(*weights_, {.cache_tokens = 128, .page_size = 16});
  RunnerStepRunner steps(runner);
  std::mt19937_64 rng(14);
  std::vector<JobParams> jobs;
  std::vector<std::vector<int32_t>> expected;
  for (int i = 0; i < 4; ++i) {
    jobs.push_back(job(random_prompt(rng, 20 + i), 20));
    expected.push_back(alone(steps, jobs.back()));
  }
  Generator gen(steps, {.admission_reserve_pages = 0});
  EventLog log;
  std::vector<uint64_t> ids;
  for (const auto& p : jobs) ids.push_back(gen.enqueue(p));
  while (gen.step()) log.add(gen.take_events());
  log.add(gen.take_events());
  EXPECT_GT(gen.stats().preemptions, 0);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(log[ids[i]].tokens, expected[static_cast<size_t>(i)]) << "job " << i;
}

TEST_F(CpuGenerator, BannedAndStopStringsEndToEnd) {
  // Pages of 4 tokens, so that rewinds reach back into committed pages and the runner recomputes real K/V there.
  cpu::CpuRunner runner(*weights_, {.cache_tokens = 256, .page_size = 4});
  RunnerStepRunner steps(runner);
  const auto piece = [](int32_t t) { return "<" + std::to_string(t) + ">"; };
  const auto decoder = [&] {
    TextDecoder d;
    d.push = piece;
    d.flush = [] { return std::string(); };
    d.reset = [] {};
    return d;
  };
  std::mt19937_64 rng(21);
  const auto prompt = random_prompt(rng, 9);
  const auto greedy = alone(steps, job(prompt, 16));
  std::string full;
  std::vector<size_t> ends;  // end of each token's text in `full`
  for (int32_t t : greedy) {
    full += piece(t);
    ends.push_back(full.size());
  }
  // A banned string that is one token's text: the job rewinds wherever the greedy choice is that token, so it must
  // equal a greedy chain that bans the token outright.
  JobParams banned = job(prompt, 16);
  banned.banned_strings = {piece(greedy[3])};
  banned.text = decoder();
  banned.top_logprobs = 2;
  JobParams chain = job(prompt, 16);
  sampling::SamplerSettings st;
  st.temperature = 0.0f;
  st.banned_tokens = {greedy[3]};
  chain.sampler = st;
  // A stop string from inside token 4 to inside token 6.
  JobParams stopped = job(prompt, 16);
  const std::string stop = full.substr(ends[3] + 1, ends[6] - 1 - (ends[3] + 1));
  const size_t at = full.find(stop);
  size_t last = 0;
  while (ends[last] < at + stop.size()) ++last;
  stopped.stop_strings = {stop};
  stopped.text = decoder();
  Generator gen(steps, {.max_tokens_per_step = 16});
  EventLog log;
  const uint64_t b = gen.enqueue(banned), c = gen.enqueue(chain), s = gen.enqueue(stopped);
  while (gen.step()) log.add(gen.take_events());
  log.add(gen.take_events());

  EXPECT_EQ(log[b].tokens, log[c].tokens);
  EXPECT_GE(log[b].final.rewinds, 1);
  EXPECT_EQ(std::ranges::find(log[b].tokens, greedy[3]), log[b].tokens.end());
  std::string text;
  for (int32_t t : log[b].tokens) text += piece(t);
  EXPECT_EQ(log[b].text, text);
  ASSERT_EQ(log[b].logprobs.size(), log[b].tokens.size());
  for (const auto& lp : log[b].logprobs) EXPECT_EQ(lp.logprob, 0.0);  // greedy: a one-hot distribution

  EXPECT_EQ(log[s].tokens, std::vector<int32_t>(greedy.begin(), greedy.begin() + static_cast<int64_t>(last) + 1));
  EXPECT_EQ(log[s].text, full.substr(0, at));
  EXPECT_EQ(log[s].final.reason, FinishReason::kStop);
  EXPECT_EQ(log[s].final.stop_string, stop);
  const PoolStats ps = gen.pool().stats();
  EXPECT_EQ(ps.used_pages, 0);
  gen.pool().check_invariants();
}

TEST(RunnerStepRunner, SampleSeedsDifferPerIndexAndSeed) {
  EXPECT_NE(sample_seed(1, 0), sample_seed(1, 1));
  EXPECT_NE(sample_seed(1, 0), sample_seed(2, 0));
  EXPECT_EQ(sample_seed(7, 3), sample_seed(7, 3));
}

}  // namespace
}  // namespace exl::generator
