#include "model/architecture.h"

#include "core/error.h"

namespace exl::model {
namespace {

const std::vector<ArchitectureSpec>& registry() {
  static const std::vector<ArchitectureSpec> all = [] {
    std::vector<ArchitectureSpec> specs;
    for (auto& s : llama_family_architectures()) specs.push_back(std::move(s));
    return specs;
  }();
  return all;
}

}  // namespace

std::vector<std::string> supported_architectures() {
  std::vector<std::string> names;
  for (const auto& s : registry()) names.push_back(s.name);
  return names;
}

const ArchitectureSpec& find_architecture(const std::string& name) {
  for (const auto& s : registry())
    if (s.name == name) return s;
  std::string list;
  for (const auto& s : registry()) list += (list.empty() ? "" : ", ") + s.name;
  fail(ErrorKind::kUnsupported, "architecture '{}' is not supported (supported: {})", name, list);
}

}  // namespace exl::model
