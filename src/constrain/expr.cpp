#include "constrain/expr.h"

#include <algorithm>

namespace exl::constrain::detail {
namespace {

ExprPtr make(Expr e) { return std::make_shared<const Expr>(std::move(e)); }

const ExprPtr& shared_empty() {
  static const ExprPtr e = make(Expr{});
  return e;
}

const ExprPtr& shared_nothing() {
  static const ExprPtr e = [] {
    Expr x;
    x.kind = ExprKind::kNothing;
    return make(std::move(x));
  }();
  return e;
}

int utf8_length(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

// Emits byte-range sequences for [lo, hi], both of the same encoded length: split until, at every continuation
// position, the range either fixes the higher bits or spans the whole 6-bit block, so the per-byte ranges of the
// two encodings describe exactly the set.
void split_utf8(uint32_t lo, uint32_t hi, std::vector<ExprPtr>& out) {
  int n = utf8_length(lo);
  for (int i = 1; i < n; ++i) {
    uint32_t m = (1u << (6 * i)) - 1;
    if ((lo & ~m) == (hi & ~m)) continue;
    if ((lo & m) != 0) {
      split_utf8(lo, lo | m, out);
      split_utf8((lo | m) + 1, hi, out);
      return;
    }
    if ((hi & m) != m) {
      split_utf8(lo, (hi & ~m) - 1, out);
      split_utf8(hi & ~m, hi, out);
      return;
    }
  }
  std::string a, b;
  append_utf8(a, lo);
  append_utf8(b, hi);
  std::vector<ExprPtr> parts;
  for (size_t k = 0; k < a.size(); ++k)
    parts.push_back(byte_range(static_cast<uint8_t>(a[k]), static_cast<uint8_t>(b[k])));
  out.push_back(seq(std::move(parts)));
}

}  // namespace

ExprPtr empty() { return shared_empty(); }
ExprPtr nothing() { return shared_nothing(); }

ExprPtr bytes(const ByteSet& set) {
  if (set.none()) return nothing();
  Expr e;
  e.kind = ExprKind::kBytes;
  e.bytes = set;
  return make(std::move(e));
}

ExprPtr byte_range(uint8_t lo, uint8_t hi) {
  ByteSet s;
  for (int b = lo; b <= hi; ++b) s.set(static_cast<size_t>(b));
  return bytes(s);
}

ExprPtr literal(std::string_view text) {
  std::vector<ExprPtr> parts;
  for (char c : text) parts.push_back(byte_range(static_cast<uint8_t>(c), static_cast<uint8_t>(c)));
  return seq(std::move(parts));
}

ExprPtr seq(std::vector<ExprPtr> items) {
  std::vector<ExprPtr> kept;
  for (auto& it : items) {
    if (it->kind == ExprKind::kNothing) return nothing();
    if (it->kind == ExprKind::kEmpty) continue;
    if (it->kind == ExprKind::kSeq) {
      kept.insert(kept.end(), it->items.begin(), it->items.end());
    } else {
      kept.push_back(std::move(it));
    }
  }
  if (kept.empty()) return empty();
  if (kept.size() == 1) return kept[0];
  Expr e;
  e.kind = ExprKind::kSeq;
  e.items = std::move(kept);
  return make(std::move(e));
}

ExprPtr alt(std::vector<ExprPtr> items) {
  std::vector<ExprPtr> kept;
  for (auto& it : items) {
    if (it->kind == ExprKind::kNothing) continue;
    if (it->kind == ExprKind::kAlt) {
      kept.insert(kept.end(), it->items.begin(), it->items.end());
    } else {
      kept.push_back(std::move(it));
    }
  }
  if (kept.empty()) return nothing();
  if (kept.size() == 1) return kept[0];
  Expr e;
  e.kind = ExprKind::kAlt;
  e.items = std::move(kept);
  return make(std::move(e));
}

ExprPtr repeat(ExprPtr item, int min, int max) {
  if (max == 0) return empty();
  if (item->kind == ExprKind::kEmpty) return empty();
  if (item->kind == ExprKind::kNothing) return min == 0 ? empty() : nothing();
  if (min == 1 && max == 1) return item;
  Expr e;
  e.kind = ExprKind::kRepeat;
  e.items = {std::move(item)};
  e.min = min;
  e.max = max;
  return make(std::move(e));
}

ExprPtr optional(ExprPtr item) { return repeat(std::move(item), 0, 1); }

ExprPtr rule_ref(int rule) {
  Expr e;
  e.kind = ExprKind::kRule;
  e.rule = rule;
  return make(std::move(e));
}

ExprPtr list(ListParts parts) {
  Expr e;
  e.kind = ExprKind::kList;
  if (!parts.sep) parts.sep = empty();
  e.list = std::move(parts);
  return make(std::move(e));
}

ExprPtr except(ExprPtr item, std::vector<std::string> excluded) {
  if (excluded.empty()) return item;
  Expr e;
  e.kind = ExprKind::kExcept;
  e.items = {std::move(item)};
  e.excluded = std::move(excluded);
  return make(std::move(e));
}

size_t expr_size(const Expr& e) {
  size_t n = 1;
  for (const auto& it : e.items) n += expr_size(*it);
  for (const auto& m : e.list.members) n += expr_size(*m.expr);
  for (const auto* p : {&e.list.sep, &e.list.rest, &e.list.tail})
    if (*p) n += expr_size(**p);
  return n;
}

bool expr_calls_rules(const Expr& e) {
  if (e.kind == ExprKind::kRule) return true;
  for (const auto& it : e.items)
    if (expr_calls_rules(*it)) return true;
  for (const auto& m : e.list.members)
    if (expr_calls_rules(*m.expr)) return true;
  for (const auto* p : {&e.list.sep, &e.list.rest, &e.list.tail})
    if (*p && expr_calls_rules(**p)) return true;
  return false;
}

CodepointSet CodepointSet::of(uint32_t lo, uint32_t hi) {
  CodepointSet s;
  s.add(lo, hi);
  return s;
}

CodepointSet CodepointSet::all() {
  CodepointSet s;
  s.add(0, 0xD7FF);
  s.add(0xE000, kMaxCodepoint);
  return s;
}

void CodepointSet::add(uint32_t lo, uint32_t hi) {
  if (lo > hi) return;
  ranges_.push_back({lo, hi});
  std::sort(ranges_.begin(), ranges_.end(), [](const Range& a, const Range& b) { return a.lo < b.lo; });
  std::vector<Range> merged;
  for (const Range& r : ranges_) {
    if (!merged.empty() && r.lo <= merged.back().hi + 1) {
      merged.back().hi = std::max(merged.back().hi, r.hi);
    } else {
      merged.push_back(r);
    }
  }
  ranges_ = std::move(merged);
}

void CodepointSet::add(const CodepointSet& other) {
  for (const Range& r : other.ranges_) add(r.lo, r.hi);
}

CodepointSet CodepointSet::complement() const { return all().minus(*this); }

CodepointSet CodepointSet::minus(const CodepointSet& other) const {
  CodepointSet out;
  for (Range r : ranges_) {
    uint32_t lo = r.lo;
    bool done = false;
    for (const Range& o : other.ranges_) {
      if (o.hi < lo || o.lo > r.hi) continue;
      if (o.lo > lo) out.add(lo, o.lo - 1);
      if (o.hi >= r.hi) {
        done = true;
        break;
      }
      lo = o.hi + 1;
    }
    if (!done) out.add(lo, r.hi);
  }
  return out;
}

bool CodepointSet::contains(uint32_t cp) const {
  for (const Range& r : ranges_)
    if (cp >= r.lo && cp <= r.hi) return true;
  return false;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

ExprPtr utf8_expr(const CodepointSet& set) {
  CodepointSet valid = set.minus(CodepointSet::of(0xD800, 0xDFFF));
  std::vector<ExprPtr> out;
  ByteSet ascii;
  static constexpr uint32_t kLengthEnds[] = {0x7F, 0x7FF, 0xFFFF, CodepointSet::kMaxCodepoint};
  for (const auto& r : valid.ranges()) {
    uint32_t lo = r.lo;
    for (uint32_t end : kLengthEnds) {
      if (lo > r.hi) break;
      if (lo > end) continue;
      uint32_t hi = std::min(r.hi, end);
      if (end == 0x7F) {
        for (uint32_t c = lo; c <= hi; ++c) ascii.set(c);
      } else {
        split_utf8(lo, hi, out);
      }
      lo = hi + 1;
    }
  }
  if (ascii.any()) out.insert(out.begin(), bytes(ascii));
  return alt(std::move(out));
}

}  // namespace exl::constrain::detail
