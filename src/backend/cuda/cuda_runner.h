// The CUDA model runner: FP16 activations and weights, fp32 accumulation, paged FP16 KV cache on the device,
// CUDA graphs for decode steps.
#pragma once

#include <memory>
#include <string>

#include "backend/cuda/tuning.h"
#include "model/model_weights.h"
#include "model/runner.h"

namespace exl::cuda {

struct CudaRunnerOptions {
  int64_t cache_tokens = 8192;  // KV capacity in tokens (rounded up to pages)
  int64_t page_size = 256;
  int device = 0;
  int64_t max_batch_tokens = 2048;  // largest forward() chunk; longer inputs are split
  // Timing only (exl bench --skip-kernels): one-token decode steps leave these launches out, so the outputs are
  // wrong. Comma-separated: qkv, attn (attention with its merge), o, gateup, down, head. Empty: none. Needs the
  // fused one-token path (EXL2/GPTQ layers).
  std::string timing_skip;
  // Launch knobs (exl bench --tune; docs/tuning.md), range-checked when the runner is created.
  CudaTuning tuning;
};

// Refuses (kOutOfMemory, with needed vs free bytes) before allocating when the model and cache do not fit, and
// (kInvalidArgument, naming the key, range and value) before touching the device when options.tuning is out of range.
std::unique_ptr<model::Runner> make_cuda_runner(const model::ModelWeights& weights, const CudaRunnerOptions& options);

}  // namespace exl::cuda
