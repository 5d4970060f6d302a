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

// Independent accumulator sets: with one token the mma chain through a single accumulator (8 per tile) is a
// latency chain; two sets alternate k-steps and are summed at the end (more tokens: registers are short).
// (The SwiGLU variant keeps one set: its gather already uses the spare registers.)
__host__ __device__ constexpr int acc_sets(int n_tiles, bool swiglu) { return n_tiles == 1 && !swiglu ? 2 : 1; }

struct SliceSmem {
  const uint2* table;     // [groups][8 strips][8]: {scale(g), scale(g+8)}, {zero(g), zero(g+8)} as half2
  const int32_t* chunk_local;  // group of each 32-row chunk, relative to the slice's first group
  const __half* xs;       // [M][xs_stride] x rows of the slice in padded stored order, 0 for padding
  int xs_stride;
};

// One tile (64 rows) of one strip: 4 k-steps of mma per n-tile.
template <int kBits, int kNTiles, int kSets>
__device__ __forceinline__ void tile_mma(const uint32_t (&w)[kBits], int tile_row, int warp, int lane, int M,
                                         const SliceSmem& s, float (&acc)[kSets][kNTiles][4]) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int cl = s.chunk_local[(tile_row >> 5) + h];
    const uint2 e = s.table[cl * 64 + warp * 8 + g];
    const __half2 sc2 = tile::u32_as_half2(e.x), z2 = tile::u32_as_half2(e.y);
    const __half2 sc[2] = {__low2half2(sc2), __high2half2(sc2)};
    const __half2 z[2] = {__low2half2(z2), __high2half2(z2)};
#pragma unroll
    for (int ks = 0; ks < 2; ++ks) {
      const int kstep = 2 * h + ks;
      uint32_t a[4];
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const __half2 q = tile::u32_as_half2(tile::pair_magic<kBits>(w, 4 * kstep + r));
        a[r] = tile::half2_as_u32(__hmul2(__hsub2(q, z[r & 1]), sc[r & 1]));
      }
#pragma unroll
      for (int nt = 0; nt < kNTiles; ++nt) {
        const int tok = nt * 8 + g;
        uint32_t b0 = 0, b1 = 0;
        if (tok < M) {
          const __half* xp = s.xs + tok * s.xs_stride + tile_row + 16 * kstep + 2 * t;
          b0 = *reinterpret_cast<const uint32_t*>(xp);
          b1 = *reinterpret_cast<const uint32_t*>(xp + 8);
        }
        mma_16816(acc[ks % kSets][nt], a, b0, b1);
      }
    }
  }
}


// Tiles [0, count) of one class for this warp's strip; `tiles` points at the first one, `row0` is its slice row.
// Register double buffer: the next batch's loads are issued before the current batch is decoded, so each warp keeps
// kU..2kU tiles in flight. `first`: the slice's first class; its first batch is issued before `prologue` (x gather +
// scale table + __syncthreads, block-uniform) so the weight stream's first DRAM latency overlaps the prologue.
// count == 0 (strip past W) still runs the prologue.
template <int kBits, int kNTiles, int kSets, typename Prologue>
__device__ __forceinline__ void class_tiles(const uint32_t* tiles, int64_t stride, int count, int row0, int warp, int lane, int M,
                                            const SliceSmem& s, float (&acc)[kSets][kNTiles][4], bool first,
                                            Prologue& prologue) {
  constexpr int kU = kBits <= 4 ? 4 : (kBits == 5 ? 3 : 2);
  uint32_t wa[kU][kBits], wb[kU][kBits];
  tile::load_batch<kBits, kU>(tiles, stride, 0, count, lane, wa);
  if (first) prologue();
  for (int i = 0; i < count; i += 2 * kU) {
    tile::load_batch<kBits, kU>(tiles, stride, i + kU, count, lane, wb);
#pragma unroll
    for (int u = 0; u < kU; ++u)
      if (i + u < count) tile_mma<kBits, kNTiles, kSets>(wa[u], row0 + (i + u) * kTileRows, warp, lane, M, s, acc);
    tile::load_batch<kBits, kU>(tiles, stride, i + 2 * kU, count, lane, wa);
#pragma unroll
    for (int u = 0; u < kU; ++u)
      if (i + kU + u < count)
        tile_mma<kBits, kNTiles, kSets>(wb[u], row0 + (i + kU + u) * kTileRows, warp, lane, M, s, acc);
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

  uint2* table = reinterpret_cast<uint2*>(smem_raw);
  int32_t* chunk_local = reinterpret_cast<int32_t*>(table + p.plan.max_groups * 64);
  __half* xs = reinterpret_cast<__half*>(chunk_local + 2 * p.plan.max_tiles);

  const int64_t strip = int64_t{col_block} * kGemvWarps + warp;
  const bool strip_valid = strip * quant::kStripCols < v.width;
  auto prologue = [&]() {
    const int32_t g_first = slice_rows > 0 ? __ldg(v.chunk_group + 2 * ts) : 0;
    const int32_t g_last = slice_rows > 0 ? __ldg(v.chunk_group + 2 * te - 1) : -1;
    const int ng = g_last - g_first + 1;
    const int nthreads = blockDim.x;
    for (int i = tid; i < chunks; i += nthreads) chunk_local[i] = __ldg(v.chunk_group + 2 * ts + i) - g_first;
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
    // Everything above reads only the weights; x is the previous kernel's output. The first round of
    // permutation indices is loaded before the wait too.
    constexpr int kGatherIlp = 4;
    const int total = M * slice_rows;
    int32_t src[kGatherIlp];
    auto load_src = [&](int i0) {
#pragma unroll
      for (int u = 0; u < kGatherIlp; ++u) {
        const int i = i0 + u * nthreads;
        const int tok = i / slice_rows;
        src[u] = i < total ? __ldg(v.perm + int64_t{ts} * kTileRows + (i - tok * slice_rows)) : -1;
      }
    };
    load_src(tid);
    pdl_wait();
    pdl_launch_dependents();
    for (int i0 = tid; i0 < total; i0 += kGatherIlp * nthreads) {
      if (i0 != tid) load_src(i0);
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
          val[u] = __float2half_rn(tile::silu_times(__half2float(val[u]), __half2float(up[u])));
      }
#pragma unroll
      for (int u = 0; u < kGatherIlp; ++u) {
        const int i = i0 + u * nthreads;
        if (i < total) {
          const int tok = i / slice_rows;
          xs[tok * p.xs_stride + (i - tok * slice_rows)] = val[u];
        }
      }
    }
    __syncthreads();
  };

  constexpr int kSets = acc_sets(kNTiles, kSwiglu);
  float accs[kSets][kNTiles][4];
#pragma unroll
  for (int a = 0; a < kSets; ++a)
#pragma unroll
    for (int nt = 0; nt < kNTiles; ++nt) accs[a][nt][0] = accs[a][nt][1] = accs[a][nt][2] = accs[a][nt][3] = 0.0f;
  {
    const SliceSmem s{table, chunk_local, xs, p.xs_stride};
    bool first = true;
    for (int c = 0; c < v.num_classes; ++c) {
      const quant::TileClass& cls = v.classes[c];
      const int lo = max(ts, cls.tile_begin), hi = min(te, cls.tile_end);
      if (lo >= hi) continue;
      const uint32_t* first_tile = v.tiles + quant::tile_first_word(cls, lo, strip_valid ? strip : 0, v.lane_words);
      const int64_t stride = quant::tile_stride_words(cls.bits);
      const int row0 = (lo - ts) * kTileRows;
      const int count = strip_valid ? hi - lo : 0;
      switch (cls.bits) {
        case 2: class_tiles<2, kNTiles, kSets>(first_tile, stride, count, row0, warp, lane, M, s, accs, first, prologue); break;
        case 3: class_tiles<3, kNTiles, kSets>(first_tile, stride, count, row0, warp, lane, M, s, accs, first, prologue); break;
        case 4: class_tiles<4, kNTiles, kSets>(first_tile, stride, count, row0, warp, lane, M, s, accs, first, prologue); break;
        case 5: class_tiles<5, kNTiles, kSets>(first_tile, stride, count, row0, warp, lane, M, s, accs, first, prologue); break;
        case 6: class_tiles<6, kNTiles, kSets>(first_tile, stride, count, row0, warp, lane, M, s, accs, first, prologue); break;
        default: class_tiles<8, kNTiles, kSets>(first_tile, stride, count, row0, warp, lane, M, s, accs, first, prologue); break;
      }
      first = false;
    }
    if (first) prologue();  // empty slice
  }

  float acc[kNTiles][4];
#pragma unroll
  for (int nt = 0; nt < kNTiles; ++nt)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      acc[nt][i] = accs[0][nt][i];
#pragma unroll
      for (int a = 1; a < kSets; ++a) acc[nt][i] += accs[a][nt][i];
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

// One body for all parts: the part is picked by a run-time index into the __grid_constant__ parameters (read in
// place, no local copy). Three inlined bodies (compile-time indices) made the kernel ~3x larger for the instruction
// cache.
template <int kNTiles, bool kSwiglu>
__global__ void __launch_bounds__(kGemvWarps * 32) gemv_quant_kernel(const __grid_constant__ GemvParams gp) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int32_t b = static_cast<int32_t>(blockIdx.x);
  const int part = (gp.num_parts > 2 && b >= gp.parts[2].block_begin)   ? 2
                   : (gp.num_parts > 1 && b >= gp.parts[1].block_begin) ? 1
                                                                        : 0;
  gemv_body<kNTiles, kSwiglu>(gp, gp.parts[part], smem_raw);
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
  // Most tiles and most groups of any of `slices` equal slices of the T tiles.
  auto slice_maxima = [&](int32_t slices, int32_t& max_tiles, int32_t& max_groups) {
    for (int64_t s = 0; s < slices; ++s) {
      const int64_t ts = s * T / slices, te = (s + 1) * T / slices;
      max_tiles = std::max<int32_t>(max_tiles, static_cast<int32_t>(te - ts));
      if (te > ts) max_groups = std::max(max_groups, chunk_group[2 * te - 1] - chunk_group[2 * ts] + 1);
    }
  };
  slice_maxima(plan.splits, plan.max_tiles, plan.max_groups);
  for (int32_t s = 1; s <= kGemvOneMaxSlices; ++s) {
    int32_t tiles = 0;
    slice_maxima(s, tiles, plan.one_max_groups_by_slices[s]);
  }
  return plan;
}

size_t gemv_shared_bytes(const GemvSplitPlan& plan, int64_t num_tokens) {
  return size_t{8} * 64 * plan.max_groups + size_t{4} * 2 * plan.max_tiles +
         size_t{2} * static_cast<size_t>(num_tokens) * xs_stride_for(plan);
}

int64_t gemv_partial_floats(const GemvSplitPlan& plan, int64_t width, int64_t num_tokens) {
  return plan.splits > 1 ? int64_t{plan.splits} * num_tokens * width : 0;
}

void gemv_quant_multi(const GemvPart* parts, int num_parts, const __half* x, const __half* x_up,
                      int64_t num_tokens, const GemvOneTuning& one, cudaStream_t stream) {
  if (num_tokens <= 0) return;
  if (num_tokens == 1 && gemv_one_preferred(parts, num_parts, x_up)) {
    gemv_one_multi(parts, num_parts, x, one, stream);
    return;
  }
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
                int64_t num_tokens, float* partials, uint32_t* counters, const GemvOneTuning& one,
                cudaStream_t stream) {
  const GemvPart part{&w, &plan, y, partials, counters};
  gemv_quant_multi(&part, 1, x, x_up, num_tokens, one, stream);
}

void add_bias(__half* y, const __half* bias, int64_t num_tokens, int64_t out_features, cudaStream_t stream) {
  const int64_t total = num_tokens * out_features;
  if (total == 0) return;
  const int blocks = static_cast<int>(std::min<int64_t>((total + 255) / 256, 4096));
  add_bias_kernel<<<blocks, 256, 0, stream>>>(y, bias, total, out_features);
  check_launch("add_bias");
}

}  // namespace exl::kernels
