// Constants and the per-class record of the tiled device layout (described in quant/exl2_repack.h). No includes
// beyond <cstdint>, so CUDA kernel files can use it without the host-side headers.
#pragma once

#include <cstdint>

namespace exl::quant {

inline constexpr int kTileRows = 64;
inline constexpr int kChunkRows = 32;
inline constexpr int kStripCols = 16;
inline constexpr int kMaxTileClasses = 6;

enum class TileScaleKind : int32_t { kExl2 = 0, kGptq = 1 };

struct TileClass {
  int32_t bits = 0;
  int32_t tile_begin = 0;   // first tile (in padded rows / kTileRows)
  int32_t tile_end = 0;
  int32_t word_offset = 0;  // per-lane words of the strip before this class's first tile
};

// First word of tile `tile` (of class `cls`) of strip `strip`, in a layout whose strips hold `lane_words` words
// per lane. Strip-major: each strip's tiles are contiguous, class after class ([strip][class][tile][32 lanes x
// bits words]), so consecutive tiles of one strip are tile_stride_words(bits) apart and a warp's slice is one
// contiguous stream. (A tile-major order, [class][tile][strip], measured 1.5-2% slower in decode on H100:
// bench/results/2026-11-23c-gemv-one.md.)
#if defined(__CUDACC__)
__host__ __device__
#endif
inline int64_t tile_first_word(const TileClass& cls, int32_t tile, int64_t strip, int64_t lane_words) {
  return 32 * (strip * lane_words + cls.word_offset + int64_t{tile - cls.tile_begin} * cls.bits);
}
#if defined(__CUDACC__)
__host__ __device__
#endif
inline int64_t tile_stride_words(int bits) { return 32 * int64_t{bits}; }

// Fragment order of a one-token input: the half index at which padded row `row` (perm order) of x sits so that the
// g == 0 lanes of gemv_one's mma B operand read a tile's words with two 16-byte loads. Within tile `row / 64`:
// lane t (0..3) owns 8 contiguous words, word 2 * kstep + b of them holding rows 16 kstep + 8 b + 2t and +1.
// Tile-linear: the rows of tiles [a, b) are the halves [64 a, 64 b).
#if defined(__CUDACC__)
__host__ __device__
#endif
constexpr int64_t frag_half_index(int64_t row) {
  const int64_t tile = row >> 6;
  const int rr = static_cast<int>(row & 63), kstep = rr >> 4, rem = rr & 15;
  const int b = rem >> 3, t = (rem & 7) >> 1, hf = rem & 1;
  return ((tile * 4 + t) * 8 + 2 * kstep + b) * 2 + hf;
}

}  // namespace exl::quant
