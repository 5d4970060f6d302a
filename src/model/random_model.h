// Random models in real shapes for benchmarks: valid EXL2 / GPTQ / FP16 files (exl2-format.md), random but never
// zero weights at realistic magnitudes. Quantized tensors are drawn directly as random codes and scales (no
// quantization pass), so even 70B-sized files are written at disk speed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/log.h"

namespace exl::model {

enum class RandomFormat { kExl2, kGptq, kFp16 };

struct RandomModelOptions {
  // llama3-8b, llama2-7b, llama3-70b, llama3.2-1b, tiny, qwen2.5-7b, gemma2-9b, mixtral-8x7b, qwen3-30b-a3b, and the
  // test shapes tiny-qwen3-moe, tiny-qwen2, tiny-qwen3, tiny-gemma2
  std::string preset = "llama3-8b";
  RandomFormat format = RandomFormat::kExl2;
  double bpw = 4.0;       // EXL2 decoder layers
  int head_bits = 6;      // EXL2 head
  int gptq_group_size = 128;
  uint64_t seed = 1;
};

std::vector<std::string> random_model_presets();
// Writes config.json, generation_config.json and model.safetensors into `dir` (created if needed).
void write_random_model(const std::filesystem::path& dir, const RandomModelOptions& options,
                        const ProgressSink& progress = {});

}  // namespace exl::model
