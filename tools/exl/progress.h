// Progress bar on stderr for long work (loading, perplexity).
#pragma once

#include <unistd.h>

#include <cstdio>
#include <string_view>

namespace exl::cli {

inline void print_progress(std::string_view label, long long done, long long total) {
  if (total <= 0) return;
  if (!isatty(2) && done < total) return;  // logs get only the final line
  const int width = 30;
  const int filled = static_cast<int>(width * done / total);
  std::fprintf(stderr, "\r%.*s [%.*s%*s] %lld/%lld", static_cast<int>(label.size()), label.data(), filled,
               "##############################", width - filled, "", done, total);
  if (done >= total) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

}  // namespace exl::cli
