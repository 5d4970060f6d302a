// A generation request (JobParams) and what the generator reports about it (JobEvent). The generator knows token
// ids only; text comes from an optional per-job TextDecoder (e.g. a tokenizer::StreamDecoder behind lambdas), so it
// does not depend on the tokenizer library. Stop strings, banned strings and logprobs: docs/generator.md.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/runner.h"
#include "sampling/settings.h"

namespace exl::generator {

// Incremental detokenizer of one job: push(token) returns the text that became final with it, flush() what is
// left at the end, reset() returns it to its initial state (needed by banned strings: a rewind resets the decoder
// and pushes the job's kept tokens again, discarding their text). Called on the thread that runs the steps.
struct TextDecoder {
  std::function<std::string(int32_t token)> push;
  std::function<std::string()> flush;
  std::function<void()> reset;
};

enum class FinishReason {
  kStop,       // a stop token or a stop string
  kLength,     // reached max_new_tokens (after clamping to the model's and the cache's length)
  kCancelled,  // cancel(), or the Engine shut down
  kError,      // the step runner, the sampler or the text decoder failed, or every token was blocked: see `error`
};
std::string_view finish_reason_name(FinishReason reason);

struct JobTimings {
  double queued_s = 0.0;   // enqueue to first admission
  double prefill_s = 0.0;  // first admission to the first sampled token
  double decode_s = 0.0;   // first sampled token to the finish
};

// One alternative of a sampled token's final distribution.
struct TokenLogprob {
  int32_t token = -1;
  double logprob = 0.0;  // natural log of its probability in the distribution the token was drawn from
};

// The log-probabilities of one sampled token (JobParams::top_logprobs > 0).
struct SampledLogprobs {
  int32_t token = -1;
  double logprob = 0.0;            // of `token` in the distribution it was drawn from
  std::vector<TokenLogprob> top;   // the most probable tokens of that distribution, at most top_logprobs, only
                                   // tokens of probability > 0; by probability descending, then token id
};

struct JobEvent;
using JobCallback = std::function<void(const JobEvent& event)>;

struct JobParams {
  std::vector<int32_t> input_ids;    // the prompt; at least one token
  int64_t max_new_tokens = 256;      // >= 1; clamped so that prompt + max_new_tokens fits max_seq_len and the pool
  // The first min_new_tokens draws never return a stop token (they are blocked), and stop strings that complete
  // within the first min_new_tokens tokens do not end the job.
  int64_t min_new_tokens = 0;
  std::vector<int32_t> stop_tokens;  // the job finishes (kStop) after emitting one of these
  // The job finishes (kStop) when its text contains one of these; the text ends just before it. Needs `text`.
  std::vector<std::string> stop_strings;
  // Text containing one of these (ASCII case-insensitive) is never emitted: the job rewinds to the token where it
  // began and draws again there with that token blocked. Needs `text` with push and reset.
  std::vector<std::string> banned_strings;
  // > 0: every sampled token's event entry carries its log-probability and up to this many alternatives.
  int top_logprobs = 0;
  model::SamplingParams sampling;    // greedy by default; seed picks the job's random stream
  // The full sampler chain (sampling/sampler_chain.h: penalties, DRY, XTC, min-p, mirostat ...) instead of
  // `sampling`; validated at enqueue. Its seed picks the job's random stream.
  std::optional<sampling::SamplerSettings> sampler;
  int priority = 0;                  // higher first; FIFO within a priority
  TextDecoder text;                  // optional: events then carry text as well as token ids
  JobCallback on_event;              // optional: receives this job's events instead of the event queue
};

// One event per job and step in which the job released tokens or finished. Tokens whose text may begin a stop or
// banned string are held back and released later (or dropped by a rewind). Every job gets exactly one event with
// finished == true, its last; the tokens of all its events are its generated tokens.
struct JobEvent {
  uint64_t job_id = 0;
  std::vector<int32_t> tokens;            // tokens released since the job's previous event
  std::vector<SampledLogprobs> logprobs;  // one per entry of `tokens` when top_logprobs > 0, else empty
  std::string text;                       // their text, when the job has a TextDecoder
  bool finished = false;
  // The fields below are set on the final event only.
  FinishReason reason = FinishReason::kStop;
  std::string stop_string;  // kStop by a stop string: which one (empty for a stop token)
  std::string error;        // kError: what failed
  JobTimings timings;
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  int64_t cached_tokens = 0;  // prompt tokens taken from the prefix cache at the job's first admission
  int64_t preemptions = 0;    // times the job lost its pages and recomputed them
  int64_t rewinds = 0;        // times a banned string made the job drop tokens and draw again
};

}  // namespace exl::generator
