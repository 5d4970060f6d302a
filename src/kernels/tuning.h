// The launch knobs of the CUDA backend that stay tunable, with every default in this one file (docs/tuning.md says
// which benchmark chose each). Plain structs, includable from .cu files: backend/cuda/tuning.h names the whole
// struct exl::cuda::CudaTuning, sets its fields by key (exl bench --tune key=value) and checks their ranges once,
// when a runner is created. Kernels get the values they need through their launch arguments; nothing is read from
// the environment.
#pragma once

#include <cstdint>

namespace exl::kernels {

// gemv_one's launch shape (kernels/gemv_one.cu).
struct GemvOneTuning {
  // gemv1_warps: 1..12 forces the warps (K slices) per block of every launch (a SwiGLU pair part: at most 6);
  // 0: by kind of launch, from `slices`.
  int32_t warps = 0;
  // gemv1_slices: warps per block by kind of launch: [0] one part whose strips fit one wave of 2 blocks per SM
  // (o_proj, down_proj of Llama-3-8B), [1] other single or grouped launches (q/k/v), [2] per part of a SwiGLU pair
  // (1..6), [3] more than 8 waves of strips at 1 per SM (the LM head). At most 8 tiles per warp are taken below 9
  // warps, at least 4 tiles per warp above.
  int32_t slices[4] = {12, 8, 3, 4};
  // gemv1_l1_batches: batches of each warp's weight stream prefetched into L1 before its prologue (1..16).
  int32_t l1_batches = 2;
};

// gemv_f16's launch shape (kernels/gemv_f16.cu).
struct GemvF16Tuning {
  int32_t batch = 16;  // f16_gemv_batch: 16-byte loads in flight per lane: 4, 8 or 16
};

struct Tuning {
  // gemv_blocks_per_sm: resident gemv_quant blocks per SM that the split-K plan of a quantized layer aims for, at
  // most (the occupancy API's count caps it), 1..4.
  int32_t gemv_blocks_per_sm = 2;
  GemvOneTuning gemv1;
  GemvF16Tuning f16_gemv;
  // decode_splits: key ranges of one-sequence decode attention (the decode graph), 1..64; 0: choose_decode_splits.
  int32_t decode_splits = 0;
};

}  // namespace exl::kernels
