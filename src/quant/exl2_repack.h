// The tiled device layout that the CUDA linear kernels read, built at load time from EXL2 or GPTQ tensors.
//
// Rows are taken in stored order (EXL2: the file's permuted order; GPTQ: rows stably sorted by group), split into
// bit classes (descending widths), each class padded to a multiple of kTileRows rows. Columns are split into
// strips of kStripCols. One tile = one strip x kTileRows rows of one class = 32 lanes x `bits` words: lane
// l = 4g + t holds the 32 codes that mma.m16n8k16's A fragments need over the tile's four 16-row k-steps:
// pair j = 4s + r (s = k-step, r = fragment register) is column g + 8 (r & 1), rows 16s + 2t + 8 (r >> 1) + {0, 1}.
// The first code of every pair goes to a "low" bitstream and the second to a "high" one (j * bits bit offset
// each); word i of the lane is low halfword i | high halfword i << 16, so one shift and mask yield both codes of a
// pair in the two halves of a half2. A tile's `bits` words are stored in vector chunks (widths 4, then 2 or 1),
// each chunk as [lane][chunk width] so that a warp's load is contiguous. Tiles are ordered [strip][class][tile]
// (tile_first_word in tile_layout.h): a strip's tiles are one contiguous stream.
// Scales: per 32-row chunk a group index. EXL2 keeps the file's 4-bit scale codes [G][W/8] plus per group
// fp16(M/256) and the zero-point 2^(b-1); GPTQ keeps fp16 scales [G][W] and 8-bit effective zero points [G][W].
// Dequantized weight = fp16((q - zero) * scale), exactly the CPU dequantizers' value.
#pragma once

#include <cstdint>
#include <vector>

#include "quant/exl2.h"
#include "quant/gptq.h"
#include "quant/tile_layout.h"

namespace exl {
class ThreadPool;
}

namespace exl::quant {

struct TiledQuantMatrix {
  int64_t in_features = 0;   // K
  int64_t out_features = 0;  // N
  int64_t width = 0;         // W: N padded to 32
  int64_t padded_rows = 0;   // sum of the classes' padded rows
  int64_t num_groups = 0;
  TileScaleKind scale_kind = TileScaleKind::kExl2;
  std::vector<TileClass> classes;
  int64_t lane_words = 0;           // per-lane words per strip (sum over classes of tiles x bits)
  std::vector<uint32_t> tiles;      // [W / kStripCols][32 * lane_words], see tile_first_word
  std::vector<int32_t> perm;        // [padded_rows]: original input row of each padded row, -1 for padding
  std::vector<int32_t> chunk_group; // [padded_rows / kChunkRows]
  std::vector<uint32_t> exl2_scale; // [G][W / 8] 4-bit codes (EXL2)
  std::vector<uint32_t> group_info; // [G] fp16 bits: low = fp16(M/256) (EXL2), high = fp16(1024 + zero point)
  std::vector<uint16_t> gptq_scale; // [G][W] fp16 (GPTQ)
  std::vector<uint8_t> gptq_zero;   // [G][W] effective zero point (GPTQ)
  std::vector<uint16_t> bias;       // [W] fp16, empty if none

  int64_t num_tiles() const { return padded_rows / kTileRows; }
  size_t device_bytes() const;
};

// kUnsupported when a group is not a whole number of 32-row chunks (2-bit groups of 16 rows, GPTQ act-order
// groups of uneven size).
// pool non-null: the strips are laid out in parallel on it (the same words; loading a 70B model repacks about
// 20 GB, minutes on one core).
TiledQuantMatrix tile_exl2(const Exl2Weight& w, ThreadPool* pool = nullptr);
TiledQuantMatrix tile_gptq(const GptqWeight& w, ThreadPool* pool = nullptr);

// The kernels' decode run on the host: fp16 bits of the dequantized [K, W] matrix in original row order. Equal
// to dequantize_exl2 / dequantize_gptq when the layout is right.
std::vector<uint16_t> dequantize_tiled(const TiledQuantMatrix& t);

}  // namespace exl::quant
