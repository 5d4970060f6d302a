// The architecture registry: HF architecture string -> builder. Each family file registers its builders in one
// register_<family>() function listed in model_spec.cpp.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "io/model_config.h"
#include "model/model_spec.h"

namespace exl::model::arch {

using Builder = std::function<ModelSpec(const io::ModelConfig&)>;

class Registry {
 public:
  void add(std::string architecture, Builder builder) {
    entries_.push_back({std::move(architecture), std::move(builder)});
  }
  struct Entry {
    std::string architecture;
    Builder build;
  };
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::vector<Entry> entries_;
};

void register_llama(Registry& r);
void register_qwen(Registry& r);
void register_mixtral(Registry& r);
void register_gemma(Registry& r);
void register_phi(Registry& r);
void register_cohere(Registry& r);
void register_gpt2(Registry& r);
void register_starcoder2(Registry& r);
void register_dbrx(Registry& r);
void register_granite_moe(Registry& r);
void register_glm(Registry& r);

}  // namespace exl::model::arch
