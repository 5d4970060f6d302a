// Grammar (rules of Expr) and the compiled Program the runtime executes: one DFA per rule over bytes and calls of
// other rules (a recursive transition network), all DFA states numbered globally. A runtime position is a stack of
// return states plus the current state; several positions are alive where the grammar is ambiguous.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "constrain/expr.h"

namespace exl::constrain::detail {

struct Rule {
  std::string name;  // for messages: a JSON pointer, a GBNF rule name, "regex"
  ExprPtr body;
  bool inlinable = true;  // false: always called (objects and arrays: inlining would copy them per use)
};

struct Grammar {
  std::vector<Rule> rules;
  int start = 0;
  int max_depth = 64;  // calls of recursive rules are refused once the stack is this deep
  std::string what;    // "json schema", "regex", "grammar": the prefix of compile errors
};

// Limits that keep a hostile or huge schema from taking the machine: exceeding one is a kUnsupported error.
inline constexpr size_t kMaxNfaStates = 1'000'000;
inline constexpr size_t kMaxDfaStates = 400'000;
inline constexpr size_t kMaxTransitions = 40'000'000;

struct Call {
  int32_t rule;
  int32_t ret;  // global state to continue at after the rule returns
};

struct Program {
  static constexpr uint8_t kAccept = 1;
  static constexpr uint8_t kHasCalls = 2;

  struct RuleInfo {
    std::string name;
    int32_t start = 0;  // global id of the rule's DFA start state
    bool nullable = false;
    bool recursive = false;  // can call itself; only calls of such rules are limited by max_depth
    ByteSet first;  // bytes the rule can consume first (through nested calls)
  };

  std::vector<RuleInfo> rules;
  int32_t start_rule = 0;
  int32_t max_depth = 64;
  std::string what;

  // Per state, packed so that one load gives what a step needs (the mask walk is bound by dependent loads).
  struct StateInfo {
    int32_t row;          // offset of the state's row in `next`
    uint32_t rule_flags;  // rule << 8 | flags; the rule's class map is classes[rule * 256, +256)
  };
  std::vector<StateInfo> info;
  std::vector<uint8_t> classes;      // per rule, 256 entries: byte -> byte class
  std::vector<uint32_t> call_begin;  // per state + 1: its calls are calls[call_begin[s], [s+1])
  std::vector<Call> calls;
  std::vector<int32_t> next;       // row + class -> next global state, -1 = dead
  std::vector<ByteSet> out_bytes;  // per state: bytes with a transition

  int32_t num_states() const { return static_cast<int32_t>(info.size()); }
  uint8_t flags(int32_t s) const { return static_cast<uint8_t>(info[static_cast<size_t>(s)].rule_flags & 0xFF); }
  int32_t rule_of(int32_t s) const { return static_cast<int32_t>(info[static_cast<size_t>(s)].rule_flags >> 8); }
  int32_t step(int32_t s, uint8_t b) const {
    const StateInfo& i = info[static_cast<size_t>(s)];
    return next[static_cast<size_t>(i.row) + classes[(i.rule_flags & ~0xFFu) + b]];
  }
};

// Inlines small non-recursive rules, builds the automata, checks for left recursion. Errors (kUnsupported for size
// limits, kInvalidArgument for left recursion and undefined rules) start with grammar.what.
std::shared_ptr<const Program> compile_grammar(const Grammar& grammar);

}  // namespace exl::constrain::detail
