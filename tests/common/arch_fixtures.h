// The architecture fixtures under tests/fixtures/arch/<name>/ (made by scripts/arch_fixtures/make_arch_fixtures.py):
// their folder and the names of those that have reference logits. Shared by the CPU and CUDA fixture tests.
#pragma once

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "testdata.h"

namespace exl::testing {

inline std::filesystem::path arch_fixtures_root() { return source_dir() / "tests/fixtures/arch"; }

inline std::vector<std::string> arch_fixture_names() {
  namespace fs = std::filesystem;
  std::vector<std::string> names;
  if (!fs::exists(arch_fixtures_root())) return names;
  for (const auto& e : fs::directory_iterator(arch_fixtures_root()))
    if (e.is_directory() && fs::exists(e.path() / "refs.safetensors")) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace exl::testing
