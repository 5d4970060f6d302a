// Device helpers shared by gemv_quant and dequant_quant: loading one lane's words of a tile, extracting a pair of
// codes as a half2 (1024 + q in each half, the 0x6400 magic), and a column's (scale, 1024 + zero) in fp16.
// Layout: quant/exl2_repack.h. All positions are compile-time constants once the callers' loops are unrolled.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>

#include "kernels/quant_linear.cuh"

namespace exl::kernels::tile {

// Streaming loads: each weight word is read once per forward.
__device__ __forceinline__ uint4 load4(const uint32_t* p) { return __ldcs(reinterpret_cast<const uint4*>(p)); }
__device__ __forceinline__ uint2 load2(const uint32_t* p) { return __ldcs(reinterpret_cast<const uint2*>(p)); }
__device__ __forceinline__ uint32_t load1(const uint32_t* p) { return __ldcs(p); }

// `tile` points at the tile's first word (strip base + 32 * per-lane word offset).
template <int kBits>
__device__ __forceinline__ void load_tile(const uint32_t* tile, int lane, uint32_t (&w)[kBits]) {
  if constexpr (kBits == 2) {
    const uint2 a = load2(tile + 2 * lane);
    w[0] = a.x, w[1] = a.y;
  } else if constexpr (kBits == 3) {
    const uint2 a = load2(tile + 2 * lane);
    w[0] = a.x, w[1] = a.y, w[2] = load1(tile + 64 + lane);
  } else if constexpr (kBits == 4) {
    const uint4 a = load4(tile + 4 * lane);
    w[0] = a.x, w[1] = a.y, w[2] = a.z, w[3] = a.w;
  } else if constexpr (kBits == 5) {
    const uint4 a = load4(tile + 4 * lane);
    w[0] = a.x, w[1] = a.y, w[2] = a.z, w[3] = a.w, w[4] = load1(tile + 128 + lane);
  } else if constexpr (kBits == 6) {
    const uint4 a = load4(tile + 4 * lane);
    const uint2 b = load2(tile + 128 + 2 * lane);
    w[0] = a.x, w[1] = a.y, w[2] = a.z, w[3] = a.w, w[4] = b.x, w[5] = b.y;
  } else {
    static_assert(kBits == 8, "tile widths are 2, 3, 4, 5, 6, 8");
    const uint4 a = load4(tile + 4 * lane);
    const uint4 b = load4(tile + 128 + 4 * lane);
    w[0] = a.x, w[1] = a.y, w[2] = a.z, w[3] = a.w, w[4] = b.x, w[5] = b.y, w[6] = b.z, w[7] = b.w;
  }
}

// Pair j (0..15) of a lane: low code in bits 0..9 of the low half, high code in the high half, ORed with 0x6400
// so each half reads 1024 + q.
template <int kBits>
__device__ __forceinline__ uint32_t pair_magic(const uint32_t (&w)[kBits], int j) {
  const int p = j * kBits, h = p >> 4, off = p & 15;
  constexpr uint32_t kMask = (1u << kBits) - 1u;
  constexpr uint32_t kMask2 = kMask | (kMask << 16);
  uint32_t v;
  if (off + kBits <= 16) {
    v = (w[h] >> off) & kMask2;
  } else {
    const uint32_t lowsel = (1u << (16 - off)) - 1u;
    const uint32_t sel = ~(lowsel | (lowsel << 16));
    v = (((w[h] >> off) & ~sel) | ((w[h + 1] << (16 - off)) & sel)) & kMask2;
  }
  return v | 0x64006400u;
}

__device__ __forceinline__ __half2 u32_as_half2(uint32_t u) {
  __half2 h;
  memcpy(&h, &u, 4);
  return h;
}
__device__ __forceinline__ uint32_t half2_as_u32(__half2 h) {
  uint32_t u;
  memcpy(&u, &h, 4);
  return u;
}

// fp16 scale and fp16(1024 + zero) of (group, column); columns past W give (0, 1024).
__device__ __forceinline__ void column_scale(const QuantTilesView& v, int32_t group, int64_t col, __half& scale,
                                             __half& zero_magic) {
  if (col >= v.width) {
    scale = __ushort_as_half(0);
    zero_magic = __ushort_as_half(0x6400);
    return;
  }
  if (v.scale_kind == quant::TileScaleKind::kExl2) {
    const uint32_t info = __ldg(v.group_info + group);
    const uint32_t code = (__ldg(v.exl2_scale + group * (v.width / 8) + col / 8) >> (4 * (col & 7))) & 15u;
    // fp16((s+1)^2 * fp16(M/256)): (s+1)^2 <= 256 is exact in fp16, __hmul rounds once (exl2-format.md 5.3).
    scale = __hmul(__uint2half_rn((code + 1) * (code + 1)), __ushort_as_half(static_cast<unsigned short>(info)));
    zero_magic = __ushort_as_half(static_cast<unsigned short>(info >> 16));
  } else {
    scale = __ldg(v.gptq_scale + group * v.width + col);
    zero_magic = __uint2half_rn(1024u + __ldg(v.gptq_zero + group * v.width + col));
  }
}

// One batch of kU tiles (tiles [i, i + kU) of the class, those < count) into registers.
template <int kBits, int kU>
__device__ __forceinline__ void load_batch(const uint32_t* tiles, int64_t stride, int i, int count, int lane,
                                           uint32_t (&w)[kU][kBits]) {
#pragma unroll
  for (int u = 0; u < kU; ++u) {
    if (i + u < count) {
      load_tile<kBits>(tiles + (i + u) * stride, lane, w[u]);
    } else {
#pragma unroll
      for (int b = 0; b < kBits; ++b) w[u][b] = 0;
    }
  }
}

// Same formula and rounding as silu_mul in activation.cu (the SwiGLU input of both GEMV kernels).
__device__ __forceinline__ float silu_times(float g, float u) { return g / (1.0f + expf(-g)) * u; }

}  // namespace exl::kernels::tile
