// Output-column selection for linear weights of every format (float, EXL2, GPTQ): the loader uses it to split
// fused projections (Phi-3 qkv_proj / gate_up_proj, DBRX Wqkv, InternLM2 wqkv, GLM-4 gate_up_proj, GPT-2 c_attn,
// fused expert tensors) into separate linears. In EXL2 and GPTQ the quantization groups run along the input
// dimension K, so every output column is independent and a column subset is again a valid tensor set
// (exl2-format.md sections 2-7; ExLlamaV2's own tensor-parallel split cuts q_weight/q_scale by columns the
// same way, section 11.6).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "quant/linear_weight.h"

namespace exl::quant {

// Output columns [start, start + count) of a linear (rows of the torch [N, K] weight).
struct ColumnRange {
  int64_t start = 0;
  int64_t count = 0;
};

// The linear whose output column j is the input's column number j of the concatenation of `ranges`, in order
// (several ranges express interleaved layouts such as InternLM2's wqkv, grouped per KV head). Ranges may
// overlap or repeat. The result is named `new_key` (also its exl2/gptq key) and has the input's in_features
// and the total count as out_features.
//  * float: the selected rows of `float_weight`, same dtype; bias selected.
//  * EXL2: q_weight [Q, W'] and q_scale [G, W'/8] columns gathered (4-bit scale codes unpacked and repacked),
//    W' = total count rounded up to 32. The extra columns are padded as ExLlamaV2's converter pads them
//    (section 3.7): codes 2^(b-1) and scale code 0, so they dequantize to exactly 0; bias zero-padded to W'.
//    q_scale_max, q_groups, q_invperm (and the derived groups/q_perm) are per input row and kept. The result
//    passes validate_exl2, and dequantize_exl2 of it equals the selected columns of the input's, bit for bit.
//  * GPTQ: qweight [K/8, N'] and scales [G, N'] columns gathered; qzeros [G, N'/8] rebuilt from the effective
//    zero points, so dequantize_gptq is bit-exact even for gptq_v2 words whose 0x11111111 offset borrows
//    across nibbles (the zero format is kept); g_idx kept. The engine's GPTQ layout has no padded width
//    (validate_gptq demands N % 32 == 0, as ExLlamaV2 does), so a total count that is not a multiple of 32 is
//    kUnsupported. As in load_gptq, a selected bias that is all zeros is dropped.
// kInvalidArgument, naming the tensor's key, the ranges and N: an empty range list, a count <= 0, a range
// outside [0, N).
LinearWeight select_output_columns(const LinearWeight& w, std::span<const ColumnRange> ranges, std::string new_key);

// Cuts `fused` into consecutive pieces of `sizes` output columns named `new_keys` (same length). kInvalidArgument
// when the sizes do not add up to the fused tensor's N, naming the fused tensor, each piece and N:
// "fused tensor 'model.layers.0.self_attn.qkv_proj' has 384 output columns, the config's split q_proj 256 +
// k_proj 64 + v_proj 32 = 352".
std::vector<LinearWeight> split_output_columns(const LinearWeight& fused, std::span<const int64_t> sizes,
                                               std::span<const std::string> new_keys);

}  // namespace exl::quant
