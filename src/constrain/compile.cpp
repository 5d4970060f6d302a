// Grammar -> Program: inline small non-recursive rules, Thompson NFA per rule (edges: byte sets, calls, epsilon),
// subset construction over byte classes and call symbols, then flattening, nullability, FIRST sets and the left
// recursion check.
#include <algorithm>
#include <functional>
#include <map>
#include <unordered_map>

#include "constrain/program.h"
#include "core/error.h"

namespace exl::constrain::detail {
namespace {

constexpr size_t kInlineMaxSize = 400;

struct NfaState {
  std::vector<int32_t> eps;
  std::vector<std::pair<int32_t, int32_t>> bytes;  // (set id, target)
  std::vector<std::pair<int32_t, int32_t>> calls;  // (rule, target)
};

struct Dfa {
  std::array<uint8_t, 256> cls{};
  int ncls = 1;
  std::vector<int32_t> next;  // state * ncls + class
  std::vector<uint8_t> accept;
  std::vector<std::vector<std::pair<int32_t, int32_t>>> calls;  // per state: (rule, local target)
  int32_t num_states() const { return static_cast<int32_t>(accept.size()); }
  int32_t step(int32_t s, uint8_t b) const { return next[static_cast<size_t>(s) * ncls + cls[b]]; }
};

struct Budget {
  const std::string& what;
  size_t dfa_states = 0;
  size_t transitions = 0;
};

struct VecHash {
  size_t operator()(const std::vector<int32_t>& v) const {
    uint64_t h = 1469598103934665603ull;
    for (int32_t x : v) h = (h ^ static_cast<uint32_t>(x)) * 1099511628211ull;
    return static_cast<size_t>(h);
  }
};

class Nfa {
 public:
  explicit Nfa(const std::string& what) : what_(what) {}

  int32_t add_state() {
    EXL_CHECK(states_.size() < kMaxNfaStates, kUnsupported,
              "{}: too large to compile (more than {} automaton states; reduce repetition counts, string lengths "
              "or nesting)",
              what_, kMaxNfaStates);
    states_.emplace_back();
    return static_cast<int32_t>(states_.size() - 1);
  }
  void add_eps(int32_t from, int32_t to) { states_[static_cast<size_t>(from)].eps.push_back(to); }
  void add_bytes(int32_t from, const ByteSet& set, int32_t to) {
    auto [it, inserted] = set_ids_.try_emplace(set, static_cast<int32_t>(sets_.size()));
    if (inserted) sets_.push_back(set);
    states_[static_cast<size_t>(from)].bytes.emplace_back(it->second, to);
  }

  // Adds the expression's automaton starting at `in`; returns its end state. Never adds edges into `in`, so several
  // expressions built from one state are alternatives.
  int32_t build(const Expr& e, int32_t in) {
    switch (e.kind) {
      case ExprKind::kEmpty:
        return in;
      case ExprKind::kNothing:
        return add_state();
      case ExprKind::kBytes: {
        int32_t out = add_state();
        add_bytes(in, e.bytes, out);
        return out;
      }
      case ExprKind::kSeq: {
        int32_t cur = in;
        for (const auto& it : e.items) cur = build(*it, cur);
        return cur;
      }
      case ExprKind::kAlt: {
        int32_t out = add_state();
        for (const auto& it : e.items) {
          int32_t entry = add_state();
          add_eps(in, entry);
          add_eps(build(*it, entry), out);
        }
        return out;
      }
      case ExprKind::kRepeat:
        return build_repeat(*e.items[0], e.min, e.max, in);
      case ExprKind::kRule: {
        int32_t out = add_state();
        states_[static_cast<size_t>(in)].calls.emplace_back(e.rule, out);
        return out;
      }
      case ExprKind::kList:
        return build_list(e.list, in);
      case ExprKind::kExcept:
        return build_except(e, in);
    }
    return in;
  }

  const std::vector<NfaState>& states() const { return states_; }
  const std::vector<ByteSet>& sets() const { return sets_; }

 private:
  int32_t build_repeat(const Expr& item, int min, int max, int32_t in) {
    int32_t cur = in;
    for (int i = 0; i < min; ++i) cur = build(item, cur);
    if (max == kUnbounded) {
      int32_t loop = add_state();
      add_eps(cur, loop);
      add_eps(build(item, loop), loop);
      return loop;
    }
    if (max == min) return cur;
    int32_t out = add_state();
    for (int i = min; i < max; ++i) {
      add_eps(cur, out);
      cur = build(item, cur);
    }
    add_eps(cur, out);
    return out;
  }

  int32_t build_list(const ListParts& l, int32_t in) {
    int32_t none = in;  // nothing emitted yet (-1: impossible)
    int32_t some = -1;  // at least one item emitted
    for (const auto& m : l.members) {
      int32_t next_some = add_state();
      if (none >= 0) add_eps(build(*m.expr, none), next_some);
      if (some >= 0) add_eps(build(*m.expr, build(*l.sep, some)), next_some);
      int32_t next_none = -1;
      if (!m.required) {
        if (none >= 0) {
          next_none = add_state();
          add_eps(none, next_none);
        }
        if (some >= 0) add_eps(some, next_some);
      }
      none = next_none;
      some = next_some;
    }
    std::vector<int32_t> some_exits;
    bool none_exits = none >= 0;
    if (l.rest) {
      int cap = l.rest_max == kUnbounded ? std::max(l.rest_min, 1) : l.rest_max;
      int32_t prev = -1;
      for (int k = 1; k <= cap; ++k) {
        int32_t rk = add_state();
        if (k == 1) {
          if (none >= 0) add_eps(build(*l.rest, none), rk);
          if (some >= 0) add_eps(build(*l.rest, build(*l.sep, some)), rk);
        } else {
          add_eps(build(*l.rest, build(*l.sep, prev)), rk);
        }
        if (k >= l.rest_min) some_exits.push_back(rk);
        prev = rk;
      }
      if (l.rest_max == kUnbounded && prev >= 0) add_eps(build(*l.rest, build(*l.sep, prev)), prev);
      if (l.rest_min > 0) none_exits = false;
      if (l.rest_min == 0 && some >= 0) some_exits.push_back(some);
    } else if (some >= 0) {
      some_exits.push_back(some);
    }
    int32_t out = add_state();
    if (none_exits) add_eps(none, out);
    if (!some_exits.empty()) {
      int32_t tail_in = add_state();
      for (int32_t s : some_exits) add_eps(s, tail_in);
      add_eps(l.tail ? build(*l.tail, tail_in) : tail_in, out);
    }
    return out;
  }

  int32_t build_except(const Expr& e, int32_t in);

  std::string what_;
  std::vector<NfaState> states_;
  std::vector<ByteSet> sets_;
  std::unordered_map<ByteSet, int32_t> set_ids_;
};

// Byte classes: bytes that no edge set tells apart share a class (fills dfa.cls / dfa.ncls). Returns, per edge
// set, the classes it consists of.
std::vector<std::vector<int>> byte_classes(const std::vector<ByteSet>& sets, Dfa& dfa) {
  std::array<int, 256> cls{};
  int ncls = 1;
  for (const ByteSet& s : sets) {
    std::vector<int> remap(static_cast<size_t>(ncls) * 2, -1);
    int n = 0;
    for (size_t b = 0; b < 256; ++b) {
      int& slot = remap[static_cast<size_t>(cls[b]) * 2 + (s.test(b) ? 1 : 0)];
      if (slot < 0) slot = n++;
      cls[b] = slot;
    }
    ncls = n;
  }
  std::vector<size_t> rep(static_cast<size_t>(ncls), 256);
  for (size_t b = 0; b < 256; ++b) {
    dfa.cls[b] = static_cast<uint8_t>(cls[b]);
    if (rep[static_cast<size_t>(cls[b])] == 256) rep[static_cast<size_t>(cls[b])] = b;
  }
  dfa.ncls = ncls;
  std::vector<std::vector<int>> set_classes(sets.size());
  for (size_t i = 0; i < sets.size(); ++i)
    for (int c = 0; c < ncls; ++c)
      if (sets[i].test(rep[static_cast<size_t>(c)])) set_classes[i].push_back(c);
  return set_classes;
}

// Subset construction. Calls are symbols like bytes; several calls (or a call and a byte) leaving one state are the
// ambiguity the runtime follows in parallel.
// NFA states from which the final state can be reached (calls count only where the called rule can complete).
// Targets outside this set are dropped, so no DFA state is a dead end.
std::vector<bool> live_states(const Nfa& nfa, int32_t final_state, const std::vector<bool>& productive) {
  const auto& states = nfa.states();
  std::vector<std::vector<int32_t>> rev(states.size());
  for (size_t s = 0; s < states.size(); ++s) {
    for (int32_t t : states[s].eps) rev[static_cast<size_t>(t)].push_back(static_cast<int32_t>(s));
    for (auto [set, t] : states[s].bytes) rev[static_cast<size_t>(t)].push_back(static_cast<int32_t>(s));
    for (auto [rule, t] : states[s].calls)
      if (productive[static_cast<size_t>(rule)]) rev[static_cast<size_t>(t)].push_back(static_cast<int32_t>(s));
  }
  std::vector<bool> live(states.size(), false);
  std::vector<int32_t> stack{final_state};
  live[static_cast<size_t>(final_state)] = true;
  while (!stack.empty()) {
    int32_t s = stack.back();
    stack.pop_back();
    for (int32_t p : rev[static_cast<size_t>(s)])
      if (!live[static_cast<size_t>(p)]) {
        live[static_cast<size_t>(p)] = true;
        stack.push_back(p);
      }
  }
  return live;
}

Dfa determinize(const Nfa& nfa, int32_t start, int32_t final_state, const std::vector<bool>& live,
                const std::vector<bool>& productive, Budget& budget) {
  const auto& states = nfa.states();
  const auto& sets = nfa.sets();
  Dfa dfa;
  std::vector<std::vector<int>> set_classes = byte_classes(sets, dfa);
  const int ncls = dfa.ncls;

  std::vector<uint32_t> stamp(states.size(), 0);
  uint32_t epoch = 0;
  std::vector<int32_t> stack;
  auto closure = [&](std::vector<int32_t>& set) {
    ++epoch;
    stack.assign(set.begin(), set.end());
    set.clear();
    while (!stack.empty()) {
      int32_t s = stack.back();
      stack.pop_back();
      if (stamp[static_cast<size_t>(s)] == epoch || !live[static_cast<size_t>(s)]) continue;
      stamp[static_cast<size_t>(s)] = epoch;
      set.push_back(s);
      for (int32_t t : states[static_cast<size_t>(s)].eps) stack.push_back(t);
    }
    std::sort(set.begin(), set.end());
  };

  std::unordered_map<std::vector<int32_t>, int32_t, VecHash> ids;
  std::vector<std::vector<int32_t>> subsets;
  auto intern = [&](std::vector<int32_t>&& set) {
    auto it = ids.find(set);
    if (it != ids.end()) return it->second;
    EXL_CHECK(++budget.dfa_states <= kMaxDfaStates, kUnsupported,
              "{}: too large to compile (more than {} automaton states; reduce repetition counts, string lengths, "
              "alternatives or nesting)",
              budget.what, kMaxDfaStates);
    budget.transitions += static_cast<size_t>(ncls);
    EXL_CHECK(budget.transitions <= kMaxTransitions, kUnsupported,
              "{}: too large to compile (more than {} automaton transitions)", budget.what, kMaxTransitions);
    int32_t id = static_cast<int32_t>(subsets.size());
    ids.emplace(set, id);
    subsets.push_back(std::move(set));
    return id;
  };
  std::vector<int32_t> init{start};
  closure(init);
  intern(std::move(init));

  std::vector<std::vector<int32_t>> moves(static_cast<size_t>(ncls));
  std::map<int32_t, std::vector<int32_t>> call_moves;
  for (size_t d = 0; d < subsets.size(); ++d) {
    for (auto& m : moves) m.clear();
    call_moves.clear();
    bool accept = false;
    for (int32_t s : subsets[d]) {
      if (s == final_state) accept = true;
      const NfaState& st = states[static_cast<size_t>(s)];
      for (auto [set, target] : st.bytes)
        if (live[static_cast<size_t>(target)])
          for (int c : set_classes[static_cast<size_t>(set)]) moves[static_cast<size_t>(c)].push_back(target);
      for (auto [rule, target] : st.calls)
        if (live[static_cast<size_t>(target)] && productive[static_cast<size_t>(rule)])
          call_moves[rule].push_back(target);
    }
    dfa.accept.push_back(accept ? 1 : 0);
    dfa.next.resize(dfa.next.size() + static_cast<size_t>(ncls), -1);
    for (int c = 0; c < ncls; ++c) {
      if (moves[static_cast<size_t>(c)].empty()) continue;
      std::vector<int32_t> set = moves[static_cast<size_t>(c)];
      closure(set);
      if (set.empty()) continue;
      int32_t id = intern(std::move(set));
      dfa.next[d * static_cast<size_t>(ncls) + static_cast<size_t>(c)] = id;
    }
    std::vector<std::pair<int32_t, int32_t>> calls;
    for (auto& [rule, targets] : call_moves) {
      std::vector<int32_t> set = targets;
      closure(set);
      calls.emplace_back(rule, intern(std::move(set)));
    }
    dfa.calls.push_back(std::move(calls));
  }
  return dfa;
}

int32_t Nfa::build_except(const Expr& e, int32_t in) {
  Nfa sub(what_);
  int32_t sub_start = sub.add_state();
  int32_t sub_final = sub.build(*e.items[0], sub_start);
  Budget local{what_};
  std::vector<bool> no_rules;
  Dfa dfa = determinize(sub, sub_start, sub_final, live_states(sub, sub_final, no_rules), no_rules, local);
  for (const auto& c : dfa.calls)
    EXL_CHECK(c.empty(), kInternal, "{}: an excluded-strings expression may not call rules", what_);
  // Trie of the excluded strings.
  std::vector<std::map<uint8_t, int32_t>> children(1);
  std::vector<bool> terminal(1, false);
  for (const std::string& s : e.excluded) {
    int32_t t = 0;
    for (char ch : s) {
      auto b = static_cast<uint8_t>(ch);
      auto it = children[static_cast<size_t>(t)].find(b);
      if (it == children[static_cast<size_t>(t)].end()) {
        int32_t n = static_cast<int32_t>(children.size());
        children[static_cast<size_t>(t)][b] = n;
        children.emplace_back();
        terminal.push_back(false);
        t = n;
      } else {
        t = it->second;
      }
    }
    terminal[static_cast<size_t>(t)] = true;
  }
  // Product automaton (DFA state, trie node or -1 once off the trie).
  int32_t out = add_state();
  std::map<std::pair<int32_t, int32_t>, int32_t> ids;
  std::vector<std::pair<int32_t, int32_t>> work;
  auto state_of = [&](int32_t d, int32_t t) {
    auto [it, inserted] = ids.try_emplace({d, t}, -1);
    if (inserted) {
      it->second = add_state();
      work.emplace_back(d, t);
    }
    return it->second;
  };
  add_eps(in, state_of(0, 0));
  while (!work.empty()) {
    auto [d, t] = work.back();
    work.pop_back();
    int32_t from = ids.at({d, t});
    if (dfa.accept[static_cast<size_t>(d)] && !(t >= 0 && terminal[static_cast<size_t>(t)])) add_eps(from, out);
    std::map<std::pair<int32_t, int32_t>, ByteSet> edges;
    for (int b = 0; b < 256; ++b) {
      int32_t nd = dfa.step(d, static_cast<uint8_t>(b));
      if (nd < 0) continue;
      int32_t nt = -1;
      if (t >= 0) {
        auto it = children[static_cast<size_t>(t)].find(static_cast<uint8_t>(b));
        if (it != children[static_cast<size_t>(t)].end()) nt = it->second;
      }
      edges[{nd, nt}].set(static_cast<size_t>(b));
    }
    for (auto& [key, set] : edges) {
      int32_t to = state_of(key.first, key.second);
      add_bytes(ids.at({d, t}), set, to);
    }
  }
  return out;
}

ExprPtr substitute(const ExprPtr& e, const std::function<ExprPtr(int)>& f) {
  switch (e->kind) {
    case ExprKind::kRule:
      return f(e->rule);
    case ExprKind::kSeq:
    case ExprKind::kAlt: {
      std::vector<ExprPtr> items;
      for (const auto& it : e->items) items.push_back(substitute(it, f));
      return e->kind == ExprKind::kSeq ? seq(std::move(items)) : alt(std::move(items));
    }
    case ExprKind::kRepeat:
      return repeat(substitute(e->items[0], f), e->min, e->max);
    case ExprKind::kList: {
      ListParts parts = e->list;
      for (auto& m : parts.members) m.expr = substitute(m.expr, f);
      for (auto* p : {&parts.sep, &parts.rest, &parts.tail})
        if (*p) *p = substitute(*p, f);
      return list(std::move(parts));
    }
    default:
      return e;
  }
}

void collect_refs(const Expr& e, std::vector<int>& out) {
  if (e.kind == ExprKind::kRule) out.push_back(e.rule);
  for (const auto& it : e.items) collect_refs(*it, out);
  for (const auto& m : e.list.members) collect_refs(*m.expr, out);
  for (const auto* p : {&e.list.sep, &e.list.rest, &e.list.tail})
    if (*p) collect_refs(**p, out);
}

// Rules that can reach themselves through calls (never inlined).
std::vector<bool> recursive_rules(const std::vector<std::vector<int>>& refs) {
  size_t n = refs.size();
  std::vector<bool> rec(n, false);
  for (size_t r = 0; r < n; ++r) {
    std::vector<bool> seen(n, false);
    std::vector<int> stack(refs[r].begin(), refs[r].end());
    while (!stack.empty() && !rec[r]) {
      int x = stack.back();
      stack.pop_back();
      if (static_cast<size_t>(x) == r) rec[r] = true;
      if (seen[static_cast<size_t>(x)]) continue;
      seen[static_cast<size_t>(x)] = true;
      for (int y : refs[static_cast<size_t>(x)]) stack.push_back(y);
    }
  }
  return rec;
}

// Inlines what can be, then keeps only the rules reachable from the start rule (renumbered; start becomes 0).
std::vector<Rule> simplify(const Grammar& g) {
  size_t n = g.rules.size();
  std::vector<std::vector<int>> refs(n);
  for (size_t r = 0; r < n; ++r) {
    EXL_CHECK(g.rules[r].body != nullptr, kInternal, "{}: rule {} has no body", g.what, g.rules[r].name);
    collect_refs(*g.rules[r].body, refs[r]);
    for (int x : refs[r])
      EXL_CHECK(x >= 0 && static_cast<size_t>(x) < n, kInternal, "{}: rule {} calls rule #{} of {}", g.what,
                g.rules[r].name, x, n);
  }
  std::vector<bool> rec = recursive_rules(refs);
  std::vector<ExprPtr> body(n);
  std::function<ExprPtr(int)> resolve = [&](int r) -> ExprPtr {
    auto& b = body[static_cast<size_t>(r)];
    if (!b) b = substitute(g.rules[static_cast<size_t>(r)].body, [&](int x) {
      const Rule& callee = g.rules[static_cast<size_t>(x)];
      if (rec[static_cast<size_t>(x)] || !callee.inlinable || x == g.start) return rule_ref(x);
      ExprPtr inner = resolve(x);
      return expr_size(*inner) <= kInlineMaxSize ? inner : rule_ref(x);
    });
    return b;
  };
  // Reachability from the start rule over the simplified bodies.
  std::vector<int> order{g.start};
  std::vector<int> new_id(n, -1);
  new_id[static_cast<size_t>(g.start)] = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    std::vector<int> out;
    collect_refs(*resolve(order[i]), out);
    for (int x : out)
      if (new_id[static_cast<size_t>(x)] < 0) {
        new_id[static_cast<size_t>(x)] = static_cast<int>(order.size());
        order.push_back(x);
      }
  }
  std::vector<Rule> rules;
  for (int r : order) {
    Rule rule = g.rules[static_cast<size_t>(r)];
    rule.body = substitute(resolve(r), [&](int x) { return rule_ref(new_id[static_cast<size_t>(x)]); });
    rules.push_back(std::move(rule));
  }
  return rules;
}

// An upper estimate of the NFA states an expression needs, so that a huge repetition fails before it is built.
double nfa_estimate(const Expr& e) {
  switch (e.kind) {
    case ExprKind::kRepeat: {
      double copies = e.max == kUnbounded ? e.min + 1.0 : static_cast<double>(e.max);
      return 2.0 + copies * (nfa_estimate(*e.items[0]) + 1.0);
    }
    case ExprKind::kList: {
      double n = 2.0;
      for (const auto& m : e.list.members) n += 2.0 * (nfa_estimate(*m.expr) + nfa_estimate(*e.list.sep) + 2.0);
      if (e.list.rest) {
        double copies = e.list.rest_max == kUnbounded ? e.list.rest_min + 2.0 : e.list.rest_max + 1.0;
        n += copies * (nfa_estimate(*e.list.rest) + nfa_estimate(*e.list.sep) + 2.0);
      }
      if (e.list.tail) n += nfa_estimate(*e.list.tail);
      return n;
    }
    default: {
      double n = 2.0;
      for (const auto& it : e.items) n += nfa_estimate(*it) + 1.0;
      return n;
    }
  }
}

// States of rule r reachable from its start without consuming a byte (skipping calls of nullable rules).
std::vector<int32_t> zero_reach(const Program& p, int32_t r) {
  std::vector<int32_t> out{p.rules[static_cast<size_t>(r)].start};
  for (size_t i = 0; i < out.size(); ++i) {
    int32_t s = out[i];
    for (uint32_t c = p.call_begin[static_cast<size_t>(s)]; c < p.call_begin[static_cast<size_t>(s) + 1]; ++c) {
      const Call& call = p.calls[c];
      if (p.rules[static_cast<size_t>(call.rule)].nullable &&
          std::find(out.begin(), out.end(), call.ret) == out.end())
        out.push_back(call.ret);
    }
  }
  return out;
}

void analyze(Program& p) {
  size_t n = p.rules.size();
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < n; ++r) {
      if (p.rules[r].nullable) continue;
      for (int32_t s : zero_reach(p, static_cast<int32_t>(r)))
        if (p.flags(s) & Program::kAccept) {
          p.rules[r].nullable = true;
          changed = true;
          break;
        }
    }
  }
  std::vector<std::vector<int32_t>> reach(n);
  std::vector<std::vector<int>> first_calls(n);
  for (size_t r = 0; r < n; ++r) {
    reach[r] = zero_reach(p, static_cast<int32_t>(r));
    for (int32_t s : reach[r])
      for (uint32_t c = p.call_begin[static_cast<size_t>(s)]; c < p.call_begin[static_cast<size_t>(s) + 1]; ++c)
        first_calls[r].push_back(p.calls[c].rule);
  }
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < n; ++r) {
      ByteSet f;
      for (int32_t s : reach[r]) f |= p.out_bytes[static_cast<size_t>(s)];
      for (int x : first_calls[r]) f |= p.rules[static_cast<size_t>(x)].first;
      if (f != p.rules[r].first) {
        p.rules[r].first = f;
        changed = true;
      }
    }
  }
  std::vector<std::vector<int>> all_calls(n);
  for (int32_t s = 0; s < p.num_states(); ++s)
    for (uint32_t c = p.call_begin[static_cast<size_t>(s)]; c < p.call_begin[static_cast<size_t>(s) + 1]; ++c)
      all_calls[static_cast<size_t>(p.rule_of(s))].push_back(p.calls[c].rule);
  std::vector<bool> rec = recursive_rules(all_calls);
  for (size_t r = 0; r < n; ++r) p.rules[r].recursive = rec[r];
  // Left recursion: a rule that can call itself before consuming a byte would push forever.
  std::vector<int> color(n, 0);
  std::vector<int> path;
  std::function<void(int)> visit = [&](int r) {
    color[static_cast<size_t>(r)] = 1;
    path.push_back(r);
    for (int x : first_calls[static_cast<size_t>(r)]) {
      if (color[static_cast<size_t>(x)] == 1) {
        std::string cycle;
        auto it = std::find(path.begin(), path.end(), x);
        for (; it != path.end(); ++it) cycle += p.rules[static_cast<size_t>(*it)].name + " -> ";
        fail(ErrorKind::kInvalidArgument,
             "{}: left recursion: {}{} can be reached again without consuming any input (rewrite the rule so "
             "something is matched before the recursive reference)",
             p.what, cycle, p.rules[static_cast<size_t>(x)].name);
      }
      if (color[static_cast<size_t>(x)] == 0) visit(x);
    }
    path.pop_back();
    color[static_cast<size_t>(r)] = 2;
  };
  for (size_t r = 0; r < n; ++r)
    if (color[r] == 0) visit(static_cast<int>(r));
}

// One DFA per rule, with states that cannot complete (and calls of rules that can never complete) removed.
std::vector<Dfa> rule_automata(const Grammar& grammar, const std::vector<Rule>& rules) {
  Budget budget{grammar.what};
  std::vector<Nfa> nfas;
  std::vector<int32_t> finals;
  for (const Rule& r : rules) {
    double estimate = nfa_estimate(*r.body);
    EXL_CHECK(estimate <= static_cast<double>(kMaxNfaStates), kUnsupported,
              "{}: too large to compile (rule {} needs about {:.0f} automaton states, the limit is {}; reduce "
              "repetition counts, string lengths or nesting)",
              grammar.what, r.name, estimate, kMaxNfaStates);
    nfas.emplace_back(grammar.what);
    int32_t start = nfas.back().add_state();  // 0
    finals.push_back(nfas.back().build(*r.body, start));
  }
  std::vector<bool> productive(rules.size(), false);
  std::vector<std::vector<bool>> live(rules.size());
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < rules.size(); ++r) {
      live[r] = live_states(nfas[r], finals[r], productive);
      if (live[r][0] && !productive[r]) {
        productive[r] = true;
        changed = true;
      }
    }
  }
  EXL_CHECK(productive[0], kInvalidArgument, "{}: matches nothing (the start rule {} can never complete)",
            grammar.what, rules[0].name);
  std::vector<Dfa> dfas;
  for (size_t r = 0; r < rules.size(); ++r) {
    dfas.push_back(determinize(nfas[r], 0, finals[r], live[r], productive, budget));
    nfas[r] = Nfa(grammar.what);  // free it
  }
  return dfas;
}

// Numbers all DFA states globally and lays out the tables the runtime reads.
std::shared_ptr<Program> flatten(const Grammar& grammar, const std::vector<Rule>& rules, const std::vector<Dfa>& dfas) {
  auto p = std::make_shared<Program>();
  p->what = grammar.what;
  p->max_depth = grammar.max_depth;
  p->start_rule = 0;
  std::vector<int32_t> offset;
  int32_t total = 0;
  for (size_t r = 0; r < rules.size(); ++r) {
    offset.push_back(total);
    Program::RuleInfo info;
    info.name = rules[r].name;
    info.start = total;
    p->rules.push_back(std::move(info));
    total += dfas[r].num_states();
  }
  p->call_begin.push_back(0);
  for (size_t r = 0; r < rules.size(); ++r) {
    const Dfa& d = dfas[r];
    p->classes.insert(p->classes.end(), d.cls.begin(), d.cls.end());
    std::vector<ByteSet> class_bytes(static_cast<size_t>(d.ncls));
    for (size_t b = 0; b < 256; ++b) class_bytes[d.cls[b]].set(b);
    for (int32_t s = 0; s < d.num_states(); ++s) {
      auto row = static_cast<int32_t>(p->next.size());
      ByteSet out;
      for (int c = 0; c < d.ncls; ++c) {
        int32_t t = d.next[static_cast<size_t>(s) * static_cast<size_t>(d.ncls) + static_cast<size_t>(c)];
        p->next.push_back(t < 0 ? -1 : t + offset[r]);
        if (t >= 0) out |= class_bytes[static_cast<size_t>(c)];
      }
      p->out_bytes.push_back(out);
      uint8_t flags = d.accept[static_cast<size_t>(s)] ? Program::kAccept : 0;
      for (auto [rule, target] : d.calls[static_cast<size_t>(s)]) {
        p->calls.push_back({rule, target + offset[r]});
        flags |= Program::kHasCalls;
      }
      p->call_begin.push_back(static_cast<uint32_t>(p->calls.size()));
      p->info.push_back({row, static_cast<uint32_t>(r) << 8 | flags});
    }
  }
  return p;
}

}  // namespace

std::shared_ptr<const Program> compile_grammar(const Grammar& grammar) {
  EXL_CHECK(grammar.start >= 0 && static_cast<size_t>(grammar.start) < grammar.rules.size(), kInternal,
            "{}: start rule #{} of {}", grammar.what, grammar.start, grammar.rules.size());
  std::vector<Rule> rules = simplify(grammar);
  EXL_CHECK(rules.size() < (size_t{1} << 23), kUnsupported, "{}: too many rules ({}, at most {})", grammar.what,
            rules.size(), size_t{1} << 23);
  std::vector<Dfa> dfas = rule_automata(grammar, rules);
  std::shared_ptr<Program> p = flatten(grammar, rules, dfas);
  analyze(*p);
  return p;
}

}  // namespace exl::constrain::detail
