// A linear layer's weights in whichever format the file holds, detected per module from the tensor names
// (exl2-format.md section 1/10): <key>.q_weight -> EXL2, <key>.qweight -> GPTQ, <key>.weight -> float.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "quant/exl2.h"
#include "quant/gptq.h"
#include "tensor/tensor.h"

namespace exl::quant {

enum class WeightFormat { kFloat, kExl2, kGptq };
std::string_view weight_format_name(WeightFormat format);

struct LinearWeight {
  std::string key;
  WeightFormat format = WeightFormat::kFloat;
  int64_t in_features = 0;
  int64_t out_features = 0;
  Tensor float_weight;  // kFloat: [N, K] in the stored dtype (F32, F16 or BF16)
  Exl2Weight exl2;
  GptqWeight gptq;
  std::vector<float> bias;  // [N], empty if none

  double bits_per_weight() const;  // stored bits of the weight tensors per K*N
  size_t stored_bytes() const;
  std::string describe() const;    // "exl2 4.13 bpw (6,4 bit)", "gptq 4-bit g128 act-order", "fp16"
  // The weights the CPU backend computes with: fp32 [N, K] from the stored (or dequantized FP16) values,
  // padded output columns dropped.
  std::vector<float> to_f32_nk() const;
};

struct LinearLoadOptions {
  GptqZeroFormat gptq_zero_format = GptqZeroFormat::kV1;
  std::optional<std::string> alt_key;  // tried when `key` has no tensors (tied head -> embedding)
};

// Loads <key> with in_features K and out_features N; kNotFound names the key and the suffixes tried.
LinearWeight load_linear(const io::TensorStore& store, const std::string& key, int64_t in_features,
                         int64_t out_features, const LinearLoadOptions& options);

}  // namespace exl::quant
