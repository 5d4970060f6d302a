// One linear layer on the GPU in any stored format (FP16/BF16/FP32 -> FP16, EXL2, GPTQ), repacked at load into
// the layout its kernels want. Few tokens: fused dequantize-and-multiply GEMV; many: dequantize into a scratch
// FP16 matrix + cuBLAS tensor-core GEMM.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "backend/cuda/tuning.h"
#include "kernels/frag.cuh"
#include "kernels/quant_linear.cuh"
#include "quant/linear_weight.h"

namespace exl {
class ThreadPool;
}

namespace exl::cuda {

// Scratch is shared by all layers run on one stream (never by two streams at once). The GEMV path (num_tokens <=
// CudaLinear::kGemvMaxTokens) uses it for fp32 split-K partials; the GEMM path for the dequantized FP16 matrix,
// in column chunks when scratch holds less than the whole matrix (at least min_scratch_elements()).
struct LinearContext {
  cudaStream_t stream = nullptr;
  void* cublas = nullptr;           // cublasHandle_t (FP16 weights and the GEMM path)
  __half* scratch = nullptr;        // 16-byte aligned; >= scratch_elements_needed() halves for full speed
  int64_t scratch_elements = 0;
};

// Load-time options; defaults are what the benchmarks chose.
struct LinearOptions {
  int32_t gemv_splits = 0;          // split-K slices of the GEMV kernel; 0 = one full wave of resident blocks
  ThreadPool* repack_pool = nullptr;  // non-null: the load-time repack (quant::tile_exl2 / tile_gptq) runs on it
  // The launch knobs this layer's kernels read (gemv_blocks_per_sm, gemv1_*, f16_gemv_batch; docs/tuning.md), kept
  // for every launch. Not range-checked here: the runner checks them once (validate_tuning).
  CudaTuning tuning;
};

class CudaLinear {
 public:
  CudaLinear();
  ~CudaLinear();
  CudaLinear(CudaLinear&&) noexcept;
  CudaLinear& operator=(CudaLinear&&) noexcept;
  static CudaLinear create(const quant::LinearWeight& weight);  // uploads (and repacks) the weights
  static CudaLinear create(const quant::LinearWeight& weight, const LinearOptions& options);
  int32_t gemv_splits() const;  // 0 for FP16 weights

  int64_t in_features() const;
  int64_t out_features() const;
  size_t device_bytes() const;
  // Halves of scratch for any num_tokens with the whole matrix dequantized at once (max of GEMM and GEMV needs).
  int64_t scratch_elements_needed() const;
  // The least scratch forward accepts: GEMV partials for kGemvMaxTokens tokens and one 128-column GEMM chunk.
  int64_t min_scratch_elements() const;
  // Up to this many tokens forward runs the fused dequantize-GEMV kernel; above, dequantize + cuBLAS.
  static constexpr int64_t kGemvMaxTokens = 32;
  static constexpr int64_t kSwigluMaxTokens = 8;  // forward_swiglu

  // y [num_tokens, out_features] = x [num_tokens, in_features] . W (+ bias); fp16 in and out, fp32 accumulate.
  // Captured into CUDA graphs: no allocation, no synchronization, no host work that depends on data.
  void forward(const __half* x, __half* y, int64_t num_tokens, const LinearContext& ctx) const;
  // y = (silu(gate) * up) . W with the SwiGLU product (rounded to fp16, as kernels::silu_mul) formed while the
  // GEMV gathers its input: no separate activation kernel. Only where fuses_swiglu(num_tokens).
  bool fuses_swiglu(int64_t num_tokens) const;
  void forward_swiglu(const __half* gate, const __half* up, __half* y, int64_t num_tokens,
                      const LinearContext& ctx) const;

  // One-token decode with a fragment-ordered input (kernels/frag.cuh): the producer of x writes it through
  // frag_target(buffer) and forward_frag runs gemv_one without a gather. EXL2/GPTQ only (frag_capable()).
  bool frag_capable() const;
  int64_t padded_rows() const;  // halves of a fragment-ordered input buffer for this matrix
  kernels::FragTarget frag_target(__half* buffer) const;
  kernels::FragTarget32 frag_target32(float* buffer) const;  // fp32 x * w, for a fused norm (frag.cuh)
  // True when `other` reads its input in the same fragment order (same padded rows, same slot of every input
  // feature): one fragment-ordered copy then serves both. ExLlamaV2 writes one act-order permutation for the
  // matrices that share an input (q/k/v, gate/up), so real files share; GPTQ without act-order always does.
  bool same_frag_input(const CudaLinear& other) const;
  int64_t frag_blocks() const;  // blocks of the one-token launch: partial sums a residual epilogue writes
  void forward_frag(const __half* x_frag, __half* y, const LinearContext& ctx) const;
  // x_frag32 + norm instead of x_frag: the input is fp32 x * w still to be normalized (FragNorm). res non-null:
  // the output is also added to the residual stream and feeds the next norm (FragResidual).
  void forward_frag(const __half* x_frag, const float* x_frag32, const kernels::FragNorm* norm, __half* y,
                    const kernels::FragResidual* res, const LinearContext& ctx) const;

  // For kernels that pick a matrix per token on the device (MoE experts): the tiled layout and its split plan
  // (EXL2/GPTQ; null for FP16 weights), or the fp16 [N, K] weight and bias (FP16; null otherwise).
  bool quantized() const;
  const kernels::QuantTilesView* quant_view() const;
  const kernels::GemvSplitPlan* quant_plan() const;
  const __half* f16_weight() const;
  const __half* f16_bias() const;

 private:
  friend class CudaLinearGroup;
  struct Impl;
  // The GEMV kernel on this matrix (x_up non-null: SwiGLU input) after checking the scratch holds the partials.
  void run_gemv(const __half* x, const __half* x_up, __half* y, int64_t num_tokens, const LinearContext& ctx,
                const char* op) const;
  std::unique_ptr<Impl> impl_;
};

// Linear layers that read the same input (q/k/v; gate/up), run as one GEMV launch for up to kGemvMaxTokens tokens
// when all are EXL2/GPTQ: one split plan for the group (one wave of resident blocks over all the matrices' column
// blocks), so the small matrices share the launch, the prologue latency and the wave with the big one. Otherwise
// (FP16 weights, more tokens, a slice too large for shared memory) each layer's own forward() runs in turn.
// The group plans and launches with the tuning of its first layer (LinearOptions::tuning; a runner creates every
// layer with one). The group keeps pointers: the CudaLinears must outlive it and stay where they are.
class CudaLinearGroup {
 public:
  CudaLinearGroup();
  ~CudaLinearGroup();
  CudaLinearGroup(CudaLinearGroup&&) noexcept;
  CudaLinearGroup& operator=(CudaLinearGroup&&) noexcept;
  static CudaLinearGroup create(std::vector<const CudaLinear*> parts);
  static constexpr int kMaxParts = 3;

  size_t size() const;
  // Whether num_tokens runs as one fused launch.
  bool fused(int64_t num_tokens) const;
  // Halves of scratch the fused launch needs at kGemvMaxTokens (split-K partials of all parts side by side).
  int64_t scratch_elements_needed() const;
  // ys[i] [num_tokens, parts[i].out_features] = x . W_i (+ bias_i).
  void forward(const __half* x, __half* const* ys, int64_t num_tokens, const LinearContext& ctx) const;
  // One token, fragment-ordered inputs (x_frags[i] written through parts[i]->frag_target): one gemv_one launch.
  // swiglu_out non-null: the group is (gate, up) of one shape; each block also writes half(silu(gate) * up) through
  // swiglu_out (the down projection's frag_target).
  bool frag_capable() const;
  void forward_frag(const __half* const* x_frags, __half* const* ys, const kernels::FragTarget* swiglu_out,
                    const LinearContext& ctx) const;
  // The same with fp32 x * w inputs (x_frag32s[i] through parts[i]->frag_target32) normalized by `norm`.
  void forward_frag(const float* const* x_frag32s, const kernels::FragNorm& norm, __half* const* ys,
                    const kernels::FragTarget* swiglu_out, const LinearContext& ctx) const;

 private:
  struct Impl;
  void run_frag(const __half* const* x_frags, const float* const* x_frag32s, const kernels::FragNorm* norm,
                __half* const* ys, const kernels::FragTarget* swiglu_out, const LinearContext& ctx) const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace exl::cuda
