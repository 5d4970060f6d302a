// Reference-counted KV pages with a prefix cache. Every full page a sequence writes gets a hash chained through its
// parent page's hash, so a page matches only after the same whole prefix. Sequences that start with the same full
// pages share them (refcount > 1); a hashed page whose last reference goes away stays cached in an LRU until its
// slot is needed, and a later sequence with that prefix takes it back. Shared and hashed pages are read only: a
// sequence writes only into its private last page.
//
// Page states: used (refcount > 0), cached (refcount 0, hashed, in the LRU), free (refcount 0, no hash).
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

namespace exl::generator {

struct PoolStats {
  int64_t num_pages = 0;
  int64_t used_pages = 0;
  int64_t cached_pages = 0;
  int64_t free_pages = 0;
  int64_t lookups = 0;        // prefix lookups acquired (one per admission)
  int64_t lookup_tokens = 0;  // tokens those lookups asked for
  int64_t hit_tokens = 0;     // tokens they found cached
};

struct PrefixMatch {
  std::vector<int32_t> pages;    // cached pages holding the prefix, in order
  std::vector<uint64_t> hashes;  // their chained hashes
  int64_t unreferenced = 0;      // how many of them sit in the LRU (acquiring them takes them from available)
};

class BlockPool {
 public:
  static constexpr uint64_t kRootHash = 0x6a09e667f3bcc908ULL;  // the parent hash of a sequence's first page

  BlockPool(int64_t num_pages, int64_t page_size);
  int64_t num_pages() const { return num_pages_; }
  int64_t page_size() const { return page_size_; }
  int64_t used_pages() const { return num_pages_ - free_pages() - cached_pages(); }
  int64_t cached_pages() const { return num_cached_; }
  int64_t free_pages() const { return static_cast<int64_t>(free_.size()); }
  // Pages allocate() can hand out: free ones, then cached ones by eviction.
  int64_t available_pages() const { return free_pages() + cached_pages(); }
  PoolStats stats() const;

  // Hash of a full page of `tokens` following the page hashed `parent`.
  static uint64_t hash_page(uint64_t parent, std::span<const int32_t> tokens);

  // The longest run of cached full pages that `tokens` starts with, at most max_pages; takes no references.
  PrefixMatch match_prefix(std::span<const int32_t> tokens, int64_t max_pages) const;
  // Takes a reference on every page of `match` (cached ones leave the LRU) and counts one lookup of query_tokens.
  void acquire(const PrefixMatch& match, int64_t query_tokens);
  // A private page (refcount 1): a free one first, else the least recently cached one is evicted. kOutOfMemory when
  // every page is referenced.
  int32_t allocate();
  // `page`, private and now full with `tokens` after the page hashed `parent`, becomes read only and cacheable.
  // Returns the page the owner keeps: `page`, or an existing page with the same hash, parent and tokens (then
  // `page` is freed and that one gains a reference). `*hash` gets the page's hash either way.
  int32_t commit_full(int32_t page, uint64_t parent, std::span<const int32_t> tokens, uint64_t* hash);
  // Drops one reference; at zero a hashed page becomes cached (newest in the LRU), another becomes free.
  void release(int32_t page);

  int32_t refcount(int32_t page) const;
  bool is_hashed(int32_t page) const;
  // Every page in exactly one state, the LRU and free list consistent, the hash index exact (kInternal if not).
  void check_invariants() const;

 private:
  static constexpr int32_t kNone = -1;
  void check_page(int32_t page) const;
  void lru_push_back(int32_t page);
  void lru_remove(int32_t page);
  void unhash(int32_t page);
  std::span<const int32_t> page_tokens(int32_t page) const;

  int64_t num_pages_, page_size_;
  std::vector<int32_t> refcount_;
  std::vector<uint8_t> hashed_;
  std::vector<uint64_t> hash_, parent_;
  std::vector<int32_t> tokens_;  // [num_pages, page_size]: a hashed page's token ids, to rule out hash collisions
  std::vector<int32_t> free_;    // stack; allocate() pops the back
  std::vector<int32_t> lru_prev_, lru_next_;
  std::vector<uint8_t> in_lru_;
  int32_t lru_head_ = kNone, lru_tail_ = kNone;  // head: least recently cached
  int64_t num_cached_ = 0;
  std::unordered_map<uint64_t, int32_t> index_;  // hash -> the one page registered under it
  int64_t lookups_ = 0, lookup_tokens_ = 0, hit_tokens_ = 0;
};

}  // namespace exl::generator
