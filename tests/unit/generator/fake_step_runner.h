// A deterministic StepRunner for scheduler tests. Its "KV cache" stores, per page slot, the token, its position
// and a hash of the whole token list up to it (chained from the previous slot of the sequence's block table). The
// next token is a function of that hash, so a job's output depends on exactly the tokens its block table holds,
// like a real model's. Every step checks the generator's invariants and records any violation, including a sampled
// sequence whose cached tokens differ from its context (the job's history).
//
// Candidates, best first: the `script`'s tokens for the context (if set), then the hash's token t and t + 1, t + 2,
// ... (mod vocab). A draw returns the first candidate that is not blocked; with top_logprobs it reports the first
// top_logprobs unblocked candidates with log-probabilities -0.25, -0.75, -1.25, ... (the drawn token's is -0.25).
#pragma once

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "generator/step_runner.h"

namespace exl::generator::testing {

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

struct FakeOptions {
  int64_t page_size = 4;
  int64_t num_pages = 32;
  int64_t max_seq_len = 1 << 20;
  int64_t vocab_size = 1000;
};

class FakeStepRunner final : public StepRunner {
 public:
  static constexpr uint64_t kEmpty = 0x1234567887654321ULL;  // the hash of no tokens

  explicit FakeStepRunner(const FakeOptions& options = {})
      : o_(options), slots_(static_cast<size_t>(options.num_pages * options.page_size)) {}

  int64_t page_size() const override { return o_.page_size; }
  int64_t num_pages() const override { return o_.num_pages; }
  int64_t max_seq_len() const override { return o_.max_seq_len; }
  int64_t vocab_size() const override { return o_.vocab_size; }

  static uint64_t extend(uint64_t hash, int32_t token) {
    return mix64(hash ^ (static_cast<uint64_t>(token) * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL));
  }
  // The token sampled after `context`, whose tokens hash to `hash`; temperature > 0 mixes in (seed, sample_index).
  int32_t next_token(uint64_t hash, const model::SamplingParams& sampling, uint64_t sample_index,
                     std::span<const int32_t> context = {}, std::span<const int32_t> blocked = {}) const {
    return candidates(hash, sampling, sample_index, context, blocked, 1).front();
  }
  // The first `n` unblocked candidates (fewer if the vocabulary runs out).
  std::vector<int32_t> candidates(uint64_t hash, const model::SamplingParams& sampling, uint64_t sample_index,
                                  std::span<const int32_t> context, std::span<const int32_t> blocked, size_t n) const {
    if (sampling.temperature > 0.0f) hash = mix64(hash ^ mix64(sampling.seed * 0x2545f4914f6cdd1dULL + sample_index));
    std::vector<int32_t> out;
    auto offer = [&](int32_t t) {
      if (out.size() < n && std::ranges::find(blocked, t) == blocked.end() && std::ranges::find(out, t) == out.end())
        out.push_back(t);
    };
    if (script)
      for (int32_t t : script(context)) offer(t);
    const auto first = static_cast<int64_t>(hash % static_cast<uint64_t>(o_.vocab_size));
    for (int64_t j = 0; j < o_.vocab_size && out.size() < n; ++j)
      offer(static_cast<int32_t>((first + j) % o_.vocab_size));
    return out;
  }
  // What a job generates alone: up to max_new tokens, ending early at a stop token preceded by min_new tokens;
  // stop tokens are blocked for the first min_new draws.
  std::vector<int32_t> continuation(std::span<const int32_t> prompt, int64_t max_new,
                                    const model::SamplingParams& sampling = {},
                                    std::span<const int32_t> stop_tokens = {}, int64_t min_new = 0) const {
    uint64_t h = kEmpty;
    for (int32_t t : prompt) h = extend(h, t);
    std::vector<int32_t> context(prompt.begin(), prompt.end());
    std::vector<int32_t> blocked;
    for (int32_t t : stop_tokens)
      if (t >= 0 && t < o_.vocab_size) blocked.push_back(t);
    std::vector<int32_t> out;
    while (static_cast<int64_t>(out.size()) < max_new) {
      const bool early = static_cast<int64_t>(out.size()) < min_new;
      const int32_t t = next_token(h, sampling, out.size(), context, early ? std::span<const int32_t>(blocked)
                                                                            : std::span<const int32_t>());
      out.push_back(t);
      context.push_back(t);
      h = extend(h, t);
      if (static_cast<int64_t>(out.size()) - 1 >= min_new && std::ranges::find(stop_tokens, t) != stop_tokens.end())
        break;
    }
    return out;
  }

  void step(std::span<const StepSequence> seqs, std::vector<int32_t>* sampled) override {
    sampled->clear();
    ++steps_;
    std::vector<int64_t> shape;
    for (const auto& s : seqs) shape.push_back(static_cast<int64_t>(s.tokens.size()));
    for (int64_t n : shape) total_tokens_ += n;
    step_shapes_.push_back(std::move(shape));
    if (fail_if && fail_if(seqs)) fail(ErrorKind::kInternal, "fake runner: failure requested by the test");
    check_tables(seqs);
    for (const auto& s : seqs) {
      const uint64_t h = run_sequence(s);
      if (!s.sample) continue;
      uint64_t context_hash = kEmpty;
      for (int32_t t : s.context) context_hash = extend(context_hash, t);
      if (context_hash != h || s.start_pos + static_cast<int64_t>(s.tokens.size()) != static_cast<int64_t>(s.context.size()))
        violation(fmt::format("a sampled sequence's {} cached and new tokens are not its context of {} tokens",
                              s.start_pos + static_cast<int64_t>(s.tokens.size()), s.context.size()));
      for (size_t i = 0; i < s.blocked.size(); ++i)
        if (s.blocked[i] < 0 || s.blocked[i] >= o_.vocab_size || (i > 0 && s.blocked[i - 1] >= s.blocked[i]))
          violation(fmt::format("blocked tokens are not sorted, distinct and inside the vocabulary"));
      const size_t want = s.output != nullptr && s.top_logprobs > 0 ? static_cast<size_t>(s.top_logprobs) : 1;
      const std::vector<int32_t> c = candidates(h, s.sampling, s.sample_index, s.context, s.blocked, want);
      if (c.empty()) {
        violation("every token is blocked");
        sampled->push_back(-1);
        continue;
      }
      sampled->push_back(c.front());
      blocked_seen_.emplace_back(s.blocked.begin(), s.blocked.end());
      if (s.output != nullptr && s.top_logprobs > 0) {
        s.output->has_logprobs = true;
        s.output->top.clear();
        for (size_t j = 0; j < c.size(); ++j) s.output->top.push_back({c[j], -0.25 - 0.5 * static_cast<double>(j)});
        s.output->logprob = s.output->top.front().logprob;
      }
    }
  }

  const std::vector<std::string>& violations() const { return violations_; }
  int64_t steps() const { return steps_; }
  int64_t total_tokens() const { return total_tokens_; }
  // Per step, the number of new tokens of each sequence, in step order.
  const std::vector<std::vector<int64_t>>& step_shapes() const { return step_shapes_; }
  // Called before each step; returning true makes the step throw.
  std::function<bool(std::span<const StepSequence>)> fail_if;
  // Optional: the preferred next tokens after a context (the job's prompt and generated tokens), best first.
  std::function<std::vector<int32_t>(std::span<const int32_t> context)> script;
  // The blocked tokens of every draw, in order.
  const std::vector<std::vector<int32_t>>& blocked_seen() const { return blocked_seen_; }

 private:
  struct Slot {
    int32_t token = -1;
    int64_t pos = -1;
    uint64_t hash = 0;  // of the sequence's tokens [0, pos]
  };

  void violation(std::string message) {
    ADD_FAILURE() << "fake runner, step " << steps_ << ": " << message;
    violations_.push_back(std::move(message));
  }

  Slot& slot(const StepSequence& s, int64_t pos) {
    const int32_t page = s.pages[static_cast<size_t>(pos / o_.page_size)];
    return slots_[static_cast<size_t>(page * o_.page_size + pos % o_.page_size)];
  }

  // Block tables: in range, exactly covering, distinct; a page that receives tokens is in no other table.
  void check_tables(std::span<const StepSequence> seqs) {
    std::unordered_map<int32_t, int> writers, readers;
    for (size_t i = 0; i < seqs.size(); ++i) {
      const auto& s = seqs[i];
      const int64_t end = s.start_pos + static_cast<int64_t>(s.tokens.size());
      if (s.tokens.empty()) violation(fmt::format("sequence {} has no new tokens", i));
      if (end > o_.max_seq_len) violation(fmt::format("sequence {} reaches {} > max_seq_len", i, end));
      const int64_t need = (end + o_.page_size - 1) / o_.page_size;
      if (static_cast<int64_t>(s.pages.size()) != need)
        violation(fmt::format("sequence {}: {} tokens need {} pages, the table has {}", i, end, need, s.pages.size()));
      for (int32_t t : s.tokens)
        if (t < 0 || t >= o_.vocab_size) violation(fmt::format("sequence {}: token {} outside the vocabulary", i, t));
      std::vector<int32_t> sorted(s.pages.begin(), s.pages.end());
      std::ranges::sort(sorted);
      if (std::ranges::adjacent_find(sorted) != sorted.end()) violation(fmt::format("sequence {}: page twice", i));
      for (size_t p = 0; p < s.pages.size(); ++p) {
        const int32_t page = s.pages[p];
        if (page < 0 || page >= o_.num_pages) {
          violation(fmt::format("sequence {}: page {} outside the pool", i, page));
          continue;
        }
        const bool written = static_cast<int64_t>(p) >= s.start_pos / o_.page_size;
        ++(written ? writers : readers)[page];
      }
    }
    for (const auto& [page, n] : writers)
      if (n > 1 || readers.contains(page))
        violation(fmt::format("page {} is written by {} sequences and read by {} others", page, n,
                              readers.contains(page) ? readers[page] : 0));
  }

  // Verifies the cached history of s, writes its new tokens; returns the hash through its last token.
  uint64_t run_sequence(const StepSequence& s) {
    const int64_t end = s.start_pos + static_cast<int64_t>(s.tokens.size());
    if (static_cast<int64_t>(s.pages.size()) * o_.page_size < end) return 0;  // reported by check_tables
    uint64_t h = kEmpty;
    for (int64_t pos = 0; pos < s.start_pos; ++pos) {
      const Slot& sl = slot(s, pos);
      if (sl.pos != pos || sl.hash != extend(h, sl.token)) {
        violation(
            fmt::format("position {} of {} cached: slot holds position {}, its hash does not continue the "
                        "sequence's earlier tokens",
                        pos, s.start_pos, sl.pos));
        return 0;
      }
      h = sl.hash;
    }
    for (size_t t = 0; t < s.tokens.size(); ++t) {
      h = extend(h, s.tokens[t]);
      slot(s, s.start_pos + static_cast<int64_t>(t)) = Slot{s.tokens[t], s.start_pos + static_cast<int64_t>(t), h};
    }
    return h;
  }

  FakeOptions o_;
  std::vector<Slot> slots_;
  std::vector<std::string> violations_;
  int64_t steps_ = 0, total_tokens_ = 0;
  std::vector<std::vector<int64_t>> step_shapes_;
  std::vector<std::vector<int32_t>> blocked_seen_;
};

}  // namespace exl::generator::testing
