// Whole-sequence evaluation on any runner: logits of token rows and perplexity.
#pragma once

#include <cstdint>
#include <vector>

#include "model/runner.h"

namespace exl::model {

using TokenRows = std::vector<std::vector<int32_t>>;

// logits [num_rows, row_len, vocab_size]; rows must have equal, non-zero lengths.
std::vector<float> compute_logits(Runner& runner, const TokenRows& rows);

struct PerplexityResult {
  int64_t tokens = 0;  // predicted tokens (row_len - 1 per row)
  double nll = 0.0;    // mean negative log-likelihood
  double ppl = 0.0;    // exp(nll)
};
PerplexityResult perplexity(Runner& runner, const TokenRows& rows);

// Splits a token stream into rows of `length` tokens (the last partial row dropped).
TokenRows split_rows(const std::vector<int32_t>& tokens, int64_t length);

}  // namespace exl::model
