// gemv_one: y[1, N] = x[1, K] . Wdq[K, N] (+ bias) for exactly one token (batch-1 decode) on the tiled EXL2/GPTQ
// layout (quant/exl2_repack.h). Same contract as gemv_quant with num_tokens == 1 (without the SwiGLU input);
// gemv_quant_multi routes one-token launches here where gemv_one_preferred says it measured faster, and the
// fragment-ordered decode path launches it directly.
//
// Why a second kernel: gemv_quant's block owns 128 columns x one K-slice, so short layers need split-K through
// global partials (fence, atomic counter, last-block sum) and every block first builds a shared scale table and
// gathers x behind a __syncthreads. Measured on H100 that fixed chain (~6 us per call) dominated decode
// (bench/results/2026-11-23b-gemv-experiments.md). Here a block owns ONE 16-column strip and its warps split K:
//   * warp w streams tiles [w*T/S, (w+1)*T/S) of the strip (S = warps per block, at most 12), so every warp's
//     slice is short (5-8 tiles at K = 4096); its first batches (GemvOneTuning::l1_batches, default 2) are prefetched
//     into L1 before the prologue, then a register double buffer of <= 8 words per lane per batch streams them;
//   * each warp builds its own scale table (before the PDL wait) and gathers only its own x rows (through perm)
//     into its own shared memory, in mma fragment order (two 16-byte loads give a lane its B words of a tile): no
//     block barrier before the stream;
//   * the codes enter the mma as exact (q - zero) in fp16 (4-bit: one lop3 per register, plus one hsub2 or one
//     hfma2 that also undoes the x16 of the high nibbles); each 32-row chunk's fp32 mma result is multiplied by the
//     fp32 scale of its group and added to the lane's total (so the dequantized weight is (q - zero) * scale
//     without the oracle's intermediate fp16 rounding: a relative difference of at most 2^-11 per weight);
//   * split-K is reduced inside the block in shared memory, in warp order: deterministic, no atomics, no scratch.
// Fragment-ordered inputs (GemvOneFrag, frag.cuh; one-token decode): the producer already wrote each part's x in
// the order above, so a warp copies its slice (16-byte loads) instead of gathering through perm. Variants:
//   * SwiGLU pair (2 parts, gate and up, of one shape): block b runs strip b of both parts, `slices` warps each, and
//     also writes half(silu(gate) * up) of its columns through y_frag (down_proj's input), zeroing y_frag's pads;
//   * fp32 input + FragNorm: the slice is x * w (fp32) from a residual epilogue, scaled by the RMSNorm factor that
//     every warp computes from the producer's per-block sums of squares (fixed order: the same bits everywhere);
//   * residual epilogue (FragResidual, one part): x[col] += half(y[col]); x * w goes to up to 3 fp32 targets, and
//     the block's sum of x^2 to partials[blockIdx.x].
#include <algorithm>

#include "kernels/kernel_check.h"
#include "kernels/pdl.cuh"
#include "kernels/quant_linear.cuh"
#include "kernels/quant_tile_decode.cuh"
#include "kernels/frag.cuh"

namespace exl::kernels {
namespace {

using quant::kTileRows;

// Up to 12 warps per block. The register budget (launch bounds 384 threads x 2 blocks: at most 85 registers, 80
// used) is the one 256-thread blocks had at 3 per SM. (64 registers, 4 blocks of 256 per SM, measured 1-4% slower
// in decode: bench/results/2026-11-23g-gemv-ring-and-codes.md, run 3.)
constexpr int kMaxSliceWarps = kGemvOneMaxSlices;
constexpr int kMinBlocksAtMax = 2;

struct Gemv1Part {
  QuantTilesView w;
  __half* y;
  int32_t block_begin;  // first block of this part; one block per strip
};

struct Gemv1Params {
  Gemv1Part parts[kGemvMaxParts];
  int32_t num_parts;
  int32_t max_groups;  // table groups per warp (>= the groups any slice touches)
  int32_t max_tiles;   // tiles per warp slice (at most)
  int32_t warp_bytes;  // shared memory per warp
  const __half* x;
  const __half* x_frag[kGemvMaxParts];  // non-null: part i's input already in fragment order (frag.cuh), no gather
  int32_t pair;        // 1: SwiGLU pair (2 parts of one width; a block runs strip b of both, `slices` warps each)
  int32_t slices;      // warps per part in a block
  FragTarget y_frag;   // pair: half(silu(gate) * up) of every column goes to y_frag (the next matrix's input)
  const float* x_frag32[kGemvMaxParts];  // non-null: part i's input is fp32 x * w in fragment order, scaled by norm
  FragNorm norm;
  int32_t res_on;      // 1 (one part, no pair): the output is added to the residual stream (FragResidual)
  FragResidual res;
  int32_t l1_batches;   // batches of each warp's stream prefetched into L1 (GemvOneTuning::l1_batches)
  // Expert mode (ex_ids non-null; no frag, pair or residual): part i's matrix of slot s is ex_views[i][ex_ids[s]],
  // read after the PDL wait (the router's kernel writes the ids); block b of part i is slot (b - block_begin) /
  // ex_strips[i], strip (b - block_begin) % ex_strips[i]. Slot s reads x row s / ex_x_div (ex_x_stride halves apart)
  // and writes y + s * ex_y_stride[i].
  const QuantTilesView* ex_views[kGemvMaxParts];
  const int32_t* ex_ids;
  int32_t ex_strips[kGemvMaxParts];
  int32_t ex_x_div;
  int64_t ex_x_stride;
  int64_t ex_y_stride[kGemvMaxParts];
};

__device__ __forceinline__ void mma_16816_zero(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%10,%10,%10};\n"
      : "=f"(c[0]), "=f"(c[1]), "=f"(c[2]), "=f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "f"(0.0f));
}
__device__ __forceinline__ void mma_16816_acc(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}


// A warp's scale table, built before the PDL wait: per group of its slice and per g = lane / 4, the fp32 scales of
// columns g and g + 8 of the strip and their fp16 (1024 + zero) as a half2; plus the slice-local group of every
// 32-row chunk. (Loading scales per group inside the stream made every group change a dependent DRAM latency:
// measured 2x slower for gate/up.)
struct WarpTable {
  uint4* entries;     // [groups][8]: {bits(s0), bits(s1), half2(z0, z1), 0}
  int32_t* chunk_local;  // [2 * tiles]
};

__device__ __forceinline__ uint4 scale_entry(const QuantTilesView& v, int32_t group, int64_t strip, int g) {
  const int64_t col = strip * quant::kStripCols + g;
  __half s0, s1, z0, z1;
  if (v.scale_kind == quant::TileScaleKind::kExl2) {
    // Columns g and g + 8 are in the strip's two scale words, both at bits 4g.
    const uint2 words = __ldg(reinterpret_cast<const uint2*>(v.exl2_scale + group * (v.width / 8) + 2 * strip));
    const uint32_t info = __ldg(v.group_info + group);
    const uint32_t c0 = (words.x >> (4 * g)) & 15u, c1 = (words.y >> (4 * g)) & 15u;
    const __half m = __ushort_as_half(static_cast<unsigned short>(info));
    s0 = __hmul(__uint2half_rn((c0 + 1) * (c0 + 1)), m);
    s1 = __hmul(__uint2half_rn((c1 + 1) * (c1 + 1)), m);
    z0 = z1 = __ushort_as_half(static_cast<unsigned short>(info >> 16));
  } else {
    s0 = __ldg(v.gptq_scale + group * v.width + col);
    s1 = __ldg(v.gptq_scale + group * v.width + col + 8);
    z0 = __uint2half_rn(1024u + __ldg(v.gptq_zero + group * v.width + col));
    z1 = __uint2half_rn(1024u + __ldg(v.gptq_zero + group * v.width + col + 8));
  }
  return make_uint4(__float_as_uint(__half2float(s0)), __float_as_uint(__half2float(s1)),
                    tile::half2_as_u32(__halves2half2(z0, z1)), 0u);
}

// x of a warp's slice in shared memory, in mma fragment order (quant::frag_half_index): the 16 B-operand words a
// lane t (= lane & 3) of the g == 0 lanes needs for one tile are 8 contiguous words (two 16-byte loads). (Measured
// in bench/gemv_lab.cu: one 16-byte load per two k-steps instead of two 4-byte loads per k-step.)
// The same index as quant::frag_half_index, in 32-bit arithmetic (slice-relative rows).
__device__ __forceinline__ int frag_half_index(int i) {
  const int tile = i >> 6, rr = i & 63, kstep = rr >> 4, rem = rr & 15;
  const int b = rem >> 3, t = (rem & 7) >> 1, hf = rem & 1;
  return ((tile * 4 + t) * 8 + 2 * kstep + b) * 2 + hf;
}

// A-operand registers of k-step `kstep` (r = 0..3 as in mma's A fragment) as exact (q - zero) half2.
// 4-bit: one lop3 per register (0x6400 magic); nibbles at bit 4 of each half come out as 1024 + 16q and one hfma2
// (x 1/16, - (64 + zero)) makes them q - zero; the others take one hsub2 of (1024 + zero). Other widths: the
// generic shift/mask/or of tile::pair_magic, then hsub2.
template <int kBits>
__device__ __forceinline__ void a_regs(const uint32_t (&w)[kBits], int kstep, __half2 z0, __half2 z1, uint32_t (&a)[4]) {
  if constexpr (kBits == 4) {
    const uint32_t word = w[kstep], w8 = word >> 8;
    uint32_t v0, v1, v2, v3;
    asm("lop3.b32 %0, %1, 0x000f000f, 0x64006400, 0xea;" : "=r"(v0) : "r"(word));
    asm("lop3.b32 %0, %1, 0x00f000f0, 0x64006400, 0xea;" : "=r"(v1) : "r"(word));
    asm("lop3.b32 %0, %1, 0x000f000f, 0x64006400, 0xea;" : "=r"(v2) : "r"(w8));
    asm("lop3.b32 %0, %1, 0x00f000f0, 0x64006400, 0xea;" : "=r"(v3) : "r"(w8));
    // (1024 + 16q) / 16 - (64 + zero) = fma(v, 1/16, 960 - zm) with zm = 1024 + zero: exact (small integers).
    const __half2 sixteenth = __float2half2_rn(0.0625f);
    const __half2 c960 = __float2half2_rn(960.0f);
    const __half2 nz0 = __hsub2(c960, z0), nz1 = __hsub2(c960, z1);  // -(64 + zero)
    a[0] = tile::half2_as_u32(__hsub2(tile::u32_as_half2(v0), z0));
    a[1] = tile::half2_as_u32(__hfma2(tile::u32_as_half2(v1), sixteenth, nz1));
    a[2] = tile::half2_as_u32(__hsub2(tile::u32_as_half2(v2), z0));
    a[3] = tile::half2_as_u32(__hfma2(tile::u32_as_half2(v3), sixteenth, nz1));
  } else {
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const __half2 q = tile::u32_as_half2(tile::pair_magic<kBits>(w, 4 * kstep + r));
      a[r] = tile::half2_as_u32(__hsub2(q, (r & 1) ? z1 : z0));
    }
  }
}

// One tile: 2 chunks of 32 rows, 2 k-steps each. `xf` = this warp's fragment-ordered x at the tile (32 words),
// `chunk` = the tile's first chunk in the slice.
template <int kBits>
__device__ __forceinline__ void tile_one(const uint32_t (&w)[kBits], const uint32_t* xf, const WarpTable& tab,
                                         int chunk, int lane, float& tot0, float& tot1) {
  const int g = lane >> 2, t = lane & 3;
  uint4 xb0 = make_uint4(0u, 0u, 0u, 0u), xb1 = xb0;
  if (g == 0) {  // token 0 of B lives in lanes 0..3; the other lanes' B columns are 0
    xb0 = *reinterpret_cast<const uint4*>(xf + t * 8);
    xb1 = *reinterpret_cast<const uint4*>(xf + t * 8 + 4);
  }
  const uint32_t xb[8] = {xb0.x, xb0.y, xb0.z, xb0.w, xb1.x, xb1.y, xb1.z, xb1.w};
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const uint4 e = tab.entries[tab.chunk_local[chunk + h] * 8 + g];
    const __half2 zz = tile::u32_as_half2(e.z);
    const __half2 z0 = __low2half2(zz), z1 = __high2half2(zz);
    float d[4];
#pragma unroll
    for (int ks = 0; ks < 2; ++ks) {
      const int kstep = 2 * h + ks;
      uint32_t a[4];
      a_regs<kBits>(w, kstep, z0, z1, a);
      if (ks == 0)
        mma_16816_zero(d, a, xb[2 * kstep], xb[2 * kstep + 1]);
      else
        mma_16816_acc(d, a, xb[2 * kstep], xb[2 * kstep + 1]);
    }
    // d[0] = column g, token 2t; d[2] = column g + 8, token 2t: token 0 lives in the t == 0 lanes, the rest are 0.
    tot0 = fmaf(__uint_as_float(e.x), d[0], tot0);
    tot1 = fmaf(__uint_as_float(e.y), d[2], tot1);
  }
}

// Tiles [lo, hi) of one class (global tile indices) with a register double buffer of kU tiles per batch.
template <int kBits>
__device__ __forceinline__ void class_one(const QuantTilesView& v, const quant::TileClass& cls, int lo, int hi,
                                          int ts, int64_t strip, const uint32_t* xf, const WarpTable& tab, int lane,
                                          float& tot0, float& tot1) {
  constexpr int kU = kBits <= 4 ? 8 / kBits : 1;  // two batches of <= 8 words per lane in flight
  const uint32_t* tiles = v.tiles + quant::tile_first_word(cls, lo, strip, v.lane_words);
  const int64_t stride = quant::tile_stride_words(kBits);
  const int count = hi - lo;
  const int c0 = 2 * (lo - ts);
  uint32_t wa[kU][kBits], wb[kU][kBits];
  tile::load_batch<kBits, kU>(tiles, stride, 0, count, lane, wa);
  tile::load_batch<kBits, kU>(tiles, stride, kU, count, lane, wb);
  const uint32_t* x0 = xf + (lo - ts) * 32;
#pragma unroll 1
  for (int i = 0; i < count; i += 2 * kU) {
#pragma unroll
    for (int u = 0; u < kU; ++u)
      if (i + u < count) tile_one<kBits>(wa[u], x0 + (i + u) * 32, tab, c0 + 2 * (i + u), lane, tot0, tot1);
    tile::load_batch<kBits, kU>(tiles, stride, i + 2 * kU, count, lane, wa);
#pragma unroll
    for (int u = 0; u < kU; ++u)
      if (i + kU + u < count)
        tile_one<kBits>(wb[u], x0 + (i + kU + u) * 32, tab, c0 + 2 * (i + kU + u), lane, tot0, tot1);
    tile::load_batch<kBits, kU>(tiles, stride, i + 3 * kU, count, lane, wb);
  }
}

// A warp's prologue: the scale table and chunk map of its slice (weights only, before the PDL wait), then x rows
// through perm into fragment order. It runs before the weight stream: holding a stream's first batches in registers
// across it cost ~40 registers per thread (ptxas -v) and spills at 3 blocks per SM.
__device__ __forceinline__ void warp_prologue(const Gemv1Params& gp, const QuantTilesView& v, const __half* x,
                                              int64_t strip, int ts, int te, const WarpTable& tab, __half* xs,
                                              const __half* x_frag, const float* x_frag32, int lane) {
  const int rows = (te - ts) * kTileRows;
  // The first permutation indices are loaded first: their latency overlaps the table's.
  constexpr int kIlp = 4;
  const int32_t* perm = v.perm + int64_t{ts} * kTileRows;
  int32_t src[kIlp];
  if (x_frag == nullptr && x_frag32 == nullptr) {
#pragma unroll
    for (int u = 0; u < kIlp; ++u) src[u] = lane + 32 * u < rows ? __ldg(perm + lane + 32 * u) : -1;
  }
  // Scale table (weights only: before the PDL wait). Loads of several entries first, stores after.
  if (te > ts) {
    const int32_t g_first = __ldg(v.chunk_group + 2 * ts);
    const int32_t ng = __ldg(v.chunk_group + 2 * te - 1) - g_first + 1;
    for (int c = lane; c < 2 * (te - ts); c += 32) tab.chunk_local[c] = __ldg(v.chunk_group + 2 * ts + c) - g_first;
    constexpr int kTabIlp = 4;
    const int g = lane & 7;
#pragma unroll 1
    for (int e0 = lane; e0 < ng * 8; e0 += 32 * kTabIlp) {
      uint4 ent[kTabIlp];
#pragma unroll
      for (int u = 0; u < kTabIlp; ++u)
        if (e0 + 32 * u < ng * 8) ent[u] = scale_entry(v, g_first + ((e0 + 32 * u) >> 3), strip, g);
#pragma unroll
      for (int u = 0; u < kTabIlp; ++u)
        if (e0 + 32 * u < ng * 8) tab.entries[e0 + 32 * u] = ent[u];
    }
  }
  pdl_wait();
  pdl_launch_dependents();
  if (x_frag != nullptr) {  // already gathered and in fragment order: the slice is halves [64 ts, 64 te)
    const uint4* from = reinterpret_cast<const uint4*>(x_frag) + int64_t{ts} * (kTileRows / 8);
    uint4* to = reinterpret_cast<uint4*>(xs);
    // A lane's loads in batches of 6 (all of down_proj's 150 per warp in one) before its stores: a batch is one L2
    // round trip.
    constexpr int kBatch = 6;
    const int n = rows / 8;
#pragma unroll 1
    for (int i0 = lane; i0 < n; i0 += 32 * kBatch) {
      uint4 v[kBatch];
#pragma unroll
      for (int u = 0; u < kBatch; ++u)
        if (i0 + 32 * u < n) v[u] = from[i0 + 32 * u];
#pragma unroll
      for (int u = 0; u < kBatch; ++u)
        if (i0 + 32 * u < n) to[i0 + 32 * u] = v[u];
    }
    __syncwarp();
    return;
  }
  if (x_frag32 != nullptr) {  // x * w of the slice, and the producer's partial sums of squares for the norm scale
    const float4* from = reinterpret_cast<const float4*>(x_frag32) + int64_t{ts} * (kTileRows / 4);
    // The slice's first x * w values are loaded together with the partial sums (one round trip, not two); 8 per
    // lane (with 12, ptxas spills), so the gate/up pair's slices (341 float4 per warp) take two round trips, not 3.
    constexpr int kPre = 8;
    const int n4 = rows / 4;
    float4 pre[kPre];
#pragma unroll
    for (int u = 0; u < kPre; ++u)
      if (lane + 32 * u < n4) pre[u] = from[lane + 32 * u];
    float ss = 0.0f;
#pragma unroll 8
    for (int i = lane; i < gp.norm.count; i += 32) ss += gp.norm.partials[i];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);  // the same bits in every lane
    const float rinv = 1.0f / sqrtf(ss / static_cast<float>(gp.norm.hidden) + gp.norm.eps);
    __half2* to = reinterpret_cast<__half2*>(xs);
#pragma unroll
    for (int u = 0; u < kPre; ++u) {
      const int i = lane + 32 * u;
      if (i < n4) {
        to[2 * i] = __floats2half2_rn(pre[u].x * rinv, pre[u].y * rinv);
        to[2 * i + 1] = __floats2half2_rn(pre[u].z * rinv, pre[u].w * rinv);
      }
    }
#pragma unroll 4
    for (int i = lane + 32 * kPre; i < n4; i += 32) {
      const float4 f = from[i];
      to[2 * i] = __floats2half2_rn(f.x * rinv, f.y * rinv);
      to[2 * i + 1] = __floats2half2_rn(f.z * rinv, f.w * rinv);
    }
    __syncwarp();
    return;
  }
#pragma unroll 1
  for (int i0 = lane; i0 < rows; i0 += 32 * kIlp) {
    if (i0 != lane) {
#pragma unroll
      for (int u = 0; u < kIlp; ++u) src[u] = i0 + 32 * u < rows ? __ldg(perm + i0 + 32 * u) : -1;
    }
    __half val[kIlp];
#pragma unroll
    for (int u = 0; u < kIlp; ++u) val[u] = src[u] < 0 ? __ushort_as_half(0) : x[src[u]];
#pragma unroll
    for (int u = 0; u < kIlp; ++u)
      if (i0 + 32 * u < rows) xs[frag_half_index(i0 + 32 * u)] = val[u];
  }
  __syncwarp();
}

// Part `part` of the launch on matrix v (its own, or an expert's in expert mode) with input x (plain gathers) and
// output y.
__device__ __forceinline__ void gemv_one_body(const Gemv1Params& gp, int part, const QuantTilesView& v,
                                              const __half* x, __half* y, int64_t strip, unsigned char* smem_raw) {
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int slices = gp.slices;
  const int wp = gp.pair ? warp - part * slices : warp;  // the warp's slice within its part
  const int T = v.num_tiles;
  const int ts = static_cast<int>(int64_t{wp} * T / slices);
  const int te = static_cast<int>(int64_t{wp + 1} * T / slices);

  // Shared memory: red [kMaxSliceWarps][16] floats, then per warp (gp.warp_bytes each): the table entries
  // [gp.max_groups][8], chunk_local [2 * gp.max_tiles rounded up to 4], fragment-ordered x [gp.max_tiles * 32] words.
  float* red = reinterpret_cast<float*>(smem_raw);
  unsigned char* mine = smem_raw + sizeof(float) * kMaxSliceWarps * quant::kStripCols + warp * gp.warp_bytes;
  const WarpTable tab{reinterpret_cast<uint4*>(mine),
                      reinterpret_cast<int32_t*>(mine + sizeof(uint4) * 8 * gp.max_groups)};
  uint32_t* xf = reinterpret_cast<uint32_t*>(tab.chunk_local + (2 * gp.max_tiles + 3) / 4 * 4);
  __half* xs = reinterpret_cast<__half*>(xf);

  // The stream's first batches (gp.l1_batches batches of class_one's kU tiles, first class) are prefetched into L1
  // before the prologue, so the loads after the PDL wait and the x staging hit L1 instead of making a DRAM round
  // trip (about 3% of decode against no prefetch; bringing the rest of the slice's first 4 KB into L2 as well
  // measured 2.2-2.4% slower: bench/results/2026-11-24d-prefetch-and-lab.md, runs 5-6).
#pragma unroll 1
  for (int c = 0; c < quant::kMaxTileClasses; ++c) {
    if (c >= v.num_classes) break;
    const quant::TileClass& cls = v.classes[c];
    const int lo = max(ts, cls.tile_begin), hi = min(te, cls.tile_end);
    if (lo >= hi) continue;
    const int per_tile = cls.bits;  // 128-byte lines per tile
    const uint32_t* base = v.tiles + quant::tile_first_word(cls, lo, strip, v.lane_words);  // tiles are contiguous
    const int l1_tiles = min(hi - lo, gp.l1_batches * (cls.bits <= 4 ? 8 / cls.bits : 1));
#pragma unroll 1
    for (int l = lane; l < l1_tiles * per_tile; l += 32)
      asm volatile("prefetch.global.L1 [%0];" ::"l"(base + 32 * l));
    break;
  }
  // The epilogue's inputs, before the PDL wait, into shared memory (not registers: they would be live across the
  // stream): the norm weight and the fragment-order destinations of the residual epilogue, the pair's y_frag
  // destinations (constants), and the residual stream x itself. x is safe to read here: the residual launches
  // (o_proj, down_proj) never directly follow a launch that writes x, and this block started only after every block
  // of the previous launch passed its own wait, so the last writer of x (two launches back) has completed; __ldcg
  // reads it from L2, which is coherent. (`exl bench --skip-kernels gateup` breaks that order, down_proj then
  // follows o_proj: its tokens are meaningless anyway.) Loading them after the stream put up to three dependent
  // round trips (x, then weight and destinations behind the store to x) between the block's reduction and its
  // stores: 3.5-3.6% of decode for the constants, 0.5-0.9% more for x (bench/results/2026-11-24e-epilogues.md).
  __shared__ float res_pre_s[2][quant::kStripCols];                 // x, weight
  __shared__ int32_t dest_pre_s[kMaxFragTargets][quant::kStripCols];  // residual targets; [0]: pair y_frag
  if (tid < quant::kStripCols && strip * quant::kStripCols + tid < v.out_features) {
    const int64_t col = strip * quant::kStripCols + tid;
    if (gp.res_on) {
      const float xr = __ldcg(gp.res.x + col);
      const float w = __ldg(gp.res.weight + col);
      int32_t d[kMaxFragTargets];
#pragma unroll
      for (int f = 0; f < kMaxFragTargets; ++f) d[f] = f < gp.res.num_targets ? __ldg(gp.res.targets[f].dest + col) : 0;
      res_pre_s[0][tid] = xr;
      res_pre_s[1][tid] = w;
#pragma unroll
      for (int f = 0; f < kMaxFragTargets; ++f) dest_pre_s[f][tid] = d[f];
    } else if (gp.pair) {
      dest_pre_s[0][tid] = __ldg(gp.y_frag.dest + col);
    }
  }
  warp_prologue(gp, v, x, strip, ts, te, tab, xs, gp.x_frag[part], gp.x_frag32[part], lane);

  float tot0 = 0.0f, tot1 = 0.0f;
#pragma unroll 1
  for (int c = 0; c < quant::kMaxTileClasses; ++c) {
    if (c >= v.num_classes) break;
    const quant::TileClass& cls = v.classes[c];
    const int lo = max(ts, cls.tile_begin), hi = min(te, cls.tile_end);
    if (lo >= hi) continue;
    switch (cls.bits) {
      case 2: class_one<2>(v, cls, lo, hi, ts, strip, xf, tab, lane, tot0, tot1); break;
      case 3: class_one<3>(v, cls, lo, hi, ts, strip, xf, tab, lane, tot0, tot1); break;
      case 4: class_one<4>(v, cls, lo, hi, ts, strip, xf, tab, lane, tot0, tot1); break;
      case 5: class_one<5>(v, cls, lo, hi, ts, strip, xf, tab, lane, tot0, tot1); break;
      case 6: class_one<6>(v, cls, lo, hi, ts, strip, xf, tab, lane, tot0, tot1); break;
      default: class_one<8>(v, cls, lo, hi, ts, strip, xf, tab, lane, tot0, tot1); break;
    }
  }

  const int g = lane >> 2, t = lane & 3;
  if (t == 0) {
    red[warp * quant::kStripCols + g] = tot0;
    red[warp * quant::kStripCols + g + 8] = tot1;
  }
  __syncthreads();
  if (tid < quant::kStripCols) {
    const int64_t col = strip * quant::kStripCols + tid;
    if (col < v.out_features) {
      if (!gp.pair) {
        float val = 0.0f;
        for (int s = 0; s < slices; ++s) val += red[s * quant::kStripCols + tid];
        if (v.bias) val += __half2float(v.bias[col]);
        const __half yh = __float2half_rn(val);
        y[col] = yh;
        if (gp.res_on) {  // residual add, as add_rms_norm (x += the fp16 output), and the next norm's inputs
          const float xn = res_pre_s[0][tid] + __half2float(yh);
          gp.res.x[col] = xn;
          red[tid] = xn * xn;  // read back below by lane 0 (the other slots are not read again)
          const float xw = xn * res_pre_s[1][tid];
#pragma unroll
          for (int f = 0; f < kMaxFragTargets; ++f)
            if (f < gp.res.num_targets)
              gp.res.targets[f].out[dest_pre_s[f][tid]] = xw;
        }
      } else {
        // Warps [0, slices) ran the gate strip, [slices, 2 slices) the up strip; both rounded to fp16 before the
        // product, as kernels::silu_mul on the stored outputs.
        float gv = 0.0f, uv = 0.0f;
        for (int s = 0; s < slices; ++s) {
          gv += red[s * quant::kStripCols + tid];
          uv += red[(slices + s) * quant::kStripCols + tid];
        }
        if (gp.parts[0].w.bias) gv += __half2float(gp.parts[0].w.bias[col]);
        if (gp.parts[1].w.bias) uv += __half2float(gp.parts[1].w.bias[col]);
        const __half gh = __float2half_rn(gv), uh = __float2half_rn(uv);
        gp.parts[0].y[col] = gh;
        gp.parts[1].y[col] = uh;
        gp.y_frag.out[dest_pre_s[0][tid]] =
            __float2half_rn(tile::silu_times(__half2float(gh), __half2float(uh)));
      }
    }
  }
  if (gp.pair && strip == 0)
    for (int i = tid; i < gp.y_frag.num_pads; i += blockDim.x) gp.y_frag.out[gp.y_frag.pads[i]] = __ushort_as_half(0);
  if (gp.res_on) {
    __syncwarp();
    if (tid == 0) {  // this block's sum of squares, in column order
      float ss = 0.0f;
      for (int c = 0; c < quant::kStripCols; ++c)
        if (strip * quant::kStripCols + c < v.out_features) ss += red[c];
      gp.res.partials[blockIdx.x] = ss;
    }
    if (strip == 0)
      for (int f = 0; f < gp.res.num_targets; ++f)
        for (int i = tid; i < gp.res.targets[f].num_pads; i += blockDim.x)
          gp.res.targets[f].out[gp.res.targets[f].pads[i]] = 0.0f;
  }
}

// One body for all parts (the part picked by a run-time index into the __grid_constant__ parameters, read in place)
// and a class loop that is not unrolled: 6 instances of the stream instead of 3 parts x 6 classes x 6 widths, a 12x
// smaller kernel (bench/results/2026-11-23d-gemv-lab.md, run 8). Pair mode: block b is strip b of both parts.
// kExpert: the expert-mode instance (gemv_one_experts), a separate kernel so that the plain instance keeps its own
// register allocation (one body each: both bodies in one kernel measured 16% slower decode, 2026-12-07).
template <bool kExpert>
__global__ void __launch_bounds__(kMaxSliceWarps * 32, kMinBlocksAtMax)
    gemv_one_kernel(const __grid_constant__ Gemv1Params gp) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int32_t b = static_cast<int32_t>(blockIdx.x);
  const int part = gp.pair ? (static_cast<int>(threadIdx.x >> 5) >= gp.slices ? 1 : 0)
                   : (gp.num_parts > 2 && b >= gp.parts[2].block_begin) ? 2
                   : (gp.num_parts > 1 && b >= gp.parts[1].block_begin) ? 1
                                                                        : 0;
  const int32_t local = b - gp.parts[part].block_begin;
  if constexpr (kExpert) {
    const int32_t slot = local / gp.ex_strips[part];
    pdl_wait();  // the ids (and x) come from earlier kernels
    const QuantTilesView& v = gp.ex_views[part][gp.ex_ids[slot]];
    gemv_one_body(gp, part, v, gp.x + int64_t{slot / gp.ex_x_div} * gp.ex_x_stride,
                  gp.parts[part].y + slot * gp.ex_y_stride[part], local % gp.ex_strips[part], smem_raw);
  } else {
    gemv_one_body(gp, part, gp.parts[part].w, gp.x, gp.parts[part].y, local, smem_raw);
  }
}

}  // namespace

namespace {
// About 8 tiles per warp, at most 8 warps (K = 4096 -> 8 warps, K = 14336 -> 8 warps of 28 tiles); `warps` > 0
// (GemvOneTuning::warps) forces the count.
int slices_by_tiles(int32_t num_tiles, int warps) {
  if (warps > 0) return warps;
  return std::clamp((num_tiles + 7) / 8, 1, 8);
}

int sm_count() {
  static const int n = [] {
    int dev = 0, v = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
      return 0;
    return v;
  }();
  return n;
}

// Warps per block of a launch, by kind (GemvOneTuning::slices): [0] one part whose strips fit one wave of 12-warp
// blocks (2 per SM: o_proj, down_proj of Llama-3-8B), [1] other single or grouped launches (q/k/v), [2] per part of a
// SwiGLU pair, [3] more than 8 waves of strips (the head); at most 8 tiles per warp are taken below 9 warps (the
// measured rule), at least 4 tiles per warp above. Default 12,8,3,4: 12-warp o/down blocks were within noise of 8
// while the L2 prefetch was on, and are +1.0% (EXL2) / +0.3% (GPTQ) at 2k without it; 4-warp head blocks (6 per SM:
// 10 waves of the 8016 strips instead of 20.2) +0.6% (EXL2, twice) (2026-11-24d, runs 7-9, 12, 14).
// GemvOneTuning::warps > 0 sets every launch instead (a pair's parts at most kMaxSliceWarps / 2).
int launch_slices(int32_t max_tiles, int64_t strips, bool pair, const GemvOneTuning& tuning) {
  const int by_tiles = slices_by_tiles(max_tiles, tuning.warps);
  if (tuning.warps > 0) return pair ? std::min(by_tiles, kMaxSliceWarps / 2) : by_tiles;
  const int32_t* cfg = tuning.slices;
  const int want = pair                                              ? cfg[2]
                   : strips <= int64_t{kMinBlocksAtMax} * sm_count() ? cfg[0]
                   : strips > int64_t{8} * sm_count()                 ? cfg[3]
                                                                      : cfg[1];
  if (want <= 8) return std::min(want, by_tiles);
  return std::min(want, std::clamp((max_tiles + 3) / 4, 1, kMaxSliceWarps));
}
}  // namespace

bool gemv_one_preferred(const GemvPart* parts, int num_parts, const __half* x_up) {
  // Measured on H100, llama3-8b shapes, one decode step (bench/results/2026-11-23c-gemv-one.md): gemv_one is faster
  // where gemv_quant needs split-K (q/k/v 21 -> 17 us, o_proj 15 -> 13 us, the 6-bit head 209 -> 180 us) and
  // slower where gemv_quant runs one slice per column block (gate/up 41.5 -> 45 us) or with the SwiGLU input on a
  // long K (down_proj 27.5 -> 40 us: every block gathers all of x).
  if (x_up != nullptr) return false;
  for (int i = 0; i < num_parts; ++i)
    if (parts[i].plan->splits <= 1 || parts[i].w->in_features > 8192) return false;
  return true;
}

void gemv_one_multi(const GemvPart* parts, int num_parts, const __half* x, const GemvOneTuning& tuning,
                    cudaStream_t stream, const GemvOneFrag* frag) {
  if (num_parts < 1 || num_parts > kGemvMaxParts)
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument, "gemv_one: %d matrices in one launch (1 .. %d)",
                        num_parts, kGemvMaxParts);
  const bool pair = frag != nullptr && frag->swiglu_pair;
  Gemv1Params p{};
  p.num_parts = num_parts;
  p.l1_batches = tuning.l1_batches;
  p.x = x;
  if (frag != nullptr) {
    for (int i = 0; i < num_parts; ++i) {
      p.x_frag[i] = frag->x[i];
      p.x_frag32[i] = frag->x32[i];
      const void* in = p.x_frag32[i] != nullptr ? static_cast<const void*>(p.x_frag32[i]) : p.x_frag[i];
      if (in == nullptr || reinterpret_cast<uintptr_t>(in) % 16 != 0 ||
          (p.x_frag32[i] != nullptr && (p.x_frag[i] != nullptr || frag->norm.partials == nullptr ||
                                        frag->norm.count < 1 || frag->norm.hidden < 1)))
        raise_kernel_errorf(KernelErrorKind::kInvalidArgument,
                            "gemv_one: fragment-ordered input %d is missing, not 16-byte aligned, or an fp32 input "
                            "without its norm's partial sums",
                            i);
    }
    p.norm = frag->norm;
    if (frag->res_on) {
      bool ok = num_parts == 1 && !frag->swiglu_pair && frag->res.x != nullptr && frag->res.weight != nullptr &&
                frag->res.partials != nullptr && frag->res.num_targets >= 0 &&
                frag->res.num_targets <= kMaxFragTargets;
      for (int t = 0; ok && t < frag->res.num_targets; ++t)
        ok = frag->res.targets[t].out != nullptr && frag->res.targets[t].dest != nullptr &&
             (frag->res.targets[t].num_pads == 0 || frag->res.targets[t].pads != nullptr);
      if (!ok)
        raise_kernel_error(KernelErrorKind::kInvalidArgument,
                           "gemv_one: a residual epilogue needs one matrix, the stream, the norm weight, the partial "
                           "sums and complete targets");
      p.res_on = 1;
      p.res = frag->res;
    }
  }
  if (pair) {
    if (num_parts != 2 || parts[0].w->width != parts[1].w->width ||
        parts[0].w->out_features != parts[1].w->out_features || frag->y_frag.out == nullptr ||
        frag->y_frag.dest == nullptr || (frag->y_frag.num_pads > 0 && frag->y_frag.pads == nullptr))
      raise_kernel_error(KernelErrorKind::kInvalidArgument,
                         "gemv_one: a SwiGLU pair needs two matrices of one shape (gate, up) and an output target");
    p.pair = 1;
    p.y_frag = frag->y_frag;
  }
  int32_t max_tiles = 0;
  for (int i = 0; i < num_parts; ++i) max_tiles = std::max(max_tiles, parts[i].w->num_tiles);
  // A pair runs both parts in one block of at most kMaxSliceWarps warps.
  int64_t strips = 0;
  for (int i = 0; i < num_parts; ++i) strips += (parts[i].w->width + quant::kStripCols - 1) / quant::kStripCols;
  const int slices = launch_slices(max_tiles, strips, pair, tuning);
  const int warps = pair ? 2 * slices : slices;
  p.slices = slices;
  const int per_warp_tiles = (max_tiles + slices - 1) / slices;
  p.max_tiles = per_warp_tiles;
  p.max_groups = 0;
  for (int i = 0; i < num_parts; ++i) {
    const GemvSplitPlan& pl = *parts[i].plan;
    // The plan's exact count for this slice count, else the bound: a group has >= 32 rows (one chunk).
    const int32_t exact = slices <= kGemvOneMaxSlices ? pl.one_max_groups_by_slices[slices] : 0;
    p.max_groups = std::max(p.max_groups, exact > 0 ? exact : 2 * per_warp_tiles);
  }
  p.warp_bytes = static_cast<int32_t>(sizeof(uint4) * 8 * p.max_groups +
                                      sizeof(int32_t) * ((2 * p.max_tiles + 3) / 4 * 4) +
                                      sizeof(uint32_t) * 32 * p.max_tiles);
  p.warp_bytes = (p.warp_bytes + 15) / 16 * 16;
  int64_t blocks = 0;
  for (int i = 0; i < num_parts; ++i) {
    const QuantTilesView& w = *parts[i].w;
    if (w.in_features != parts[0].w->in_features)
      raise_kernel_errorf(KernelErrorKind::kInvalidArgument,
                          "gemv_one: grouped matrices need one input size (%lld vs %lld)",
                          static_cast<long long>(w.in_features), static_cast<long long>(parts[0].w->in_features));
    p.parts[i].w = w;
    p.parts[i].y = parts[i].y;
    p.parts[i].block_begin = pair ? 0 : static_cast<int32_t>(blocks);
    if (!pair || i == 0) blocks += (w.width + quant::kStripCols - 1) / quant::kStripCols;
  }
  if (blocks <= 0 || blocks > (int64_t{1} << 31) - 1)
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument, "gemv_one: %lld blocks", static_cast<long long>(blocks));
  const size_t smem = sizeof(float) * kMaxSliceWarps * quant::kStripCols + static_cast<size_t>(warps) * p.warp_bytes;
  auto kernel = gemv_one_kernel<false>;
  if (smem > 48 * 1024) {
    check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
               "gemv_one: cudaFuncSetAttribute");
  }
  launch_pdl("gemv_one", kernel, dim3(static_cast<unsigned>(blocks)), dim3(32 * warps), smem, stream, p);
}


void gemv_one_experts(const GemvExpertPart* parts, int num_parts, const int32_t* ids, int64_t num_slots,
                      const __half* x, int64_t x_div, const GemvOneTuning& tuning, cudaStream_t stream) {
  if (num_parts < 1 || num_parts > kGemvMaxParts || ids == nullptr || x == nullptr || num_slots < 0 || x_div < 1)
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument,
                        "gemv_one_experts: %d matrices, %lld slots, x_div %lld (1 .. %d matrices, ids and x needed)",
                        num_parts, static_cast<long long>(num_slots), static_cast<long long>(x_div), kGemvMaxParts);
  if (num_slots == 0) return;
  Gemv1Params p{};
  p.num_parts = num_parts;
  p.l1_batches = tuning.l1_batches;
  p.x = x;
  p.ex_ids = ids;
  p.ex_x_div = static_cast<int32_t>(x_div);
  p.ex_x_stride = parts[0].in_features;
  int32_t max_tiles = 0;
  int64_t strips = 0;
  for (int i = 0; i < num_parts; ++i) {
    const GemvExpertPart& e = parts[i];
    if (e.views == nullptr || e.y == nullptr || e.in_features != parts[0].in_features || e.width < 1 ||
        e.max_tiles < 1 || e.y_stride < e.out_features)
      raise_kernel_errorf(KernelErrorKind::kInvalidArgument,
                          "gemv_one_experts: matrix %d (%lld inputs, width %lld, %d tiles, output stride %lld) does "
                          "not match the launch (%lld inputs)",
                          i, static_cast<long long>(e.in_features), static_cast<long long>(e.width), e.max_tiles,
                          static_cast<long long>(e.y_stride), static_cast<long long>(parts[0].in_features));
    max_tiles = std::max(max_tiles, e.max_tiles);
    strips += (e.width + quant::kStripCols - 1) / quant::kStripCols * num_slots;
  }
  const int slices = launch_slices(max_tiles, strips, false, tuning);
  p.slices = slices;
  const int per_warp_tiles = (max_tiles + slices - 1) / slices;
  p.max_tiles = per_warp_tiles;
  p.max_groups = 0;
  for (int i = 0; i < num_parts; ++i) {
    const int32_t exact = slices <= kGemvOneMaxSlices ? parts[i].max_groups_by_slices[slices] : 0;
    p.max_groups = std::max(p.max_groups, exact > 0 ? exact : 2 * per_warp_tiles);
  }
  p.warp_bytes = static_cast<int32_t>(sizeof(uint4) * 8 * p.max_groups +
                                      sizeof(int32_t) * ((2 * p.max_tiles + 3) / 4 * 4) +
                                      sizeof(uint32_t) * 32 * p.max_tiles);
  p.warp_bytes = (p.warp_bytes + 15) / 16 * 16;
  int64_t blocks = 0;
  for (int i = 0; i < num_parts; ++i) {
    const int64_t per_slot = (parts[i].width + quant::kStripCols - 1) / quant::kStripCols;
    p.ex_views[i] = parts[i].views;
    p.ex_strips[i] = static_cast<int32_t>(per_slot);
    p.ex_y_stride[i] = parts[i].y_stride;
    p.parts[i].y = parts[i].y;
    p.parts[i].block_begin = static_cast<int32_t>(blocks);
    blocks += per_slot * num_slots;
  }
  if (blocks > (int64_t{1} << 31) - 1)
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument, "gemv_one_experts: %lld blocks",
                        static_cast<long long>(blocks));
  const size_t smem = sizeof(float) * kMaxSliceWarps * quant::kStripCols + static_cast<size_t>(slices) * p.warp_bytes;
  auto kernel = gemv_one_kernel<true>;
  if (smem > 48 * 1024)
    check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
               "gemv_one_experts: cudaFuncSetAttribute");
  launch_pdl("gemv_one_experts", kernel, dim3(static_cast<unsigned>(blocks)), dim3(32 * slices), smem, stream, p);
}

}  // namespace exl::kernels
