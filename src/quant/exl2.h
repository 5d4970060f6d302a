// EXL2 linear weights exactly as ExLlamaV2 writes them (exl2-format.md sections 2-6, 13): loading with full
// validation, and bit-exact CPU dequantization to ExLlamaV2's FP16 weights.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace exl::quant {

struct Exl2Group {
  int bits = 0;
  int64_t packed_start = 0;  // first row of the group in q_weight (q_groups[2g+1])
  int64_t packed_rows = 0;
  int64_t row_start = 0;     // first stored (permuted) input row of the group
  int64_t rows = 0;
};

struct Exl2Weight {
  std::string key;            // module key, e.g. model.layers.0.self_attn.q_proj
  int64_t in_features = 0;    // K
  int64_t out_features = 0;   // N (from the config)
  int64_t padded_out = 0;     // W = q_weight.shape[1]
  int64_t packed_rows = 0;    // Q
  std::vector<uint32_t> q_weight;     // [Q, W]
  std::vector<uint32_t> q_scale;      // [G, W/8]
  std::vector<uint16_t> q_scale_max;  // [G] fp16 bits
  std::vector<int16_t> q_groups;      // [2G]
  std::vector<int32_t> q_invperm;     // [K]: stored position of original row j
  std::vector<int32_t> q_perm;        // [K]: original row of stored row i (argsort of q_invperm)
  std::vector<Exl2Group> groups;
  std::vector<uint16_t> bias;         // [W] fp16 bits, empty if none

  int64_t num_groups() const { return static_cast<int64_t>(groups.size()); }
  // Bits of the five quantized tensors (not the bias) divided by K*W.
  double bits_per_weight() const;
  size_t stored_bytes() const;
  std::vector<int> bit_widths() const;  // distinct widths, descending
};

// Reads <key>.q_weight/q_scale/q_scale_max/q_groups/q_invperm[/bias] and checks every invariant of section 13.
// `out_features` is N from the config; `in_features` is the expected K (checked against q_invperm).
Exl2Weight load_exl2(const io::TensorStore& store, const std::string& key, int64_t in_features,
                     int64_t out_features);
// Validates the tensor set already in `w` (q_* filled, in/out features set); fills groups and q_perm.
void validate_exl2(Exl2Weight& w, const std::string& source);

// FP16 bit patterns of the dequantized matrix [K, W] in original row order (section 6), bit-exact.
std::vector<uint16_t> dequantize_exl2(const Exl2Weight& w);

}  // namespace exl::quant
