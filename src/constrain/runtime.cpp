#include "constrain/runtime.h"

#include <algorithm>

namespace exl::constrain::detail {

Runtime::Runtime(std::shared_ptr<const Program> program) : program_(std::move(program)) {
  nodes_.push_back({0, -1, 0});  // node 0: the empty stack
}

Position Runtime::initial() const {
  return {Head{0, program_->rules[static_cast<size_t>(program_->start_rule)].start}};
}

uint32_t Runtime::intern(uint32_t parent, int32_t state) {
  uint64_t key = (static_cast<uint64_t>(parent) << 32) | static_cast<uint32_t>(state);
  auto [it, inserted] = node_ids_.try_emplace(key, static_cast<uint32_t>(nodes_.size()));
  if (inserted) nodes_.push_back({parent, state, nodes_[parent].depth + 1});
  return it->second;
}

bool Runtime::seen(const Head& h) {
  if (std::find(seen_.begin(), seen_.end(), h) != seen_.end()) return true;
  seen_.push_back(h);
  return false;
}

// Visits every head reachable without consuming a byte by returning from accepting rules and skipping calls of
// nullable rules. Calls that would consume input are left to the caller (they depend on the byte).
template <typename Visit>
void Runtime::closure(std::span<const Head> in, Visit&& visit) {
  const Program& p = *program_;
  seen_.clear();
  work_.assign(in.begin(), in.end());
  while (!work_.empty()) {
    Head h = work_.back();
    work_.pop_back();
    if (seen(h)) continue;
    visit(h);
    auto s = static_cast<size_t>(h.state);
    if (p.flags(h.state) & Program::kHasCalls) {
      for (uint32_t c = p.call_begin[s]; c < p.call_begin[s + 1]; ++c)
        if (p.rules[static_cast<size_t>(p.calls[c].rule)].nullable) work_.push_back({h.node, p.calls[c].ret});
    }
    if ((p.flags(h.state) & Program::kAccept) && h.node != 0) {
      const Node& n = nodes_[h.node];
      work_.push_back({n.parent, n.state});
    }
  }
}

void Runtime::step(std::span<const Head> in, uint8_t b, Position& out) {
  const Program& p = *program_;
  out.clear();
  if (in.size() == 1) {
    const Head& h = in[0];
    uint8_t f = p.flags(h.state);
    if (!(f & Program::kHasCalls) && (!(f & Program::kAccept) || h.node == 0)) {
      int32_t n = p.step(h.state, b);
      if (n >= 0) out.push_back({h.node, n});
      return;
    }
  }
  seen_.clear();
  work_.assign(in.begin(), in.end());
  while (!work_.empty()) {
    Head h = work_.back();
    work_.pop_back();
    if (seen(h)) continue;
    auto s = static_cast<size_t>(h.state);
    int32_t n = p.step(h.state, b);
    if (n >= 0) out.push_back({h.node, n});
    if (p.flags(h.state) & Program::kHasCalls) {
      bool can_push = nodes_[h.node].depth < static_cast<uint32_t>(p.max_depth);
      for (uint32_t c = p.call_begin[s]; c < p.call_begin[s + 1]; ++c) {
        const Call& call = p.calls[c];
        const auto& rule = p.rules[static_cast<size_t>(call.rule)];
        if (rule.nullable) work_.push_back({h.node, call.ret});
        if ((can_push || !rule.recursive) && rule.first.test(b))
          work_.push_back({intern(h.node, call.ret), rule.start});
      }
    }
    if ((p.flags(h.state) & Program::kAccept) && h.node != 0) {
      const Node& nd = nodes_[h.node];
      work_.push_back({nd.parent, nd.state});
    }
  }
  if (out.size() > 1) {
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
  }
}

bool Runtime::accepts(std::span<const Head> in) {
  const Program& p = *program_;
  bool accept = false;
  closure(in, [&](const Head& h) {
    if (h.node == 0 && (p.flags(h.state) & Program::kAccept)) accept = true;
  });
  return accept;
}

ByteSet Runtime::next_bytes(std::span<const Head> in) {
  const Program& p = *program_;
  ByteSet out;
  closure(in, [&](const Head& h) {
    auto s = static_cast<size_t>(h.state);
    out |= p.out_bytes[s];
    bool can_push = nodes_[h.node].depth < static_cast<uint32_t>(p.max_depth);
    for (uint32_t c = p.call_begin[s]; c < p.call_begin[s + 1]; ++c) {
      const auto& rule = p.rules[static_cast<size_t>(p.calls[c].rule)];
      if (can_push || !rule.recursive) out |= rule.first;
    }
  });
  return out;
}

}  // namespace exl::constrain::detail
