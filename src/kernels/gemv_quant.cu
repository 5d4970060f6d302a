// y[M, N] = x[M, K] . Wdq[K, N] (+ bias) for M <= 32 on the tiled EXL2/GPTQ layout; fp32 accumulation.
// Shapes/layout: quant/exl2_repack.h (tiles of 16 columns x 64 rows, bit classes, perm, chunk groups); x [M, K]
// and y [M, N] row-major fp16. Thread mapping: block = 8 warps = 128 columns (warp w: strip 8 * blockIdx.x + w),
// blockIdx.y = split of the padded rows into slices of whole tiles; lane 4g + t follows mma.m16n8k16's fragments
// (A = dequantized W^T tile, B = x^T, 8 tokens per n-tile, C = y^T). Constraints: M <= 32, groups of 32-row
// multiples, W % 32 == 0. See quant_linear.cuh for the algorithm.
#include <algorithm>

#include "kernels/kernel_check.h"
#include "kernels/pdl.cuh"
#include "kernels/quant_linear.cuh"
#include "kernels/quant_tile_decode.cuh"

namespace exl::kernels {
namespace {

using quant::kTileRows;

__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Optional (off by default): at kernel start, one L2 bulk prefetch (lane 0) of the first `ahead` bytes of the warp's
// slice. (Until 2026-11-22 it was kept `ahead` bytes in front of the decode: measured slower in every setting.)
struct L2Prefetcher {
  const char* next;
  const char* end;
  int64_t ahead;
  __device__ __forceinline__ void advance(const void* consumed, int lane) {
    if (ahead <= 0) return;
    const char* target = static_cast<const char*>(consumed) + ahead;
    if (target > end) target = end;
    if (target > next) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900  // the bulk prefetch is sm_90+; older GPUs skip it
      if (lane == 0) {
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(next),
                     "r"(static_cast<uint32_t>(target - next))
                     : "memory");
      }
#else
      (void)lane;
#endif
      next = target;
    }
  }
};

__device__ __forceinline__ void cp_async16(uint32_t smem_addr, const void* gptr) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr), "l"(gptr) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

// Shared memory of one block (byte offsets), the same on host and device. tp = tokens padded to whole n-tiles.
struct GemvSmemLayout {
  size_t table, chunk_flush, sx, csum, perm, zero, xs, total;
};
__host__ __device__ inline GemvSmemLayout gemv_smem_layout(int max_groups, int max_tiles, int tp, int M,
                                                           int xs_stride) {
  auto up16 = [](size_t b) { return (b + 15) & ~size_t{15}; };
  GemvSmemLayout l{};
  l.table = 0;
  l.chunk_flush = l.table + size_t{8} * 64 * max_groups;
  l.sx = up16(l.chunk_flush + size_t{4} * 2 * max_tiles);
  l.csum = up16(l.sx + size_t{4} * max_groups * tp);
  l.perm = up16(l.csum + size_t{4} * 2 * max_tiles * tp);
  l.zero = l.perm + size_t{4} * kTileRows * max_tiles;
  l.xs = l.zero + 128;
  l.total = l.xs + size_t{2} * M * xs_stride;
  return l;
}

// Position of row rr (0..63) of a tile in the fragment order of the shared x copy: rr = 16 ks + 8 e + 2 t + h goes to
// 16 t + 4 ks + 2 e + h, so lane t's B fragments of all four k-steps are 16 contiguous halves (two 16-byte loads).
__device__ __forceinline__ int frag_pos(int r) {
  const int rr = r & 63;
  return (r & ~63) | (((rr >> 1) & 3) << 4) | (((rr >> 4) & 3) << 2) | (((rr >> 3) & 1) << 1) | (rr & 1);
}

template <int kNTiles>
struct SliceSmem {
  const uint2* table;         // [groups][8 strips][8]: {scale(g), scale(g+8)}, {1024+zero(g), 1024+zero(g+8)} half2
  const int32_t* chunk_flush; // per 32-row chunk: its slice-local group if that group ends with it, else -1
  const float* sx;            // [groups][tp]: sum of x over the group's rows in the slice, per token
  int tp;
  const __half* x[kNTiles];   // this lane's B rows (token nt*8+g in fragment order, or 64 zeros), + 16 t
  int xstep[kNTiles];         // halves per tile (64; 0 for the zero row)
};

// End of a group: total += scale * (sum (1024+q) x - (1024+zero) * sum x), per column and token; accg restarts.
// The codes enter the mma as exact fp16 (1024 + q); zero and scale are applied here in fp32 (one rounding of the
// fp32 product per group instead of one fp16 rounding per weight: within 1e-4 of the CPU oracle's weights).
template <int kNTiles>
__device__ __forceinline__ void flush_group(const SliceSmem<kNTiles>& s, int gl, int warp, int lane,
                                            float (&accg)[kNTiles][4], float (&total)[kNTiles][4]) {
  const int g = lane >> 2, t = lane & 3;
  const uint2 e = s.table[gl * 64 + warp * 8 + g];
  const float2 sc = __half22float2(tile::u32_as_half2(e.x)), zm = __half22float2(tile::u32_as_half2(e.y));
#pragma unroll
  for (int nt = 0; nt < kNTiles; ++nt) {
    const float2 sv = *reinterpret_cast<const float2*>(s.sx + gl * s.tp + nt * 8 + 2 * t);
    total[nt][0] = fmaf(sc.x, fmaf(-zm.x, sv.x, accg[nt][0]), total[nt][0]);
    total[nt][1] = fmaf(sc.x, fmaf(-zm.x, sv.y, accg[nt][1]), total[nt][1]);
    total[nt][2] = fmaf(sc.y, fmaf(-zm.y, sv.x, accg[nt][2]), total[nt][2]);
    total[nt][3] = fmaf(sc.y, fmaf(-zm.y, sv.y, accg[nt][3]), total[nt][3]);
    accg[nt][0] = accg[nt][1] = accg[nt][2] = accg[nt][3] = 0.0f;
  }
}

// One tile (64 rows = 2 chunks) of one strip: per chunk two k-steps of mma on the raw codes, then the group's
// flush if the group ends there (block-uniform branch).
template <int kBits, int kNTiles>
__device__ __forceinline__ void tile_mma(const uint32_t (&w)[kBits], int tile, int warp, int lane,
                                         const SliceSmem<kNTiles>& s, float (&accg)[kNTiles][4],
                                         float (&total)[kNTiles][4]) {
  const int2 fl = *reinterpret_cast<const int2*>(s.chunk_flush + 2 * tile);
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    uint4 bx[kNTiles];
#pragma unroll
    for (int nt = 0; nt < kNTiles; ++nt)
      bx[nt] = *reinterpret_cast<const uint4*>(s.x[nt] + tile * s.xstep[nt] + 8 * h);
#pragma unroll
    for (int k2 = 0; k2 < 2; ++k2) {
      const int kstep = 2 * h + k2;
      uint32_t a[4];
#pragma unroll
      for (int r = 0; r < 4; ++r) a[r] = tile::pair_magic<kBits>(w, 4 * kstep + r);
#pragma unroll
      for (int nt = 0; nt < kNTiles; ++nt)
        mma_16816(accg[nt], a, k2 ? bx[nt].z : bx[nt].x, k2 ? bx[nt].w : bx[nt].y);
    }
    const int gl = h ? fl.y : fl.x;
    if (gl >= 0) flush_group<kNTiles>(s, gl, warp, lane, accg, total);
  }
}

// One batch of kU tiles (tiles [i, i + kU) of the class, those < count) into registers.
template <int kBits, int kU>
__device__ __forceinline__ void load_batch(const uint32_t* tiles, int i, int count, int lane,
                                           uint32_t (&w)[kU][kBits]) {
#pragma unroll
  for (int u = 0; u < kU; ++u) {
    if (i + u < count) {
      tile::load_tile<kBits>(tiles + (i + u) * (32 * kBits), lane, w[u]);
    } else {
#pragma unroll
      for (int b = 0; b < kBits; ++b) w[u][b] = 0;
    }
  }
}

// Tiles per register batch: kU * kBits <= kFirstBatchWords for every width.
template <int kBits>
__host__ __device__ constexpr int batch_tiles() { return kBits <= 4 ? 4 : (kBits == 5 ? 3 : 2); }
inline constexpr int kFirstBatchWords = 16;

// The slice's first batch, issued before the prologue so the weight stream's first DRAM latency overlaps it.
template <int kBits>
__device__ __forceinline__ void load_first_batch(const uint32_t* tiles, int count, int lane,
                                                 uint32_t (&pre)[kFirstBatchWords]) {
  constexpr int kU = batch_tiles<kBits>();
  static_assert(kU * kBits <= kFirstBatchWords, "first batch");
  uint32_t w[kU][kBits];
  load_batch<kBits, kU>(tiles, 0, count, lane, w);
#pragma unroll
  for (int u = 0; u < kU; ++u)
#pragma unroll
    for (int b = 0; b < kBits; ++b) pre[u * kBits + b] = w[u][b];
}

// Tiles [0, count) of one class for this warp's strip; `tiles` points at the first one, `tile0` is its index in the
// slice. Register double buffer: the next batch's loads are issued before the current batch is decoded, so each warp
// keeps kU..2kU tiles in flight. `first`: the slice's first class, whose first batch is already in `pre`.
template <int kBits, int kNTiles>
__device__ __forceinline__ void class_tiles(const uint32_t* tiles, int count, int tile0, int warp, int lane,
                                            const SliceSmem<kNTiles>& s, float (&accg)[kNTiles][4],
                                            float (&total)[kNTiles][4], bool first,
                                            const uint32_t (&pre)[kFirstBatchWords]) {
  constexpr int kU = batch_tiles<kBits>();
  uint32_t wa[kU][kBits], wb[kU][kBits];
  if (first) {
#pragma unroll
    for (int u = 0; u < kU; ++u)
#pragma unroll
      for (int b = 0; b < kBits; ++b) wa[u][b] = pre[u * kBits + b];
  } else {
    load_batch<kBits, kU>(tiles, 0, count, lane, wa);
  }
  for (int i = 0; i < count; i += 2 * kU) {
    load_batch<kBits, kU>(tiles, i + kU, count, lane, wb);
#pragma unroll
    for (int u = 0; u < kU; ++u)
      if (i + u < count) tile_mma<kBits, kNTiles>(wa[u], tile0 + i + u, warp, lane, s, accg, total);
    load_batch<kBits, kU>(tiles, i + 2 * kU, count, lane, wa);
#pragma unroll
    for (int u = 0; u < kU; ++u)
      if (i + kU + u < count) tile_mma<kBits, kNTiles>(wb[u], tile0 + i + kU + u, warp, lane, s, accg, total);
  }
}

// One matrix of a (possibly grouped) launch: blocks [block_begin, block_begin + col_blocks * splits) of the grid.
struct GemvPartParams {
  QuantTilesView w;
  GemvSplitPlan plan;
  __half* y;
  float* partials;
  uint32_t* counters;
  int32_t block_begin;
  int32_t col_blocks;
  int32_t xs_stride;
};

struct GemvParams {
  GemvPartParams parts[kGemvMaxParts];
  int32_t num_parts;
  const __half* x;
  const __half* x_up;  // non-null: the input is half(silu(x) * x_up), the SwiGLU product (activation.cu)
  int M;
};

// Same formula and rounding as silu_mul in activation.cu.
__device__ __forceinline__ float silu_times(float g, float u) { return g / (1.0f + expf(-g)) * u; }

template <int kNTiles, bool kSwiglu>
__device__ __forceinline__ void gemv_body(const GemvParams& gp, const GemvPartParams& p, unsigned char* smem_raw) {
  const QuantTilesView& v = p.w;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int local_block = static_cast<int>(blockIdx.x) - p.block_begin;
  const int col_block = local_block % p.col_blocks, split = local_block / p.col_blocks;
  const int T = v.num_tiles, splits = p.plan.splits;
  const int ts = static_cast<int>(int64_t{split} * T / splits);
  const int te = static_cast<int>(int64_t{split + 1} * T / splits);
  const int slice_rows = (te - ts) * kTileRows;
  const int chunks = 2 * (te - ts);
  const int M = gp.M;

  constexpr int kTp = 8 * kNTiles;
  const GemvSmemLayout lay = gemv_smem_layout(p.plan.max_groups, p.plan.max_tiles, kTp, M, p.xs_stride);
  uint2* table = reinterpret_cast<uint2*>(smem_raw + lay.table);
  int32_t* chunk_flush = reinterpret_cast<int32_t*>(smem_raw + lay.chunk_flush);
  float* sx = reinterpret_cast<float*>(smem_raw + lay.sx);
  float* csum = reinterpret_cast<float*>(smem_raw + lay.csum);
  __half* xzero = reinterpret_cast<__half*>(smem_raw + lay.zero);
  int32_t* perm_s = reinterpret_cast<int32_t*>(smem_raw + lay.perm);
  __half* xs = reinterpret_cast<__half*>(smem_raw + lay.xs);

  const int64_t strip = int64_t{col_block} * kGemvWarps + warp;
  const bool strip_valid = strip * quant::kStripCols < v.width;
  const uint32_t* strip_base = v.tiles + strip * v.strip_words;
  // The slice's tiles are contiguous in the strip (classes follow each other).
  L2Prefetcher pf{nullptr, nullptr, p.plan.prefetch_bytes};
  if (strip_valid && te > ts) {
    int64_t begin_words = -1, end_words = 0;
    for (int c = 0; c < v.num_classes; ++c) {
      const quant::TileClass& cls = v.classes[c];
      const int lo = max(ts, cls.tile_begin), hi = min(te, cls.tile_end);
      if (lo >= hi) continue;
      if (begin_words < 0) begin_words = cls.word_offset + int64_t{lo - cls.tile_begin} * cls.bits;
      end_words = cls.word_offset + int64_t{hi - cls.tile_begin} * cls.bits;
    }
    pf.next = reinterpret_cast<const char*>(strip_base + 32 * begin_words);
    pf.end = reinterpret_cast<const char*>(strip_base + 32 * end_words);
    pf.advance(pf.next, lane);
  }

  auto prologue = [&]() {
    const int32_t g_first = slice_rows > 0 ? __ldg(v.chunk_group + 2 * ts) : 0;
    const int32_t g_last = slice_rows > 0 ? __ldg(v.chunk_group + 2 * te - 1) : -1;
    const int ng = g_last - g_first + 1;
    const int nthreads = blockDim.x;
    // chunk_flush[c]: the slice-local group of chunk c if its group ends there (or the slice does), else -1.
    for (int i = tid; i < chunks; i += nthreads) {
      const int32_t cg = __ldg(v.chunk_group + 2 * ts + i);
      const int32_t next = i + 1 < chunks ? __ldg(v.chunk_group + 2 * ts + i + 1) : -1;
      chunk_flush[i] = next != cg ? cg - g_first : -1;
    }
    if (tid < 64) xzero[tid] = __ushort_as_half(0);
    // Loads first, stores after, several per thread: the prologue costs about two memory latencies.
    constexpr int kIlp = 4;
    for (int i0 = tid; i0 < ng * 64; i0 += kIlp * nthreads) {
      __half sc[kIlp][2], zm[kIlp][2];
#pragma unroll
      for (int u = 0; u < kIlp; ++u) {
        const int i = i0 + u * nthreads;
        const int e = i & 63;
        const int64_t col = int64_t{col_block} * kGemvBlockCols + (e >> 3) * quant::kStripCols + (e & 7);
        const int grp = min(g_first + (i >> 6), g_last);
        tile::column_scale(v, grp, col, sc[u][0], zm[u][0]);
        tile::column_scale(v, grp, col + 8, sc[u][1], zm[u][1]);
      }
#pragma unroll
      for (int u = 0; u < kIlp; ++u) {
        const int i = i0 + u * nthreads;
        if (i < ng * 64) {
          table[i] = make_uint2(tile::half2_as_u32(__halves2half2(sc[u][0], sc[u][1])),
                                tile::half2_as_u32(__halves2half2(zm[u][0], zm[u][1])));
        }
      }
    }
    // Everything above reads only the weights; x is the previous kernel's output. The slice's permutation indices
    // are copied into shared memory before the wait too (cp.async, no registers held), so after the wait the
    // gather is one round of independent x loads.
    for (int i = tid; i < slice_rows / 4; i += nthreads)
      cp_async16(static_cast<uint32_t>(__cvta_generic_to_shared(perm_s + 4 * i)),
                 v.perm + int64_t{ts} * kTileRows + 4 * i);
    cp_async_commit();
    constexpr int kGatherIlp = kSwiglu ? 4 : 8;
    const int total = M * slice_rows;
    int32_t src[kGatherIlp];
    auto load_src = [&](int i0) {
#pragma unroll
      for (int u = 0; u < kGatherIlp; ++u) {
        const int i = i0 + u * nthreads;
        const int tok = i / slice_rows;
        src[u] = i < total ? perm_s[i - tok * slice_rows] : -1;
      }
    };
    pdl_wait();
    pdl_launch_dependents();
    cp_async_wait<0>();
    __syncthreads();
    for (int i0 = tid; i0 < total; i0 += kGatherIlp * nthreads) {
      load_src(i0);
      __half val[kGatherIlp];
      if constexpr (!kSwiglu) {
#pragma unroll
        for (int u = 0; u < kGatherIlp; ++u) {
          const int tok = (i0 + u * nthreads) / slice_rows;
          val[u] = src[u] < 0 ? __ushort_as_half(0) : gp.x[int64_t{tok} * v.in_features + src[u]];
        }
      } else {
        __half up[kGatherIlp];
#pragma unroll
        for (int u = 0; u < kGatherIlp; ++u) {
          const int tok = (i0 + u * nthreads) / slice_rows;
          const int64_t at = int64_t{tok} * v.in_features + src[u];
          val[u] = src[u] < 0 ? __ushort_as_half(0) : gp.x[at];
          up[u] = src[u] < 0 ? __ushort_as_half(0) : gp.x_up[at];
        }
#pragma unroll
        for (int u = 0; u < kGatherIlp; ++u)
          val[u] = __float2half_rn(silu_times(__half2float(val[u]), __half2float(up[u])));
      }
      // A warp's 32 elements of one u are one 32-row chunk of one token (slice_rows % 64 == 0): its sum in fp32 by
      // shuffles (the same fp16 values the mma sees), in a fixed order.
      float sum[kGatherIlp];
#pragma unroll
      for (int u = 0; u < kGatherIlp; ++u) sum[u] = __half2float(val[u]);
#pragma unroll
      for (int off = 16; off > 0; off >>= 1)
#pragma unroll
        for (int u = 0; u < kGatherIlp; ++u) sum[u] += __shfl_xor_sync(0xffffffffu, sum[u], off);
#pragma unroll
      for (int u = 0; u < kGatherIlp; ++u) {
        const int i = i0 + u * nthreads;
        if (i < total) {
          const int tok = i / slice_rows;
          const int r = i - tok * slice_rows;
          xs[tok * p.xs_stride + frag_pos(r)] = val[u];
          if (lane == 0) csum[(r >> 5) * kTp + tok] = sum[u];
        }
      }
    }
    __syncthreads();
    // Group sums: the thread of a group's last chunk adds its chunks backwards (deterministic order); tokens past M
    // get 0.
    for (int i = tid; i < chunks * kTp; i += nthreads) {
      const int c = i / kTp, tok = i - c * kTp;
      const int32_t gl = chunk_flush[c];
      if (gl < 0) continue;
      float sg = 0.0f;
      if (tok < M) {
        sg = csum[c * kTp + tok];
        for (int c2 = c - 1; c2 >= 0 && chunk_flush[c2] < 0; --c2) sg += csum[c2 * kTp + tok];
      }
      sx[gl * kTp + tok] = sg;
    }
    __syncthreads();
  };

  float accg[kNTiles][4], acc[kNTiles][4];
#pragma unroll
  for (int nt = 0; nt < kNTiles; ++nt)
#pragma unroll
    for (int i = 0; i < 4; ++i) accg[nt][i] = acc[nt][i] = 0.0f;
  {
    SliceSmem<kNTiles> s;
    s.table = table;
    s.chunk_flush = chunk_flush;
    s.sx = sx;
    s.tp = kTp;
#pragma unroll
    for (int nt = 0; nt < kNTiles; ++nt) {
      const int tok = nt * 8 + (lane >> 2);
      s.x[nt] = (tok < M ? xs + tok * p.xs_stride : xzero) + 16 * (lane & 3);
      s.xstep[nt] = tok < M ? kTileRows : 0;
    }
    // The slice's tiles of class c: [lo, hi) of the whole matrix.
    auto class_range = [&](int c, int& lo, int& hi, const uint32_t*& first_tile) {
      const quant::TileClass& cls = v.classes[c];
      lo = max(ts, cls.tile_begin), hi = min(te, cls.tile_end);
      first_tile = strip_base + int64_t{32} * (cls.word_offset + int64_t{lo - cls.tile_begin} * cls.bits);
    };
    uint32_t pre[kFirstBatchWords];
    int c_first = v.num_classes;
    for (int c = 0; c < v.num_classes; ++c) {
      int lo, hi;
      const uint32_t* first_tile;
      class_range(c, lo, hi, first_tile);
      if (lo >= hi) continue;
      c_first = c;
      const int count = strip_valid ? hi - lo : 0;
      switch (v.classes[c].bits) {
        case 2: load_first_batch<2>(first_tile, count, lane, pre); break;
        case 3: load_first_batch<3>(first_tile, count, lane, pre); break;
        case 4: load_first_batch<4>(first_tile, count, lane, pre); break;
        case 5: load_first_batch<5>(first_tile, count, lane, pre); break;
        case 6: load_first_batch<6>(first_tile, count, lane, pre); break;
        default: load_first_batch<8>(first_tile, count, lane, pre); break;
      }
      break;
    }
    prologue();
    for (int c = c_first; c < v.num_classes; ++c) {
      int lo, hi;
      const uint32_t* first_tile;
      class_range(c, lo, hi, first_tile);
      if (lo >= hi) continue;
      const int tile0 = lo - ts;
      const int count = strip_valid ? hi - lo : 0;
      const bool first = c == c_first;
      switch (v.classes[c].bits) {
        case 2: class_tiles<2, kNTiles>(first_tile, count, tile0, warp, lane, s, accg, acc, first, pre); break;
        case 3: class_tiles<3, kNTiles>(first_tile, count, tile0, warp, lane, s, accg, acc, first, pre); break;
        case 4: class_tiles<4, kNTiles>(first_tile, count, tile0, warp, lane, s, accg, acc, first, pre); break;
        case 5: class_tiles<5, kNTiles>(first_tile, count, tile0, warp, lane, s, accg, acc, first, pre); break;
        case 6: class_tiles<6, kNTiles>(first_tile, count, tile0, warp, lane, s, accg, acc, first, pre); break;
        default: class_tiles<8, kNTiles>(first_tile, count, tile0, warp, lane, s, accg, acc, first, pre); break;
      }
    }
  }

  const int g = lane >> 2, t = lane & 3;
  const int64_t N = v.out_features, W = v.width;
  if (splits == 1) {
    if (!strip_valid) return;
#pragma unroll
    for (int nt = 0; nt < kNTiles; ++nt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int tok = nt * 8 + 2 * t + (i & 1);
        const int64_t col = strip * quant::kStripCols + g + 8 * (i >> 1);
        if (tok >= M || col >= N) continue;
        float val = acc[nt][i];
        if (v.bias) val += __half2float(v.bias[col]);
        p.y[tok * N + col] = __float2half_rn(val);
      }
    }
    return;
  }
  if (strip_valid) {
#pragma unroll
    for (int nt = 0; nt < kNTiles; ++nt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int tok = nt * 8 + 2 * t + (i & 1);
        const int64_t col = strip * quant::kStripCols + g + 8 * (i >> 1);
        if (tok < M) p.partials[(int64_t{split} * M + tok) * W + col] = acc[nt][i];
      }
    }
  }
  __threadfence();
  __syncthreads();
  __shared__ bool is_last;
  if (tid == 0) is_last = atomicAdd(p.counters + col_block, 1u) == static_cast<unsigned>(splits - 1);
  __syncthreads();
  if (!is_last) return;
  __threadfence();
  for (int i = tid; i < M * kGemvBlockCols; i += blockDim.x) {
    const int tok = i / kGemvBlockCols;
    const int64_t col = int64_t{col_block} * kGemvBlockCols + (i - tok * kGemvBlockCols);
    if (col >= N) continue;
    float val = 0.0f;
#pragma unroll 8
    for (int sp = 0; sp < splits; ++sp) val += __ldcg(p.partials + (int64_t{sp} * M + tok) * W + col);
    if (v.bias) val += __half2float(v.bias[col]);
    p.y[tok * N + col] = __float2half_rn(val);
  }
  if (tid == 0) p.counters[col_block] = 0;
}

static_assert(kGemvMaxParts == 3, "gemv_quant_kernel dispatches on up to three parts");

// The part is picked with compile-time indices so its fields stay in the kernel's constant bank (a run-time index
// into the parameter struct made every field access a dependent generic load: measured slower).
template <int kNTiles, bool kSwiglu>
__global__ void __launch_bounds__(kGemvWarps * 32) gemv_quant_kernel(const GemvParams gp) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int32_t b = static_cast<int32_t>(blockIdx.x);
  if (gp.num_parts > 2 && b >= gp.parts[2].block_begin)
    gemv_body<kNTiles, kSwiglu>(gp, gp.parts[2], smem_raw);
  else if (gp.num_parts > 1 && b >= gp.parts[1].block_begin)
    gemv_body<kNTiles, kSwiglu>(gp, gp.parts[1], smem_raw);
  else
    gemv_body<kNTiles, kSwiglu>(gp, gp.parts[0], smem_raw);
}

int xs_stride_for(const GemvSplitPlan& plan) {
  // Row stride in halves: >= the slice rows, and == 8 (mod 64) so the 8 tokens' B loads hit distinct banks.
  return plan.max_tiles * kTileRows + 8;
}

__global__ void add_bias_kernel(__half* y, const __half* bias, int64_t total, int64_t N) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x)
    y[i] = __float2half_rn(__half2float(y[i]) + __half2float(bias[i % N]));
}

// The one place that turns num_tokens into the kernel's n-tile count; its list is the kUnsupported message.
template <typename Fn>
void dispatch_token_tiles(int64_t num_tokens, Fn&& fn) {
  switch ((num_tokens + 7) / 8) {
    case 1: fn(std::integral_constant<int, 1>{}); return;
    case 2: fn(std::integral_constant<int, 2>{}); return;
    case 3: fn(std::integral_constant<int, 3>{}); return;
    case 4: fn(std::integral_constant<int, 4>{}); return;
    default:
      raise_kernel_errorf(KernelErrorKind::kUnsupported, "gemv_quant: num_tokens %lld is not supported (supported: 1 .. %d)",
                          static_cast<long long>(num_tokens), kGemvMaxTokens);
  }
}

}  // namespace

int32_t gemv_default_splits(int64_t width, int32_t num_tiles, int sm_count, int blocks_per_sm) {
  const int64_t col_blocks = (width + kGemvBlockCols - 1) / kGemvBlockCols;
  // One full wave: as many slices as fit next to each other in the resident block slots (a partial second wave
  // of latency-bound blocks cost ~2 us: 288 blocks on 264 slots), slices of at least 2 tiles.
  const int64_t slots = int64_t{sm_count} * std::max(blocks_per_sm, 1);
  const int64_t want = std::max<int64_t>(1, slots / col_blocks);
  return static_cast<int32_t>(std::clamp<int64_t>(std::min<int64_t>(want, num_tiles / 2), 1, 64));
}

int gemv_blocks_per_sm(const GemvSplitPlan& plan, int64_t num_tokens) {
  int blocks = 0;
  const size_t smem = gemv_shared_bytes(plan, num_tokens);
  dispatch_token_tiles(num_tokens, [&](auto nt) {
    auto kernel = gemv_quant_kernel<decltype(nt)::value, false>;
    if (smem > 48 * 1024) {
      check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
                 "gemv_quant: cudaFuncSetAttribute");
    }
    check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, kGemvWarps * 32, smem),
               "gemv_quant: cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  });
  return blocks;
}

GemvSplitPlan plan_gemv_splits(const int32_t* chunk_group, int32_t num_tiles, int32_t splits) {
  GemvSplitPlan plan;
  plan.splits = std::clamp(splits, 1, std::max(num_tiles, 1));
  const int64_t T = num_tiles;
  for (int64_t s = 0; s < plan.splits; ++s) {
    const int64_t ts = s * T / plan.splits, te = (s + 1) * T / plan.splits;
    plan.max_tiles = std::max<int32_t>(plan.max_tiles, static_cast<int32_t>(te - ts));
    if (te > ts) plan.max_groups = std::max(plan.max_groups, chunk_group[2 * te - 1] - chunk_group[2 * ts] + 1);
  }
  return plan;
}

size_t gemv_shared_bytes(const GemvSplitPlan& plan, int64_t num_tokens) {
  const int tp = static_cast<int>((num_tokens + 7) / 8 * 8);
  return gemv_smem_layout(plan.max_groups, plan.max_tiles, tp, static_cast<int>(num_tokens), xs_stride_for(plan))
      .total;
}

int64_t gemv_partial_floats(const GemvSplitPlan& plan, int64_t width, int64_t num_tokens) {
  return plan.splits > 1 ? int64_t{plan.splits} * num_tokens * width : 0;
}

void gemv_quant_multi(const GemvPart* parts, int num_parts, const __half* x, const __half* x_up,
                      int64_t num_tokens, cudaStream_t stream) {
  if (num_tokens <= 0) return;
  if (num_parts < 1 || num_parts > kGemvMaxParts)
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument, "gemv_quant: %d matrices in one launch (1 .. %d)",
                        num_parts, kGemvMaxParts);
  GemvParams p{};
  p.num_parts = num_parts;
  p.x = x;
  p.x_up = x_up;
  p.M = static_cast<int>(num_tokens);
  size_t smem = 0;
  int64_t blocks = 0;
  for (int i = 0; i < num_parts; ++i) {
    const GemvPart& src = parts[i];
    if (src.w->in_features != parts[0].w->in_features)
      raise_kernel_errorf(KernelErrorKind::kInvalidArgument,
                          "gemv_quant: grouped matrices need one input size (%lld vs %lld)",
                          static_cast<long long>(src.w->in_features), static_cast<long long>(parts[0].w->in_features));
    GemvPartParams& d = p.parts[i];
    d.w = *src.w;
    d.plan = *src.plan;
    d.y = src.y;
    d.partials = src.partials;
    d.counters = src.counters;
    d.block_begin = static_cast<int32_t>(blocks);
    d.col_blocks = static_cast<int32_t>((src.w->width + kGemvBlockCols - 1) / kGemvBlockCols);
    d.xs_stride = xs_stride_for(*src.plan);
    blocks += int64_t{d.col_blocks} * src.plan->splits;
    smem = std::max(smem, gemv_shared_bytes(*src.plan, num_tokens));
  }
  if (blocks <= 0 || blocks > (int64_t{1} << 31) - 1)
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument, "gemv_quant: %lld blocks", static_cast<long long>(blocks));
  dispatch_token_tiles(num_tokens, [&](auto nt) {
    constexpr int kNt = decltype(nt)::value;
    auto kernel = gemv_quant_kernel<kNt, false>;
    if (x_up != nullptr) {
      // SwiGLU input: one n-tile (8 tokens) only; more tokens would spill (ptxas -v), so it is not instantiated.
      if constexpr (kNt == 1) {
        kernel = gemv_quant_kernel<1, true>;
      } else {
        raise_kernel_errorf(KernelErrorKind::kUnsupported, "gemv_quant: the SwiGLU input supports at most 8 tokens, got %lld",
                            static_cast<long long>(num_tokens));
      }
    }
    if (smem > 48 * 1024) {
      check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
                 "gemv_quant: cudaFuncSetAttribute");
    }
    launch_pdl("gemv_quant", kernel, dim3(static_cast<unsigned>(blocks)), dim3(kGemvWarps * 32), smem, stream, p);
  });
}

void gemv_quant(const QuantTilesView& w, const GemvSplitPlan& plan, const __half* x, const __half* x_up, __half* y,
                int64_t num_tokens, float* partials, uint32_t* counters, cudaStream_t stream) {
  const GemvPart part{&w, &plan, y, partials, counters};
  gemv_quant_multi(&part, 1, x, x_up, num_tokens, stream);
}

void add_bias(__half* y, const __half* bias, int64_t num_tokens, int64_t out_features, cudaStream_t stream) {
  const int64_t total = num_tokens * out_features;
  if (total == 0) return;
  const int blocks = static_cast<int>(std::min<int64_t>((total + 255) / 256, 4096));
  add_bias_kernel<<<blocks, 256, 0, stream>>>(y, bias, total, out_features);
  check_launch("add_bias");
}

}  // namespace exl::kernels
