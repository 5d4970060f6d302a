// GPTQ 4-bit linear weights as ExLlamaV2 reads them (exl2-format.md section 7): qweight/qzeros/scales/g_idx,
// v1 (+1 zero point) and gptq_v2, sym and asym, act-order; plus a round-to-nearest packer for tests and
// random models.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace exl::quant {

enum class GptqZeroFormat { kV1, kV2 };  // v1: z_eff = stored + 1; v2 (gptq_v2): z_eff = stored

struct GptqWeight {
  std::string key;
  int64_t in_features = 0;   // K
  int64_t out_features = 0;  // N
  int64_t num_groups = 0;    // G
  int64_t group_size = 0;    // smallest power of two with gs*G >= K
  GptqZeroFormat zero_format = GptqZeroFormat::kV1;
  std::vector<uint32_t> qweight;  // [K/8, N]
  std::vector<uint32_t> qzeros;   // [G, N/8] as stored (v2 not yet offset)
  std::vector<uint16_t> scales;   // [G, N] fp16 bits
  std::vector<int32_t> g_idx;     // [K] group of each input row (filled with k / gs when absent)
  bool act_order = false;         // g_idx present and not sequential
  std::vector<uint16_t> bias;     // [N] fp16 bits, empty if none

  size_t stored_bytes() const;
  // Effective zero point of (group, column), with the v1/v2 rule applied as ExLlamaV2 does (integer borrow).
  int zero(int64_t g, int64_t n) const;
};

GptqWeight load_gptq(const io::TensorStore& store, const std::string& key, int64_t in_features,
                     int64_t out_features, GptqZeroFormat zero_format);
void validate_gptq(GptqWeight& w, const std::string& source);

// FP16 bit patterns of the dequantized matrix [K, N]: fp16((q - z_eff) * scale), single rounding.
std::vector<uint16_t> dequantize_gptq(const GptqWeight& w);

enum class GptqSymmetry { kSymmetric, kAsymmetric };
struct GptqPackOptions {
  int64_t group_size = 128;
  GptqSymmetry symmetry = GptqSymmetry::kSymmetric;
  GptqZeroFormat zero_format = GptqZeroFormat::kV1;
  std::vector<int32_t> g_idx;  // optional act-order group index per input row (empty: sequential)
};
// Round-to-nearest 4-bit quantization of weight [N, K] (torch layout, fp32) into the GPTQ tensor set.
GptqWeight pack_gptq_rtn(const std::vector<float>& weight_nk, int64_t out_features, int64_t in_features,
                         const GptqPackOptions& options);

}  // namespace exl::quant
