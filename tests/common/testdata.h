// Locating ../shared/testdata from tests; tests skip with a clear message when it is absent.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace exl::testing {

// EXL_TESTDATA_DIR in the environment overrides the compiled-in location (used on the GPU machine, where the
// test data is carried next to the binaries).
inline std::filesystem::path testdata_dir() {
  if (const char* env = std::getenv("EXL_TESTDATA_DIR")) return std::filesystem::path(env);
  return std::filesystem::path(EXL_TESTDATA_DIR);
}
// EXL_SOURCE_DIR in the environment likewise overrides the checkout the tests read their in-tree fixtures from (the
// GPU machine runs binaries built here in a copy of the tree at another path).
inline std::filesystem::path source_dir() {
  if (const char* env = std::getenv("EXL_SOURCE_DIR")) return std::filesystem::path(env);
  return std::filesystem::path(EXL_SOURCE_DIR);
}

}  // namespace exl::testing

// Skips the current test when a needed testdata path is missing.
#define EXL_REQUIRE_TESTDATA(path)                                                              \
  do {                                                                                          \
    if (!std::filesystem::exists(path))                                                         \
      GTEST_SKIP() << "test data not found: " << (path).string() << " (needs ../shared/testdata)"; \
  } while (0)
