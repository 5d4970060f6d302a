// token = argmax(l) if temperature <= 0 or top_k == 1; else a draw from p_i ~ exp((l_i - max) / temperature)
// restricted to the top_k largest logits, then to the shortest prefix (in descending order) whose mass >= top_p.
// Shapes: logits fp16 [num_rows, row_stride] (first vocab_size used), tokens int32 [num_rows].
// Threads: one block of 1024 per row. Argmax: strided scan + block reduction. Thresholds: radix select over the
// order-preserving 32-bit key of each float (4 passes of 8 bits: counts for top-k, probability mass for top-p);
// ties at the threshold are resolved by index through a per-thread contiguous segment scan. The draw walks the
// kept elements in index order (same distribution as the host's sorted walk).
// Random numbers: splitmix64 of (seed, counter + counter_offset, row); the counter advances once per single-row
// launch, so graph replays draw fresh numbers.
// Launched with programmatic dependent launch (pdl.cuh): every thread waits for the previous kernel first (the
// parameters and counter in device memory are read and written by the previous step's sampler too).
#include "kernels/sampling.cuh"

#include <cfloat>
#include <climits>

#include "kernels/kernel_check.h"
#include "kernels/pdl.cuh"

namespace exl::kernels {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;

__device__ __forceinline__ uint32_t order_key(float f) {
  const uint32_t b = __float_as_uint(f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

struct Shared {
  float red_f[kWarps];
  int red_i[kWarps];
  float scan_f[kWarps];
  int hist_count[256];
  float hist_mass[256];
  uint32_t prefix, mask;
  int remaining;
  float mass_above;
  float value_at_key;
  int limit_index;
  int found;
};

__device__ float block_sum(float v, Shared& sh) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if (threadIdx.x % 32 == 0) sh.red_f[threadIdx.x / 32] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < kWarps; ++w) total += sh.red_f[w];
  return total;
}

// Exclusive prefix over threads (thread order) of v; returns it and the block total via *total.
template <typename T>
__device__ T block_exclusive_scan(T v, T* warp_buf, T* total) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  T inc = v;
  for (int o = 1; o < 32; o <<= 1) {
    const T n = __shfl_up_sync(0xffffffffu, inc, o);
    if (lane >= o) inc += n;
  }
  __syncthreads();
  if (lane == 31) warp_buf[warp] = inc;
  __syncthreads();
  T before = 0, all = 0;
  for (int w = 0; w < kWarps; ++w) {
    if (w < warp) before += warp_buf[w];
    all += warp_buf[w];
  }
  *total = all;
  return before + inc - v;
}

__global__ void __launch_bounds__(kThreads) sample_kernel(SampleArgs a) {
  __shared__ Shared sh;
  __shared__ float scan_buf_f[kWarps];
  __shared__ int scan_buf_i[kWarps];
  pdl_wait();
  pdl_launch_dependents();
  const int64_t row = blockIdx.x;
  const __half* l = a.logits + row * a.row_stride;
  const int V = static_cast<int>(a.vocab_size);
  const int tid = threadIdx.x;
  const DeviceSamplingParams p = *a.params;

  // Argmax (first index on ties) and max.
  float best = -INFINITY;
  int best_i = V;
  auto take = [&](float v, int i) {
    if (v > best || (v == best && i < best_i)) {
      best = v;
      best_i = i;
    }
  };
  if (reinterpret_cast<uintptr_t>(l) % 16 == 0) {
    // 16-byte loads, kArgmaxBatch in flight per thread (the one-token greedy step reads 256 KB of logits here).
    constexpr int kArgmaxBatch = 4;
    const int n8 = V / 8;
    const uint4* l8 = reinterpret_cast<const uint4*>(l);
    for (int v0 = tid; v0 < n8; v0 += kThreads * kArgmaxBatch) {
      uint4 raw[kArgmaxBatch];
#pragma unroll
      for (int u = 0; u < kArgmaxBatch; ++u)
        if (v0 + u * kThreads < n8) raw[u] = l8[v0 + u * kThreads];
#pragma unroll
      for (int u = 0; u < kArgmaxBatch; ++u) {
        const int vi = v0 + u * kThreads;
        if (vi < n8) {
          const __half* h = reinterpret_cast<const __half*>(&raw[u]);
#pragma unroll
          for (int e = 0; e < 8; ++e) take(__half2float(h[e]), 8 * vi + e);
        }
      }
    }
    for (int i = 8 * n8 + tid; i < V; i += kThreads) take(__half2float(l[i]), i);
  } else {
    for (int i = tid; i < V; i += kThreads) take(__half2float(l[i]), i);
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int oi = __shfl_xor_sync(0xffffffffu, best_i, o);
    if (ov > best || (ov == best && oi < best_i)) {
      best = ov;
      best_i = oi;
    }
  }
  if (tid % 32 == 0) {
    sh.red_f[tid / 32] = best;
    sh.red_i[tid / 32] = best_i;
  }
  __syncthreads();
  if (tid == 0) {
    float b = sh.red_f[0];
    int bi = sh.red_i[0];
    for (int w = 1; w < kWarps; ++w)
      if (sh.red_f[w] > b || (sh.red_f[w] == b && sh.red_i[w] < bi)) {
        b = sh.red_f[w];
        bi = sh.red_i[w];
      }
    sh.red_f[0] = b;
    sh.red_i[0] = bi;
  }
  __syncthreads();
  const float max_logit = sh.red_f[0];
  const int argmax = sh.red_i[0];
  const bool greedy = p.temperature <= 0.0f || p.top_k == 1 || !(max_logit > -INFINITY);
  int token = argmax;

  if (!greedy) {
    const float inv_t = 1.0f / p.temperature;
    // Contiguous segment of this thread for index-ordered scans.
    const int per = (V + kThreads - 1) / kThreads;
    const int seg0 = min(V, tid * per), seg1 = min(V, seg0 + per);
    uint32_t thr_key = 0;   // kept: key > thr_key, or key == thr_key and index <= thr_limit
    int thr_limit = V;
    // Top-k: the k-th largest key by radix select over counts.
    if (p.top_k > 0 && p.top_k < V) {
      if (tid == 0) {
        sh.prefix = 0;
        sh.mask = 0;
        sh.remaining = p.top_k;
      }
      for (int shift = 24; shift >= 0; shift -= 8) {
        for (int b = tid; b < 256; b += kThreads) sh.hist_count[b] = 0;
        __syncthreads();
        const uint32_t prefix = sh.prefix, mask = sh.mask;
        for (int i = tid; i < V; i += kThreads) {
          const uint32_t k = order_key(__half2float(l[i]));
          if ((k & mask) == prefix) atomicAdd(&sh.hist_count[(k >> shift) & 255u], 1);
        }
        __syncthreads();
        if (tid == 0) {
          int rem = sh.remaining;
          int b = 255;
          for (; b > 0; --b) {
            if (sh.hist_count[b] >= rem) break;
            rem -= sh.hist_count[b];
          }
          sh.remaining = rem;
          sh.prefix = prefix | (static_cast<uint32_t>(b) << shift);
          sh.mask = mask | (255u << shift);
        }
        __syncthreads();
      }
      thr_key = sh.prefix;
      // The remaining-th element equal to the threshold, in index order.
      int eq = 0;
      for (int i = seg0; i < seg1; ++i) eq += order_key(__half2float(l[i])) == thr_key;
      int eq_total;
      int before = block_exclusive_scan(eq, scan_buf_i, &eq_total);
      const int need = sh.remaining;
      if (before < need && before + eq >= need) {
        for (int i = seg0; i < seg1; ++i) {
          if (order_key(__half2float(l[i])) == thr_key && ++before == need) {
            sh.limit_index = i;
            break;
          }
        }
      }
      __syncthreads();
      thr_limit = sh.limit_index;
    }
    auto kept = [&](int i, uint32_t key) { return key > thr_key || (key == thr_key && i <= thr_limit); };

    // Top-p: radix select over probability mass among the top-k candidates.
    if (p.top_p < 1.0f) {
      float mass = 0.0f;
      for (int i = tid; i < V; i += kThreads) {
        const float v = __half2float(l[i]);
        if (kept(i, order_key(v))) mass += __expf((v - max_logit) * inv_t);
      }
      const float total = block_sum(mass, sh);
      const float target = p.top_p * total;
      if (tid == 0) {
        sh.prefix = 0;
        sh.mask = 0;
        sh.mass_above = 0.0f;
      }
      for (int shift = 24; shift >= 0; shift -= 8) {
        for (int b = tid; b < 256; b += kThreads) {
          sh.hist_count[b] = 0;
          sh.hist_mass[b] = 0.0f;
        }
        __syncthreads();
        const uint32_t prefix = sh.prefix, mask = sh.mask;
        for (int i = tid; i < V; i += kThreads) {
          const float v = __half2float(l[i]);
          const uint32_t k = order_key(v);
          if ((k & mask) == prefix && kept(i, k)) {
            atomicAdd(&sh.hist_mass[(k >> shift) & 255u], __expf((v - max_logit) * inv_t));
            atomicAdd(&sh.hist_count[(k >> shift) & 255u], 1);
          }
        }
        __syncthreads();
        if (tid == 0) {
          float above = sh.mass_above;
          int b = 255, lowest_nonempty = 255;
          for (int c = 255; c >= 0; --c)
            if (sh.hist_count[c] > 0) lowest_nonempty = c;
          for (; b > lowest_nonempty; --b) {
            if (sh.hist_count[b] > 0 && above + sh.hist_mass[b] >= target) break;
            above += sh.hist_mass[b];
          }
          sh.mass_above = above;
          sh.prefix = prefix | (static_cast<uint32_t>(b) << shift);
          sh.mask = mask | (255u << shift);
        }
        __syncthreads();
      }
      const uint32_t key_p = sh.prefix;
      // Equal elements share one probability: include the first `need` of them (index order, within top-k).
      uint32_t bits = (key_p & 0x80000000u) ? (key_p & 0x7fffffffu) : ~key_p;
      const float pv = __expf((__uint_as_float(bits) - max_logit) * inv_t);
      int need = static_cast<int>(ceilf((target - sh.mass_above) / pv - 1e-4f));
      need = max(need, 1);
      int eq = 0;
      for (int i = seg0; i < seg1; ++i) eq += order_key(__half2float(l[i])) == key_p && kept(i, key_p);
      int eq_total;
      int before = block_exclusive_scan(eq, scan_buf_i, &eq_total);
      need = min(need, eq_total);
      if (tid == 0) sh.limit_index = V;
      __syncthreads();
      if (before < need && before + eq >= need) {
        for (int i = seg0; i < seg1; ++i) {
          if (order_key(__half2float(l[i])) == key_p && kept(i, key_p) && ++before == need) {
            sh.limit_index = i;
            break;
          }
        }
      }
      __syncthreads();
      thr_key = key_p;
      thr_limit = sh.limit_index;
    }

    // Draw: walk the kept elements in index order.
    float seg_mass = 0.0f;
    for (int i = seg0; i < seg1; ++i) {
      const float v = __half2float(l[i]);
      if (kept(i, order_key(v))) seg_mass += __expf((v - max_logit) * inv_t);
    }
    float total;
    const float before = block_exclusive_scan(seg_mass, scan_buf_f, &total);
    const uint64_t r = splitmix64(p.seed ^ splitmix64((p.counter + a.counter_offset) * 0x100000001b3ull + row));
    const float u = static_cast<float>(static_cast<double>(r >> 11) * (1.0 / 9007199254740992.0)) * total;
    if (tid == 0) {
      sh.found = INT_MAX;
      sh.limit_index = -1;
    }
    __syncthreads();
    if (seg_mass > 0.0f) atomicMax(&sh.limit_index, tid);
    if (seg_mass > 0.0f && u >= before && u < before + seg_mass) {
      float run = before;
      int pick = -1;
      for (int i = seg0; i < seg1; ++i) {
        const float v = __half2float(l[i]);
        if (!kept(i, order_key(v))) continue;
        pick = i;
        run += __expf((v - max_logit) * inv_t);
        if (run > u) break;
      }
      atomicMin(&sh.found, pick);
    }
    __syncthreads();
    if (sh.found == INT_MAX && tid == sh.limit_index) {  // rounding left u past the last element: take it
      for (int i = seg0; i < seg1; ++i)
        if (kept(i, order_key(__half2float(l[i])))) sh.found = i;
    }
    __syncthreads();
    token = sh.found == INT_MAX ? argmax : sh.found;
  }
  if (tid == 0) {
    a.tokens[row] = token;
    if (a.num_rows == 1) {
      a.params->counter += 1;
      for (int i = 0; i < a.num_advance; ++i) a.advance[i] += 1;
    }
  }
}

}  // namespace

void launch_sample(const SampleArgs& args, cudaStream_t stream) {
  if (args.num_rows == 0) return;
  launch_pdl("sample", sample_kernel, dim3(static_cast<unsigned>(args.num_rows)), dim3(kThreads), 0, stream, args);
}

}  // namespace exl::kernels
