#include <cctype>

#include "constrain/constrain.h"
#include "constrain/vocab_index.h"
#include "core/error.h"

namespace exl::constrain {
namespace {

std::string printable(std::string_view bytes) {
  std::string out;
  for (char c : bytes) {
    auto b = static_cast<uint8_t>(c);
    if (b == '"' || b == '\\') {
      out += '\\';
      out += c;
    } else if (b >= 0x20 && b < 0x7F) {
      out += c;
    } else {
      out += fmt::format("\\x{:02x}", b);
    }
  }
  return out;
}

std::string describe_bytes(const std::bitset<256>& set) {
  std::string out;
  int shown = 0;
  for (int b = 0; b < 256 && shown < 24; ++b) {
    if (!set.test(static_cast<size_t>(b))) continue;
    out += (shown++ ? " " : "") + printable(std::string(1, static_cast<char>(b)));
  }
  if (static_cast<int>(set.count()) > shown) out += fmt::format(" ... ({} bytes)", set.count());
  return out.empty() ? "none (the output must end)" : out;
}

}  // namespace

TokenMasker::TokenMasker(const Vocabulary& vocab, const Constraint& constraint, const MaskerOptions& options)
    : vocab_(vocab), matcher_(constraint), options_(options) {}

// Walks the vocabulary trie in preorder, keeping the automaton position reached at each depth. Most of the walk
// happens inside one rule (string contents, numbers, keys), where the position is a single head whose state has
// no calls and no return: that case is two table lookups per trie node; anything else goes through Runtime::step.
std::shared_ptr<const TokenBitmask> TokenMasker::compute_mask_locked() const {
  const detail::VocabIndex& v = vocab_.index();
  detail::Runtime& rt = *matcher_.runtime_;
  const detail::Program& p = rt.program();
  auto mask = std::make_shared<TokenBitmask>(vocab_.size());
  size_t levels_needed = v.max_length + 1;
  // Per depth: a single head as (node, state) in two arrays (4-byte stores and loads forward cleanly; the walk is
  // bound by this store-to-load chain), or state -1 and the general position in multi[d].
  std::vector<uint32_t> head_node(levels_needed, 0);
  std::vector<int32_t> head_state(levels_needed, -1);
  std::vector<detail::Position> multi(levels_needed);
  auto set_level = [&](size_t d) {
    if (multi[d].size() == 1) {
      head_node[d] = multi[d][0].node;
      head_state[d] = multi[d][0].state;
    } else {
      head_state[d] = -1;
    }
  };
  multi[0] = matcher_.position_;
  set_level(0);
  detail::Position scratch;
  // Everything but the single-plain-head case; kept out of line so the hot loop keeps its registers.
  auto general_step = [&](uint32_t d, uint8_t b) __attribute__((noinline)) {
    if (head_state[d - 1] >= 0) {
      scratch.assign(1, detail::Head{head_node[d - 1], head_state[d - 1]});
      rt.step(scratch, b, multi[d]);
    } else {
      rt.step(multi[d - 1], b, multi[d]);
    }
    set_level(d);
    return !multi[d].empty();
  };
  // Raw pointers: the stores below could otherwise alias every vector the loop reads.
  const detail::Program::StateInfo* info = p.info.data();
  const uint8_t* classes = p.classes.data();
  const int32_t* next_table = p.next.data();
  const uint8_t* node_byte = v.node_byte.data();
  const uint32_t* node_depth = v.node_depth.data();
  const uint32_t* node_end = v.node_end.data();
  const uint32_t* node_first = v.node_first.data();
  const int32_t* sorted = v.sorted.data();
  uint32_t* lnode = head_node.data();
  int32_t* lstate = head_state.data();
  uint64_t* words = mask->words_.data();
  const size_t n = v.node_byte.size();
  size_t i = 0;
  while (i < n) {
    uint32_t d = node_depth[i];
    uint8_t b = node_byte[i];
    int32_t state = lstate[d - 1];
    bool alive = false;
    if (state >= 0) {
      uint32_t node = lnode[d - 1];
      const detail::Program::StateInfo si = info[static_cast<size_t>(state)];
      uint32_t f = si.rule_flags;
      if (!(f & detail::Program::kHasCalls) && (!(f & detail::Program::kAccept) || node == 0)) {
        int32_t next = next_table[static_cast<size_t>(si.row) + classes[(f & ~0xFFu) + b]];
        lnode[d] = node;
        lstate[d] = next;
        alive = next >= 0;
      } else {
        alive = general_step(d, b);
      }
    } else {
      alive = general_step(d, b);
    }
    if (!alive) {
      i = node_end[i];
      continue;
    }
    for (uint32_t k = node_first[i]; k < node_first[i + 1]; ++k) {
      auto t = static_cast<uint32_t>(sorted[k]);
      words[t >> 6] |= uint64_t{1} << (t & 63);
    }
    ++i;
  }
  if (rt.accepts(matcher_.position_))
    for (int32_t id : v.eos) mask->set(id);
  return mask;
}

std::shared_ptr<const TokenBitmask> TokenMasker::mask() const {
  if (ended_) return std::make_shared<TokenBitmask>(vocab_.size());
  detail::Runtime& rt = *matcher_.runtime_;
  std::lock_guard lock(rt.mu);
  auto it = rt.masks.find(matcher_.position_);
  if (it != rt.masks.end()) {
    ++rt.mask_hits;
    return it->second;
  }
  ++rt.mask_misses;
  auto mask = compute_mask_locked();
  size_t bytes = mask->words().size() * sizeof(uint64_t) + matcher_.position_.size() * sizeof(detail::Head) + 64;
  if (rt.mask_bytes + bytes > options_.mask_cache_bytes) {
    rt.masks.clear();
    rt.mask_bytes = 0;
  }
  if (bytes <= options_.mask_cache_bytes) {
    rt.masks.emplace(matcher_.position_, mask);
    rt.mask_bytes += bytes;
  }
  return mask;
}

std::shared_ptr<const TokenBitmask> TokenMasker::compute_mask_uncached() const {
  if (ended_) return std::make_shared<TokenBitmask>(vocab_.size());
  std::lock_guard lock(matcher_.runtime_->mu);
  return compute_mask_locked();
}

std::vector<int32_t> TokenMasker::allowed_tokens() const { return mask()->ids(); }

std::vector<int32_t> TokenMasker::blocked_tokens() const {
  auto m = mask();
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(m->size() - m->count()));
  for (int32_t id = 0; id < m->size(); ++id)
    if (!m->test(id)) out.push_back(id);
  return out;
}

void TokenMasker::fill_allowed(std::vector<uint8_t>& allowed) const {
  auto m = mask();
  allowed.assign(static_cast<size_t>(vocab_.size()), 0);
  for (int32_t id : m->ids()) allowed[static_cast<size_t>(id)] = 1;
}

bool TokenMasker::is_allowed(int32_t token) const {
  if (token < 0 || token >= vocab_.size() || ended_) return false;
  switch (vocab_.kind(token)) {
    case TokenKind::kSpecial:
      return false;
    case TokenKind::kEos:
      return matcher_.accepting();
    case TokenKind::kText:
      break;
  }
  const std::string& bytes = vocab_.token_bytes(token);
  if (bytes.empty()) return false;
  Matcher probe = matcher_;
  return probe.advance(std::string_view(bytes)) == bytes.size();
}

void TokenMasker::advance(int32_t token) {
  EXL_CHECK(token >= 0 && token < vocab_.size(), kInvalidArgument,
            "constrained output: token id {} outside the vocabulary [0, {})", token, vocab_.size());
  EXL_CHECK(!ended_, kInvalidArgument, "constrained output: token {} after the end of the output (EOS was consumed)",
            token);
  TokenKind kind = vocab_.kind(token);
  if (kind == TokenKind::kEos) {
    EXL_CHECK(matcher_.accepting(), kInvalidArgument,
              "constrained output: EOS token {} is not allowed: the {} is incomplete (next byte expected: {})", token,
              matcher_.runtime()->program().what, describe_bytes(matcher_.next_bytes()));
    ended_ = true;
    return;
  }
  EXL_CHECK(kind == TokenKind::kText, kInvalidArgument,
            "constrained output: special token {} is never allowed in constrained output", token);
  const std::string& bytes = vocab_.token_bytes(token);
  EXL_CHECK(!bytes.empty(), kInvalidArgument, "constrained output: token {} has no bytes and is never allowed",
            token);
  Matcher probe = matcher_;
  size_t consumed = probe.advance(std::string_view(bytes));
  if (consumed != bytes.size()) {
    Matcher at = matcher_;
    at.advance(std::string_view(bytes).substr(0, consumed));
    fail(ErrorKind::kInvalidArgument,
         "constrained output: token {} (\"{}\") is not allowed: its byte {} (\"{}\") cannot follow; expected one of: "
         "{}",
         token, printable(bytes), consumed, printable(bytes.substr(consumed, 1)), describe_bytes(at.next_bytes()));
  }
  matcher_ = std::move(probe);
}

void TokenMasker::advance_bytes(std::string_view bytes) {
  EXL_CHECK(!ended_, kInvalidArgument, "constrained output: text after the end of the output (EOS was consumed)");
  Matcher probe = matcher_;
  size_t consumed = probe.advance(bytes);
  if (consumed != bytes.size()) {
    Matcher at = matcher_;
    at.advance(bytes.substr(0, consumed));
    fail(ErrorKind::kInvalidArgument,
         "constrained output: text \"{}\" is not allowed: byte {} (\"{}\") cannot follow; expected one of: {}",
         printable(bytes), consumed, printable(bytes.substr(consumed, 1)), describe_bytes(at.next_bytes()));
  }
  matcher_ = std::move(probe);
}

bool TokenMasker::accepting() const { return !ended_ && matcher_.accepting(); }

bool TokenMasker::finished() const { return ended_ || matcher_.finished(); }

void TokenMasker::reset() {
  matcher_.reset();
  ended_ = false;
}

TokenMasker::CacheStats TokenMasker::cache_stats() const {
  detail::Runtime& rt = *matcher_.runtime_;
  std::lock_guard lock(rt.mu);
  return {rt.mask_hits, rt.mask_misses, rt.masks.size(), rt.mask_bytes};
}

}  // namespace exl::constrain
