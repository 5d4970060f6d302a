// Executes a Program: a position is a set of heads; a head is the current DFA state plus a stack of return states.
// Stacks are interned as (parent, return state) nodes, so a head is two integers, equal positions are equal sorted
// head vectors (hashable mask-cache keys), and stepping within one rule allocates nothing.
// A Runtime is shared by a Matcher / TokenMasker and its copies; callers hold `mu` around every call.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <unordered_map>
#include <vector>

#include "constrain/program.h"

namespace exl::constrain {
class TokenBitmask;
}

namespace exl::constrain::detail {

struct Head {
  uint32_t node;  // the stack below the current rule: 0 = empty
  int32_t state;  // global DFA state
  friend bool operator==(const Head& a, const Head& b) { return a.node == b.node && a.state == b.state; }
  friend bool operator<(const Head& a, const Head& b) {
    return a.node != b.node ? a.node < b.node : a.state < b.state;
  }
};

using Position = std::vector<Head>;  // sorted, unique; empty = dead

struct PositionHash {
  size_t operator()(const Position& p) const {
    uint64_t h = 0x9E3779B97F4A7C15ull;
    for (const Head& x : p) {
      h ^= (static_cast<uint64_t>(x.node) << 32) | static_cast<uint32_t>(x.state);
      h *= 0xBF58476D1CE4E5B9ull;
      h ^= h >> 31;
    }
    return static_cast<size_t>(h);
  }
};

class Runtime {
 public:
  explicit Runtime(std::shared_ptr<const Program> program);

  std::mutex mu;

  const Program& program() const { return *program_; }
  Position initial() const;
  // out = the position after byte b (empty if b cannot follow). `in` and `out` must not alias.
  void step(std::span<const Head> in, uint8_t b, Position& out);
  bool accepts(std::span<const Head> in);
  ByteSet next_bytes(std::span<const Head> in);

  // Masks by position, for the TokenMasker that owns this runtime.
  std::unordered_map<Position, std::shared_ptr<const TokenBitmask>, PositionHash> masks;
  size_t mask_bytes = 0;
  uint64_t mask_hits = 0;
  uint64_t mask_misses = 0;

 private:
  struct Node {
    uint32_t parent;
    int32_t state;  // return state
    uint32_t depth;
  };
  uint32_t intern(uint32_t parent, int32_t state);
  bool seen(const Head& h);
  template <typename Visit>
  void closure(std::span<const Head> in, Visit&& visit);

  std::shared_ptr<const Program> program_;
  std::vector<Node> nodes_;
  std::unordered_map<uint64_t, uint32_t> node_ids_;
  std::vector<Head> seen_;
  std::vector<Head> work_;
};

}  // namespace exl::constrain::detail
