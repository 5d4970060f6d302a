#include "generator/block_pool.h"

#include <algorithm>

#include "core/error.h"

namespace exl::generator {

namespace {

uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace

BlockPool::BlockPool(int64_t num_pages, int64_t page_size) : num_pages_(num_pages), page_size_(page_size) {
  EXL_CHECK(num_pages > 0 && num_pages <= INT32_MAX, kInvalidArgument, "BlockPool: expected 1 to {} pages, found {}",
            INT32_MAX, num_pages);
  EXL_CHECK(page_size > 0, kInvalidArgument, "BlockPool: expected a positive page_size, found {}", page_size);
  const auto n = static_cast<size_t>(num_pages);
  refcount_.assign(n, 0);
  hashed_.assign(n, 0);
  hash_.assign(n, 0);
  parent_.assign(n, 0);
  tokens_.assign(n * static_cast<size_t>(page_size), 0);
  lru_prev_.assign(n, kNone);
  lru_next_.assign(n, kNone);
  in_lru_.assign(n, 0);
  free_.reserve(n);
  for (int64_t p = num_pages - 1; p >= 0; --p) free_.push_back(static_cast<int32_t>(p));
}

PoolStats BlockPool::stats() const {
  return PoolStats{num_pages_, used_pages(), cached_pages(), free_pages(), lookups_, lookup_tokens_, hit_tokens_};
}

uint64_t BlockPool::hash_page(uint64_t parent, std::span<const int32_t> tokens) {
  uint64_t h = mix64(parent ^ 0x3c6ef372fe94f82bULL);
  for (int32_t t : tokens) h = mix64(h ^ (static_cast<uint64_t>(static_cast<uint32_t>(t)) + 0x9e3779b97f4a7c15ULL));
  return mix64(h + static_cast<uint64_t>(tokens.size()));
}

void BlockPool::check_page(int32_t page) const {
  EXL_CHECK(page >= 0 && page < num_pages_, kInternal, "BlockPool: page {} is outside the pool of {} pages", page,
            num_pages_);
}

std::span<const int32_t> BlockPool::page_tokens(int32_t page) const {
  return std::span<const int32_t>(tokens_.data() + static_cast<int64_t>(page) * page_size_,
                                  static_cast<size_t>(page_size_));
}

PrefixMatch BlockPool::match_prefix(std::span<const int32_t> tokens, int64_t max_pages) const {
  PrefixMatch match;
  uint64_t parent = kRootHash;
  const int64_t limit = std::min(max_pages, static_cast<int64_t>(tokens.size()) / page_size_);
  for (int64_t i = 0; i < limit; ++i) {
    const auto chunk = tokens.subspan(static_cast<size_t>(i * page_size_), static_cast<size_t>(page_size_));
    const uint64_t h = hash_page(parent, chunk);
    const auto it = index_.find(h);
    if (it == index_.end()) break;
    const int32_t page = it->second;
    if (parent_[page] != parent || !std::ranges::equal(page_tokens(page), chunk)) break;  // a hash collision
    match.pages.push_back(page);
    match.hashes.push_back(h);
    if (refcount_[page] == 0) ++match.unreferenced;
    parent = h;
  }
  return match;
}

void BlockPool::acquire(const PrefixMatch& match, int64_t query_tokens) {
  for (int32_t page : match.pages) {
    check_page(page);
    EXL_CHECK(hashed_[page], kInternal, "BlockPool: acquire of page {}, which holds no cached prefix", page);
    if (refcount_[page] == 0) lru_remove(page);
    ++refcount_[page];
  }
  ++lookups_;
  lookup_tokens_ += query_tokens;
  hit_tokens_ += static_cast<int64_t>(match.pages.size()) * page_size_;
}

int32_t BlockPool::allocate() {
  int32_t page = kNone;
  if (!free_.empty()) {
    page = free_.back();
    free_.pop_back();
  } else if (lru_head_ != kNone) {
    page = lru_head_;
    lru_remove(page);
    unhash(page);
  } else {
    fail(ErrorKind::kOutOfMemory, "BlockPool: all {} pages of {} tokens are in use; none free or cached", num_pages_,
         page_size_);
  }
  refcount_[page] = 1;
  return page;
}

int32_t BlockPool::commit_full(int32_t page, uint64_t parent, std::span<const int32_t> tokens, uint64_t* hash) {
  check_page(page);
  EXL_CHECK(refcount_[page] == 1 && !hashed_[page], kInternal,
            "BlockPool: commit of page {} expected a private unhashed page, found refcount {}{}", page, refcount_[page],
            hashed_[page] ? " and a hash" : "");
  EXL_CHECK(static_cast<int64_t>(tokens.size()) == page_size_, kInternal,
            "BlockPool: commit of page {} expected {} tokens, found {}", page, page_size_, tokens.size());
  const uint64_t h = hash_page(parent, tokens);
  *hash = h;
  const auto it = index_.find(h);
  if (it != index_.end()) {
    const int32_t other = it->second;
    if (parent_[other] == parent && std::ranges::equal(page_tokens(other), tokens)) {
      // The same content is already cached: share that page and free this copy.
      if (refcount_[other] == 0) lru_remove(other);
      ++refcount_[other];
      release(page);
      return other;
    }
    return page;  // a true hash collision: this page stays private and uncached
  }
  hashed_[page] = 1;
  hash_[page] = h;
  parent_[page] = parent;
  std::ranges::copy(tokens, tokens_.begin() + static_cast<int64_t>(page) * page_size_);
  index_.emplace(h, page);
  return page;
}

void BlockPool::release(int32_t page) {
  check_page(page);
  EXL_CHECK(refcount_[page] > 0, kInternal, "BlockPool: release of page {}, which holds no reference", page);
  if (--refcount_[page] > 0) return;
  if (hashed_[page])
    lru_push_back(page);
  else
    free_.push_back(page);
}

int32_t BlockPool::refcount(int32_t page) const {
  check_page(page);
  return refcount_[page];
}

bool BlockPool::is_hashed(int32_t page) const {
  check_page(page);
  return hashed_[page] != 0;
}

void BlockPool::lru_push_back(int32_t page) {
  lru_prev_[page] = lru_tail_;
  lru_next_[page] = kNone;
  if (lru_tail_ != kNone)
    lru_next_[lru_tail_] = page;
  else
    lru_head_ = page;
  lru_tail_ = page;
  in_lru_[page] = 1;
  ++num_cached_;
}

void BlockPool::lru_remove(int32_t page) {
  EXL_CHECK(in_lru_[page], kInternal, "BlockPool: page {} is not in the LRU", page);
  const int32_t prev = lru_prev_[page], next = lru_next_[page];
  if (prev != kNone)
    lru_next_[prev] = next;
  else
    lru_head_ = next;
  if (next != kNone)
    lru_prev_[next] = prev;
  else
    lru_tail_ = prev;
  lru_prev_[page] = lru_next_[page] = kNone;
  in_lru_[page] = 0;
  --num_cached_;
}

void BlockPool::unhash(int32_t page) {
  if (!hashed_[page]) return;
  const auto it = index_.find(hash_[page]);
  if (it != index_.end() && it->second == page) index_.erase(it);
  hashed_[page] = 0;
}

void BlockPool::check_invariants() const {
  std::vector<uint8_t> is_free(static_cast<size_t>(num_pages_), 0);
  for (int32_t p : free_) {
    check_page(p);
    EXL_CHECK(!is_free[p], kInternal, "BlockPool: page {} is twice in the free list", p);
    is_free[p] = 1;
  }
  int64_t lru_count = 0;
  for (int32_t p = lru_head_, prev = kNone; p != kNone; prev = p, p = lru_next_[p]) {
    EXL_CHECK(lru_prev_[p] == prev && in_lru_[p] && ++lru_count <= num_pages_, kInternal,
              "BlockPool: the LRU list is broken at page {}", p);
  }
  EXL_CHECK(lru_count == num_cached_, kInternal, "BlockPool: the LRU holds {} pages, its count says {}", lru_count,
            num_cached_);
  int64_t indexed = 0;
  for (int32_t p = 0; p < num_pages_; ++p) {
    const int states = (refcount_[p] > 0) + is_free[p] + in_lru_[p];
    EXL_CHECK(states == 1 && refcount_[p] >= 0, kInternal,
              "BlockPool: page {} expected exactly one state, found refcount {}, free {}, cached {}", p, refcount_[p],
              is_free[p], in_lru_[p]);
    EXL_CHECK(!is_free[p] || !hashed_[p], kInternal, "BlockPool: free page {} carries a hash", p);
    EXL_CHECK(!in_lru_[p] || hashed_[p], kInternal, "BlockPool: cached page {} carries no hash", p);
    if (hashed_[p]) {
      const auto it = index_.find(hash_[p]);
      EXL_CHECK(it != index_.end() && it->second == p, kInternal, "BlockPool: hashed page {} is not indexed", p);
      ++indexed;
    }
  }
  EXL_CHECK(indexed == static_cast<int64_t>(index_.size()), kInternal,
            "BlockPool: the hash index has {} entries for {} hashed pages", index_.size(), indexed);
}

}  // namespace exl::generator
