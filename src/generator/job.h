// A generation request (JobParams) and what the generator reports about it (JobEvent). The generator knows token
// ids only; text comes from an optional per-job TextDecoder (e.g. a tokenizer::StreamDecoder behind two lambdas),
// so it does not depend on the tokenizer library.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <optional>

#include "model/runner.h"
#include "sampling/settings.h"

namespace exl::generator {

// Incremental detokenizer of one job: push(token) returns the text that became final with it, flush() what is
// left at the end. Called on the thread that runs the generator's steps.
struct TextDecoder {
  std::function<std::string(int32_t token)> push;
  std::function<std::string()> flush;
};

enum class FinishReason {
  kStop,       // emitted a stop token
  kLength,     // emitted max_new_tokens (after clamping to the model's and the cache's length)
  kCancelled,  // cancel(), or the Engine shut down
  kError,      // the step runner or the text decoder failed; JobEvent::error says why
};
std::string_view finish_reason_name(FinishReason reason);

struct JobTimings {
  double queued_s = 0.0;   // enqueue to first admission
  double prefill_s = 0.0;  // first admission to the first sampled token
  double decode_s = 0.0;   // first sampled token to the finish
};

struct JobEvent;
using JobCallback = std::function<void(const JobEvent& event)>;

struct JobParams {
  std::vector<int32_t> input_ids;    // the prompt; at least one token
  int64_t max_new_tokens = 256;      // >= 1; clamped so that prompt + max_new_tokens fits max_seq_len and the pool
  int64_t min_new_tokens = 0;        // stop tokens end the job only after this many tokens came before them
  std::vector<int32_t> stop_tokens;  // the job finishes (kStop) after emitting one of these
  model::SamplingParams sampling;    // greedy by default; seed picks the job's random stream
  // The full sampler chain (sampling/sampler_chain.h: penalties, DRY, XTC, min-p, mirostat ...) instead of
  // `sampling`; validated at enqueue. Its seed picks the job's random stream.
  std::optional<sampling::SamplerSettings> sampler;
  int priority = 0;                  // higher first; FIFO within a priority
  TextDecoder text;                  // optional: events then carry text as well as token ids
  JobCallback on_event;              // optional: receives this job's events instead of the event queue
};

// One event per job and step in which the job sampled a token or finished. Every job gets exactly one event with
// finished == true, its last.
struct JobEvent {
  uint64_t job_id = 0;
  std::vector<int32_t> tokens;  // tokens sampled since the job's previous event
  std::string text;             // their text, when the job has a TextDecoder (plus the flush on the final event)
  bool finished = false;
  // The fields below are set on the final event only.
  FinishReason reason = FinishReason::kStop;
  std::string error;  // kError: what failed
  JobTimings timings;
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  int64_t cached_tokens = 0;  // prompt tokens taken from the prefix cache at the job's first admission
  int64_t preemptions = 0;    // times the job lost its pages and recomputed them
};

}  // namespace exl::generator
