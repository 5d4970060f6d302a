// out[s, h] = sum_j softmax_j(scale * q[s, h] . K[s, j, h/G]) V[s, j, h/G] over keys j in (pos - window, pos], one
// query (the newest token, pos = context_len[s] - 1) per sequence; flash-decoding: each block covers one range of
// the keys and writes an unnormalized partial (max, sum, acc); the ranges are merged by the same blocks after a
// per-group barrier (DecodeSplit::counters; spin_merge below).
// Shapes: q, out fp16 [num_seqs, num_heads, head_dim]; pages fp16 [num_pages, page_size, num_kv_heads, head_dim];
// workspace fp32: acc [num_seqs, num_heads, num_splits, head_dim] then (m, l) [num_seqs, num_heads, num_splits, 2].
// Threads: grid (num_splits, num_kv_heads, num_seqs), 128 threads, templated on head_dim D and on GP, the number
// G = num_heads / num_kv_heads of query heads sharing each K/V load rounded up to 1/2/4/8/16 (padded heads compute
// on zero queries and are never stored). Per tile of 64 keys (32 for head_dim 256): the cache row offsets of the
// tile's keys come from a shared table filled two tiles ahead (one thread per key, 32-bit page arithmetic); the
// tile's K and V are loaded into registers (16-byte loads, all in flight at once) while the previous tile is being
// computed, then staged in shared memory. Scores: kTpk = D/8 lanes (rounded up to 8/16/32) per key, 8 dimensions
// per lane, with the lane's query slices in registers (GP <= 8); the lane computes its partial dot for every head
// first, then one transposing shuffle reduction over the heads (each xor step halves the heads a lane keeps, so GP
// heads cost about GP + log2(kTpk) shuffles instead of GP * log2(kTpk)), leaving each lane one (or GP / kTpk)
// finished score(s). Online softmax: one warp per head. P.V: a thread per (head, 8-element chunk), keys divided
// among the rest of the block (unrolled by 4), merged through shared memory at the end.
// The kernel uses programmatic dependent launch (pdl.cuh). It reads the context length and block table and issues
// its first tile's K/V loads before the wait, all but each sequence's newest row (the only one the step's previous
// kernel, or the fused RoPE, writes); that row is loaded after the wait (+2.2% decode against waiting first:
// bench/results/2026-11-23f-norm-gather-and-fusions.md, run 4).
// Options: the merge also scatters its row to a fragment-ordered target (one sequence; frag.cuh). Fused RoPE
// (AttentionArgs::rope, the kRope instance): q comes unrotated; the split holding the new token writes the rotated
// k and the v of that token into the cache before its first tile load, and every block rotates its group's q in
// shared memory (fp16 rounding between, as rope_kernel's stored output) before scaling it.
// Constraints: head_dim in the dispatch list; G <= 16; num_splits <= 64; q, out, pages and workspace 16-byte
// aligned.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>

#include "kernels/attention.cuh"
#include "kernels/dispatch.h"
#include "kernels/kernel_check.h"
#include "kernels/pdl.cuh"

namespace exl::kernels {
namespace {

constexpr int kThreads = 128;
constexpr int kTile = 64;
constexpr int kMaxGroup = 16;
constexpr int kMaxSplits = kMaxDecodeSplits;

__device__ __forceinline__ void load8(const __half* p, float* f) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const __half2* h = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 v = __half22float2(h[i]);
    f[2 * i] = v.x;
    f[2 * i + 1] = v.y;
  }
}

// Sums v[0..N) (one value per head) over the 2O lanes of an aligned group (xor offsets O, O/2, ..., 1),
// transposed: at each offset, while more than one value is left, a lane keeps the lower half of its values (bit O
// of the lane clear) or the upper half and adds the half its partner sends; then plain xor sums. Afterwards the
// lane holds the group totals of heads group_head_base<N, O>(lane) + [0, N / min(N, 2O)) in v[0..).
template <int N, int O>
__device__ __forceinline__ void group_reduce(float* v, int lane) {
  if constexpr (O >= 1) {
    if constexpr (N > 1) {
      const bool up = (lane & O) != 0;
#pragma unroll
      for (int m = 0; m < N / 2; ++m) {
        const float send = up ? v[m] : v[m + N / 2];
        const float keep = up ? v[m + N / 2] : v[m];
        v[m] = keep + __shfl_xor_sync(0xffffffffu, send, O);
      }
      group_reduce<N / 2, O / 2>(v, lane);
    } else {
      v[0] += __shfl_xor_sync(0xffffffffu, v[0], O);
      group_reduce<1, O / 2>(v, lane);
    }
  }
}

template <int N, int O>
__device__ __forceinline__ int group_head_base(int lane) {
  if constexpr (O >= 1 && N > 1)
    return ((lane & O) != 0 ? N / 2 : 0) + group_head_base<N / 2, O / 2>(lane);
  else
    return 0;
}

template <int D>
struct DecodeShape {
  static constexpr int kChunks = D / 8;
  static constexpr int kTpk = kChunks <= 8 ? 8 : (kChunks <= 16 ? 16 : 32);
  static constexpr int kTileKeys = D <= 128 ? kTile : kTile / 2;
  static constexpr int kLoads = kTileKeys * kChunks / kThreads;
  static_assert(kTileKeys * kChunks % kThreads == 0, "tile loads");
  static_assert(2 * kTileKeys <= kThreads, "slot tables of two tiles are filled by one pass of the block");
};

template <int D, int GP>
struct DecodeSmem {
  static constexpr int kScoreStride = kTile + 1;  // odd: heads' rows on different banks in P.V
  static constexpr int kScoreFloats = (GP * kScoreStride + 3) / 4 * 4;
  static constexpr size_t kBytes =
      sizeof(float) * (GP * D + kScoreFloats) + 2 * sizeof(__half) * DecodeShape<D>::kTileKeys * D;
};

// In-kernel merge (DecodeSplit::counters): every block writes its partial to the workspace, then meets the other
// num_splits - 1 blocks of its (sequence, KV head) group at a barrier (an arrival count and an epoch per group in
// one word: the last to arrive resets the count and advances the epoch, the others wait for the epoch to move),
// then block `split` merges its share of the group's G * D / 4 float4 columns (a warp per column, a lane per split;
// weights w_i / sum_i l_i w_i with w_i = exp(m_i - max m)). The barrier leaves the count at 0, so launches with
// different split counts can share the counters. Forward progress: a group's blocks are consecutive in launch order
// (x = split), so the wait needs only those num_splits blocks resident at once (launch_decode_main checks that they
// fit).
template <int D>
__device__ __forceinline__ void spin_merge(const AttentionArgs& a, int n, int split, int kvh, int s, int G,
                                           const float* ws_acc, const float* ws_ml, uint32_t* counters) {
  __syncthreads();  // every thread's partial stores are issued
  if (threadIdx.x == 0) {
    // One word per group: arrivals in the low 16 bits, the epoch in the high 16. The last arriver moves the count
    // back to 0 and the epoch on in one atomic; the others wait for the epoch they arrived in to change. (A count
    // and an epoch in two words cost the last arriver two more L2 round trips: 0.8-0.9% of decode at 2k,
    // bench/results/2026-11-24e-epilogues.md.)
    uint32_t* word = counters + 2 * (static_cast<int64_t>(s) * a.num_kv_heads + kvh);
    __threadfence();  // this block's partial before its arrival
    const uint32_t old = atomicAdd(word, 1u);
    if ((old & 0xffffu) == static_cast<uint32_t>(n) - 1u) {
      atomicAdd(word, 0x10000u - static_cast<uint32_t>(n));
    } else {
      uint32_t e = old;
      while ((e >> 16) == (old >> 16)) {
        asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(e) : "l"(word) : "memory");
      }
    }
    __threadfence();
  }
  __syncthreads();
  constexpr int kCols4 = D / 4;
  const int total = G * kCols4;
  const int per = (total + n - 1) / n;
  const int lo = split * per, hi = min(total, lo + per);
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int64_t group0 = static_cast<int64_t>(s) * a.num_heads + static_cast<int64_t>(kvh) * G;  // first head
  // A warp takes kCols columns per round (warp, warp + 4, ...) and issues all their loads (both (m, l) pairs and
  // partials per lane: splits lane and lane + 32) before using any: one L2 round trip per round. Partials of empty
  // splits are loaded too (unwritten workspace) and never used (weight 0).
  constexpr int kWarpsM = kThreads / 32, kCols = 4;
  for (int base = lo + warp; base < hi; base += kWarpsM * kCols) {
    float2 ml[kCols][2];
    float4 v[kCols][2];
#pragma unroll
    for (int q = 0; q < kCols; ++q) {
      const int idx = base + q * kWarpsM;
      const int g = idx / kCols4, c4 = idx - g * kCols4;
      const int64_t h = group0 + g;  // row of (sequence, head) in the workspace
#pragma unroll
      for (int k = 0; k < 2; ++k) {
        const int i = lane + 32 * k;
        ml[q][k] = make_float2(-INFINITY, 0.0f);
        if (idx < hi && i < n) {
          ml[q][k] = __ldcg(reinterpret_cast<const float2*>(ws_ml + h * n * 2) + i);
          v[q][k] = __ldcg(reinterpret_cast<const float4*>(ws_acc + (h * n + i) * D) + c4);
        }
      }
    }
#pragma unroll
    for (int q = 0; q < kCols; ++q) {
      const int idx = base + q * kWarpsM;
      if (idx >= hi) break;  // warp-uniform
      const int g = idx / kCols4, c4 = idx - g * kCols4;
      const int64_t h = group0 + g;
      float mx = -INFINITY;
#pragma unroll
      for (int k = 0; k < 2; ++k) mx = fmaxf(mx, ml[q][k].y > 0.0f ? ml[q][k].x : -INFINITY);
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      float w[2], denom = 0.0f;
#pragma unroll
      for (int k = 0; k < 2; ++k) {
        w[k] = ml[q][k].y > 0.0f ? __expf(ml[q][k].x - mx) : 0.0f;
        denom += ml[q][k].y * w[k];
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) denom += __shfl_xor_sync(0xffffffffu, denom, o);
      float4 o4 = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
      for (int k = 0; k < 2; ++k) {
        if (w[k] != 0.0f) {
          const float wt = w[k] / denom;
          o4.x += v[q][k].x * wt;
          o4.y += v[q][k].y * wt;
          o4.z += v[q][k].z * wt;
          o4.w += v[q][k].w * wt;
        }
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) {
        o4.x += __shfl_xor_sync(0xffffffffu, o4.x, o);
        o4.y += __shfl_xor_sync(0xffffffffu, o4.y, o);
        o4.z += __shfl_xor_sync(0xffffffffu, o4.z, o);
        o4.w += __shfl_xor_sync(0xffffffffu, o4.w, o);
      }
      if (lane == 0) {
        uint2 packed;
        reinterpret_cast<__half2*>(&packed)[0] = __floats2half2_rn(o4.x, o4.y);
        reinterpret_cast<__half2*>(&packed)[1] = __floats2half2_rn(o4.z, o4.w);
        *reinterpret_cast<uint2*>(a.out + h * D + c4 * 4) = packed;
        if (a.out_frag.out != nullptr) {
          const int64_t hd = static_cast<int64_t>(kvh * G + g) * D + c4 * 4;  // one sequence
          const __half* hv = reinterpret_cast<const __half*>(&packed);
#pragma unroll
          for (int e = 0; e < 4; ++e) a.out_frag.out[a.out_frag.dest[hd + e]] = hv[e];
        }
      }
    }
  }
  if (a.out_frag.out != nullptr && split == 0 && kvh == 0 && s == 0)
    for (int i = static_cast<int>(threadIdx.x); i < a.out_frag.num_pads; i += kThreads)
      a.out_frag.out[a.out_frag.pads[i]] = __ushort_as_half(0);
}

// kSoftcap: each (already scaled) score is soft-capped, s = cap * tanh(s / cap) (Gemma 2); the cap-free
// instantiations are the plain kernel.
template <int D, int GP, bool kRope, bool kSoftcap>
__global__ void __launch_bounds__(kThreads) attention_decode_kernel(AttentionArgs a, int num_splits, float* ws,
                                                                    uint32_t* counters) {
  using Shape = DecodeShape<D>;
  using Smem = DecodeSmem<D, GP>;
  constexpr int kChunks = Shape::kChunks, kTpk = Shape::kTpk, kTileKeys = Shape::kTileKeys;
  constexpr int kLoads = Shape::kLoads;
  constexpr int kKeysPerPass = kThreads / kTpk;
  constexpr int kPasses = kTileKeys / kKeysPerPass;
  static_assert(kTileKeys % kKeysPerPass == 0, "tile passes");
  constexpr int kHalved = GP < kTpk ? GP : kTpk;  // head count split off by the transposing reduction
  constexpr int kFinal = GP / kHalved;              // finished scores per lane
  constexpr int kPlainMask = kTpk / kHalved - 1;    // lanes that differ only here hold the same scores
  constexpr bool kQRegs = GP <= 8;
  constexpr int kPassUnroll = GP <= 4 ? kPasses : (GP <= 8 ? 4 : 2);
  constexpr int kItems = GP * kChunks;  // P.V work items (head, chunk); also the q chunks
  constexpr int kKs = kItems >= kThreads ? 1 : kThreads / kItems;
  constexpr int kIt = kKs > 1 ? 1 : (kItems + kThreads - 1) / kThreads;
  constexpr int kQLoads = (kItems + kThreads - 1) / kThreads;
  constexpr int kStride = Smem::kScoreStride;

  extern __shared__ float4 smem_f4[];
  float* q_s = reinterpret_cast<float*>(smem_f4);  // [GP][D], scaled
  float* score_s = q_s + GP * D;                   // [GP][kStride]
  __half* k_s = reinterpret_cast<__half*>(q_s + GP * D + Smem::kScoreFloats);
  __half* v_s = k_s + kTileKeys * D;
  float4* red_s = reinterpret_cast<float4*>(k_s);  // after the last tile (kThreads * 8 floats fit in K and V)
  static_assert(kThreads * 8 * sizeof(float) <= 2 * sizeof(__half) * kTileKeys * D, "reduction buffer");
  __shared__ float m_s[GP], l_s[GP], alpha_s[GP];
  __shared__ int64_t slot_s[2][kTileKeys];  // element offsets of the tile's (key, kvh) rows in the pages

  const int split = blockIdx.x, kvh = blockIdx.y, s = blockIdx.z;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int G = static_cast<int>(a.num_heads) / static_cast<int>(a.num_kv_heads);
  const int64_t head0 = static_cast<int64_t>(s) * a.num_heads + static_cast<int64_t>(kvh) * G;

  // Before the PDL wait (pdl.cuh): the context length, the split's key range, the row tables of its first two
  // tiles and the first tile's K/V loads. None of it is written by the step's previous kernel: lengths and block
  // tables are set before the step, and every cache row but each sequence's newest was written by an earlier step
  // (the newest comes from the rope kernel just before, or from this kernel's fused RoPE below). So the chain
  // length -> block table -> K/V, two dependent round trips and a DRAM read, overlaps the previous kernel's tail.
  const int len = a.context_len[s];
  const int first = a.sliding_window > 0 && a.sliding_window < len ? len - static_cast<int>(a.sliding_window) : 0;
  const int chunk = (len - first + num_splits - 1) / num_splits;
  const int begin = first + split * chunk;
  const int end = min(len, begin + chunk);
  const int newest = len - 1;

  const int64_t ml_base = head0 * num_splits + split;
  float* ws_acc = ws;
  float* ws_ml = ws + a.num_seqs * a.num_heads * num_splits * D;
  if (begin >= end) {  // block-uniform
    pdl_wait();
    pdl_launch_dependents();
    if (tid < G) {
      ws_ml[(ml_base + static_cast<int64_t>(tid) * num_splits) * 2] = -INFINITY;
      ws_ml[(ml_base + static_cast<int64_t>(tid) * num_splits) * 2 + 1] = 0.0f;
    }
    spin_merge<D>(a, num_splits, split, kvh, s, G, ws_acc, ws_ml, counters);
    return;
  }

  const int ps = static_cast<int>(a.page_size);
  const int32_t* table = a.block_table + static_cast<int64_t>(s) * a.max_pages_per_seq;
  const int64_t kv_stride = a.num_kv_heads * D;
  auto row_offset = [&](int key) {
    const int page_index = key / ps;
    const int32_t page = table[page_index];
    return (static_cast<int64_t>(page) * ps + (key - page_index * ps)) * kv_stride + static_cast<int64_t>(kvh) * D;
  };
  if (tid < 2 * kTileKeys) {
    const int key = begin + tid;
    if (key < end) slot_s[tid / kTileKeys][tid % kTileKeys] = row_offset(key);
  }
  __syncthreads();

  uint4 k_r[kLoads], v_r[kLoads];
  // skip_newest: leave the newest key's row out (the first tile before the wait); it is loaded after the wait.
  auto issue_loads = [&](int tile0, int buf, bool skip_newest) {
    const int nt = min(kTileKeys, end - tile0);
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int idx = tid + i * kThreads, j = idx / kChunks, c = idx % kChunks;
      if (j < nt && !(skip_newest && tile0 + j == newest)) {
        const int64_t off = slot_s[buf][j] + c * 8;
        k_r[i] = *reinterpret_cast<const uint4*>(a.k_pages + off);
        v_r[i] = *reinterpret_cast<const uint4*>(a.v_pages + off);
      }
    }
  };
  issue_loads(begin, 0, true);

  pdl_wait();
  pdl_launch_dependents();

  // The group's q (written by the previous kernel).
  uint4 q_raw[kQLoads];
#pragma unroll
  for (int i = 0; i < kQLoads; ++i) {
    const int idx = tid + i * kThreads;
    if (idx < G * kChunks) q_raw[i] = *reinterpret_cast<const uint4*>(a.q + head0 * D + idx * 8);
  }

  // Fused RoPE: the split holding the new token writes its rotated k and its v into the cache (read back by this
  // block's own load of the newest row, after the barrier below), as rope_kernel does.
  constexpr bool fused_rope = kRope;  // a.rope.k_new != nullptr (a separate instance: the plain one is unchanged)
  const int R = a.rope.rotary_half;
  const float pos = static_cast<float>(len - 1);
  if (fused_rope && begin <= len - 1 && len - 1 < end) {
    const int64_t row = row_offset(len - 1);
    const int64_t src = (static_cast<int64_t>(s) * a.num_kv_heads + kvh) * D;
    for (int d = tid; d < D; d += kThreads) {
      a.rope.v_cache[row + d] = a.rope.v_new[src + d];
      if (d < R) {
        float sn, cs;
        sincosf(pos * a.rope.inv_freq[d], &sn, &cs);
        cs *= a.rope.attention_factor;
        sn *= a.rope.attention_factor;
        const float va = __half2float(a.rope.k_new[src + d]), vb = __half2float(a.rope.k_new[src + d + R]);
        a.rope.k_cache[row + d] = __float2half_rn(va * cs - vb * sn);
        a.rope.k_cache[row + d + R] = __float2half_rn(vb * cs + va * sn);
      } else if (d >= 2 * R) {
        a.rope.k_cache[row + d] = a.rope.k_new[src + d];
      }
    }
  }
  const float q_scale = fused_rope ? 1.0f : a.scale;  // fused: scaled after the rotation

  // q (scaled; padded heads zero), the softmax state and the row tables of the first two tiles.
#pragma unroll
  for (int i = 0; i < kQLoads; ++i) {
    const int idx = tid + i * kThreads;
    if (idx < kItems) {
      float f[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      if (idx < G * kChunks) {
        const __half2* h = reinterpret_cast<const __half2*>(&q_raw[i]);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float2 v = __half22float2(h[e]);
          f[2 * e] = v.x * q_scale;
          f[2 * e + 1] = v.y * q_scale;
        }
      }
      reinterpret_cast<float4*>(q_s)[2 * idx] = make_float4(f[0], f[1], f[2], f[3]);
      reinterpret_cast<float4*>(q_s)[2 * idx + 1] = make_float4(f[4], f[5], f[6], f[7]);
    }
  }
  if (tid < GP) {
    m_s[tid] = -INFINITY;
    l_s[tid] = 0.0f;
    alpha_s[tid] = 0.0f;
  }
  __syncthreads();
  // The newest key's row, left out of the loads before the wait: now visible (the previous kernel's write, or the
  // fused RoPE write above, before the barrier).
  if (newest >= begin && newest < end && newest - begin < kTileKeys) {
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int idx = tid + i * kThreads, j = idx / kChunks, c = idx % kChunks;
      if (begin + j == newest) {  // from L2 (__ldcg): never an L1 line filled before the wait
        const int64_t off = slot_s[0][j] + c * 8;
        k_r[i] = __ldcg(reinterpret_cast<const uint4*>(a.k_pages + off));
        v_r[i] = __ldcg(reinterpret_cast<const uint4*>(a.v_pages + off));
      }
    }
  }
  if constexpr (fused_rope) {  // rotate the group's q (fp16 rounding as rope_kernel's output), then scale
    for (int idx = tid; idx < G * D; idx += kThreads) {
      const int g = idx / D, d = idx - g * D;
      float* qg = q_s + g * D;
      if (d < R) {
        float sn, cs;
        sincosf(pos * a.rope.inv_freq[d], &sn, &cs);
        cs *= a.rope.attention_factor;
        sn *= a.rope.attention_factor;
        const float va = qg[d], vb = qg[d + R];
        qg[d] = __half2float(__float2half_rn(va * cs - vb * sn)) * a.scale;
        qg[d + R] = __half2float(__float2half_rn(vb * cs + va * sn)) * a.scale;
      } else if (d >= 2 * R) {
        qg[d] *= a.scale;
      }
    }
    __syncthreads();
  }

  const int lane_in_key = tid % kTpk, key_slot = tid / kTpk;
  const int head_base = group_head_base<GP, kTpk / 2>(lane_in_key);
  const bool score_writer = (lane_in_key & kPlainMask) == 0;
  float q_r[kQRegs ? GP : 1][8];
  if constexpr (kQRegs) {
#pragma unroll
    for (int g = 0; g < GP; ++g) {
#pragma unroll
      for (int e = 0; e < 8; ++e) q_r[g][e] = 0.0f;
      if (lane_in_key < kChunks) {
        const float4 lo = *reinterpret_cast<const float4*>(q_s + g * D + lane_in_key * 8);
        const float4 hi = *reinterpret_cast<const float4*>(q_s + g * D + lane_in_key * 8 + 4);
        q_r[g][0] = lo.x, q_r[g][1] = lo.y, q_r[g][2] = lo.z, q_r[g][3] = lo.w;
        q_r[g][4] = hi.x, q_r[g][5] = hi.y, q_r[g][6] = hi.z, q_r[g][7] = hi.w;
      }
    }
  }

  // P.V mapping: item = (head, chunk); kKs threads share an item when there are fewer items than threads.
  const int item0 = kKs > 1 ? tid % kItems : tid;
  const int kpart = kKs > 1 ? tid / kItems : 0;
  float acc[kIt][8];
#pragma unroll
  for (int it = 0; it < kIt; ++it)
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[it][e] = 0.0f;


  int buf = 0;
  for (int tile0 = begin; tile0 < end; tile0 += kTileKeys, buf ^= 1) {
    const int nt = min(kTileKeys, end - tile0);
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int idx = tid + i * kThreads, j = idx / kChunks, c = idx % kChunks;
      if (j < nt) {
        *reinterpret_cast<uint4*>(k_s + j * D + c * 8) = k_r[i];
        *reinterpret_cast<uint4*>(v_s + j * D + c * 8) = v_r[i];
      }
    }
    __syncthreads();
    // Next tile's loads (rows in slot_s[buf ^ 1]) fly during this tile's math; the rows two tiles ahead go to
    // slot_s[buf], whose last reader (this tile's loads) was before the barrier above.
    const int next = tile0 + kTileKeys;
    if (next < end) issue_loads(next, buf ^ 1, false);
    if (tid < kTileKeys) {
      const int key = next + kTileKeys + tid;
      if (key < end) slot_s[buf][tid] = row_offset(key);
    }

    // Scores of this tile for every head of the group.
#pragma unroll kPassUnroll
    for (int p = 0; p < kPasses; ++p) {
      if (p * kKeysPerPass >= nt) break;  // block-uniform
      const int j = key_slot + p * kKeysPerPass;
      float kf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      if (lane_in_key < kChunks) load8(k_s + j * D + lane_in_key * 8, kf);
      float dot[GP];
#pragma unroll
      for (int g = 0; g < GP; ++g) {
        float d = 0.0f;
        if constexpr (kQRegs) {
#pragma unroll
          for (int e = 0; e < 8; ++e) d += q_r[g][e] * kf[e];
        } else if (lane_in_key < kChunks) {
          const float4 lo = *reinterpret_cast<const float4*>(q_s + g * D + lane_in_key * 8);
          const float4 hi = *reinterpret_cast<const float4*>(q_s + g * D + lane_in_key * 8 + 4);
          d = lo.x * kf[0] + lo.y * kf[1] + lo.z * kf[2] + lo.w * kf[3] + hi.x * kf[4] + hi.y * kf[5] +
              hi.z * kf[6] + hi.w * kf[7];
        }
        dot[g] = d;
      }
      group_reduce<GP, kTpk / 2>(dot, lane_in_key);
      if (j < nt && score_writer) {
#pragma unroll
        for (int m = 0; m < kFinal; ++m)
          if (head_base + m < G) {
            if constexpr (kSoftcap)
              score_s[(head_base + m) * kStride + j] = a.softcap * tanhf(dot[m] / a.softcap);
            else
              score_s[(head_base + m) * kStride + j] = dot[m];
          }
      }
    }
    __syncthreads();
    // Online softmax update: one warp per head.
    for (int g = warp; g < G; g += kThreads / 32) {
      float* row = score_s + g * kStride;
      const float v0 = lane < nt ? row[lane] : -INFINITY;
      const float v1 = lane + 32 < nt ? row[lane + 32] : -INFINITY;
      float mx = fmaxf(v0, v1);
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      const float m_old = m_s[g];
      const float m_new = fmaxf(m_old, mx);
      const float p0 = lane < nt ? __expf(v0 - m_new) : 0.0f;
      const float p1 = lane + 32 < nt ? __expf(v1 - m_new) : 0.0f;
      row[lane] = p0;
      row[lane + 32] = p1;
      float sum = p0 + p1;
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      if (lane == 0) {
        const float alpha = m_old == -INFINITY ? 0.0f : __expf(m_old - m_new);
        m_s[g] = m_new;
        l_s[g] = l_s[g] * alpha + sum;
        alpha_s[g] = alpha;
      }
    }
    __syncthreads();
    // acc = acc * alpha + P . V
#pragma unroll
    for (int it = 0; it < kIt; ++it) {
      const int item = item0 + it * kThreads;
      if (kpart < kKs && item < kItems) {
        const int g = item / kChunks, c = item % kChunks;
        if (g < G) {
          const float alpha = alpha_s[g];
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[it][e] *= alpha;
          const float* prow = score_s + g * kStride;
          const __half* vcol = v_s + c * 8;
#pragma unroll 4
          for (int j = kpart; j < nt; j += kKs) {
            const float p = prow[j];
            float vf[8];
            load8(vcol + j * D, vf);
#pragma unroll
            for (int e = 0; e < 8; ++e) acc[it][e] += p * vf[e];
          }
        }
      }
    }
    __syncthreads();
  }

  // Merge the key parts (kKs > 1) and write the partial result of the real heads.
  if constexpr (kKs > 1) {
    if (kpart < kKs) {
      red_s[(kpart * kItems + item0) * 2] = make_float4(acc[0][0], acc[0][1], acc[0][2], acc[0][3]);
      red_s[(kpart * kItems + item0) * 2 + 1] = make_float4(acc[0][4], acc[0][5], acc[0][6], acc[0][7]);
    }
    __syncthreads();
    if (kpart == 0) {
#pragma unroll
      for (int p = 1; p < kKs; ++p) {
        const float4 lo = red_s[(p * kItems + item0) * 2], hi = red_s[(p * kItems + item0) * 2 + 1];
        acc[0][0] += lo.x, acc[0][1] += lo.y, acc[0][2] += lo.z, acc[0][3] += lo.w;
        acc[0][4] += hi.x, acc[0][5] += hi.y, acc[0][6] += hi.z, acc[0][7] += hi.w;
      }
    }
  }
#pragma unroll
  for (int it = 0; it < kIt; ++it) {
    const int item = item0 + it * kThreads;
    if (kpart == 0 && item < kItems) {
      const int g = item / kChunks, c = item % kChunks;
      if (g < G) {
        float4* dst = reinterpret_cast<float4*>(ws_acc + (ml_base + static_cast<int64_t>(g) * num_splits) * D + c * 8);
        dst[0] = make_float4(acc[it][0], acc[it][1], acc[it][2], acc[it][3]);
        dst[1] = make_float4(acc[it][4], acc[it][5], acc[it][6], acc[it][7]);
      }
    }
  }
  if (tid < G) {
    ws_ml[(ml_base + static_cast<int64_t>(tid) * num_splits) * 2] = m_s[tid];
    ws_ml[(ml_base + static_cast<int64_t>(tid) * num_splits) * 2 + 1] = l_s[tid];
  }
  spin_merge<D>(a, num_splits, split, kvh, s, G, ws_acc, ws_ml, counters);
}

template <int D, int GP>
void launch_decode_main(const AttentionArgs& a, const DecodeSplit& split, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(split.num_splits), static_cast<unsigned>(a.num_kv_heads),
                  static_cast<unsigned>(a.num_seqs));
  constexpr size_t kSmem = DecodeSmem<D, GP>::kBytes;
  const bool rope = a.rope.k_new != nullptr, softcap = a.softcap > 0.0f;
  auto kernel = rope ? (softcap ? attention_decode_kernel<D, GP, true, true>
                                : attention_decode_kernel<D, GP, true, false>)
                     : (softcap ? attention_decode_kernel<D, GP, false, true>
                                : attention_decode_kernel<D, GP, false, false>);
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSmem)),
             "cudaFuncSetAttribute");
  // The blocks of one group wait for each other: all of them must fit on the GPU at once. Resident blocks of this
  // instance (rope or not, softcap or not), per process (one kind of GPU), computed once: the batched forward launches this every
  // step.
  auto resident_blocks = [&] {
    int device = 0, sms = 0, per_sm = 0;
    check_cuda(cudaGetDevice(&device), "attention_decode: cudaGetDevice");
    check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "attention_decode: SM count");
    check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, kSmem),
               "attention_decode: occupancy");
    return per_sm * sms;
  };
  static std::atomic<int> cached[2][2];  // [rope][softcap]; 0: not computed yet
  int resident = cached[rope][softcap].load(std::memory_order_relaxed);
  if (resident == 0) {
    resident = resident_blocks();
    cached[rope][softcap].store(resident, std::memory_order_relaxed);
  }
  if (resident < split.num_splits)
    raise_kernel_errorf(KernelErrorKind::kUnsupported,
                        "attention_decode: the in-kernel merge needs the %d split blocks of a group resident at "
                        "once; this GPU holds %d",
                        split.num_splits, resident);
  launch_pdl("attention_decode", kernel, grid, dim3(kThreads), kSmem, stream, a, split.num_splits, split.workspace,
             split.counters);
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

int64_t decode_attention_workspace_floats(int64_t num_seqs, int64_t num_heads, int64_t head_dim, int num_splits) {
  return num_seqs * num_heads * num_splits * (2 + head_dim);
}

int choose_decode_splits(int64_t num_seqs, int64_t num_kv_heads, int64_t max_context, int num_sms) {
  const int64_t blocks = std::max<int64_t>(1, num_seqs * num_kv_heads);
  // About 2.4 blocks per SM (40 splits for Llama-3-8B's 8 KV heads on 132 SMs). Measured on H100 with the in-kernel
  // merge (Llama-3-8B decode at 2k): 33 splits (2 per SM) were best in bench/results/2026-11-24b-attention-merge.md
  // but for 48 (+0.9% EXL2, +0.1% GPTQ); once the GEMV epilogues stopped waiting on memory, 40 were +0.8% (EXL2)
  // over 33 and 26 -1.0% (2026-11-24e, run 7; run 8 is the A/B of both formats). Stay clear of the cliff: 50 splits
  // (400 blocks, more than the 396 that fit at 3 per SM) were 6% slower.
  const int64_t want = ceil_div(12 * static_cast<int64_t>(num_sms), 5 * blocks);
  const int64_t by_length = std::max<int64_t>(1, ceil_div(max_context, 32));
  return static_cast<int>(std::clamp<int64_t>(std::min(want, by_length), 1, kMaxSplits));
}

void launch_attention_decode(const AttentionArgs& a, const DecodeSplit& split, cudaStream_t stream) {
  if (a.num_kv_heads <= 0 || a.num_heads % a.num_kv_heads != 0)
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument,
                        "attention_decode: num_heads %lld is not a multiple of num_kv_heads %lld",
                        static_cast<long long>(a.num_heads), static_cast<long long>(a.num_kv_heads));
  const int64_t G = a.num_heads / a.num_kv_heads;
  if (G > kMaxGroup)
    raise_kernel_errorf(KernelErrorKind::kUnsupported,
                        "attention_decode: %lld query heads per KV head is not supported (at most %d)",
                        static_cast<long long>(G), kMaxGroup);
  if (split.num_splits < 1 || split.num_splits > kMaxSplits || split.workspace == nullptr ||
      split.counters == nullptr)
    raise_kernel_error(KernelErrorKind::kInvalidArgument,
                       "attention_decode: needs 1 <= num_splits <= 64, a workspace and the merge counters");
  if (a.num_seqs == 0) return;
  if (a.out_frag.out != nullptr &&
      (a.num_seqs != 1 || a.out_frag.dest == nullptr || !aligned16(a.out_frag.dest) ||
       (a.out_frag.num_pads > 0 && a.out_frag.pads == nullptr)))
    raise_kernel_error(KernelErrorKind::kInvalidArgument,
                       "attention_decode: a fragment-ordered output needs one sequence and a complete, 16-byte "
                       "aligned target");
  if (a.rope.k_new != nullptr &&
      (a.rope.v_new == nullptr || a.rope.k_cache != a.k_pages || a.rope.v_cache != a.v_pages ||
       a.rope.inv_freq == nullptr || a.rope.rotary_half < 1 || 2 * a.rope.rotary_half > a.head_dim))
    raise_kernel_error(KernelErrorKind::kInvalidArgument,
                       "attention_decode: fused RoPE needs k/v of the new token, the cache pools being read, and "
                       "1 <= rotary_half <= head_dim / 2");
  if (!aligned16(a.q) || !aligned16(a.out) || !aligned16(a.k_pages) || !aligned16(a.v_pages) ||
      !aligned16(split.workspace))
    raise_kernel_error(KernelErrorKind::kInvalidArgument,
                       "attention_decode: q, out, the pages and the workspace must be 16-byte aligned");
  dispatch_head_dim(a.head_dim, "attention_decode", [&](auto d) {
    constexpr int D = decltype(d)::value;
    if (G <= 1)
      launch_decode_main<D, 1>(a, split, stream);
    else if (G <= 2)
      launch_decode_main<D, 2>(a, split, stream);
    else if (G <= 4)
      launch_decode_main<D, 4>(a, split, stream);
    else if (G <= 8)
      launch_decode_main<D, 8>(a, split, stream);
    else
      launch_decode_main<D, 16>(a, split, stream);
  });
}

}  // namespace exl::kernels
