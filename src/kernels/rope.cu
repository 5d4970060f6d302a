// For i < R (R = rotary_half): (a, b) = (x[i], x[i+R]); x[i] = a*c - b*s; x[i+R] = b*c + a*s, with
// c = cos(pos * inv_freq[i]) * attention_factor, s = sin(...) * attention_factor, on every q and k head.
// Interleaved (GPT-J): the pair is (x[2i], x[2i+1]) instead. Either way the rotated elements are d < 2R and
// [2R, head_dim) is left as is (partial rotary). rotate = false: R is taken as 0 (nothing rotated, cache write only).
// Shapes: q fp16 [num_tokens, num_heads, head_dim], k and v fp16 [num_tokens, num_kv_heads, head_dim],
// inv_freq fp32 [R], positions int32 [num_tokens]. Optionally k (rotated) and v go to the paged cache
// [num_pages, page_size, num_kv_heads, head_dim] at the token's slot.
// Threads: grid (num_tokens, ceil(work / 256)), 256 threads; one token's work items are numbered across its
// blocks: first a thread per (head, i) rotation pair over the q heads then the k heads (each thread computes its
// own sincosf; its inv_freq is loaded before pdl_wait), then, with the cache write, a thread per 8-element chunk
// (1 element when a row is not a multiple of 8 halves or a pointer is not 16-byte aligned) of the token's
// num_kv_heads * head_dim row copying v and the unrotated part of k (d >= 2R) into the cache. Rotated k elements
// are written to the cache by their rotation thread. Batch-1 decode is one short step over ~10 blocks.
// All index arithmetic is 32-bit except the final element offsets.
// Constraints: 2R <= head_dim, R <= 256. cos/sin come from accurate sincosf of the fp32 angle, as the CPU reference
// does.
#include "kernels/rope.cuh"

#include <cstdint>

#include "kernels/kernel_check.h"
#include "kernels/pdl.cuh"

namespace exl::kernels {
namespace {

constexpr int kMaxRotaryHalf = 256;  // head_dim up to 512
constexpr int kThreads = 256;

// Cache row index (page * page_size + offset) of token t, or -1 when its slot is outside the table or the pool.
__device__ __forceinline__ int64_t token_slot(const RopeArgs& a, int t) {
  const int p = a.slots.positions[t];
  const int seq = a.slots.token_seq ? a.slots.token_seq[t] : 0;
  const int ps = static_cast<int>(a.cache.page_size);
  if (p < 0) return -1;
  const int page_index = p / ps;
  if (page_index >= a.cache.max_pages_per_seq) return -1;
  const int32_t page = a.cache.block_table[static_cast<int64_t>(seq) * a.cache.max_pages_per_seq + page_index];
  if (page < 0 || page >= a.cache.num_pages) return -1;
  return static_cast<int64_t>(page) * ps + (p - page_index * ps);
}

// copy_vec: copy items are 8-element (16-byte) chunks; otherwise single elements.
__global__ void __launch_bounds__(kThreads) rope_kernel(RopeArgs a, int copy_vec) {
  const int t = blockIdx.x;
  const int w = blockIdx.y * kThreads + threadIdx.x;
  const int R = a.rotate ? static_cast<int>(a.rotary_half) : 0, D = static_cast<int>(a.head_dim);
  const int nkv = static_cast<int>(a.num_kv_heads);
  const int q_heads = a.q ? static_cast<int>(a.num_heads) : 0;
  const int pairs = (q_heads + nkv) * R;
  const bool write = a.cache.k_pages != nullptr;

  // Rotation pair (h, i) of this thread and its frequency (a constant: read before the wait).
  int h = 0, i = 0;
  float freq = 0.0f;
  if (w < pairs) {
    h = w / R;
    i = w - h * R;
    freq = a.inv_freq[i];
  }

  pdl_wait();
  pdl_launch_dependents();

  const int64_t kv_row = static_cast<int64_t>(nkv) * D;
  if (w < pairs) {
    const float pos = static_cast<float>(a.slots.positions[t]);
    float s, c;
    sincosf(pos * freq, &s, &c);
    c *= a.attention_factor;
    s *= a.attention_factor;
    const bool is_q = h < q_heads;
    const int kh = h - q_heads;
    __half* x = is_q ? a.q + (static_cast<int64_t>(t) * a.num_heads + h) * D : a.k + t * kv_row + kh * D;
    const int ia = a.interleaved ? 2 * i : i, ib = a.interleaved ? 2 * i + 1 : i + R;
    const float va = __half2float(x[ia]), vb = __half2float(x[ib]);
    const __half ra = __float2half_rn(va * c - vb * s), rb = __float2half_rn(vb * c + va * s);
    x[ia] = ra;
    x[ib] = rb;
    if (!is_q && write) {
      const int64_t slot = token_slot(a, t);
      if (slot >= 0) {
        __half* dst = a.cache.k_pages + slot * kv_row + kh * D;
        dst[ia] = ra;
        dst[ib] = rb;
      }
    }
    return;
  }
  if (!write) return;
  // Copy item e: v and the unrotated part of k (partial rotary) of the token's row, never touching the elements
  // d < 2R of k that the rotation threads rewrite.
  const int e = w - pairs;
  const int width = copy_vec ? 8 : 1;
  if (static_cast<int64_t>(e) * width >= kv_row) return;
  const int64_t slot = token_slot(a, t);
  if (slot < 0) return;
  const int e0 = e * width;
  const int d0 = e0 % D;
  const __half* ks = a.k + t * kv_row + e0;
  const __half* vs = a.v + t * kv_row + e0;
  __half* kd = a.cache.k_pages + slot * kv_row + e0;
  __half* vd = a.cache.v_pages + slot * kv_row + e0;
  if (copy_vec) {
    *reinterpret_cast<uint4*>(vd) = *reinterpret_cast<const uint4*>(vs);
    if (d0 >= 2 * R) {
      *reinterpret_cast<uint4*>(kd) = *reinterpret_cast<const uint4*>(ks);
    } else if (d0 + 8 > 2 * R) {
#pragma unroll
      for (int j = 0; j < 8; ++j)
        if (d0 + j >= 2 * R) kd[j] = ks[j];
    }
  } else {
    vd[0] = vs[0];
    if (d0 >= 2 * R) kd[0] = ks[0];
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

void launch_rope(const RopeArgs& args, cudaStream_t stream) {
  if (args.rotate &&
      (args.rotary_half < 1 || 2 * args.rotary_half > args.head_dim || args.rotary_half > kMaxRotaryHalf))
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument, "rope: %lld frequencies do not fit head_dim %lld",
                        static_cast<long long>(args.rotary_half), static_cast<long long>(args.head_dim));
  if (args.head_dim < 1)
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument, "rope: head_dim %lld",
                        static_cast<long long>(args.head_dim));
  if (args.num_tokens == 0) return;
  const bool write = args.cache.k_pages != nullptr;
  if (!args.rotate && !write) return;  // nothing to do
  const int64_t kv_row = args.num_kv_heads * args.head_dim;
  const bool copy_vec = write && args.head_dim % 8 == 0 && aligned16(args.k) && aligned16(args.v) &&
                        aligned16(args.cache.k_pages) && aligned16(args.cache.v_pages);
  const int64_t pairs = args.rotate ? ((args.q ? args.num_heads : 0) + args.num_kv_heads) * args.rotary_half : 0;
  const int64_t copies = write ? (copy_vec ? kv_row / 8 : kv_row) : 0;
  const int64_t blocks_y = (pairs + copies + kThreads - 1) / kThreads;
  if (blocks_y > 65535 || args.num_tokens > 0x7fffffff)
    raise_kernel_errorf(KernelErrorKind::kUnsupported, "rope: %lld tokens of %lld heads are too many",
                        static_cast<long long>(args.num_tokens),
                        static_cast<long long>(args.num_heads + args.num_kv_heads));
  const dim3 grid(static_cast<unsigned>(args.num_tokens), static_cast<unsigned>(blocks_y));
  launch_pdl("rope", rope_kernel, grid, dim3(kThreads), 0, stream, args, copy_vec ? 1 : 0);
}

}  // namespace exl::kernels
