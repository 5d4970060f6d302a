// gemv_lab: where does a one-token 4-bit GEMV on the tiled layout lose its bandwidth? Standalone (no exl
// libraries): builds synthetic 4-bit matrices in the strip-major tile layout of quant/exl2_repack.h (a strip = 16
// columns; a tile = 64 rows of a strip, 32 lanes x 4 words; a strip's tiles contiguous), then times kernels that
// differ in one thing each:
//   * mode 0 reads the weights only (XOR of the words: the access pattern's own ceiling);
//   * mode 1 adds the real work: decode to fp16 (q - zero), mma.m16n8k16 against x, a per-32-row fp32 scale;
//   * layouts: "warp/strip" (a warp streams a whole strip, 8 warps a block, like gemv_quant without split-K) and
//     "block/strip" (a block owns one strip, its S warps split K and reduce in shared memory, like gemv_one);
//   * U = tiles per register batch (two batches in flight).
// Each case rotates over enough copies of the matrix to defeat the 50 MB L2, and reports us per call and the
// achieved rate of weight bytes. The copy bandwidth of the same run is printed first.
// Usage: gemv_lab [--reps N]
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#define LAB_CHECK(x)                                                                                   \
  do {                                                                                                 \
    cudaError_t e_ = (x);                                                                              \
    if (e_ != cudaSuccess) {                                                                           \
      std::fprintf(stderr, "gemv_lab: %s failed at line %d: %s\n", #x, __LINE__, cudaGetErrorString(e_)); \
      std::exit(1);                                                                                    \
    }                                                                                                  \
  } while (0)

namespace {

constexpr int kTileRows = 64;
constexpr int kGroupRows = 128;

struct Mat {
  const uint4* w;      // [strips][tiles][32 lanes] uint4 (4 words per lane per tile)
  const __half* x;     // [K]
  const float* scale;  // [K / 128][N]
  const int* perm;     // [K]: x row of each stored row (the act-order gather), used by kPerm kernels
  float* y;            // [N]
  int N, K, T;         // T = K / 64 tiles per strip
};

__device__ __forceinline__ uint32_t h2u(__half2 h) {
  uint32_t u;
  memcpy(&u, &h, 4);
  return u;
}
__device__ __forceinline__ __half2 u2h(uint32_t u) {
  __half2 h;
  memcpy(&h, &u, 4);
  return h;
}

__device__ __forceinline__ void mma_acc(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// One tile of 64 rows: 2 chunks of 32 rows, 2 k-steps each; xrow = the tile's x in shared memory, sc = shared
// scales of this strip, [groups][16].
__device__ __forceinline__ void tile_work(const uint4 q, const __half* xrow, const float* sc, int row0, int lane,
                                          float& t0, float& t1) {
  const int g = lane >> 2, t = lane & 3;
  const uint32_t w[4] = {q.x, q.y, q.z, q.w};
  const __half2 zero = u2h(0x64086408u);  // 1024 + 8 in both halves
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float d[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int ks = 0; ks < 2; ++ks) {
      const int kstep = 2 * h + ks;
      uint32_t a[4];
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int j = 4 * kstep + r, wi = j >> 2, off = (j * 4) & 15;
        a[r] = h2u(__hsub2(u2h(((w[wi] >> off) & 0x000F000Fu) | 0x64006400u), zero));
      }
      uint32_t b0 = 0, b1 = 0;
      if (g == 0) {
        const __half* xp = xrow + 16 * kstep + 2 * t;
        b0 = *reinterpret_cast<const uint32_t*>(xp);
        b1 = *reinterpret_cast<const uint32_t*>(xp + 8);
      }
      mma_acc(d, a, b0, b1);
    }
    const int grp = (row0 + 32 * h) / kGroupRows;
    t0 = fmaf(sc[grp * 16 + g], d[0], t0);
    t1 = fmaf(sc[grp * 16 + g + 8], d[2], t1);
  }
}

// Modes 3 and 4: fewer instructions per weight word.
//  * codes become fp16 with one lop3 each (0x6400 magic); nibbles 1 and 3 of each half come out as 1024 + 16q and
//    one hfma2 (x 1/16, - (64 + zero)) turns them into q - zero directly; nibbles 0 and 2 take one hsub2 (mode 3)
//    or are used as 1024 + q (mode 4: the mma then sums (1024 + q) x and the chunk's (1024 + zero) * sum(x) is
//    subtracted from the fp32 result);
//  * x is stored in shared memory in fragment order (a lane's B words of a tile are 32 contiguous bytes): two
//    16-byte loads per tile instead of eight 4-byte ones.
// xf = the tile's 16 words of x in fragment order (xf[t * 8 + 2 * kstep + b]); sx = the two chunks' sums of x.
// s0, s1: the scales of columns g and g + 8 for the tile's group (a 64-row tile lies in one 128-row group).
template <bool kSumTrick>
__device__ __forceinline__ void tile_work_sc(const uint4 q, const uint32_t* xf, const float* sx, float s0, float s1,
                                             int lane, float& t0, float& t1) {
  const int g = lane >> 2, t = lane & 3;
  const uint32_t w[4] = {q.x, q.y, q.z, q.w};
  const __half2 zero = u2h(0x64086408u);                   // 1024 + 8
  const __half2 sixteenth = __float2half2_rn(1.0f / 16.0f);
  // nibbles 1 and 3: (1024 + 16q) / 16 - 72 = q - 8, or + 960 = 1024 + q with the sum trick
  const __half2 zero_hi = __float2half2_rn(kSumTrick ? 960.0f : -72.0f);
  uint4 xb0 = make_uint4(0, 0, 0, 0), xb1 = make_uint4(0, 0, 0, 0);
  if (g == 0) {
    xb0 = *reinterpret_cast<const uint4*>(xf + t * 8);
    xb1 = *reinterpret_cast<const uint4*>(xf + t * 8 + 4);
  }
  const uint32_t xb[8] = {xb0.x, xb0.y, xb0.z, xb0.w, xb1.x, xb1.y, xb1.z, xb1.w};
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float d[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int ks = 0; ks < 2; ++ks) {
      const int kstep = 2 * h + ks;
      const uint32_t word = w[kstep], w8 = word >> 8;
      uint32_t a[4];
      uint32_t v0, v1, v2, v3;
      asm("lop3.b32 %0, %1, 0x000f000f, 0x64006400, 0xea;" : "=r"(v0) : "r"(word));
      asm("lop3.b32 %0, %1, 0x00f000f0, 0x64006400, 0xea;" : "=r"(v1) : "r"(word));
      asm("lop3.b32 %0, %1, 0x000f000f, 0x64006400, 0xea;" : "=r"(v2) : "r"(w8));
      asm("lop3.b32 %0, %1, 0x00f000f0, 0x64006400, 0xea;" : "=r"(v3) : "r"(w8));
      a[0] = kSumTrick ? v0 : h2u(__hsub2(u2h(v0), zero));
      a[1] = h2u(__hfma2(u2h(v1), sixteenth, zero_hi));
      a[2] = kSumTrick ? v2 : h2u(__hsub2(u2h(v2), zero));
      a[3] = h2u(__hfma2(u2h(v3), sixteenth, zero_hi));
      mma_acc(d, a, xb[2 * kstep], xb[2 * kstep + 1]);
    }
    if (kSumTrick) {
      const float corr = 1032.0f * sx[h];
      d[0] -= corr;
      d[2] -= corr;
    }
    t0 = fmaf(s0, d[0], t0);
    t1 = fmaf(s1, d[2], t1);
  }
}

// The same with the scales from a shared table [groups][16] (row0: the tile's first row).
template <bool kSumTrick>
__device__ __forceinline__ void tile_work_lean(const uint4 q, const uint32_t* xf, const float* sx, const float* sc,
                                               int row0, int lane, float& t0, float& t1) {
  const float* e = sc + row0 / kGroupRows * 16 + (lane >> 2);
  tile_work_sc<kSumTrick>(q, xf, sx, e[0], e[8], lane, t0, t1);
}

// Half index of x row i (relative to a slice that starts on a tile) in mma fragment order (modes 3 and 4).
__device__ __forceinline__ int frag_half(int i) {
  const int tile = i >> 6, rr = i & 63, k = rr >> 4, rem = rr & 15;
  return ((tile * 4 + ((rem & 7) >> 1)) * 8 + k * 2 + (rem >> 3)) * 2 + (rem & 1);
}

// kMode 2 = mode 1 with the weight loads hinted to fetch 256-byte L2 sectors.
__device__ __forceinline__ uint4 load_256(const uint4* p) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "l"(p));
  return r;
}

// Tiles [lo, hi) of one strip with a register double buffer of U tiles per batch.
template <int U, int kMode>
__device__ __forceinline__ void stream_tiles(const uint4* strip_w, int lo, int hi, int lane, const __half* xs,
                                             const float* sc, int xs_base, float& t0, float& t1, uint32_t& acc,
                                             const uint32_t* xf = nullptr, const float* sx = nullptr) {
  uint4 a[U], b[U];
  auto load = [&](uint4 (&r)[U], int i) {
#pragma unroll
    for (int u = 0; u < U; ++u)
      r[u] = i + u >= hi ? make_uint4(0, 0, 0, 0)
             : kMode == 2 ? load_256(strip_w + int64_t{i + u} * 32 + lane)
                          : __ldcs(strip_w + int64_t{i + u} * 32 + lane);
  };
  auto use = [&](const uint4 (&r)[U], int i) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (i + u >= hi) break;
      if constexpr (kMode == 0) {
        acc ^= r[u].x ^ r[u].y ^ r[u].z ^ r[u].w;
      } else if constexpr (kMode >= 3) {
        const int row = (i + u) * kTileRows, rel = (row - xs_base) / kTileRows;
        tile_work_lean<kMode == 4>(r[u], xf + rel * 32, sx + 2 * rel, sc, row, lane, t0, t1);
      } else {
        const int row = (i + u) * kTileRows;
        tile_work(r[u], xs + row - xs_base, sc, row, lane, t0, t1);
      }
    }
  };
  load(a, lo);
  load(b, lo + U);
#pragma unroll 1
  for (int i = lo; i < hi; i += 2 * U) {
    use(a, i);
    load(a, i + 2 * U);
    use(b, i + U);
    load(b, i + 3 * U);
  }
}

// Warp per strip, kWarps strips per block, full K; x and the block's scales staged in shared memory first.
template <int U, int kMode, int kWarps>
__global__ void __launch_bounds__(kWarps * 32) warp_strip(Mat m) {
  extern __shared__ __align__(16) unsigned char smem[];
  __half* xs = reinterpret_cast<__half*>(smem);
  float* sc_all = reinterpret_cast<float*>(xs + m.K);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int strip = blockIdx.x * kWarps + warp;
  const int groups = m.K / kGroupRows;
  float* sc = sc_all + warp * groups * 16;
  if constexpr (kMode != 0) {
    for (int i = threadIdx.x; i < m.K; i += blockDim.x) xs[i] = m.x[i];
    for (int i = lane; i < groups * 16; i += 32) sc[i] = __ldg(m.scale + (i >> 4) * m.N + strip * 16 + (i & 15));
    __syncthreads();
  }
  float t0 = 0.f, t1 = 0.f;
  uint32_t acc = 0;
  stream_tiles<U, kMode>(m.w + int64_t{strip} * m.T * 32, 0, m.T, lane, xs, sc, 0, t0, t1, acc);
  if (kMode == 0) {
    if (acc == 0x12345678u) m.y[strip] = 1.0f;  // keeps the loads alive
  } else if ((lane & 3) == 0) {
    m.y[strip * 16 + (lane >> 2)] = t0;
    m.y[strip * 16 + (lane >> 2) + 8] = t1;
  }
}

// Block per strip, kSlices warps split K, in-block reduction. kPerm: x rows gathered through m.perm. kPdl: launched
// as a programmatic dependent (like the engine's kernels): griddepcontrol.wait after the scale loads, before x.
// kPrefetch: like the engine's gemv_one, each warp first prefetches its slice's first 4 KB into L2.
template <int U, int kMode, int kSlices, bool kPerm = false, bool kPdl = false, bool kPrefetch = false>
__global__ void __launch_bounds__(kSlices * 32) block_strip(Mat m) {
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ float red[kSlices][16];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int strip = blockIdx.x;
  const int lo = warp * m.T / kSlices, hi = (warp + 1) * m.T / kSlices;
  const int per_warp_rows = (m.T + kSlices - 1) / kSlices * kTileRows;
  const int per_warp_groups = per_warp_rows / kGroupRows + 2;
  __half* xs = reinterpret_cast<__half*>(smem) + warp * per_warp_rows;
  float* sc = reinterpret_cast<float*>(reinterpret_cast<__half*>(smem) + kSlices * per_warp_rows) +
              warp * per_warp_groups * 16;
  float* sx = reinterpret_cast<float*>(reinterpret_cast<__half*>(smem) + kSlices * per_warp_rows) +
              kSlices * per_warp_groups * 16 + warp * (per_warp_rows / 32);
  const int g0 = lo * kTileRows / kGroupRows;
  const int rows = (hi - lo) * kTileRows;
  if constexpr (kPrefetch) {  // 4 lines of 128 bytes per 4-bit tile
    if (lo + lane / 4 < hi)
      asm volatile("prefetch.global.L2 [%0];" ::"l"(m.w + (int64_t{strip} * m.T + lo + lane / 4) * 32 + (lane % 4) * 8));
  }
  if constexpr (kMode != 0) {
    const int ng = ((hi * kTileRows - 1) / kGroupRows) - g0 + 1;
    for (int i = lane; i < ng * 16; i += 32)
      sc[i] = __ldg(m.scale + (g0 + (i >> 4)) * m.N + strip * 16 + (i & 15));
    if constexpr (kPdl) {
      asm volatile("griddepcontrol.wait;\n" ::: "memory");
      asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
    }
    for (int i = lane; i < rows; i += 32) {
      const int src = kPerm ? __ldg(m.perm + lo * kTileRows + i) : lo * kTileRows + i;
      const __half v = m.x[src];
      if constexpr (kMode >= 3) {
        xs[frag_half(i)] = v;
        if constexpr (kMode == 4) {  // chunk i / 32 = the loop trip: its sum over the warp
          float sum = __half2float(v);
#pragma unroll
          for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
          if (lane == 0) sx[i >> 5] = sum;
        }
      } else {
        xs[i] = v;
      }
    }
    __syncwarp();
  }
  float t0 = 0.f, t1 = 0.f;
  uint32_t acc = 0;
  // Scales indexed from the warp's first group: shift the table pointer back by g0 groups.
  stream_tiles<U, kMode>(m.w + int64_t{strip} * m.T * 32, lo, hi, lane, xs, sc - g0 * 16, lo * kTileRows, t0, t1,
                         acc, reinterpret_cast<const uint32_t*>(xs), sx);
  if (kMode == 0) {
    if (acc == 0x12345678u) m.y[strip] = 1.0f;
    return;
  }
  if ((lane & 3) == 0) {
    red[warp][lane >> 2] = t0;
    red[warp][(lane >> 2) + 8] = t1;
  }
  __syncthreads();
  if (threadIdx.x < 16) {
    float v = 0.f;
#pragma unroll
    for (int s = 0; s < kSlices; ++s) v += red[s][threadIdx.x];
    m.y[strip * 16 + threadIdx.x] = v;
  }
}

// Bulk: like block_strip mode 3 (+ perm), but each warp's whole slice of weights is fetched into shared memory by
// ONE cp.async.bulk (TMA, sm_90) issued by lane 0 before anything else, completing on a per-warp mbarrier: all of
// the slice's bytes are in flight from the first instruction, and none of them occupy registers. The warp then
// builds its scales and x as usual, waits on the mbarrier, and computes from shared memory.
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

template <int kSlices, bool kPerm>
__global__ void __launch_bounds__(kSlices * 32) block_bulk(Mat m) {
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ float red[kSlices][16];
  __shared__ __align__(8) uint64_t mbar[kSlices];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int strip = blockIdx.x;
  const int lo = warp * m.T / kSlices, hi = (warp + 1) * m.T / kSlices;
  const int per_warp_tiles = (m.T + kSlices - 1) / kSlices;
  const int per_warp_rows = per_warp_tiles * kTileRows;
  const int per_warp_groups = per_warp_rows / kGroupRows + 2;
  uint4* wsm = reinterpret_cast<uint4*>(smem) + warp * per_warp_tiles * 32;  // weights first: 16-byte aligned
  __half* xs = reinterpret_cast<__half*>(reinterpret_cast<uint4*>(smem) + kSlices * per_warp_tiles * 32) +
               warp * per_warp_rows;
  float* sc = reinterpret_cast<float*>(reinterpret_cast<__half*>(reinterpret_cast<uint4*>(smem) +
                                                                 kSlices * per_warp_tiles * 32) +
                                       kSlices * per_warp_rows) +
              warp * per_warp_groups * 16;
  const uint32_t bar = smem_addr(&mbar[warp]);
  const uint32_t bytes = static_cast<uint32_t>((hi - lo) * 512);
  if (lane == 0) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(bar));
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
    const uint4* src = m.w + (int64_t{strip} * m.T + lo) * 32;
    asm volatile(
        "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
            smem_addr(wsm)),
        "l"(src), "r"(bytes), "r"(bar)
        : "memory");
  }
  const int g0 = lo * kTileRows / kGroupRows;
  const int rows = (hi - lo) * kTileRows;
  const int ng = ((hi * kTileRows - 1) / kGroupRows) - g0 + 1;
  for (int i = lane; i < ng * 16; i += 32) sc[i] = __ldg(m.scale + (g0 + (i >> 4)) * m.N + strip * 16 + (i & 15));
  for (int i = lane; i < rows; i += 32) {
    const int src = kPerm ? __ldg(m.perm + lo * kTileRows + i) : lo * kTileRows + i;
    const __half v = m.x[src];
    xs[frag_half(i)] = v;
  }
  __syncwarp();
  uint32_t done = 0;
  while (!done) {
    asm volatile(
        "{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], 0; selp.u32 %0, 1, 0, p; }"
        : "=r"(done)
        : "r"(bar)
        : "memory");
  }
  float t0 = 0.f, t1 = 0.f;
  const uint32_t* xf = reinterpret_cast<const uint32_t*>(xs);
#pragma unroll 2
  for (int i = 0; i < hi - lo; ++i)
    tile_work_lean<false>(wsm[i * 32 + lane], xf + i * 32, nullptr, sc, i * kTileRows, lane, t0, t1);
  if ((lane & 3) == 0) {
    red[warp][lane >> 2] = t0;
    red[warp][(lane >> 2) + 8] = t1;
  }
  __syncthreads();
  if (threadIdx.x < 16) {
    float v = 0.f;
#pragma unroll
    for (int sl = 0; sl < kSlices; ++sl) v += red[sl][threadIdx.x];
    m.y[strip * 16 + threadIdx.x] = v;
  }
}

// Persistent: gridDim.x blocks (a few per SM) loop over strips blockIdx.x, + gridDim.x, ...; warp w owns the same
// K slice of every strip, so x is staged once per block, and each warp's weight stream runs without a break from
// one strip to the next (register double buffer over the flattened (strip, tile) sequence). The scales of the
// next strip are loaded into registers one strip ahead and written to a 2-slot shared ring at each strip start.
// One __syncthreads per strip for the deterministic in-block reduction. kNG = groups per warp slice (K / 128 /
// kSlices, exact in the lab shapes).
template <int U, int kSlices, int kNG, bool kPerm>
__global__ void __launch_bounds__(kSlices * 32) persist(Mat m) {
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ float red[2][kSlices][16];
  __shared__ float scr[kSlices][2][kNG * 16];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2;
  const int n = m.T / kSlices;  // tiles per warp slice (exact in the lab shapes)
  const int lo = warp * n;
  uint32_t* xf = reinterpret_cast<uint32_t*>(smem) + warp * n * 32;
  __half* xs = reinterpret_cast<__half*>(xf);
  const int strips = m.N / 16;
  const int my_strips = blockIdx.x < strips ? (strips - 1 - blockIdx.x) / gridDim.x + 1 : 0;
  const int F = my_strips * n;
  constexpr int kPer = (kNG * 16 + 31) / 32;
  float sc_next[kPer];
  auto load_scales = [&](int k) {  // strip index k of this block -> registers
    const int strip = blockIdx.x + k * gridDim.x;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      const int e = lane + 32 * j;
      sc_next[j] = (k < my_strips && e < kNG * 16)
                       ? __ldg(m.scale + (lo * kTileRows / kGroupRows + e / 16) * m.N + strip * 16 + (e & 15))
                       : 0.f;
    }
  };
  auto weights = [&](int f) {
    const int k = f / n, i = f - k * n;
    return m.w + (int64_t{blockIdx.x + k * gridDim.x} * m.T + lo + i) * 32 + lane;
  };
  uint4 a[U], b[U];
  auto load = [&](uint4 (&r)[U], int f) {
#pragma unroll
    for (int u = 0; u < U; ++u) r[u] = f + u < F ? __ldcs(weights(f + u)) : make_uint4(0, 0, 0, 0);
  };
  load(a, 0);
  load(b, U);
  load_scales(0);
  for (int i = lane; i < n * kTileRows; i += 32) {
    const int src = kPerm ? __ldg(m.perm + lo * kTileRows + i) : lo * kTileRows + i;
    xs[frag_half(i)] = m.x[src];
  }
  float t0 = 0.f, t1 = 0.f;
  auto use = [&](const uint4 (&r)[U], int f0) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int f = f0 + u;
      if (f >= F) break;
      const int k = f / n, i = f - k * n;
      if (i == 0) {  // strip start: this strip's scales to the ring, next strip's into registers
#pragma unroll
        for (int j = 0; j < kPer; ++j)
          if (lane + 32 * j < kNG * 16) scr[warp][k & 1][lane + 32 * j] = sc_next[j];
        __syncwarp();
        load_scales(k + 1);
      }
      tile_work_lean<false>(r[u], xf + i * 32, nullptr, scr[warp][k & 1], i * kTileRows, lane, t0, t1);
      if (i == n - 1) {  // strip end: reduce in warp order
        if ((lane & 3) == 0) {
          red[k & 1][warp][g] = t0;
          red[k & 1][warp][g + 8] = t1;
        }
        t0 = t1 = 0.f;
        __syncthreads();
        if (threadIdx.x < 16) {
          float v = 0.f;
#pragma unroll
          for (int sl = 0; sl < kSlices; ++sl) v += red[k & 1][sl][threadIdx.x];
          m.y[(blockIdx.x + k * gridDim.x) * 16 + threadIdx.x] = v;
        }
      }
    }
  };
#pragma unroll 1
  for (int f = 0; f < F; f += 2 * U) {
    use(a, f);
    load(a, f + 2 * U);
    use(b, f + U);
    load(b, f + 3 * U);
  }
}


// Stream-K through a TMA ring (sm_90): gridDim.x persistent blocks of kWarps warps. The matrix's tiles in memory
// order ([strip][tile], one contiguous byte stream) are split evenly over all warps of the grid: warp gw streams tiles
// [gw NT / GW, (gw + 1) NT / GW) whatever strips they belong to, so every warp has the same work (no wave
// quantization). Lane 0 copies the warp's stream with cp.async.bulk into a ring of kStages stages of kST tiles (one
// mbarrier per stage), kStages stages issued before anything else and each stage refilled as soon as it is used:
// no weight word sits in a register before it is needed. x is staged once per block in fragment order; the scales
// of the warp's groups are staged in shared memory first. A strip's partial sums go to shared
// accumulators (atomicAdd); at the end the block stores the strips it covers entirely and adds (global atomicAdd)
// the ones it shares with its neighbours (y zeroed before the launch). kPdl as in block_strip.
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  uint32_t done = 0;
  while (!done) {
    asm volatile(
        "{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  }
}

template <int kWarps, int kStages, int kST, bool kPdl>
__global__ void __launch_bounds__(kWarps * 32) streamk(Mat m, int max_local, int tab_floats) {
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr int kStageWords = kST * 32;  // uint4 per stage
  uint4* ring_all = reinterpret_cast<uint4*>(smem);
  uint64_t* bars = reinterpret_cast<uint64_t*>(ring_all + kWarps * kStages * kStageWords);
  float* acc = reinterpret_cast<float*>(bars + kWarps * kStages);
  __half* xs = reinterpret_cast<__half*>(acc + max_local * 16);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2;
  const int64_t NT = int64_t{m.N / 16} * m.T;
  const int64_t GW = int64_t{gridDim.x} * kWarps;
  const int64_t gw = int64_t{blockIdx.x} * kWarps + warp;
  const int64_t a = gw * NT / GW, b = (gw + 1) * NT / GW;
  const int64_t ca = int64_t{blockIdx.x} * kWarps * NT / GW, cb = int64_t{blockIdx.x + 1} * kWarps * NT / GW;
  const int first_strip = static_cast<int>(ca / m.T);
  const int n = static_cast<int>(b - a);
  const int nst = (n + kST - 1) / kST;
  uint4* ring = ring_all + warp * kStages * kStageWords;
  const uint32_t bar0 = smem_addr(bars + warp * kStages);
  auto issue = [&](int s) {
    const int cnt = min(kST, n - s * kST);
    const uint32_t bytes = static_cast<uint32_t>(cnt * 512);
    const uint32_t bar = bar0 + 8 * (s % kStages);
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
    asm volatile(
        "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
            smem_addr(ring + (s % kStages) * kStageWords)),
        "l"(m.w + (a + int64_t{s} * kST) * 32), "r"(bytes), "r"(bar)
        : "memory");
  };
  if (lane == 0) {
    for (int s = 0; s < kStages; ++s) asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(bar0 + 8 * s));
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    for (int s = 0; s < kStages && s < nst; ++s) issue(s);
  }
  // The scales of the warp's groups (a group = 128 rows = 2 tiles; tile j's group is j / 2 in stream order) into
  // its shared table, before the PDL wait (weights only).
  float* tab = reinterpret_cast<float*>(xs + m.K) + warp * tab_floats;
  {
    const int64_t g_first = a / 2;
    const int ng = n > 0 ? static_cast<int>((b - 1) / 2 - g_first + 1) : 0;
    const int gps = m.T / 2;  // groups per strip
    for (int e = lane; e < ng * 16; e += 32) {
      const int64_t G = g_first + e / 16;
      const int strip = static_cast<int>(G / gps), grp = static_cast<int>(G - int64_t{strip} * gps);
      tab[e] = __ldg(m.scale + int64_t{grp} * m.N + strip * 16 + (e & 15));
    }
  }
  if constexpr (kPdl) {
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
  }
  for (int i = threadIdx.x; i < m.K; i += blockDim.x) {
    xs[frag_half(i)] = m.x[i];
  }
  for (int i = threadIdx.x; i < max_local * 16; i += blockDim.x) acc[i] = 0.f;
  __syncthreads();
  const uint32_t* xf = reinterpret_cast<const uint32_t*>(xs);
  float t0 = 0.f, t1 = 0.f;
  int cur = static_cast<int>(a / m.T);
  auto flush = [&]() {
    if ((lane & 3) == 0) {
      atomicAdd(&acc[(cur - first_strip) * 16 + g], t0);
      atomicAdd(&acc[(cur - first_strip) * 16 + g + 8], t1);
    }
    t0 = t1 = 0.f;
  };
#pragma unroll 1
  for (int s = 0; s < nst; ++s) {
    mbar_wait(bar0 + 8 * (s % kStages), static_cast<uint32_t>((s / kStages) & 1));
    const uint4* st = ring + (s % kStages) * kStageWords;
#pragma unroll
    for (int u = 0; u < kST; ++u) {
      const int64_t j = a + int64_t{s} * kST + u;
      if (j >= b) break;
      const int strip = static_cast<int>(j / m.T), tile = static_cast<int>(j - int64_t{strip} * m.T);
      if (strip != cur) {
        flush();
        cur = strip;
      }
      const float* e = tab + (j / 2 - a / 2) * 16 + g;
      tile_work_sc<false>(st[u * 32 + lane], xf + tile * 32, nullptr, e[0], e[8], lane, t0, t1);
    }
    __syncwarp();
    if (lane == 0 && s + kStages < nst) issue(s + kStages);
  }
  if (n > 0) flush();
  __syncthreads();
  const int last_strip = static_cast<int>((cb - 1) / m.T);
  for (int i = threadIdx.x; i < (last_strip - first_strip + 1) * 16; i += blockDim.x) {
    const int strip = first_strip + i / 16;
    const bool full = int64_t{strip} * m.T >= ca && int64_t{strip + 1} * m.T <= cb;
    float* dst = m.y + strip * 16 + (i & 15);
    if (full)
      *dst = acc[i];
    else
      atomicAdd(dst, acc[i]);
  }
}


// Chain: the four GEMVs of a Llama-3-8B layer (q/k/v, o, gate+up, down) as phases of ONE persistent kernel with a
// grid barrier between phases, against the same work as four PDL kernels (block_strip, mode 3, no perm). Does a
// layer megakernel pay? In the chain a block that has finished its share of phase p prefetches its first strip of
// phase p + 1 (the first two batches of each warp into L1, the rest of the slice's first 4 KB into L2) and builds
// that strip's scale table BEFORE it arrives at the barrier, so the first DRAM round trip of the next phase
// overlaps the barrier wait instead of following a kernel boundary. x is a constant input (the lab measures time,
// not the data flow); every phase writes its y, and the barrier orders the phases as the real dependencies would.
// All gridDim.x blocks must be resident (checked on the host).
struct ChainPhase {
  const uint4* w;
  const float* scale;
  float* y;
  int N, K, T;
};
struct Chain {
  ChainPhase ph[4];
  const __half* x;
  unsigned* count;  // barrier arrivals (left at 0)
  unsigned* gen;    // barrier generation
};

__device__ __forceinline__ void grid_barrier(unsigned* count, unsigned* gen) {
  __syncthreads();
  if (threadIdx.x == 0) {
    const unsigned g = *reinterpret_cast<volatile unsigned*>(gen);
    __threadfence();
    if (atomicAdd(count, 1u) == gridDim.x - 1) {
      *reinterpret_cast<volatile unsigned*>(count) = 0u;
      __threadfence();
      atomicAdd(gen, 1u);
    } else {
      while (*reinterpret_cast<volatile unsigned*>(gen) == g) {
      }
    }
    __threadfence();
  }
  __syncthreads();
}

template <int kSlices>
__global__ void __launch_bounds__(kSlices * 32) chain_kernel(Chain c, int max_rows) {
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ float red[kSlices][16];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int per_warp_groups = max_rows / kGroupRows + 2;
  __half* xs = reinterpret_cast<__half*>(smem) + warp * max_rows;
  float* sc = reinterpret_cast<float*>(reinterpret_cast<__half*>(smem) + kSlices * max_rows) +
              warp * per_warp_groups * 16;
  // table of (phase, strip) for this warp's slice; prefetch of its first tiles
  auto prepare = [&](const ChainPhase& P, int strip) {
    const int lo = warp * P.T / kSlices, hi = (warp + 1) * P.T / kSlices;
    const uint4* base = P.w + (int64_t{strip} * P.T + lo) * 32;
    const int lines = min((hi - lo) * 4, 32);
    if (lane < lines) {
      if (lane < 16)  // the first two batches of U = 2 tiles
        asm volatile("prefetch.global.L1 [%0];" ::"l"(base + lane * 8));
      else
        asm volatile("prefetch.global.L2 [%0];" ::"l"(base + lane * 8));
    }
    const int g0 = lo * kTileRows / kGroupRows;
    const int ng = ((hi * kTileRows - 1) / kGroupRows) - g0 + 1;
    for (int i = lane; i < ng * 16; i += 32)
      sc[i] = __ldg(P.scale + (g0 + (i >> 4)) * P.N + strip * 16 + (i & 15));
  };
  bool prepared = false;
#pragma unroll 1
  for (int p = 0; p < 4; ++p) {
    const ChainPhase& P = c.ph[p];
    const int strips = P.N / 16;
    const int lo = warp * P.T / kSlices, hi = (warp + 1) * P.T / kSlices;
    const int g0 = lo * kTileRows / kGroupRows;
#pragma unroll 1
    for (int strip = blockIdx.x; strip < strips; strip += gridDim.x) {
      if (!prepared) prepare(P, strip);
      prepared = false;
      const int rows = (hi - lo) * kTileRows;
      for (int i = lane; i < rows; i += 32) {
        const __half v = c.x[lo * kTileRows + i];
        xs[frag_half(i)] = v;
      }
      __syncwarp();
      float t0 = 0.f, t1 = 0.f;
      uint32_t acc = 0;
      stream_tiles<2, 3>(P.w + int64_t{strip} * P.T * 32, lo, hi, lane, xs, sc - g0 * 16, lo * kTileRows, t0, t1, acc,
                         reinterpret_cast<const uint32_t*>(xs), nullptr);
      if ((lane & 3) == 0) {
        red[warp][lane >> 2] = t0;
        red[warp][(lane >> 2) + 8] = t1;
      }
      __syncthreads();
      if (threadIdx.x < 16) {
        float v = 0.f;
#pragma unroll
        for (int sl = 0; sl < kSlices; ++sl) v += red[sl][threadIdx.x];
        P.y[strip * 16 + threadIdx.x] = v;
      }
      __syncthreads();  // red and the warps' x / tables are reused by the next strip
    }
    if (p + 1 < 4) {
      if (static_cast<int>(blockIdx.x) < c.ph[p + 1].N / 16) {
        prepare(c.ph[p + 1], blockIdx.x);
        prepared = true;
      }
      grid_barrier(c.count, c.gen);
    }
  }
}

__global__ void copy_kernel(const uint4* src, uint4* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    dst[i] = __ldcs(src + i);
}
__global__ void empty_kernel(float* y) {
  if (threadIdx.x == 1000) y[0] = 1.0f;
}

cudaStream_t g_stream = nullptr;

struct Shape {
  const char* name;
  int N, K;
};

struct Bufs {
  std::vector<uint4*> w;
  __half* x = nullptr;
  float* scale = nullptr;
  int* perm = nullptr;
  float* y = nullptr;
  std::vector<double> ref[2];  // host reference y of copy 0: [0] x in order, [1] through perm
};

// Host reference of y = x . W for copy 0 (the layout mapping of the file comment and mma's A fragment).
std::vector<double> reference(const Shape& s, const std::vector<uint32_t>& w, const std::vector<float>& x,
                              const std::vector<float>& scale, const std::vector<int>* perm) {
  std::vector<double> y(s.N, 0.0);
  const int T = s.K / kTileRows;
  for (int strip = 0; strip < s.N / 16; ++strip)
    for (int tile = 0; tile < T; ++tile)
      for (int lane = 0; lane < 32; ++lane)
        for (int kstep = 0; kstep < 4; ++kstep) {
          const uint32_t word = w[((static_cast<size_t>(strip) * T + tile) * 32 + lane) * 4 + kstep];
          const int g = lane >> 2, t = lane & 3;
          for (int r = 0; r < 4; ++r)
            for (int hb = 0; hb < 2; ++hb) {
              const int col = strip * 16 + g + 8 * (r & 1);
              const int k = tile * kTileRows + kstep * 16 + 2 * t + 8 * (r >> 1) + hb;
              const int q = static_cast<int>((word >> (4 * r + 16 * hb)) & 15u);
              const float xv = x[perm ? (*perm)[k] : k];
              y[col] += static_cast<double>(scale[static_cast<size_t>(k / kGroupRows) * s.N + col]) * (q - 8) * xv;
            }
        }
  return y;
}

void check_y(const char* what, const Bufs& bf, const Shape& s, bool perm) {
  std::vector<float> y(s.N);
  LAB_CHECK(cudaMemcpy(y.data(), bf.y, s.N * 4, cudaMemcpyDeviceToHost));
  const std::vector<double>& ref = bf.ref[perm ? 1 : 0];
  double max_err = 0, max_ref = 0;
  for (int i = 0; i < s.N; ++i) {
    max_err = std::max(max_err, std::abs(y[i] - ref[i]));
    max_ref = std::max(max_ref, std::abs(ref[i]));
  }
  std::printf("   check %s: max |y - ref| / max |ref| = %.2e\n", what, max_err / max_ref);
}

// Time of one launch: `reps` launches captured in one CUDA graph (no host launch cost between them).
template <typename Launch>
double time_us(int reps, int copies, Launch&& launch) {
  for (int i = 0; i < copies; ++i) launch(i);
  LAB_CHECK(cudaStreamSynchronize(g_stream));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  LAB_CHECK(cudaStreamBeginCapture(g_stream, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < reps; ++i) launch(i % copies);
  LAB_CHECK(cudaStreamEndCapture(g_stream, &graph));
  LAB_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  LAB_CHECK(cudaGraphLaunch(exec, g_stream));
  LAB_CHECK(cudaStreamSynchronize(g_stream));
  cudaEvent_t a, b;
  LAB_CHECK(cudaEventCreate(&a));
  LAB_CHECK(cudaEventCreate(&b));
  LAB_CHECK(cudaEventRecord(a, g_stream));
  LAB_CHECK(cudaGraphLaunch(exec, g_stream));
  LAB_CHECK(cudaEventRecord(b, g_stream));
  LAB_CHECK(cudaEventSynchronize(b));
  float ms = 0;
  LAB_CHECK(cudaEventElapsedTime(&ms, a, b));
  LAB_CHECK(cudaGetLastError());
  LAB_CHECK(cudaEventDestroy(a));
  LAB_CHECK(cudaEventDestroy(b));
  LAB_CHECK(cudaGraphExecDestroy(exec));
  LAB_CHECK(cudaGraphDestroy(graph));
  return 1000.0 * ms / reps;
}

template <int U, int kMode, int kWarps>
void run_warp_strip(const Shape& s, const Bufs& bf, int reps, int copies, double bytes) {
  const int strips = s.N / 16;
  if (strips % kWarps != 0) return;
  const size_t smem = sizeof(__half) * s.K + sizeof(float) * kWarps * (s.K / kGroupRows) * 16;
  auto k = warp_strip<U, kMode, kWarps>;
  LAB_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  const double us = time_us(reps, copies, [&](int c) {
    Mat m{bf.w[c], bf.x, bf.scale, bf.perm, bf.y, s.N, s.K, s.K / kTileRows};
    k<<<strips / kWarps, kWarps * 32, smem, g_stream>>>(m);
  });
  std::printf("%-8s warp/strip  warps=%d U=%d mode=%d  %8.2f us  %6.3f TB/s\n", s.name, kWarps, U, kMode, us,
              bytes / us * 1e-6);
}

// extra_smem: dynamic shared memory added to each block, to cap resident blocks per SM (the engine's gemv_one has
// 3 per SM by registers; the lab kernel fits 4).
template <int U, int kMode, int kSlices, bool kPerm = false, bool kPdl = false, bool kPrefetch = false>
void run_block_strip(const Shape& s, const Bufs& bf, int reps, int copies, double bytes, size_t extra_smem = 0) {
  const int strips = s.N / 16, T = s.K / kTileRows;
  const int per_warp_rows = (T + kSlices - 1) / kSlices * kTileRows;
  const size_t smem = sizeof(__half) * kSlices * per_warp_rows +
                      sizeof(float) * kSlices * ((per_warp_rows / kGroupRows + 2) * 16 + per_warp_rows / 32) +
                      extra_smem;
  auto k = block_strip<U, kMode, kSlices, kPerm, kPdl, kPrefetch>;
  LAB_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  int per_sm = 0;
  LAB_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, k, kSlices * 32, smem));
  auto launch = [&](int c) {
    Mat m{bf.w[c], bf.x, bf.scale, bf.perm, bf.y, s.N, s.K, T};
    cudaLaunchConfig_t config = {};
    config.gridDim = dim3(strips);
    config.blockDim = dim3(kSlices * 32);
    config.dynamicSmemBytes = smem;
    config.stream = g_stream;
    cudaLaunchAttribute attribute[1];
    attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute[0].val.programmaticStreamSerializationAllowed = kPdl ? 1 : 0;
    config.attrs = attribute;
    config.numAttrs = 1;
    LAB_CHECK(cudaLaunchKernelEx(&config, k, m));
  };
  const double us = time_us(reps, copies, launch);
  std::printf("%-8s block/strip slices=%d U=%d mode=%d perm=%d pdl=%d prefetch=%d blocks/SM=%d  %8.2f us  %6.3f TB/s\n",
              s.name, kSlices, U, kMode, kPerm ? 1 : 0, kPdl ? 1 : 0, kPrefetch ? 1 : 0, per_sm, us, bytes / us * 1e-6);
  if (kMode != 0 && kMode != 2) {
    launch(0);
    LAB_CHECK(cudaStreamSynchronize(g_stream));
    check_y("", bf, s, kPerm);
  }
}


template <int kWarps, int kStages, int kST, bool kPdl>
void run_streamk(const Shape& s, const Bufs& bf, int reps, int copies, double bytes, int blocks_per_sm, int sms) {
  const int T = s.K / kTileRows;
  auto k = streamk<kWarps, kStages, kST, kPdl>;
  const int64_t NT = int64_t{s.N / 16} * T;
  int grid = blocks_per_sm * sms;
  const int64_t per_cta = (NT + grid - 1) / grid;
  const int max_local = static_cast<int>(per_cta / T) + 2;
  const int tab_floats = static_cast<int>(((NT + grid * kWarps - 1) / (grid * kWarps) / 2 + 2) * 16);
  const size_t smem = size_t{512} * kWarps * kStages * kST + 8 * kWarps * kStages + 64 * max_local + 2 * s.K +
                      sizeof(float) * kWarps * tab_floats;
  LAB_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  int per_sm = 0;
  LAB_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, k, kWarps * 32, smem));
  if (per_sm < blocks_per_sm) {
    std::printf("%-8s streamk warps=%d stages=%d x %d tiles: %d blocks/SM do not fit (%d)\n", s.name, kWarps,
                kStages, kST, blocks_per_sm, per_sm);
    return;
  }
  auto launch = [&](int c) {
    Mat m{bf.w[c], bf.x, bf.scale, bf.perm, bf.y, s.N, s.K, T};
    cudaLaunchConfig_t config = {};
    config.gridDim = dim3(grid);
    config.blockDim = dim3(kWarps * 32);
    config.dynamicSmemBytes = smem;
    config.stream = g_stream;
    cudaLaunchAttribute attribute[1];
    attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute[0].val.programmaticStreamSerializationAllowed = kPdl ? 1 : 0;
    config.attrs = attribute;
    config.numAttrs = 1;
    LAB_CHECK(cudaLaunchKernelEx(&config, k, m, max_local, tab_floats));
  };
  const double us = time_us(reps, copies, launch);
  std::printf("%-8s streamk warps=%d stages=%d x %d tiles pdl=%d blocks/SM=%d grid=%d smem=%zu  %8.2f us  %6.3f TB/s\n",
              s.name, kWarps, kStages, kST, kPdl ? 1 : 0, blocks_per_sm, grid, smem, us, bytes / us * 1e-6);
  LAB_CHECK(cudaMemsetAsync(bf.y, 0, sizeof(float) * s.N, g_stream));
  launch(0);
  LAB_CHECK(cudaStreamSynchronize(g_stream));
  check_y("", bf, s, false);
}


// A layer as four PDL kernels (block_strip mode 3, no perm, L2 prefetch) against the chain kernel; `layers` sets of
// weights rotate to defeat L2. Prints us per layer and the rate of weight bytes.
void run_chain(int reps, int sms) {
  constexpr int kSlices = 8;
  const Shape shapes[4] = {{"qkv", 6144, 4096}, {"o", 4096, 4096}, {"gate_up", 28672, 4096}, {"down", 4096, 14336}};
  const int layers = 12;
  double bytes = 0;
  for (const Shape& s : shapes) bytes += 0.5 * s.N * s.K;
  std::vector<std::vector<uint4*>> w(layers, std::vector<uint4*>(4));
  std::vector<float*> sc(4), y(4);
  __half* x = nullptr;
  LAB_CHECK(cudaMalloc(&x, 2 * 14336));
  std::vector<__half> hx(14336);
  uint32_t r = 777u;
  for (auto& v : hx) v = __float2half(static_cast<float>((r = r * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f);
  LAB_CHECK(cudaMemcpy(x, hx.data(), 2 * 14336, cudaMemcpyHostToDevice));
  for (int i = 0; i < 4; ++i) {
    const Shape& s = shapes[i];
    std::vector<uint32_t> host(static_cast<size_t>(s.N) * s.K / 8);
    for (auto& v : host) v = (r = r * 1664525u + 1013904223u);
    for (int l = 0; l < layers; ++l) {
      LAB_CHECK(cudaMalloc(&w[l][i], host.size() * 4));
      LAB_CHECK(cudaMemcpy(w[l][i], host.data(), host.size() * 4, cudaMemcpyHostToDevice));
    }
    std::vector<float> hs(static_cast<size_t>(s.K / kGroupRows) * s.N, 0.01f);
    LAB_CHECK(cudaMalloc(&sc[i], hs.size() * 4));
    LAB_CHECK(cudaMemcpy(sc[i], hs.data(), hs.size() * 4, cudaMemcpyHostToDevice));
    LAB_CHECK(cudaMalloc(&y[i], s.N * 4));
  }
  std::printf("-- chain: one layer = q/k/v, o, gate+up, down (%.1f MB), %d weight sets\n", bytes * 1e-6, layers);
  // Separate PDL kernels.
  {
    auto k = block_strip<2, 3, kSlices, false, true, true>;
    auto launch = [&](int l) {
      for (int i = 0; i < 4; ++i) {
        const Shape& s = shapes[i];
        const int T = s.K / kTileRows;
        const int per_warp_rows = (T + kSlices - 1) / kSlices * kTileRows;
        const size_t smem = sizeof(__half) * kSlices * per_warp_rows +
                            sizeof(float) * kSlices * ((per_warp_rows / kGroupRows + 2) * 16 + per_warp_rows / 32);
        LAB_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
        Mat m{w[l][i], x, sc[i], nullptr, y[i], s.N, s.K, T};
        cudaLaunchConfig_t config = {};
        config.gridDim = dim3(s.N / 16);
        config.blockDim = dim3(kSlices * 32);
        config.dynamicSmemBytes = smem;
        config.stream = g_stream;
        cudaLaunchAttribute attribute[1];
        attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attribute[0].val.programmaticStreamSerializationAllowed = 1;
        config.attrs = attribute;
        config.numAttrs = 1;
        LAB_CHECK(cudaLaunchKernelEx(&config, k, m));
      }
    };
    const double us = time_us(reps, layers, launch);
    std::printf("chain    4 PDL kernels per layer            %8.2f us per layer  %6.3f TB/s\n", us, bytes / us * 1e-6);
  }
  // One persistent kernel per layer.
  unsigned* bar = nullptr;
  LAB_CHECK(cudaMalloc(&bar, 8));
  LAB_CHECK(cudaMemset(bar, 0, 8));
  const int max_rows = (14336 / kTileRows + kSlices - 1) / kSlices * kTileRows;
  const size_t smem = sizeof(__half) * kSlices * max_rows + sizeof(float) * kSlices * (max_rows / kGroupRows + 2) * 16;
  auto k = chain_kernel<kSlices>;
  LAB_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  int per_sm = 0;
  LAB_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, k, kSlices * 32, smem));
  for (int bps = 1; bps <= per_sm && bps <= 4; ++bps) {
    const int grid = bps * sms;
    auto launch = [&](int l) {
      Chain c{};
      for (int i = 0; i < 4; ++i)
        c.ph[i] = ChainPhase{w[l][i], sc[i], y[i], shapes[i].N, shapes[i].K, shapes[i].K / kTileRows};
      c.x = x;
      c.count = bar;
      c.gen = bar + 1;
      // An ordinary launch: the grid barrier needs every block resident, so no overlap with the previous layer.
      k<<<grid, kSlices * 32, smem, g_stream>>>(c, max_rows);
    };
    const double us = time_us(reps, layers, launch);
    std::printf("chain    1 persistent kernel per layer, %d blocks/SM (of %d)  %8.2f us per layer  %6.3f TB/s\n", bps,
                per_sm, us, bytes / us * 1e-6);
  }
  // Correctness of the chain against the separate kernels (the same y for every phase, weights of layer 0).
  {
    std::vector<float> ya[4], yb[4];
    auto kk = block_strip<2, 3, kSlices, false, false, false>;
    for (int i = 0; i < 4; ++i) {
      const Shape& s = shapes[i];
      const int T = s.K / kTileRows;
      const int per_warp_rows = (T + kSlices - 1) / kSlices * kTileRows;
      const size_t sm = sizeof(__half) * kSlices * per_warp_rows +
                        sizeof(float) * kSlices * ((per_warp_rows / kGroupRows + 2) * 16 + per_warp_rows / 32);
      LAB_CHECK(cudaFuncSetAttribute(kk, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(sm)));
      Mat m{w[0][i], x, sc[i], nullptr, y[i], s.N, s.K, T};
      kk<<<s.N / 16, kSlices * 32, sm, g_stream>>>(m);
      LAB_CHECK(cudaStreamSynchronize(g_stream));
      ya[i].resize(s.N);
      LAB_CHECK(cudaMemcpy(ya[i].data(), y[i], s.N * 4, cudaMemcpyDeviceToHost));
    }
    Chain c{};
    for (int i = 0; i < 4; ++i)
      c.ph[i] = ChainPhase{w[0][i], sc[i], y[i], shapes[i].N, shapes[i].K, shapes[i].K / kTileRows};
    c.x = x;
    c.count = bar;
    c.gen = bar + 1;
    k<<<2 * sms, kSlices * 32, smem, g_stream>>>(c, max_rows);
    LAB_CHECK(cudaStreamSynchronize(g_stream));
    double worst = 0;
    for (int i = 0; i < 4; ++i) {
      yb[i].resize(shapes[i].N);
      LAB_CHECK(cudaMemcpy(yb[i].data(), y[i], shapes[i].N * 4, cudaMemcpyDeviceToHost));
      for (int j = 0; j < shapes[i].N; ++j) worst = std::max(worst, static_cast<double>(std::abs(ya[i][j] - yb[i][j])));
    }
    std::printf("   check chain against separate kernels: max |diff| = %.3g\n", worst);
  }
  for (auto& l : w)
    for (uint4* p : l) LAB_CHECK(cudaFree(p));
  for (int i = 0; i < 4; ++i) {
    LAB_CHECK(cudaFree(sc[i]));
    LAB_CHECK(cudaFree(y[i]));
  }
  LAB_CHECK(cudaFree(x));
  LAB_CHECK(cudaFree(bar));
}

template <int kSlices, bool kPerm>
void run_bulk(const Shape& s, const Bufs& bf, int reps, int copies, double bytes) {
  const int strips = s.N / 16, T = s.K / kTileRows;
  const int per_warp_tiles = (T + kSlices - 1) / kSlices;
  const int per_warp_rows = per_warp_tiles * kTileRows;
  const size_t smem = size_t{512} * kSlices * per_warp_tiles + sizeof(__half) * kSlices * per_warp_rows +
                      sizeof(float) * kSlices * (per_warp_rows / kGroupRows + 2) * 16;
  auto k = block_bulk<kSlices, kPerm>;
  LAB_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  int per_sm = 0;
  LAB_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, k, kSlices * 32, smem));
  auto launch = [&](int c) {
    Mat m{bf.w[c], bf.x, bf.scale, bf.perm, bf.y, s.N, s.K, T};
    k<<<strips, kSlices * 32, smem, g_stream>>>(m);
  };
  const double us = time_us(reps, copies, launch);
  std::printf("%-8s bulk slices=%d perm=%d blocks/SM=%d smem=%zu  %8.2f us  %6.3f TB/s\n", s.name, kSlices,
              kPerm ? 1 : 0, per_sm, smem, us, bytes / us * 1e-6);
  launch(0);
  LAB_CHECK(cudaStreamSynchronize(g_stream));
  check_y("", bf, s, kPerm);
}

template <int U, int kSlices, int kNG, bool kPerm>
void run_persist(const Shape& s, const Bufs& bf, int reps, int copies, double bytes, int blocks_per_sm, int sms) {
  const int T = s.K / kTileRows;
  if (T % kSlices != 0 || (T / kSlices) * kTileRows / kGroupRows != kNG) {
    std::printf("%-8s persist: shape does not fit kSlices=%d kNG=%d\n", s.name, kSlices, kNG);
    return;
  }
  const size_t smem = sizeof(uint32_t) * 32 * T;
  auto k = persist<U, kSlices, kNG, kPerm>;
  LAB_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  const int grid = std::min(s.N / 16, blocks_per_sm * sms);
  auto launch = [&](int c) {
    Mat m{bf.w[c], bf.x, bf.scale, bf.perm, bf.y, s.N, s.K, T};
    k<<<grid, kSlices * 32, smem, g_stream>>>(m);
  };
  const double us = time_us(reps, copies, launch);
  std::printf("%-8s persist slices=%d U=%d perm=%d grid=%d  %8.2f us  %6.3f TB/s\n", s.name, kSlices, U, kPerm ? 1 : 0,
              grid, us, bytes / us * 1e-6);
  launch(0);
  LAB_CHECK(cudaStreamSynchronize(g_stream));
  check_y("", bf, s, kPerm);
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 200;
  bool streamk_only = false, chain_only = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
      reps = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--streamk") == 0) {
      streamk_only = true;
    } else if (std::strcmp(argv[i], "--chain") == 0) {
      chain_only = true;
    } else {
      std::fprintf(stderr, "gemv_lab: unknown argument '%s' (usage: gemv_lab [--reps N] [--streamk | --chain])\n", argv[i]);
      return 2;
    }
  }
  int dev_count = 0;
  if (cudaGetDeviceCount(&dev_count) != cudaSuccess || dev_count == 0) {
    std::fprintf(stderr, "gemv_lab: no CUDA device\n");
    return 1;
  }
  cudaDeviceProp prop{};
  LAB_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs\n", prop.name, prop.multiProcessorCount);
  LAB_CHECK(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));

  {  // copy bandwidth (read + write) of 1 GiB, and the launch gap of an empty kernel
    const int64_t n = (int64_t{1} << 30) / 16;
    uint4 *src = nullptr, *dst = nullptr;
    LAB_CHECK(cudaMalloc(&src, n * 16));
    LAB_CHECK(cudaMalloc(&dst, n * 16));
    LAB_CHECK(cudaMemset(src, 1, n * 16));
    const double us = time_us(20, 1, [&](int) { copy_kernel<<<prop.multiProcessorCount * 8, 512, 0, g_stream>>>(src, dst, n); });
    std::printf("copy: %.3f TB/s\n", 2.0 * n * 16 / us * 1e-6);
    float* y = nullptr;
    LAB_CHECK(cudaMalloc(&y, 4));
    std::printf("empty kernel, back to back in a graph: %.2f us\n", time_us(2000, 1, [&](int) { empty_kernel<<<132, 256, 0, g_stream>>>(y); }));
    LAB_CHECK(cudaFree(y));
    LAB_CHECK(cudaFree(src));
    LAB_CHECK(cudaFree(dst));
  }

  if (chain_only) {
    run_chain(reps, prop.multiProcessorCount);
    return 0;
  }
  const Shape shapes[] = {{"gate_up", 28672, 4096}, {"gate", 14336, 4096}, {"down", 4096, 14336},
                          {"qkv", 6144, 4096},      {"o", 4096, 4096}};
  for (const Shape& s : shapes) {
    const double bytes = 0.5 * s.N * s.K;
    const int copies = static_cast<int>(200e6 / bytes) + 1;
    Bufs bf;
    std::vector<uint32_t> host(static_cast<size_t>(s.N) * s.K / 8);
    uint32_t r = 12345u;
    for (auto& v : host) v = (r = r * 1664525u + 1013904223u);
    for (int c = 0; c < copies; ++c) {
      uint4* w = nullptr;
      LAB_CHECK(cudaMalloc(&w, host.size() * 4));
      LAB_CHECK(cudaMemcpy(w, host.data(), host.size() * 4, cudaMemcpyHostToDevice));
      bf.w.push_back(w);
    }
    std::vector<__half> hx(s.K);
    std::vector<float> xf(s.K);
    for (int i = 0; i < s.K; ++i) {
      r = r * 1664525u + 1013904223u;
      hx[i] = __float2half(static_cast<float>(r >> 8) / 16777216.0f * 4.0f - 2.0f);
      xf[i] = __half2float(hx[i]);
    }
    std::vector<float> hs(static_cast<size_t>(s.K / kGroupRows) * s.N);
    for (auto& v : hs) v = 0.002f + static_cast<float>((r = r * 1664525u + 1013904223u) >> 8) / 16777216.0f * 0.01f;
    std::vector<int> perm(s.K);
    for (int i = 0; i < s.K; ++i) perm[i] = i;
    for (int i = s.K - 1; i > 0; --i) std::swap(perm[i], perm[(r = r * 1664525u + 1013904223u) % (i + 1)]);
    bf.ref[0] = reference(s, host, xf, hs, nullptr);
    bf.ref[1] = reference(s, host, xf, hs, &perm);
    LAB_CHECK(cudaMalloc(&bf.x, s.K * 2));
    LAB_CHECK(cudaMemcpy(bf.x, hx.data(), s.K * 2, cudaMemcpyHostToDevice));
    LAB_CHECK(cudaMalloc(&bf.scale, hs.size() * 4));
    LAB_CHECK(cudaMemcpy(bf.scale, hs.data(), hs.size() * 4, cudaMemcpyHostToDevice));
    LAB_CHECK(cudaMalloc(&bf.perm, s.K * 4));
    LAB_CHECK(cudaMemcpy(bf.perm, perm.data(), s.K * 4, cudaMemcpyHostToDevice));
    LAB_CHECK(cudaMalloc(&bf.y, s.N * 4));
    std::printf("-- %s N=%d K=%d, %.1f MB of weights, %d copies\n", s.name, s.N, s.K, bytes * 1e-6, copies);
    const int sms = prop.multiProcessorCount;
    if (streamk_only) {
      // The engine's one-token design today (fragment-ordered x, PDL, L2 prefetch) against stream-K TMA rings.
      run_block_strip<2, 0, 8>(s, bf, reps, copies, bytes);
      run_block_strip<2, 3, 8, false, true, true>(s, bf, reps, copies, bytes);
      run_block_strip<2, 3, 3, false, true, true>(s, bf, reps, copies, bytes);
      run_block_strip<2, 3, 12, false, true, true>(s, bf, reps, copies, bytes);
      for (int bps : {1, 2, 3}) run_streamk<8, 4, 4, true>(s, bf, reps, copies, bytes, bps, sms);
      for (int bps : {2, 3, 4}) run_streamk<8, 2, 4, true>(s, bf, reps, copies, bytes, bps, sms);
      for (int bps : {2, 3, 4}) run_streamk<8, 4, 2, true>(s, bf, reps, copies, bytes, bps, sms);
      for (int bps : {1, 2}) run_streamk<16, 3, 4, true>(s, bf, reps, copies, bytes, bps, sms);
      for (int bps : {4, 6}) run_streamk<4, 4, 4, true>(s, bf, reps, copies, bytes, bps, sms);
      run_streamk<8, 8, 2, true>(s, bf, reps, copies, bytes, 2, sms);
      run_streamk<8, 4, 4, false>(s, bf, reps, copies, bytes, 2, sms);
      for (uint4* w : bf.w) LAB_CHECK(cudaFree(w));
      LAB_CHECK(cudaFree(bf.x));
      LAB_CHECK(cudaFree(bf.scale));
      LAB_CHECK(cudaFree(bf.y));
      LAB_CHECK(cudaFree(bf.perm));
      continue;
    }
    run_warp_strip<4, 0, 8>(s, bf, reps, copies, bytes);
    run_warp_strip<4, 1, 8>(s, bf, reps, copies, bytes);
    run_block_strip<2, 0, 8>(s, bf, reps, copies, bytes);
    run_block_strip<2, 1, 8, true>(s, bf, reps, copies, bytes);
    run_block_strip<2, 3, 8, true>(s, bf, reps, copies, bytes);
    // The engine's gemv_one differs from the line above in (among others) PDL and 3 blocks per SM:
    run_block_strip<2, 3, 8, true, true>(s, bf, reps, copies, bytes);
    run_block_strip<2, 3, 8, true>(s, bf, reps, copies, bytes, 60 * 1024);
    run_block_strip<2, 3, 8, true, true>(s, bf, reps, copies, bytes, 60 * 1024);
    run_block_strip<2, 3, 8, true, false, true>(s, bf, reps, copies, bytes);
    run_block_strip<2, 3, 8, true, true, true>(s, bf, reps, copies, bytes, 60 * 1024);
    run_bulk<8, true>(s, bf, reps, copies, bytes);
    run_bulk<4, true>(s, bf, reps, copies, bytes);
    run_bulk<16, true>(s, bf, reps, copies, bytes);
    if (s.K == 4096) {
      for (int bps : {2, 3, 4}) {
        run_persist<2, 8, 4, true>(s, bf, reps, copies, bytes, bps, sms);
        run_persist<4, 8, 4, true>(s, bf, reps, copies, bytes, bps, sms);
      }
      run_persist<2, 4, 8, true>(s, bf, reps, copies, bytes, 4, sms);
      run_persist<4, 4, 8, true>(s, bf, reps, copies, bytes, 4, sms);
      run_persist<2, 16, 2, true>(s, bf, reps, copies, bytes, 2, sms);
    } else {
      for (int bps : {1, 2}) {
        run_persist<2, 16, 7, true>(s, bf, reps, copies, bytes, bps, sms);
        run_persist<4, 16, 7, true>(s, bf, reps, copies, bytes, bps, sms);
      }
      run_persist<2, 8, 14, true>(s, bf, reps, copies, bytes, 2, sms);
      run_persist<4, 8, 14, true>(s, bf, reps, copies, bytes, 2, sms);
      run_persist<2, 8, 14, true>(s, bf, reps, copies, bytes, 3, sms);
    }
    for (uint4* w : bf.w) LAB_CHECK(cudaFree(w));
    LAB_CHECK(cudaFree(bf.x));
    LAB_CHECK(cudaFree(bf.scale));
    LAB_CHECK(cudaFree(bf.y));
    LAB_CHECK(cudaFree(bf.perm));
  }
  return 0;
}
