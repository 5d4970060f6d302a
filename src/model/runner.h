// A backend's executable form of a model: runs steps of new tokens for several sequences over a paged KV cache
// and returns logits. The CPU reference (backend/cpu) and CUDA (backend/cuda) runners implement it.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "io/model_config.h"

namespace exl::model {

enum class LogitsFor { kAllTokens, kLastToken };

struct SequenceStep {
  std::span<const int32_t> tokens;  // new tokens
  int64_t start_pos = 0;            // tokens already in the cache for this sequence
  std::span<const int32_t> pages;   // block table, covering start_pos + tokens.size()
};

struct SamplingParams {
  float temperature = 0.0f;  // <= 0: greedy
  int top_k = 0;             // 0: off
  float top_p = 1.0f;        // 1: off
  uint64_t seed = 0;
};

// Called with every generated token; return false to stop.
using TokenCallback = std::function<bool(int32_t token)>;

struct DecodeRequest {
  int32_t last_token = 0;           // the sequence's last token, not yet in the cache
  int64_t start_pos = 0;            // tokens already in the cache
  std::vector<int32_t>* pages = nullptr;  // block table; the runner may not grow it: it must cover start_pos + max_new_tokens
  int64_t max_new_tokens = 0;
  std::vector<int32_t> stop_tokens;  // generation stops after emitting one of these
  SamplingParams sampling;
};

struct DecodeStats {
  int64_t tokens = 0;
  double seconds = 0.0;
  double launches_per_token = 0.0;  // kernel launches per decode step (0 if the backend does not count)
};

class Runner {
 public:
  virtual ~Runner() = default;
  virtual const io::ModelConfig& config() const = 0;
  virtual std::string backend_name() const = 0;
  virtual int64_t page_size() const = 0;
  virtual int64_t num_pages() const = 0;
  // logits: [sum of tokens, vocab_size] (kAllTokens) or [num_seqs, vocab_size] (kLastToken), fp32, row-major.
  virtual void forward(std::span<const SequenceStep> seqs, LogitsFor which, std::vector<float>* logits) = 0;
  // Batch-1 decode loop: feeds last_token, samples, repeats; every sampled token goes to on_token. Backends may
  // keep the tokens on the device and replay captured graphs; the host only reads what it must (the token).
  virtual DecodeStats decode(const DecodeRequest& request, const TokenCallback& on_token) = 0;
};

}  // namespace exl::model
