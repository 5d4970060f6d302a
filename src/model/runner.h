// A backend's executable form of a model: runs steps of new tokens for several sequences over a paged KV cache
// and returns logits. The CPU reference (backend/cpu) and CUDA (backend/cuda) runners implement it.
#pragma once

#include <cstdint>
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

class Runner {
 public:
  virtual ~Runner() = default;
  virtual const io::ModelConfig& config() const = 0;
  virtual std::string backend_name() const = 0;
  virtual int64_t page_size() const = 0;
  virtual int64_t num_pages() const = 0;
  // logits: [sum of tokens, vocab_size] (kAllTokens) or [num_seqs, vocab_size] (kLastToken), fp32, row-major.
  virtual void forward(std::span<const SequenceStep> seqs, LogitsFor which, std::vector<float>* logits) = 0;
};

}  // namespace exl::model
