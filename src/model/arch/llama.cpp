// The Llama family: Llama 1/2/3/3.1/3.2 and Mistral (sliding window). Pre-norm decoder, RMSNorm, rotary
// embeddings (rotate-half), GQA attention, SiLU-gated MLP, optional untied head.
#include "model/architecture.h"

namespace exl::model {

std::vector<ArchitectureSpec> llama_family_architectures() {
  ArchitectureSpec llama;
  llama.name = "LlamaForCausalLM";
  llama.family = "llama";
  ArchitectureSpec mistral = llama;
  mistral.name = "MistralForCausalLM";
  mistral.supports_sliding_window = true;
  return {llama, mistral};
}

}  // namespace exl::model
