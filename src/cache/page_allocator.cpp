#include "cache/page_allocator.h"

#include "core/error.h"

namespace exl::cache {

PageAllocator::PageAllocator(int64_t num_pages) : num_pages_(num_pages) {
  EXL_CHECK(num_pages > 0 && num_pages < (1ll << 31), kInvalidArgument, "cache: page count {} must be in [1, 2^31)",
            num_pages);
  for (int64_t i = num_pages - 1; i >= 0; --i) free_.push_back(static_cast<int32_t>(i));
}

int32_t PageAllocator::allocate() {
  EXL_CHECK(!free_.empty(), kOutOfMemory, "cache: all {} pages are in use (increase the cache size)", num_pages_);
  int32_t page = free_.back();
  free_.pop_back();
  return page;
}

void PageAllocator::release(int32_t page) {
  EXL_CHECK(page >= 0 && page < num_pages_, kInternal, "cache: releasing page {} outside the pool of {}", page,
            num_pages_);
  free_.push_back(page);
}

void reserve_tokens(PageAllocator& allocator, SequenceCache& seq, int64_t new_length, int64_t page_size) {
  const int64_t need = (new_length + page_size - 1) / page_size;
  if (need - static_cast<int64_t>(seq.pages.size()) > allocator.free_pages()) {
    fail(ErrorKind::kOutOfMemory, "cache: sequence needs {} more pages of {} tokens for length {}, {} of {} are free",
         need - static_cast<int64_t>(seq.pages.size()), page_size, new_length, allocator.free_pages(),
         allocator.num_pages());
  }
  while (static_cast<int64_t>(seq.pages.size()) < need) seq.pages.push_back(allocator.allocate());
}

void release_all(PageAllocator& allocator, SequenceCache& seq) {
  for (int32_t p : seq.pages) allocator.release(p);
  seq.pages.clear();
  seq.length = 0;
}

}  // namespace exl::cache
