// out[k, c - col_begin] = Wdq[k, c] = fp16((q - zero) * scale) for c in [col_begin, col_begin + cols), all K
// original rows; the cuBLAS path's A operand. Layout in: quant/exl2_repack.h tiles; out: row-major [K][cols].
// Thread mapping: one warp per (tile, strip), strips fastest so neighbouring warps write neighbouring columns of
// the same rows; lane 4g + t decodes its 32 codes exactly as gemv_quant does and stores them through perm.
// Constraints: col_begin % 16 == 0, cols % 16 == 0 (or reaching W).
#include <algorithm>

#include "kernels/kernel_check.h"
#include "kernels/quant_linear.cuh"
#include "kernels/quant_tile_decode.cuh"

namespace exl::kernels {
namespace {

using quant::kStripCols;
using quant::kTileRows;

template <int kBits>
__device__ __forceinline__ void dequant_tile(const QuantTilesView& v, const uint32_t* tile_ptr, int tile,
                                             int64_t strip, int lane, int64_t col_begin, int64_t cols,
                                             __half* out) {
  uint32_t w[kBits];
  tile::load_tile<kBits>(tile_ptr, lane, w);
  const int g = lane >> 2, t = lane & 3;
  const int64_t col0 = strip * kStripCols + g;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int32_t group = __ldg(v.chunk_group + 2 * tile + h);
    __half sc[2], z[2];
    tile::column_scale(v, group, col0, sc[0], z[0]);
    tile::column_scale(v, group, col0 + 8, sc[1], z[1]);
#pragma unroll
    for (int ks = 0; ks < 2; ++ks) {
      const int kstep = 2 * h + ks;
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const __half2 q = tile::u32_as_half2(tile::pair_magic<kBits>(w, 4 * kstep + r));
        const __half2 d = __hmul2(__hsub2(q, __half2half2(z[r & 1])), __half2half2(sc[r & 1]));
        const int64_t col = col0 + 8 * (r & 1) - col_begin;
        const int64_t row = int64_t{tile} * kTileRows + 16 * kstep + 2 * t + 8 * (r >> 1);
        const int32_t o0 = __ldg(v.perm + row), o1 = __ldg(v.perm + row + 1);
        if (col < 0 || col >= cols) continue;
        if (o0 >= 0) out[o0 * cols + col] = __low2half(d);
        if (o1 >= 0) out[o1 * cols + col] = __high2half(d);
      }
    }
  }
}

__global__ void __launch_bounds__(256) dequant_quant_kernel(const QuantTilesView v, int64_t strip_begin,
                                                            int64_t num_strips, int64_t col_begin, int64_t cols,
                                                            __half* out) {
  const int64_t warp_id = (int64_t{blockIdx.x} * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  const int64_t strip = strip_begin + warp_id % num_strips;
  const int tile = static_cast<int>(warp_id / num_strips);
  if (tile >= v.num_tiles) return;
  for (int c = 0; c < v.num_classes; ++c) {
    const quant::TileClass& cls = v.classes[c];
    if (tile < cls.tile_begin || tile >= cls.tile_end) continue;
    const uint32_t* p = v.tiles + quant::tile_first_word(cls, tile, strip, v.lane_words);
    switch (cls.bits) {
      case 2: dequant_tile<2>(v, p, tile, strip, lane, col_begin, cols, out); break;
      case 3: dequant_tile<3>(v, p, tile, strip, lane, col_begin, cols, out); break;
      case 4: dequant_tile<4>(v, p, tile, strip, lane, col_begin, cols, out); break;
      case 5: dequant_tile<5>(v, p, tile, strip, lane, col_begin, cols, out); break;
      case 6: dequant_tile<6>(v, p, tile, strip, lane, col_begin, cols, out); break;
      default: dequant_tile<8>(v, p, tile, strip, lane, col_begin, cols, out); break;
    }
    return;
  }
}

}  // namespace

void dequant_quant(const QuantTilesView& w, int64_t col_begin, int64_t cols, __half* out, cudaStream_t stream) {
  if (col_begin % kStripCols != 0 || cols <= 0 || col_begin + cols > w.width) {
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument,
                        "dequant_quant: columns [%lld, %lld) are not 16-aligned or exceed width %lld",
                        static_cast<long long>(col_begin), static_cast<long long>(col_begin + cols),
                        static_cast<long long>(w.width));
  }
  const int64_t strip_begin = col_begin / kStripCols;
  const int64_t num_strips = (cols + kStripCols - 1) / kStripCols;
  const int64_t warps = num_strips * w.num_tiles;
  const int64_t blocks = (warps * 32 + 255) / 256;
  dequant_quant_kernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(w, strip_begin, num_strips, col_begin,
                                                                          cols, out);
  check_launch("dequant_quant");
}

}  // namespace exl::kernels
