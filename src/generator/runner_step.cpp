#include "generator/runner_step.h"

#include "core/error.h"
#include "sampling/sampler.h"

namespace exl::generator {

namespace {

uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace

uint64_t sample_seed(uint64_t seed, uint64_t sample_index) {
  return mix64(mix64(seed + 0x9e3779b97f4a7c15ULL) ^ (sample_index * 0xd6e8feb86659fd93ULL + 0x2545f4914f6cdd1dULL));
}

RunnerStepRunner::RunnerStepRunner(model::Runner& runner, const RunnerStepOptions& options)
    : runner_(runner),
      max_seq_len_(options.max_seq_len > 0 ? options.max_seq_len : runner.config().max_position_embeddings) {
  EXL_CHECK(max_seq_len_ > 0, kInvalidArgument,
            "RunnerStepRunner: expected a positive max_seq_len, found {} (config max_position_embeddings {})",
            max_seq_len_, runner.config().max_position_embeddings);
}

void RunnerStepRunner::step(std::span<const StepSequence> seqs, std::vector<int32_t>* sampled) {
  sampled->clear();
  if (seqs.empty()) return;
  steps_.clear();
  for (const auto& s : seqs) steps_.push_back(model::SequenceStep{s.tokens, s.start_pos, s.pages});
  runner_.forward(steps_, model::LogitsFor::kLastToken, &logits_);
  const size_t rows = seqs.size();
  EXL_CHECK(!logits_.empty() && logits_.size() % rows == 0, kInternal,
            "RunnerStepRunner: expected logits of {} rows from the {} runner, found {} values", rows,
            runner_.backend_name(), logits_.size());
  const size_t row_size = logits_.size() / rows;
  for (size_t i = 0; i < rows; ++i) {
    if (!seqs[i].sample) continue;
    const std::span<const float> row(logits_.data() + i * row_size, row_size);
    if (seqs[i].sampler != nullptr) {
      sampled->push_back(seqs[i].sampler->sample(row, seqs[i].context, seqs[i].sample_index));
      continue;
    }
    model::SamplingParams params = seqs[i].sampling;
    params.seed = sample_seed(params.seed, seqs[i].sample_index);
    sampling::HostSampler sampler(params);
    sampled->push_back(sampler.sample(row));
  }
}

}  // namespace exl::generator
