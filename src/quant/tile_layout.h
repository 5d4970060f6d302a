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

}  // namespace exl::quant
