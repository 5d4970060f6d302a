// For i < R (R = rotary_half): (a, b) = (x[i], x[i+R]); x[i] = a*c - b*s; x[i+R] = b*c + a*s, with
// c = cos(pos * inv_freq[i]) * attention_factor, s = sin(...) * attention_factor, on every q and k head.
// Shapes: q fp16 [num_tokens, num_heads, head_dim], k and v fp16 [num_tokens, num_kv_heads, head_dim],
// inv_freq fp32 [R], positions int32 [num_tokens]. Optionally k (rotated) and v go to the paged cache
// [num_pages, page_size, num_kv_heads, head_dim] at the token's slot.
// Threads: one block per token; cos/sin of the token's R angles computed once into shared memory, then a thread
// per (head, i) pair over q and k heads, then per element for v.
// Constraints: 2R <= head_dim. cos/sin come from accurate sincosf of the fp32 angle, as the CPU reference does.
#include "kernels/rope.cuh"

#include "kernels/kernel_check.h"

namespace exl::kernels {
namespace {

constexpr int kMaxRotaryHalf = 256;  // head_dim up to 512

__global__ void rope_kernel(RopeArgs a) {
  const int64_t t = blockIdx.x;
  const int64_t R = a.rotary_half, D = a.head_dim;
  const float pos = static_cast<float>(a.slots.positions[t]);
  const bool write = a.cache.k_pages != nullptr;
  int64_t slot = -1;
  if (write) {
    const int64_t p = a.slots.positions[t];
    const int64_t seq = a.slots.token_seq ? a.slots.token_seq[t] : 0;
    const int64_t page_index = p / a.cache.page_size;
    if (p >= 0 && page_index < a.cache.max_pages_per_seq) {
      const int32_t page = a.cache.block_table[seq * a.cache.max_pages_per_seq + page_index];
      if (page >= 0 && page < a.cache.num_pages) slot = static_cast<int64_t>(page) * a.cache.page_size + p % a.cache.page_size;
    }
  }
  __shared__ float cos_s[kMaxRotaryHalf], sin_s[kMaxRotaryHalf];
  for (int64_t i = threadIdx.x; i < R; i += blockDim.x) {
    float s, c;
    sincosf(pos * a.inv_freq[i], &s, &c);
    cos_s[i] = c * a.attention_factor;
    sin_s[i] = s * a.attention_factor;
  }
  __syncthreads();
  const int64_t kv_row = a.num_kv_heads * D;
  const int64_t q_heads = a.q ? a.num_heads : 0;
  const int64_t pairs = (q_heads + a.num_kv_heads) * R;
  for (int64_t w = threadIdx.x; w < pairs; w += blockDim.x) {
    const int64_t h = w / R, i = w % R;
    const float c = cos_s[i], s = sin_s[i];
    __half* x;
    __half* dst = nullptr;
    if (h < q_heads) {
      x = a.q + (t * a.num_heads + h) * D;
    } else {
      x = a.k + (t * a.num_kv_heads + (h - q_heads)) * D;
      if (slot >= 0) dst = a.cache.k_pages + slot * kv_row + (h - q_heads) * D;
    }
    const float va = __half2float(x[i]), vb = __half2float(x[i + R]);
    const __half ra = __float2half_rn(va * c - vb * s), rb = __float2half_rn(vb * c + va * s);
    x[i] = ra;
    x[i + R] = rb;
    if (dst) {
      dst[i] = ra;
      dst[i + R] = rb;
    }
  }
  if (slot < 0) return;
  // Unrotated part of k (partial rotary) and all of v.
  for (int64_t e = threadIdx.x; e < kv_row; e += blockDim.x) {
    const int64_t d = e % D;
    if (d >= 2 * R) a.cache.k_pages[slot * kv_row + e] = a.k[t * kv_row + e];
    a.cache.v_pages[slot * kv_row + e] = a.v[t * kv_row + e];
  }
}

}  // namespace

void launch_rope(const RopeArgs& args, cudaStream_t stream) {
  if (args.rotary_half < 1 || 2 * args.rotary_half > args.head_dim || args.rotary_half > kMaxRotaryHalf)
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument, "rope: %lld frequencies do not fit head_dim %lld",
                        static_cast<long long>(args.rotary_half), static_cast<long long>(args.head_dim));
  if (args.num_tokens == 0) return;
  rope_kernel<<<static_cast<unsigned>(args.num_tokens), 256, 0, stream>>>(args);
  check_launch("rope");
}

}  // namespace exl::kernels
