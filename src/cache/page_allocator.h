// Paged KV cache bookkeeping shared by every backend: a pool of fixed-size pages (page_size tokens each) and
// per-sequence block tables. The page storage itself belongs to the backend.
#pragma once

#include <cstdint>
#include <vector>

namespace exl::cache {

class PageAllocator {
 public:
  explicit PageAllocator(int64_t num_pages);
  int64_t num_pages() const { return num_pages_; }
  int64_t free_pages() const { return static_cast<int64_t>(free_.size()); }
  // kOutOfMemory with the numbers when the pool is exhausted.
  int32_t allocate();
  void release(int32_t page);

 private:
  int64_t num_pages_;
  std::vector<int32_t> free_;
};

struct SequenceCache {
  std::vector<int32_t> pages;  // block table
  int64_t length = 0;          // tokens whose K/V are in the pages
};

// Grows seq's block table so that it holds `new_length` tokens.
void reserve_tokens(PageAllocator& allocator, SequenceCache& seq, int64_t new_length, int64_t page_size);
void release_all(PageAllocator& allocator, SequenceCache& seq);

}  // namespace exl::cache
