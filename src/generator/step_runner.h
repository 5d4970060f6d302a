// The one call the generator makes into a model: a step of new tokens for several sequences over a paged KV cache,
// with at most one sampled token per sequence. The scheduler never sees logits, kernels or page storage; a backend
// runner is adapted to this by RunnerStepRunner (runner_step.h), tests use deterministic fakes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "generator/job.h"
#include "model/runner.h"
#include "sampling/sampler_chain.h"

namespace exl::generator {

// What a runner reports about one sampled token beyond its id, through StepSequence::output.
struct SampleOutput {
  bool has_logprobs = false;      // set with logprob and top when the sequence asked for top_logprobs > 0
  double logprob = 0.0;           // of the sampled token in the final distribution
  std::vector<TokenLogprob> top;  // up to top_logprobs tokens of probability > 0, most probable first (ties: lower id)
  // Sampling this sequence failed (e.g. the sampler chain had no token left); the runner then returns token -1 for
  // it, and only this sequence's job fails.
  std::string error;
};

struct StepSequence {
  std::span<const int32_t> tokens;  // new tokens: a prefill chunk or the one decode token
  int64_t start_pos = 0;            // tokens already in this sequence's KV cache
  std::span<const int32_t> pages;   // block table covering start_pos + tokens.size()
  bool sample = false;              // true: sample one token from the logits of the last new token
  model::SamplingParams sampling;   // (model/runner.h) used when sample
  uint64_t sample_index = 0;        // draws this job made before (rewound ones included): its random stream position
  // The job's sampler chain (JobParams::sampler), or null: `sampling` then picks the token. With a chain the token
  // is sampler->sample(logits, context, sample_index, blocked); context is the job's prompt and generated tokens.
  sampling::Sampler* sampler = nullptr;
  std::span<const int32_t> context;
  // Tokens this draw must not return (sorted, distinct, inside the vocabulary, never all of it): stop tokens before
  // min_new_tokens and tokens already tried at a banned-string rewind point. The plain path masks their logits to
  // -inf; the chain gets them as Sampler::sample's `blocked`.
  std::span<const int32_t> blocked;
  int top_logprobs = 0;           // > 0: fill output's logprob and top (at most this many alternatives)
  SampleOutput* output = nullptr;  // optional, when sample: see SampleOutput
};

// Implementations write the K/V of every new token into its page slot (pages[pos / page_size], pos % page_size)
// and read positions [0, start_pos) from the pages the block table names. Pages below start_pos / page_size may be
// shared with other sequences of the same step (read only); pages that receive new tokens never are. A sequence's
// start_pos may go down between steps (preemption, a banned-string rewind): positions from start_pos on are then
// written again.
class StepRunner {
 public:
  virtual ~StepRunner() = default;
  virtual int64_t page_size() const = 0;
  virtual int64_t num_pages() const = 0;
  virtual int64_t max_seq_len() const = 0;
  virtual int64_t vocab_size() const = 0;
  // One step over all sequences; `sampled` gets one token per sequence with sample == true, in order.
  virtual void step(std::span<const StepSequence> seqs, std::vector<int32_t>* sampled) = 0;
};

}  // namespace exl::generator
