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

// First word of tile `tile` (of class `cls`) of strip `strip`, in a layout of `strips` strips. Tiles are stored
// class by class, tile-major with the strips inner ([class][tile][strip][32 lanes x bits words]), so the warps
// that work on the same tile row of neighbouring strips at the same time read one contiguous window of memory
// (DRAM rows are used whole); consecutive tiles of one strip are `tile_stride_words` apart.
#if defined(__CUDACC__)
__host__ __device__
#endif
inline int64_t tile_first_word(const TileClass& cls, int32_t tile, int64_t strip, int64_t strips) {
  return 32 * (strips * cls.word_offset + (int64_t{tile - cls.tile_begin} * strips + strip) * cls.bits);
}
#if defined(__CUDACC__)
__host__ __device__
#endif
inline int64_t tile_stride_words(int bits, int64_t strips) { return 32 * strips * bits; }

}  // namespace exl::quant
