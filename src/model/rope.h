// Rotary embedding frequencies for every rope type, computed as Hugging Face transformers computes them (default,
// linear, dynamic NTK, yarn, llama3, longrope), plus ExLlamaV2's load-time NTK alpha. Shared by all backends.
#pragma once

#include <cstdint>
#include <vector>

#include "io/model_config.h"
#include "model/model_spec.h"

namespace exl::model {

struct RopeTable {
  std::vector<float> inv_freq;  // [rotary_dim / 2]
  float attention_factor = 1.0f;  // multiplies cos and sin (yarn)
};

// seq_len: total sequence length the frequencies must serve (dynamic NTK and longrope depend on it: dynamic
// rescales the base once seq_len exceeds the original context, longrope switches from the short to the long factors,
// as transformers' dynamic update does).
RopeTable compute_rope(const RopeSpec& spec, int64_t seq_len);
// The model's single table (config.rope over config.head_dim).
RopeTable compute_rope(const io::ModelConfig& config, int64_t seq_len);
// Whether the table depends on seq_len (then backends recompute it per step).
bool rope_depends_on_length(const RopeSpec& spec);

}  // namespace exl::model
