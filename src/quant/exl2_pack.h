// Round-to-nearest EXL2 packer (exl2-format.md sections 2-5): turns an fp32 weight [N, K] into a valid EXL2
// tensor set (groups in descending bit order, a random input permutation, 4-bit square-law scales, per-column
// bitstreams, output width padded to 32). No Hessian: it is for random models, tests and benchmarks.
#pragma once

#include <cstdint>
#include <vector>

#include "quant/exl2.h"

namespace exl::quant {

struct Exl2BitSpec {
  int bits = 4;             // 2, 3, 4, 5, 6 or 8
  double proportion = 1.0;  // fraction of the input rows at this width
  int group_size = 128;     // multiple of 32
};

enum class Exl2Permutation { kRandom, kIdentity };

struct Exl2PackOptions {
  std::vector<Exl2BitSpec> bits = {{4, 1.0, 128}};  // in descending bit order, proportions summing to 1
  Exl2Permutation permutation = Exl2Permutation::kRandom;
  uint64_t seed = 1;
  std::vector<float> bias;  // optional [N]; stored as fp16, zero-padded to W
};

// Row allocation as ExLlamaV2's AdaptiveGPTQ.configure does it (section 3.2); K and every group size must be
// multiples of 32. kInvalidArgument names the offending option.
struct GroupPlan {
  int bits;
  int64_t rows;
};
// The row groups (in stored order) that `options` gives for K input rows (exl2-format.md section 3.2).
std::vector<GroupPlan> plan_groups(int64_t K, const Exl2PackOptions& options);

Exl2Weight pack_exl2_rtn(const std::vector<float>& weight_nk, int64_t out_features, int64_t in_features,
                         const Exl2PackOptions& options);

// A bit mix whose size is close to `bpw` (including scale overhead): 4.0 -> 4-bit g128, 6.0 -> 6-bit g128,
// 8.0 -> 8-bit g128, 2.5 -> a 3/2-bit mix with g64, other targets -> a mix of the two neighbouring widths.
Exl2PackOptions exl2_options_for_bpw(double bpw);

}  // namespace exl::quant
