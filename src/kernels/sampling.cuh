// Token sampling on the device from fp16 logits: greedy (argmax, first index on ties), temperature, top-k, top-p,
// with the semantics of sampling::HostSampler (candidate order: larger logit first, lower index first on ties).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace exl::kernels {

// Lives in device memory so that a captured graph reads the current settings.
struct DeviceSamplingParams {
  float temperature = 0.0f;  // <= 0: greedy
  int32_t top_k = 0;         // 0: off
  float top_p = 1.0f;        // >= 1: off
  int32_t reserved = 0;
  uint64_t seed = 0;
  uint64_t counter = 0;      // advanced by one per single-row launch; part of the random stream
};

struct SampleArgs {
  const __half* logits = nullptr;  // [num_rows, row_stride]
  int64_t vocab_size = 0;
  int64_t row_stride = 0;
  int64_t num_rows = 0;
  DeviceSamplingParams* params = nullptr;  // device
  uint64_t counter_offset = 0;             // added to params->counter (host-chosen streams, e.g. tests)
  int32_t* tokens = nullptr;               // [num_rows] out, device
  int32_t* advance = nullptr;  // single row only: advance[0 .. num_advance) += 1 after sampling (decode state)
  int num_advance = 0;
};

void launch_sample(const SampleArgs& args, cudaStream_t stream);

}  // namespace exl::kernels
