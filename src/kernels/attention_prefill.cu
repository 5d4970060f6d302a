// out[t, h] = sum_j softmax_j(scale * q[t, h] . K[j, h/G]) V[j, h/G] over the keys j of t's sequence with
// pos(t) - window < j <= pos(t) (causal; window 0: none), flash-attention style with tensor cores.
// Shapes: q, out fp16 [num_tokens, num_heads, head_dim] (sequence s owns rows [query_start[s], query_start[s+1]),
// at positions context_len[s] - n_s ...); pages fp16 [num_pages, page_size, num_kv_heads, head_dim].
// Threads: grid (query tiles of 64, num_heads, num_seqs), heaviest (last) tiles first; 4 warps, each owning 16
// query rows. Per key tile of 64: K and V^T staged in shared memory (V transposed so that P.V's B fragments are
// 32-bit loads), S = Q K^T and O += P V with mma.sync m16n8k16 (fp16 in, fp32 accumulate), online softmax on the
// S fragments in registers (row max/sum across the 4 lanes of a quad), P re-packed as fp16 A fragments.
// Constraints: head_dim in the dispatch list (multiples of 16); rows padded by 8 halves against bank conflicts.
// Launched with programmatic dependent launch (pdl.cuh): every thread waits for the previous kernel first.
#include <algorithm>
#include <cmath>

#include "kernels/kernel_check.h"
#include "kernels/attention.cuh"
#include "kernels/dispatch.h"
#include "kernels/pdl.cuh"

namespace exl::kernels {
namespace {

constexpr int kThreads = 128;
constexpr int kBr = 64;  // query rows per block
constexpr int kBc = 64;  // keys per tile

__device__ __forceinline__ void mma_16816(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
}

__device__ __forceinline__ uint32_t lds32(const __half* p) { return *reinterpret_cast<const uint32_t*>(p); }

template <int D>
struct PrefillSmem {
  static constexpr int kStride = D + 8;     // Q and K rows
  static constexpr int kVtStride = kBc + 8;  // V^T rows (one per head dimension)
  static constexpr size_t kBytes = sizeof(__half) * (2 * kBr * kStride + D * kVtStride);
};

// kSoftcap: the scaled score is soft-capped, s = cap * tanh(s / cap) (Gemma 2); the cap-free instantiation is the
// plain kernel.
template <int D, bool kSoftcap>
__global__ void __launch_bounds__(kThreads) attention_prefill_kernel(AttentionArgs a) {
  using Smem = PrefillSmem<D>;
  constexpr int kStride = Smem::kStride, kVtStride = Smem::kVtStride, kChunks = D / 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __half* q_s = reinterpret_cast<__half*>(smem_raw);
  __half* k_s = q_s + kBr * kStride;
  __half* vt_s = k_s + kBc * kStride;
  pdl_wait();
  pdl_launch_dependents();

  const int q_tile = gridDim.x - 1 - blockIdx.x;
  const int h = blockIdx.y, s = blockIdx.z;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t4 = lane % 4;
  const int kvh = h / static_cast<int>(a.num_heads / a.num_kv_heads);
  const int64_t q0 = a.query_start[s];
  const int64_t n_new = a.query_start[s + 1] - q0;
  const int64_t row0 = static_cast<int64_t>(q_tile) * kBr;
  if (row0 >= n_new) return;
  const int rows_valid = static_cast<int>(min(static_cast<int64_t>(kBr), n_new - row0));
  const int64_t len = a.context_len[s];
  const int64_t pos_lo = len - n_new + row0;
  const int64_t pos_hi = pos_lo + rows_valid - 1;
  const int64_t key_lo = a.sliding_window > 0 ? max(int64_t{0}, pos_lo - a.sliding_window + 1) : 0;
  const int64_t key_end = pos_hi + 1;

  for (int idx = tid; idx < kBr * kChunks; idx += kThreads) {
    const int r = idx / kChunks, c = idx % kChunks;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (r < rows_valid) v = *reinterpret_cast<const uint4*>(a.q + ((q0 + row0 + r) * a.num_heads + h) * D + c * 8);
    *reinterpret_cast<uint4*>(q_s + r * kStride + c * 8) = v;
  }

  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float m_r[2] = {-INFINITY, -INFINITY}, l_r[2] = {0.0f, 0.0f};
  const int wr = warp * 16;
  const int64_t row_pos[2] = {pos_lo + wr + g, pos_lo + wr + g + 8};
  const bool row_ok[2] = {wr + g < rows_valid, wr + g + 8 < rows_valid};

  for (int64_t kt = key_lo - key_lo % kBc; kt < key_end; kt += kBc) {
    __syncthreads();
    for (int idx = tid; idx < kBc * kChunks; idx += kThreads) {
      const int j = idx / kChunks, c = idx % kChunks;
      const int64_t key = kt + j;
      uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
      if (key < key_end) {
        const int32_t page = a.block_table[s * a.max_pages_per_seq + key / a.page_size];
        const int64_t off = ((static_cast<int64_t>(page) * a.page_size + key % a.page_size) * a.num_kv_heads + kvh) * D +
                            c * 8;
        kv = *reinterpret_cast<const uint4*>(a.k_pages + off);
        vv = *reinterpret_cast<const uint4*>(a.v_pages + off);
      }
      *reinterpret_cast<uint4*>(k_s + j * kStride + c * 8) = kv;
      const __half* vh = reinterpret_cast<const __half*>(&vv);
#pragma unroll
      for (int e = 0; e < 8; ++e) vt_s[(c * 8 + e) * kVtStride + j] = vh[e];
    }
    __syncthreads();

    float sacc[kBc / 8][4];
#pragma unroll
    for (int n = 0; n < kBc / 8; ++n) sacc[n][0] = sacc[n][1] = sacc[n][2] = sacc[n][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D; kk += 16) {
      uint32_t af[4];
      af[0] = lds32(q_s + (wr + g) * kStride + kk + 2 * t4);
      af[1] = lds32(q_s + (wr + g + 8) * kStride + kk + 2 * t4);
      af[2] = lds32(q_s + (wr + g) * kStride + kk + 2 * t4 + 8);
      af[3] = lds32(q_s + (wr + g + 8) * kStride + kk + 2 * t4 + 8);
#pragma unroll
      for (int n = 0; n < kBc / 8; ++n) {
        const __half* kr = k_s + (n * 8 + g) * kStride + kk + 2 * t4;
        mma_16816(sacc[n], af, lds32(kr), lds32(kr + 8));
      }
    }

    // Mask and scale, then the online softmax of the thread's two rows.
#pragma unroll
    for (int r2 = 0; r2 < 2; ++r2) {
      float mx = -INFINITY;
#pragma unroll
      for (int n = 0; n < kBc / 8; ++n) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int64_t key = kt + n * 8 + 2 * t4 + e;
          const bool ok = row_ok[r2] && key >= key_lo && key <= row_pos[r2] &&
                          (a.sliding_window <= 0 || key > row_pos[r2] - a.sliding_window);
          float& v = sacc[n][2 * r2 + e];
          if constexpr (kSoftcap) {
            v = ok ? a.softcap * tanhf(v * a.scale / a.softcap) : -INFINITY;
          } else {
            v = ok ? v * a.scale : -INFINITY;
          }
          mx = fmaxf(mx, v);
        }
      }
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m_r[r2], mx);
      const float m_use = m_new == -INFINITY ? 0.0f : m_new;
      const float alpha = m_r[r2] == -INFINITY ? 0.0f : __expf(m_r[r2] - m_use);
      float sum = 0.0f;
#pragma unroll
      for (int n = 0; n < kBc / 8; ++n) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float& v = sacc[n][2 * r2 + e];
          v = __expf(v - m_use);
          sum += v;
        }
      }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      l_r[r2] = l_r[r2] * alpha + sum;
      m_r[r2] = m_new;
#pragma unroll
      for (int i = 0; i < D / 8; ++i) {
        o[i][2 * r2] *= alpha;
        o[i][2 * r2 + 1] *= alpha;
      }
    }

#pragma unroll
    for (int j = 0; j < kBc / 16; ++j) {
      uint32_t pf[4];
      pf[0] = pack_half2(sacc[2 * j][0], sacc[2 * j][1]);
      pf[1] = pack_half2(sacc[2 * j][2], sacc[2 * j][3]);
      pf[2] = pack_half2(sacc[2 * j + 1][0], sacc[2 * j + 1][1]);
      pf[3] = pack_half2(sacc[2 * j + 1][2], sacc[2 * j + 1][3]);
#pragma unroll
      for (int i = 0; i < D / 8; ++i) {
        const __half* vr = vt_s + (i * 8 + g) * kVtStride + j * 16 + 2 * t4;
        mma_16816(o[i], pf, lds32(vr), lds32(vr + 8));
      }
    }
  }

#pragma unroll
  for (int r2 = 0; r2 < 2; ++r2) {
    if (!row_ok[r2]) continue;
    const float inv = l_r[r2] > 0.0f ? 1.0f / l_r[r2] : 0.0f;
    __half* dst = a.out + ((q0 + row0 + wr + g + 8 * r2) * a.num_heads + h) * D;
#pragma unroll
    for (int i = 0; i < D / 8; ++i)
      *reinterpret_cast<__half2*>(dst + i * 8 + 2 * t4) =
          __floats2half2_rn(o[i][2 * r2] * inv, o[i][2 * r2 + 1] * inv);
  }
}

}  // namespace

void launch_attention_prefill(const AttentionArgs& a, int64_t max_query_len, cudaStream_t stream) {
  if (a.num_kv_heads <= 0 || a.num_heads % a.num_kv_heads != 0)
    raise_kernel_errorf(KernelErrorKind::kInvalidArgument,
                        "attention_prefill: num_heads %lld is not a multiple of num_kv_heads %lld",
                        static_cast<long long>(a.num_heads), static_cast<long long>(a.num_kv_heads));
  if (a.num_seqs == 0 || max_query_len == 0) return;
  dispatch_head_dim(a.head_dim, "attention_prefill", [&](auto d) {
    constexpr int D = decltype(d)::value;
    constexpr size_t kSmem = PrefillSmem<D>::kBytes;
    const dim3 grid(static_cast<unsigned>(ceil_div(max_query_len, kBr)), static_cast<unsigned>(a.num_heads),
                    static_cast<unsigned>(a.num_seqs));
    auto launch = [&](auto kernel) {
      check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSmem)),
                 "cudaFuncSetAttribute");
      launch_pdl("attention_prefill", kernel, grid, dim3(kThreads), kSmem, stream, a);
    };
    if (a.softcap > 0.0f)
      launch(attention_prefill_kernel<D, true>);
    else
      launch(attention_prefill_kernel<D, false>);
  });
}

}  // namespace exl::kernels
