// StepRunner over any model::Runner: one forward per step with logits of each sequence's last new token, and host
// sampling of the rows that ask for it. Each sampled token draws from a generator seeded by (seed, sample_index)
// alone, so a job's tokens do not depend on which other jobs share its steps or how its prompt was chunked.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "generator/step_runner.h"
#include "model/runner.h"

namespace exl::generator {

struct RunnerStepOptions {
  // Longest sequence the runner may be run at; 0: the config's max_position_embeddings. Pass the spec's
  // max_seq_len (ModelWeights::spec) when the model was loaded with an override or a dynamic RoPE factor.
  int64_t max_seq_len = 0;
};

class RunnerStepRunner final : public StepRunner {
 public:
  explicit RunnerStepRunner(model::Runner& runner, const RunnerStepOptions& options = {});
  int64_t page_size() const override { return runner_.page_size(); }
  int64_t num_pages() const override { return runner_.num_pages(); }
  int64_t max_seq_len() const override { return max_seq_len_; }
  int64_t vocab_size() const override { return runner_.config().vocab_size; }
  void step(std::span<const StepSequence> seqs, std::vector<int32_t>* sampled) override;

 private:
  int32_t sample_row(const StepSequence& seq, std::span<const float> row);

  model::Runner& runner_;
  int64_t max_seq_len_;
  std::vector<model::SequenceStep> steps_;
  std::vector<float> logits_;
  std::vector<float> masked_;  // a row with its blocked tokens at -inf
};

// The seed of the sampler that draws a job's sample_index-th token.
uint64_t sample_seed(uint64_t seed, uint64_t sample_index);

// The distribution sampling::HostSampler draws from for `params` (temperature, top-k, top-p) over one row of logits:
// one-hot at the argmax when greedy (temperature <= 0 or top_k == 1), else softmax(logits / temperature) over the
// tokens top-k and top-p keep, renormalised; every other token 0.
std::vector<double> host_distribution(const model::SamplingParams& params, std::span<const float> logits);

// The `n` most probable tokens of `distribution` with probability > 0 (fewer if fewer have it), by probability
// descending, then token id ascending, with their natural-log probabilities.
std::vector<TokenLogprob> top_logprobs(std::span<const double> distribution, int n);

}  // namespace exl::generator
