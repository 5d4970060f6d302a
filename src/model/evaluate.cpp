#include "model/evaluate.h"

#include <algorithm>
#include <cmath>

#include "cache/page_allocator.h"
#include "core/error.h"

namespace exl::model {
namespace {

void check_rows(const TokenRows& rows) {
  EXL_CHECK(!rows.empty() && !rows[0].empty(), kInvalidArgument, "token rows: expected at least one non-empty row");
  for (size_t r = 0; r < rows.size(); ++r) {
    EXL_CHECK(rows[r].size() == rows[0].size(), kInvalidArgument,
              "token rows: all rows must have the same length; row 0 has {}, row {} has {}", rows[0].size(), r,
              rows[r].size());
  }
}

// Runs rows [r0, r1) as separate sequences; logits for all their tokens.
void run_rows(Runner& runner, const TokenRows& rows, size_t r0, size_t r1, std::vector<float>* logits) {
  cache::PageAllocator allocator(runner.num_pages());
  std::vector<cache::SequenceCache> seqs(r1 - r0);
  std::vector<SequenceStep> steps;
  for (size_t r = r0; r < r1; ++r) {
    cache::reserve_tokens(allocator, seqs[r - r0], static_cast<int64_t>(rows[r].size()), runner.page_size());
    steps.push_back({rows[r], 0, seqs[r - r0].pages});
  }
  runner.forward(steps, LogitsFor::kAllTokens, logits);
}

size_t rows_per_batch(const Runner& runner, int64_t row_len) {
  const int64_t pages_per_row = (row_len + runner.page_size() - 1) / runner.page_size();
  EXL_CHECK(pages_per_row <= runner.num_pages(), kOutOfMemory,
            "a row of {} tokens needs {} cache pages of {} tokens, the cache has {}", row_len, pages_per_row,
            runner.page_size(), runner.num_pages());
  // Bound the activations and logits of one forward pass as well as the cache.
  const int64_t by_cache = runner.num_pages() / pages_per_row;
  const int64_t by_tokens = std::max<int64_t>(1, 4096 / row_len);
  return static_cast<size_t>(std::max<int64_t>(1, std::min(by_cache, by_tokens)));
}

}  // namespace

std::vector<float> compute_logits(Runner& runner, const TokenRows& rows) {
  check_rows(rows);
  const int64_t len = static_cast<int64_t>(rows[0].size());
  const int64_t vocab = runner.config().vocab_size;
  std::vector<float> out;
  out.reserve(rows.size() * len * vocab);
  const size_t step = rows_per_batch(runner, len);
  std::vector<float> logits;
  for (size_t r0 = 0; r0 < rows.size(); r0 += step) {
    const size_t r1 = std::min(rows.size(), r0 + step);
    run_rows(runner, rows, r0, r1, &logits);
    out.insert(out.end(), logits.begin(), logits.end());
  }
  return out;
}

PerplexityResult perplexity(Runner& runner, const TokenRows& rows) {
  check_rows(rows);
  const int64_t len = static_cast<int64_t>(rows[0].size());
  EXL_CHECK(len >= 2, kInvalidArgument, "perplexity: rows need at least 2 tokens, found {}", len);
  const int64_t vocab = runner.config().vocab_size;
  const size_t step = rows_per_batch(runner, len);
  PerplexityResult result;
  double total = 0.0;
  std::vector<float> logits;
  for (size_t r0 = 0; r0 < rows.size(); r0 += step) {
    const size_t r1 = std::min(rows.size(), r0 + step);
    run_rows(runner, rows, r0, r1, &logits);
    for (size_t r = r0; r < r1; ++r) {
      for (int64_t t = 0; t + 1 < len; ++t) {
        const float* l = logits.data() + ((r - r0) * len + t) * vocab;
        const int32_t target = rows[r][t + 1];
        EXL_CHECK(target >= 0 && target < vocab, kInvalidArgument, "perplexity: token id {} out of range (vocab {})",
                  target, vocab);
        const float mx = *std::max_element(l, l + vocab);
        double sum = 0.0;
        for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(l[i]) - mx);
        total += std::log(sum) + mx - l[target];
        ++result.tokens;
      }
    }
  }
  result.nll = total / static_cast<double>(result.tokens);
  result.ppl = std::exp(result.nll);
  return result;
}

TokenRows split_rows(const std::vector<int32_t>& tokens, int64_t length) {
  EXL_CHECK(length >= 2, kInvalidArgument, "row length must be at least 2, found {}", length);
  TokenRows rows;
  for (size_t i = 0; i + static_cast<size_t>(length) <= tokens.size(); i += static_cast<size_t>(length))
    rows.emplace_back(tokens.begin() + static_cast<int64_t>(i), tokens.begin() + static_cast<int64_t>(i) + length);
  return rows;
}

}  // namespace exl::model
