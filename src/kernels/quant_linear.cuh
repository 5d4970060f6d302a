// Quantized linear layers (EXL2 any width mix, GPTQ 4-bit) on the tiled layout of quant/exl2_repack.h.
//
// gemv_quant: y[M, N] = x[M, K] . Wdq[K, N] (+ bias), M <= 32, fp16 in/out, fp32 accumulation (mma.m16n8k16).
//   Grid (W/128 column blocks, splits); a block of 8 warps owns 128 columns (one 16-column strip per warp) and one
//   slice of whole 64-row tiles. Prologue: gather the slice's x rows through perm into shared memory and build the
//   (scale, zero) table of the slice's groups for the block's columns. Each warp then streams its strip's tiles
//   (16-byte loads), turns each pair of codes into a half2 with one shift/mask/or (0x6400 magic), subtracts the
//   zero and multiplies by the scale in fp16 (bit-exact dequantized weights), and feeds mma with x as the B
//   operand (8 tokens per n-tile). splits > 1: fp32 partials [splits][M][W]; the last block of a column block
//   (atomic counter, reset by that block) sums them in split order and writes y. Weight loads use a register
//   double buffer; the first batch is issued before the prologue. (A per-warp L2 bulk prefetch was measured slower
//   on H100 and removed, 2026-11-23.)
// dequant_quant: Wdq columns [col_begin, col_begin + cols) into out[K][cols] (original row order), for cuBLAS.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/frag.cuh"
#include "kernels/tuning.h"
#include "quant/tile_layout.h"

namespace exl::kernels {

inline constexpr int kGemvMaxTokens = 32;
inline constexpr int kGemvWarps = 8;
inline constexpr int kGemvMaxParts = 3;  // matrices sharing one input in one gemv_quant launch (q/k/v, gate/up)
inline constexpr int kGemvBlockCols = kGemvWarps * quant::kStripCols;
inline constexpr int kGemvOneMaxSlices = 12;  // gemv_one: most warps (K slices) per part in a block

struct QuantTilesView {
  const uint32_t* tiles = nullptr;  // [W/16][32 * lane_words], see quant::tile_first_word
  int64_t lane_words = 0;
  int32_t num_classes = 0;
  quant::TileClass classes[quant::kMaxTileClasses];
  int32_t num_tiles = 0;
  const int32_t* perm = nullptr;         // [padded_rows]
  const int32_t* chunk_group = nullptr;  // [padded_rows / 32]
  quant::TileScaleKind scale_kind = quant::TileScaleKind::kExl2;
  const uint32_t* exl2_scale = nullptr;  // [G][W/8]
  const uint32_t* group_info = nullptr;  // [G]
  const __half* gptq_scale = nullptr;    // [G][W]
  const uint8_t* gptq_zero = nullptr;    // [G][W]
  int64_t in_features = 0;
  int64_t out_features = 0;
  int64_t width = 0;
  const __half* bias = nullptr;  // [W] or null
};

struct GemvSplitPlan {
  int32_t splits = 1;
  int32_t max_groups = 0;  // most groups any slice touches
  int32_t max_tiles = 0;   // most tiles in a slice
  // gemv_one: most groups any slice touches when the K tiles are split into s slices (s = 1..kGemvOneMaxSlices;
  // 0: unknown, the launch then sizes the table for 32-row groups). Launches pick their slice count per kind of
  // launch, so the table is sized for the count actually used (shared memory left to L1).
  int32_t one_max_groups_by_slices[kGemvOneMaxSlices + 1] = {};
};

// Host: the per-slice maxima of a split count (chunk_group: the host copy, [num_tiles * 2]).
GemvSplitPlan plan_gemv_splits(const int32_t* chunk_group, int32_t num_tiles, int32_t splits);
// Host: the largest split count whose grid fits in one wave of `blocks_per_sm` resident blocks per SM.
int32_t gemv_default_splits(int64_t width, int32_t num_tiles, int sm_count, int blocks_per_sm);
// Host: resident gemv_quant blocks per SM for this plan's shared memory at num_tokens (occupancy API).
int gemv_blocks_per_sm(const GemvSplitPlan& plan, int64_t num_tokens);
size_t gemv_shared_bytes(const GemvSplitPlan& plan, int64_t num_tokens);
int64_t gemv_partial_floats(const GemvSplitPlan& plan, int64_t width, int64_t num_tokens);

// partials: >= gemv_partial_floats floats (unused when splits == 1); counters: W/128 zeroed words, left zeroed.
// x_up non-null: the input is half(silu(x) * x_up) element-wise (SwiGLU), computed in the gather. One-token launches
// may run gemv_one instead (gemv_quant_multi), with the launch shape `one`.
void gemv_quant(const QuantTilesView& w, const GemvSplitPlan& plan, const __half* x, const __half* x_up, __half* y,
                int64_t num_tokens, float* partials, uint32_t* counters, const GemvOneTuning& one,
                cudaStream_t stream);

// One matrix of a grouped launch: its own output, partials (>= gemv_partial_floats floats, disjoint from the other
// parts') and counters.
struct GemvPart {
  const QuantTilesView* w;
  const GemvSplitPlan* plan;
  __half* y;
  float* partials;
  uint32_t* counters;
};
// y_i = x . W_i for 1 .. kGemvMaxParts matrices with the same in_features, in one launch (blocks of all parts in one
// grid). Launched with PDL: the weights' first loads and the scale table are issued before waiting on x's producer.
// One token goes to gemv_one (with the launch shape `one`) where gemv_one_preferred says it is faster.
void gemv_quant_multi(const GemvPart* parts, int num_parts, const __half* x, const __half* x_up,
                      int64_t num_tokens, const GemvOneTuning& one, cudaStream_t stream);

// gemv_one.cu: a one-token kernel (a block per 16-column strip, its warps split K and reduce in shared memory; no
// scratch, no counters). gemv_quant_multi routes one token to it where it measured faster on H100
// (gemv_one_preferred; bench/results/2026-11-23c-gemv-one.md); the fragment-ordered decode path calls it directly.
bool gemv_one_preferred(const GemvPart* parts, int num_parts, const __half* x_up);
// Fragment-ordered inputs (frag.cuh) for a gemv_one launch: part i reads x[i] (16-byte aligned, at least its padded
// rows) instead of gathering x through its perm; the launch's x is then unused.
// swiglu_pair: exactly 2 parts of one shape (gate, up) run in the same block, which also writes
// half(silu(gate) * up) of each column to y_frag (the down projection's fragment-ordered input) and zeroes its pads.
// x32 instead of x: part i's input is fp32 x * w (FragTarget32) still to be scaled by the RMSNorm of `norm` (every
// part, when any). res_on: one part; its output is also added to the residual stream (FragResidual).
struct GemvOneFrag {
  const __half* x[kGemvMaxParts] = {};
  const float* x32[kGemvMaxParts] = {};
  FragNorm norm;
  bool swiglu_pair = false;
  FragTarget y_frag;
  bool res_on = false;
  FragResidual res;
};
// x: the plain input (gathered through each part's perm), or null with frag.
void gemv_one_multi(const GemvPart* parts, int num_parts, const __half* x, const GemvOneTuning& tuning,
                    cudaStream_t stream, const GemvOneFrag* frag = nullptr);

// Mixture-of-experts GEMV on device-chosen matrices (gemv_one.cu, expert mode): for each slot s < num_slots, part
// i computes y_i + s * y_stride = x[s / x_div] . W where W = views_i[ids[s]] (ids written by an earlier kernel: read
// after the PDL wait), so only the chosen experts' weights are read. Parts share the input (gate and up). The views
// are a device array of every expert's QuantTilesView (the same width and in_features for all experts of a part);
// max_tiles and max_groups_by_slices are maxima over those experts (GemvSplitPlan::one_max_groups_by_slices).
struct GemvExpertPart {
  const QuantTilesView* views = nullptr;  // device [num_experts]
  int32_t max_tiles = 0;
  int32_t max_groups_by_slices[kGemvOneMaxSlices + 1] = {};
  int64_t in_features = 0, out_features = 0, width = 0;
  __half* y = nullptr;
  int64_t y_stride = 0;  // halves between slots' outputs (>= out_features)
};
void gemv_one_experts(const GemvExpertPart* parts, int num_parts, const int32_t* ids, int64_t num_slots,
                      const __half* x, int64_t x_div, const GemvOneTuning& tuning, cudaStream_t stream);

void dequant_quant(const QuantTilesView& w, int64_t col_begin, int64_t cols, __half* out, cudaStream_t stream);

// y[t, n] += bias[n] for t < num_tokens, n < N (fp32 add, one rounding).
void add_bias(__half* y, const __half* bias, int64_t num_tokens, int64_t out_features, cudaStream_t stream);

}  // namespace exl::kernels
