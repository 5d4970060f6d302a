// Rotary embedding frequencies for every rope type of the Llama family, computed as Hugging Face transformers
// computes them (default, linear, dynamic NTK, yarn, llama3). Shared by all backends.
#pragma once

#include <cstdint>
#include <vector>

#include "io/model_config.h"

namespace exl::model {

struct RopeTable {
  std::vector<float> inv_freq;  // [rotary_dim / 2]
  float attention_factor = 1.0f;  // multiplies cos and sin (yarn)
};

// seq_len: total sequence length the frequencies must serve (only dynamic NTK depends on it: it rescales the
// base once seq_len exceeds the original context, as transformers' dynamic update does).
RopeTable compute_rope(const io::ModelConfig& config, int64_t seq_len);

}  // namespace exl::model
