// Backend selection for CLI commands: "cpu", "cuda" or "auto" (CUDA when built with it and a GPU is present).
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "model/model_weights.h"
#include "model/runner.h"

namespace exl::cli {

struct RunnerChoice {
  std::string backend = "auto";
  int64_t cache_tokens = 8192;
  // KV cache format (cache::parse_kv_format names); empty: the backend's exact default (cpu fp32, cuda fp16).
  std::string cache;
  model::ModelOverrides overrides;  // load-time overrides (add_override_options)
};

// --max-seq-len, --rope-scale, --rope-alpha: run a model past its trained context, as ExLlamaV2 allows.
void add_override_options(CLI::App* cmd, model::ModelOverrides* overrides);

std::unique_ptr<model::Runner> make_runner(const model::ModelWeights& weights, const RunnerChoice& choice);
bool cuda_available();

}  // namespace exl::cli
