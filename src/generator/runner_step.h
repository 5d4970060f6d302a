// StepRunner over any model::Runner: one forward per step with logits of each sequence's last new token, and host
// sampling of the rows that ask for it. Each sampled token draws from a generator seeded by (seed, sample_index)
// alone, so a job's tokens do not depend on which other jobs share its steps or how its prompt was chunked.
#pragma once

#include <cstdint>
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
  model::Runner& runner_;
  int64_t max_seq_len_;
  std::vector<model::SequenceStep> steps_;
  std::vector<float> logits_;
};

// The seed of the sampler that draws a job's sample_index-th token.
uint64_t sample_seed(uint64_t seed, uint64_t sample_index);

}  // namespace exl::generator
