// End-to-end speed of the CUDA runner on one model: prefill, time to first token, batch-1 decode at several
// context lengths, launches per token, and decode as a fraction of the bandwidth ceiling measured in the same run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/cuda/tuning.h"
#include "model/model_weights.h"

namespace exl::cuda {

struct BenchOptions {
  int64_t prompt_tokens = 2048;                      // prefill / time-to-first-token prompt
  int64_t decode_tokens = 128;                       // tokens generated per decode measurement
  std::vector<int64_t> contexts = {128, 2048, 8192};  // decode starts after this many cached tokens
  int repetitions = 3;                               // median over these
  int64_t page_size = 256;
  int device = 0;
  uint64_t seed = 1;
  std::string skip_kernels;  // timing only: CudaRunnerOptions::timing_skip
  CudaTuning tuning;         // CudaRunnerOptions::tuning (exl bench --tune)
};

struct DecodePoint {
  int64_t context = 0;
  double tokens_per_second = 0.0;   // median
  double spread = 0.0;              // (max - min) / median over repetitions
  double bytes_per_token = 0.0;     // weights as stored + one embedding row + KV up to the mean context
  double ceiling_tokens_per_second = 0.0;
  double fraction_of_ceiling = 0.0;
};

struct BenchResult {
  std::string device_name;
  std::string tuning;                   // the tuning keys that differ from the defaults (tuning_changes)
  double copy_bandwidth = 0.0;          // bytes/s, device-to-device copy counting read + write
  double weight_bytes = 0.0;            // decoder (MoE: top_k of each layer's experts) + head, one embedding row
  double prefill_tokens_per_second = 0.0;
  double time_to_first_token_ms = 0.0;  // prefill of prompt_tokens + logits of the last one + host argmax
  double launches_per_token = 0.0;      // kernel nodes in the decode graph
  std::vector<DecodePoint> decode;
  std::string to_json() const;
  std::string to_table() const;
};

BenchResult run_decode_bench(const model::ModelWeights& weights, const BenchOptions& options);

}  // namespace exl::cuda
