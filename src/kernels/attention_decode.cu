// out[s, h] = sum_j softmax_j(scale * q[s, h] . K[s, j, h/G]) V[s, j, h/G] over keys j in (pos - window, pos], one
// query (the newest token, pos = context_len[s] - 1) per sequence; flash-decoding: each block covers one range of
// the keys and writes an unnormalized partial (max, sum, acc), a second kernel merges the ranges.
// Shapes: q, out fp16 [num_seqs, num_heads, head_dim]; pages fp16 [num_pages, page_size, num_kv_heads, head_dim];
// workspace fp32: (m, l) [num_seqs, num_heads, num_splits, 2] then acc [num_seqs, num_heads, num_splits, head_dim].
// Threads: grid (num_splits, num_kv_heads, num_seqs), 128 threads; the G = num_heads / num_kv_heads query heads
// of one KV head share every K/V load. Per tile of 64 keys (32 for head_dim 256) the whole block first stages K
// and V in shared memory with all its 16-byte loads in flight at once (one memory round trip per tile); scores:
// D/8 lanes (rounded up to 8/16/32) per key with a shuffle reduction; online softmax per head; P.V: a thread per
// (head, 8-element chunk), keys divided among the rest of the block, reduced through shared memory at the end.
// Constraints: head_dim in the dispatch list; G <= 16; G * head_dim / 8 <= 512.
#include <algorithm>
#include <cmath>

#include "kernels/kernel_check.h"
#include "kernels/attention.cuh"
#include "kernels/dispatch.h"

namespace exl::kernels {
namespace {

constexpr int kThreads = 128;
constexpr int kTile = 64;
constexpr int kMaxGroup = 16;
constexpr int kMaxItemsPerThread = 4;

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

__device__ __forceinline__ const __half* kv_row(const AttentionArgs& a, const __half* pages, int s, int64_t key,
                                                int kvh) {
  const int32_t page = a.block_table[s * a.max_pages_per_seq + key / a.page_size];
  const int64_t slot = static_cast<int64_t>(page) * a.page_size + key % a.page_size;
  return pages + (slot * a.num_kv_heads + kvh) * a.head_dim;
}

template <int D>
struct DecodeSmem {
  static constexpr int kTileKeys = D <= 128 ? kTile : kTile / 2;
  static constexpr size_t kBytes =
      sizeof(float) * (kMaxGroup * D + kMaxGroup * kTile) + 2 * sizeof(__half) * kTileKeys * D;
};

template <int D>
__global__ void __launch_bounds__(kThreads) attention_decode_kernel(AttentionArgs a, int num_splits, float* ws) {
  constexpr int kChunks = D / 8;
  constexpr int kTpk = kChunks <= 8 ? 8 : (kChunks <= 16 ? 16 : 32);
  constexpr int kKeysPerPass = kThreads / kTpk;
  constexpr int kTileKeys = DecodeSmem<D>::kTileKeys;
  constexpr int kLoadsPerThread = kTileKeys * kChunks / kThreads;
  static_assert(kTileKeys * kChunks % kThreads == 0 && kTileKeys % kKeysPerPass == 0, "tile shape");
  extern __shared__ float4 smem_f4[];
  float* q_s = reinterpret_cast<float*>(smem_f4);
  float(*score_s)[kTile] = reinterpret_cast<float(*)[kTile]>(q_s + kMaxGroup * D);
  __half* k_s = reinterpret_cast<__half*>(q_s + kMaxGroup * D + kMaxGroup * kTile);
  __half* v_s = k_s + kTileKeys * D;
  float* red_s = reinterpret_cast<float*>(k_s);  // after the last tile (kThreads * 8 floats fit in K and V)
  static_assert(kThreads * 8 * sizeof(float) <= 2 * sizeof(__half) * kTileKeys * D, "reduction buffer");
  __shared__ float m_s[kMaxGroup], l_s[kMaxGroup], alpha_s[kMaxGroup];

  const int split = blockIdx.x, kvh = blockIdx.y, s = blockIdx.z;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int G = static_cast<int>(a.num_heads / a.num_kv_heads);
  const int64_t len = a.context_len[s];
  const int64_t pos = len - 1;
  const int64_t first = a.sliding_window > 0 ? max(int64_t{0}, pos - a.sliding_window + 1) : 0;
  const int64_t chunk = (len - first + num_splits - 1) / num_splits;
  const int64_t begin = first + split * chunk;
  const int64_t end = min(len, begin + chunk);

  const int64_t ml_base = ((static_cast<int64_t>(s) * a.num_heads + kvh * G) * num_splits + split);
  float* ws_ml = ws;
  float* ws_acc = ws + a.num_seqs * a.num_heads * num_splits * 2;
  if (begin >= end) {
    for (int g = tid; g < G; g += kThreads) {
      ws_ml[(ml_base + static_cast<int64_t>(g) * num_splits) * 2] = -INFINITY;
      ws_ml[(ml_base + static_cast<int64_t>(g) * num_splits) * 2 + 1] = 0.0f;
    }
    return;
  }

  for (int e = tid; e < G * D; e += kThreads) {
    const int g = e / D, d = e % D;
    q_s[e] = __half2float(a.q[(static_cast<int64_t>(s) * a.num_heads + kvh * G + g) * D + d]) * a.scale;
  }
  if (tid < G) {
    m_s[tid] = -INFINITY;
    l_s[tid] = 0.0f;
  }
  const int items = G * kChunks;
  const int ks = items >= kThreads ? 1 : kThreads / items;
  const int kpart = tid / (items >= kThreads ? kThreads : items);
  const int item0 = tid % (items >= kThreads ? kThreads : items);
  float acc[kMaxItemsPerThread][8];
#pragma unroll
  for (int it = 0; it < kMaxItemsPerThread; ++it)
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[it][e] = 0.0f;
  __syncthreads();

  const int lane_in_key = tid % kTpk, key_slot = tid / kTpk;
  for (int64_t tile0 = begin; tile0 < end; tile0 += kTileKeys) {
    const int nt = static_cast<int>(min(static_cast<int64_t>(kTileKeys), end - tile0));
    {
      uint4 kr[kLoadsPerThread], vr[kLoadsPerThread];
#pragma unroll
      for (int i = 0; i < kLoadsPerThread; ++i) {
        const int idx = tid + i * kThreads, j = idx / kChunks, c = idx % kChunks;
        if (j < nt) {
          kr[i] = *reinterpret_cast<const uint4*>(kv_row(a, a.k_pages, s, tile0 + j, kvh) + c * 8);
          vr[i] = *reinterpret_cast<const uint4*>(kv_row(a, a.v_pages, s, tile0 + j, kvh) + c * 8);
        }
      }
#pragma unroll
      for (int i = 0; i < kLoadsPerThread; ++i) {
        const int idx = tid + i * kThreads, j = idx / kChunks, c = idx % kChunks;
        if (j < nt) {
          *reinterpret_cast<uint4*>(k_s + j * D + c * 8) = kr[i];
          *reinterpret_cast<uint4*>(v_s + j * D + c * 8) = vr[i];
        }
      }
    }
    __syncthreads();
    // Scores of this tile for every head of the group.
#pragma unroll
    for (int j = key_slot; j < kTileKeys; j += kKeysPerPass) {
      float kf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      const bool valid = j < nt;
      if (valid && lane_in_key < kChunks) load8(k_s + j * D + lane_in_key * 8, kf);
      for (int g = 0; g < G; ++g) {
        float dot = 0.0f;
        if (lane_in_key < kChunks) {
          const float* qv = q_s + g * D + lane_in_key * 8;
#pragma unroll
          for (int e = 0; e < 8; ++e) dot += qv[e] * kf[e];
        }
#pragma unroll
        for (int o = kTpk / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
        if (valid && lane_in_key == 0) score_s[g][j] = dot;
      }
    }
    __syncthreads();
    // Online softmax update: one warp per head.
    for (int g = warp; g < G; g += kThreads / 32) {
      const float v0 = lane < nt ? score_s[g][lane] : -INFINITY;
      const float v1 = lane + 32 < nt ? score_s[g][lane + 32] : -INFINITY;
      float mx = fmaxf(v0, v1);
      for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      const float m_old = m_s[g];
      const float m_new = fmaxf(m_old, mx);
      const float p0 = lane < nt ? __expf(v0 - m_new) : 0.0f;
      const float p1 = lane + 32 < nt ? __expf(v1 - m_new) : 0.0f;
      score_s[g][lane] = p0;
      score_s[g][lane + 32] = p1;
      float sum = p0 + p1;
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
    for (int it = 0; it < kMaxItemsPerThread; ++it) {
      const int item = item0 + it * kThreads;
      if (item < items && (ks > 1 || it * kThreads + tid < items) && kpart < ks) {
        const int g = item / kChunks, c = item % kChunks;
        const float alpha = alpha_s[g];
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[it][e] *= alpha;
        for (int j = kpart; j < nt; j += ks) {
          const float p = score_s[g][j];
          float vf[8];
          load8(v_s + j * D + c * 8, vf);
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[it][e] += p * vf[e];
        }
      }
      if (ks > 1) break;  // one item per thread when several threads share it
    }
    __syncthreads();
  }

  // Merge the key parts (ks > 1) and write the partial result.
  if (ks > 1) {
    if (kpart < ks)
#pragma unroll
      for (int e = 0; e < 8; ++e) red_s[(kpart * items + item0) * 8 + e] = acc[0][e];
    __syncthreads();
    if (kpart == 0) {
      for (int p = 1; p < ks; ++p)
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[0][e] += red_s[(p * items + item0) * 8 + e];
    }
  }
#pragma unroll
  for (int it = 0; it < kMaxItemsPerThread; ++it) {
    const int item = item0 + it * kThreads;
    if (kpart == 0 && item < items && (ks > 1 ? it == 0 : true)) {
      const int g = item / kChunks, c = item % kChunks;
      float* dst = ws_acc + (ml_base + static_cast<int64_t>(g) * num_splits) * D + c * 8;
#pragma unroll
      for (int e = 0; e < 8; ++e) dst[e] = acc[it][e];
    }
  }
  if (tid < G) {
    ws_ml[(ml_base + static_cast<int64_t>(tid) * num_splits) * 2] = m_s[tid];
    ws_ml[(ml_base + static_cast<int64_t>(tid) * num_splits) * 2 + 1] = l_s[tid];
  }
}

// out[s, h, d] = sum_i acc_i[d] * exp(m_i - M) / sum_i l_i * exp(m_i - M); one block per (head, sequence).
// The split weights exp(m_i - M) / L are computed once by the first warp (num_splits <= 64).
__global__ void attention_decode_combine_kernel(AttentionArgs a, int num_splits, const float* ws) {
  __shared__ float weight_s[64];
  const int h = blockIdx.x, s = blockIdx.y, lane = threadIdx.x % 32;
  const int64_t base = (static_cast<int64_t>(s) * a.num_heads + h) * num_splits;
  const float* ml = ws + base * 2;
  const float* acc = ws + a.num_seqs * a.num_heads * num_splits * 2 + base * a.head_dim;
  if (threadIdx.x < 32) {
    float m[2], l[2];
    for (int k = 0; k < 2; ++k) {
      const int i = lane + 32 * k;
      m[k] = i < num_splits ? ml[2 * i] : -INFINITY;
      l[k] = i < num_splits ? ml[2 * i + 1] : 0.0f;
    }
    float mx = fmaxf(l[0] > 0.0f ? m[0] : -INFINITY, l[1] > 0.0f ? m[1] : -INFINITY);
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float w[2], denom = 0.0f;
    for (int k = 0; k < 2; ++k) {
      w[k] = l[k] > 0.0f ? __expf(m[k] - mx) : 0.0f;
      denom += l[k] * w[k];
    }
    for (int o = 16; o > 0; o >>= 1) denom += __shfl_xor_sync(0xffffffffu, denom, o);
    for (int k = 0; k < 2; ++k)
      if (lane + 32 * k < num_splits) weight_s[lane + 32 * k] = w[k] / denom;
  }
  __syncthreads();
  for (int d = threadIdx.x; d < a.head_dim; d += blockDim.x) {
    float o = 0.0f;
    for (int i = 0; i < num_splits; ++i)  // empty splits (weight 0) left their acc unwritten
      if (weight_s[i] != 0.0f) o += acc[static_cast<int64_t>(i) * a.head_dim + d] * weight_s[i];
    a.out[(static_cast<int64_t>(s) * a.num_heads + h) * a.head_dim + d] = __float2half_rn(o);
  }
}

}  // namespace

int64_t decode_attention_workspace_floats(int64_t num_seqs, int64_t num_heads, int64_t head_dim, int num_splits) {
  return num_seqs * num_heads * num_splits * (2 + head_dim);
}

int choose_decode_splits(int64_t num_seqs, int64_t num_kv_heads, int64_t max_context, int num_sms) {
  const int64_t blocks = std::max<int64_t>(1, num_seqs * num_kv_heads);
  const int64_t want = ceil_div(2 * static_cast<int64_t>(num_sms), blocks);
  const int64_t by_length = std::max<int64_t>(1, ceil_div(max_context, 32));
  return static_cast<int>(std::clamp<int64_t>(std::min(want, by_length), 1, 64));
}

void launch_attention_decode(const AttentionArgs& a, const DecodeSplit& split, cudaStream_t stream) {
  if (a.num_kv_heads <= 0 || a.num_heads % a.num_kv_heads != 0)
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument,
                        "attention_decode: num_heads %lld is not a multiple of num_kv_heads %lld",
                        static_cast<long long>(a.num_heads), static_cast<long long>(a.num_kv_heads));
  const int64_t G = a.num_heads / a.num_kv_heads;
  if (G > kMaxGroup || G * a.head_dim / 8 > kThreads * kMaxItemsPerThread)
    raise_kernel_errorf(KernelErrorKind::kUnsupported,
                        "attention_decode: %lld query heads per KV head with head_dim %lld is not supported (at most "
                        "%d heads, heads * head_dim <= %d)",
                        static_cast<long long>(G), static_cast<long long>(a.head_dim), kMaxGroup,
                        kThreads * kMaxItemsPerThread * 8);
  if (split.num_splits < 1 || split.num_splits > 64 || split.workspace == nullptr)
    raise_kernel_error(KernelErrorKind::kInvalidArgument,
                       "attention_decode: needs 1 <= num_splits <= 64 and a workspace");
  if (a.num_seqs == 0) return;
  dispatch_head_dim(a.head_dim, "attention_decode", [&](auto d) {
    constexpr int D = decltype(d)::value;
    const dim3 grid(static_cast<unsigned>(split.num_splits), static_cast<unsigned>(a.num_kv_heads),
                    static_cast<unsigned>(a.num_seqs));
    constexpr size_t kSmem = DecodeSmem<D>::kBytes;
    check_cuda(cudaFuncSetAttribute(attention_decode_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(kSmem)),
               "cudaFuncSetAttribute");
    attention_decode_kernel<D><<<grid, kThreads, kSmem, stream>>>(a, split.num_splits, split.workspace);
    check_launch("attention_decode");
  });
  const dim3 grid(static_cast<unsigned>(a.num_heads), static_cast<unsigned>(a.num_seqs));
  attention_decode_combine_kernel<<<grid, static_cast<unsigned>(std::min<int64_t>(a.head_dim, 256)), 0, stream>>>(
      a, split.num_splits, split.workspace);
  check_launch("attention_decode_combine");
}

}  // namespace exl::kernels
