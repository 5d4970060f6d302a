// BlockPool: refcounted sharing, chained prefix hashes, the LRU of cached pages, eviction order and stats.
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "core/error.h"
#include "generator/block_pool.h"

namespace exl::generator {
namespace {

constexpr int64_t kPageSize = 4;

std::vector<int32_t> iota_tokens(int32_t first, int64_t n) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), first);
  return v;
}

// Allocates and commits the full pages of `tokens` (as a sequence that computed them would); returns its pages.
std::vector<int32_t> write_sequence(BlockPool& pool, const std::vector<int32_t>& tokens) {
  std::vector<int32_t> pages;
  uint64_t parent = BlockPool::kRootHash;
  const int64_t n = static_cast<int64_t>(tokens.size());
  for (int64_t i = 0; i * kPageSize < n; ++i) {
    int32_t page = pool.allocate();
    if ((i + 1) * kPageSize <= n) {
      uint64_t h = 0;
      page = pool.commit_full(page, parent, std::span(tokens).subspan(i * kPageSize, kPageSize), &h);
      parent = h;
    }
    pages.push_back(page);
  }
  return pages;
}

void release_all(BlockPool& pool, const std::vector<int32_t>& pages) {
  for (auto it = pages.rbegin(); it != pages.rend(); ++it) pool.release(*it);
}

TEST(BlockPool, StartsEmptyAndAllocatesInOrder) {
  BlockPool pool(8, kPageSize);
  EXPECT_EQ(pool.free_pages(), 8);
  EXPECT_EQ(pool.used_pages(), 0);
  EXPECT_EQ(pool.allocate(), 0);
  EXPECT_EQ(pool.allocate(), 1);
  EXPECT_EQ(pool.used_pages(), 2);
  EXPECT_EQ(pool.free_pages(), 6);
  pool.check_invariants();
}

TEST(BlockPool, SharedPrefixPagesAreRefcounted) {
  BlockPool pool(16, kPageSize);
  const auto a = iota_tokens(100, 10);  // two full pages and a partial one
  const auto pa = write_sequence(pool, a);
  ASSERT_EQ(pa.size(), 3u);
  EXPECT_TRUE(pool.is_hashed(pa[0]));
  EXPECT_TRUE(pool.is_hashed(pa[1]));
  EXPECT_FALSE(pool.is_hashed(pa[2]));  // the last partial page is private

  auto b = iota_tokens(100, 8);
  b.push_back(7);
  const PrefixMatch m = pool.match_prefix(b, 100);
  ASSERT_EQ(m.pages, (std::vector<int32_t>{pa[0], pa[1]}));
  EXPECT_EQ(m.unreferenced, 0);
  pool.acquire(m, static_cast<int64_t>(b.size()));
  EXPECT_EQ(pool.refcount(pa[0]), 2);
  EXPECT_EQ(pool.refcount(pa[1]), 2);
  EXPECT_EQ(pool.refcount(pa[2]), 1);
  EXPECT_EQ(pool.used_pages(), 3);  // sharing takes no new pages

  pool.release(pa[1]);
  pool.release(pa[0]);
  EXPECT_EQ(pool.refcount(pa[0]), 1);
  EXPECT_EQ(pool.cached_pages(), 0);
  pool.check_invariants();
}

TEST(BlockPool, MatchIsLimitedToFullPagesAndMaxPages) {
  BlockPool pool(16, kPageSize);
  const auto a = iota_tokens(1, 12);
  write_sequence(pool, a);
  EXPECT_EQ(pool.match_prefix(a, 100).pages.size(), 3u);
  EXPECT_EQ(pool.match_prefix(a, 2).pages.size(), 2u);
  EXPECT_EQ(pool.match_prefix(std::span(a).first(11), 100).pages.size(), 2u);
  EXPECT_EQ(pool.match_prefix(std::span(a).first(3), 100).pages.size(), 0u);
}

TEST(BlockPool, ChainedHashesDistinguishPrefixes) {
  BlockPool pool(16, kPageSize);
  // a = X Y, b = Z Y: the second pages hold the same tokens after different prefixes.
  const std::vector<int32_t> a = {1, 2, 3, 4, 5, 6, 7, 8};
  const std::vector<int32_t> b = {9, 9, 9, 9, 5, 6, 7, 8};
  const auto pa = write_sequence(pool, a);
  EXPECT_NE(BlockPool::hash_page(BlockPool::kRootHash, std::span(a).subspan(4, 4)),
            BlockPool::hash_page(BlockPool::hash_page(BlockPool::kRootHash, std::span(a).first(4)),
                                 std::span(a).subspan(4, 4)));
  EXPECT_TRUE(pool.match_prefix(b, 100).pages.empty());
  const auto pb = write_sequence(pool, b);
  EXPECT_NE(pa[1], pb[1]);  // not deduplicated across different prefixes
  EXPECT_EQ(pool.match_prefix(b, 100).pages, pb);
  EXPECT_EQ(pool.match_prefix(a, 100).pages, pa);
  pool.check_invariants();
}

TEST(BlockPool, CommitDeduplicatesIdenticalPages) {
  BlockPool pool(16, kPageSize);
  const auto a = iota_tokens(10, 8);
  const auto pa = write_sequence(pool, a);
  // A second sequence computed the same pages privately (admitted before the first committed them).
  const auto pb = write_sequence(pool, a);
  EXPECT_EQ(pb, pa);
  EXPECT_EQ(pool.refcount(pa[0]), 2);
  EXPECT_EQ(pool.refcount(pa[1]), 2);
  EXPECT_EQ(pool.used_pages(), 2);
  EXPECT_EQ(pool.free_pages(), 14);
  pool.check_invariants();
}

TEST(BlockPool, CachedPagesAreReattachedAfterRelease) {
  BlockPool pool(16, kPageSize);
  const auto a = iota_tokens(50, 9);
  const auto pa = write_sequence(pool, a);
  release_all(pool, pa);
  EXPECT_EQ(pool.used_pages(), 0);
  EXPECT_EQ(pool.cached_pages(), 2);
  EXPECT_EQ(pool.free_pages(), 14);

  const PrefixMatch m = pool.match_prefix(a, 2);
  ASSERT_EQ(m.pages, (std::vector<int32_t>{pa[0], pa[1]}));
  EXPECT_EQ(m.unreferenced, 2);
  pool.acquire(m, 9);
  EXPECT_EQ(pool.cached_pages(), 0);
  EXPECT_EQ(pool.used_pages(), 2);
  EXPECT_EQ(pool.refcount(pa[0]), 1);
  const PoolStats s = pool.stats();
  EXPECT_EQ(s.lookups, 1);
  EXPECT_EQ(s.lookup_tokens, 9);
  EXPECT_EQ(s.hit_tokens, 8);
  pool.check_invariants();
}

TEST(BlockPool, EvictsFreePagesFirstThenOldestCached) {
  BlockPool pool(4, kPageSize);
  const auto a = iota_tokens(0, 4), b = iota_tokens(10, 4), c = iota_tokens(20, 4);
  const auto pa = write_sequence(pool, a), pb = write_sequence(pool, b), pc = write_sequence(pool, c);
  release_all(pool, pb);  // cached order: b, a, c
  release_all(pool, pa);
  release_all(pool, pc);
  EXPECT_EQ(pool.cached_pages(), 3);
  EXPECT_EQ(pool.free_pages(), 1);
  EXPECT_EQ(pool.available_pages(), 4);

  const int32_t fresh = pool.allocate();  // the free page, nothing evicted
  EXPECT_FALSE(pool.is_hashed(fresh));
  EXPECT_EQ(pool.cached_pages(), 3);
  EXPECT_EQ(pool.allocate(), pb[0]);  // then the least recently cached
  EXPECT_TRUE(pool.match_prefix(b, 1).pages.empty());
  EXPECT_EQ(pool.match_prefix(a, 1).pages, pa);

  // Reattaching a cached page and releasing it again makes it the newest.
  PrefixMatch m = pool.match_prefix(a, 1);
  pool.acquire(m, 4);
  pool.release(pa[0]);
  EXPECT_EQ(pool.allocate(), pc[0]);
  EXPECT_EQ(pool.allocate(), pa[0]);
  EXPECT_EQ(pool.available_pages(), 0);
  try {
    pool.allocate();
    FAIL() << "expected kOutOfMemory";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kOutOfMemory);
    EXPECT_NE(std::string(e.what()).find("all 4 pages"), std::string::npos) << e.what();
  }
  pool.check_invariants();
}

TEST(BlockPool, StatsCountStates) {
  BlockPool pool(10, kPageSize);
  const auto pa = write_sequence(pool, iota_tokens(0, 10));  // 2 hashed + 1 partial
  const int32_t extra = pool.allocate();
  PoolStats s = pool.stats();
  EXPECT_EQ(s.num_pages, 10);
  EXPECT_EQ(s.used_pages, 4);
  EXPECT_EQ(s.cached_pages, 0);
  EXPECT_EQ(s.free_pages, 6);
  release_all(pool, pa);
  pool.release(extra);
  s = pool.stats();
  EXPECT_EQ(s.used_pages, 0);
  EXPECT_EQ(s.cached_pages, 2);
  EXPECT_EQ(s.free_pages, 8);
  pool.check_invariants();
}

TEST(BlockPool, MisuseIsAnInternalError) {
  BlockPool pool(2, kPageSize);
  EXPECT_THROW(pool.release(0), Error);
  EXPECT_THROW(pool.release(5), Error);
  const int32_t p = pool.allocate();
  uint64_t h = 0;
  const auto t = iota_tokens(0, 4);
  EXPECT_THROW(pool.commit_full(p, BlockPool::kRootHash, std::span(t).first(3), &h), Error);
  pool.commit_full(p, BlockPool::kRootHash, t, &h);
  EXPECT_THROW(pool.commit_full(p, BlockPool::kRootHash, t, &h), Error);  // already read only
  EXPECT_THROW(BlockPool(0, 4), Error);
  EXPECT_THROW(BlockPool(4, 0), Error);
}

}  // namespace
}  // namespace exl::generator
