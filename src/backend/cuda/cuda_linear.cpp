// CudaLinear: uploads a LinearWeight in the layout its kernels read and runs y = x . W (+ bias).
// FP16/BF16/FP32 -> FP16 [N, K] and cuBLAS for every num_tokens. EXL2/GPTQ -> the tiled layout
// (quant/exl2_repack.h): gemv_quant for num_tokens <= 32, else dequant_quant into scratch + cuBLAS.
#include "backend/cuda/cuda_linear.h"

#include <cublas_v2.h>

#include <algorithm>
#include <climits>
#include <string>
#include <vector>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_buffer.h"
#include "core/fp16.h"
#include "kernels/gemv_f16.cuh"
#include "kernels/quant_linear.cuh"
#include "quant/exl2_repack.h"

namespace exl::cuda {

struct CudaLinear::Impl {
  quant::WeightFormat format = quant::WeightFormat::kFloat;
  CudaTuning tuning;  // LinearOptions::tuning
  int64_t in_features = 0, out_features = 0;
  size_t bytes = 0;
  DeviceBuffer weight;  // kFloat: fp16 [N, K]
  DeviceBuffer bias;    // fp16 [N] (kFloat) or [W] (quantized)
  // Quantized: the tiled layout.
  DeviceBuffer tiles, perm, chunk_group, exl2_scale, group_info, gptq_scale, gptq_zero, counters;
  kernels::QuantTilesView view;
  kernels::GemvSplitPlan plan;
  std::vector<int32_t> chunk_group_host;  // for re-planning the split in a CudaLinearGroup
  // Fragment-ordered input (kernels/frag.cuh): half index of each input feature, and of each pad row.
  DeviceBuffer frag_dest, frag_pads, frag_src;  // frag_src: the inverse (input feature of each half, -1: pad)
  std::vector<int32_t> frag_dest_host;           // for same_frag_input
  int32_t num_pads = 0;
  int64_t padded_rows = 0;
};

namespace {

template <typename T>
DeviceBuffer upload_vector(const std::vector<T>& v, size_t& total) {
  DeviceBuffer b(v.size() * sizeof(T));
  b.upload(v.data(), v.size() * sizeof(T));
  total += v.size() * sizeof(T);
  return b;
}

void gemm_f16(cublasHandle_t h, cublasOperation_t op_a, int64_t m, int64_t n, int64_t k, const __half* a,
              int64_t lda, const __half* b, int64_t ldb, __half* c, int64_t ldc) {
  const float alpha = 1.0f, beta = 0.0f;
  EXL_CUBLAS_CHECK(cublasGemmEx(h, op_a, CUBLAS_OP_N, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
                                &alpha, a, CUDA_R_16F, static_cast<int>(lda), b, CUDA_R_16F, static_cast<int>(ldb),
                                &beta, c, CUDA_R_16F, static_cast<int>(ldc), CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT));
}

}  // namespace

CudaLinear::CudaLinear() = default;
CudaLinear::~CudaLinear() = default;
CudaLinear::CudaLinear(CudaLinear&&) noexcept = default;
CudaLinear& CudaLinear::operator=(CudaLinear&&) noexcept = default;

CudaLinear CudaLinear::create(const quant::LinearWeight& w) { return create(w, LinearOptions{}); }

int32_t CudaLinear::gemv_splits() const {
  return impl_->format == quant::WeightFormat::kFloat ? 0 : impl_->plan.splits;
}

CudaLinear CudaLinear::create(const quant::LinearWeight& w, const LinearOptions& options) {
  CudaLinear out;
  out.impl_ = std::make_unique<Impl>();
  Impl& im = *out.impl_;
  im.format = w.format;
  im.tuning = options.tuning;
  im.in_features = w.in_features;
  im.out_features = w.out_features;
  const int64_t N = w.out_features, K = w.in_features;
  if (w.format == quant::WeightFormat::kFloat) {
    std::vector<float> f = w.to_f32_nk();
    std::vector<uint16_t> h(f.size());
    for (size_t i = 0; i < f.size(); ++i) h[i] = float_to_half(f[i]);
    im.weight = upload_vector(h, im.bytes);
    if (!w.bias.empty()) {
      std::vector<uint16_t> b(w.bias.size());
      for (size_t i = 0; i < b.size(); ++i) b[i] = float_to_half(w.bias[i]);
      im.bias = upload_vector(b, im.bytes);
    }
    return out;
  }
  const quant::TiledQuantMatrix t =
      w.format == quant::WeightFormat::kExl2 ? quant::tile_exl2(w.exl2, options.repack_pool)
                                             : quant::tile_gptq(w.gptq, options.repack_pool);
  EXL_CHECK(K <= (int64_t{1} << 30) && t.width * t.padded_rows < (int64_t{1} << 40), kUnsupported,
            "{}: {}x{} is too large for the CUDA linear kernels", w.key, K, N);
  im.tiles = upload_vector(t.tiles, im.bytes);
  im.perm = upload_vector(t.perm, im.bytes);
  im.chunk_group = upload_vector(t.chunk_group, im.bytes);
  im.exl2_scale = upload_vector(t.exl2_scale, im.bytes);
  im.group_info = upload_vector(t.group_info, im.bytes);
  im.gptq_scale = upload_vector(t.gptq_scale, im.bytes);
  im.gptq_zero = upload_vector(t.gptq_zero, im.bytes);
  im.bias = upload_vector(t.bias, im.bytes);
  const int64_t col_blocks = (t.width + kernels::kGemvBlockCols - 1) / kernels::kGemvBlockCols;
  im.chunk_group_host = t.chunk_group;
  {
    std::vector<int32_t> dest(static_cast<size_t>(K), -1), pads, inverse(static_cast<size_t>(t.padded_rows), -1);
    for (int64_t r = 0; r < t.padded_rows; ++r) {
      const int32_t src = t.perm[static_cast<size_t>(r)];
      const auto at = static_cast<int32_t>(quant::frag_half_index(r));
      EXL_CHECK(at >= 0 && at < t.padded_rows, kInternal, "{}: fragment slot {} of padded row {} is outside {} rows",
                w.key, at, r, t.padded_rows);
      if (src < 0) {
        pads.push_back(at);
        continue;
      }
      EXL_CHECK(src < K && dest[static_cast<size_t>(src)] < 0, kInvalidArgument,
                "{}: the row permutation maps two rows to input feature {} (or it is >= {})", w.key, src, K);
      dest[static_cast<size_t>(src)] = at;
      inverse[static_cast<size_t>(at)] = src;
    }
    for (int64_t n = 0; n < K; ++n)
      EXL_CHECK(dest[static_cast<size_t>(n)] >= 0, kInvalidArgument,
                "{}: the row permutation never reads input feature {}", w.key, n);
    im.frag_dest = upload_vector(dest, im.bytes);
    im.frag_dest_host = dest;
    im.frag_src = upload_vector(inverse, im.bytes);
    if (!pads.empty()) im.frag_pads = upload_vector(pads, im.bytes);
    im.num_pads = static_cast<int32_t>(pads.size());
    im.padded_rows = t.padded_rows;
  }
  im.counters = DeviceBuffer(static_cast<size_t>(col_blocks) * 4);
  EXL_CUDA_CHECK(cudaMemset(im.counters.get(), 0, im.counters.bytes()));

  kernels::QuantTilesView& v = im.view;
  v.tiles = im.tiles.as<uint32_t>();
  v.lane_words = t.lane_words;
  v.num_classes = static_cast<int32_t>(t.classes.size());
  std::copy(t.classes.begin(), t.classes.end(), v.classes);
  v.num_tiles = static_cast<int32_t>(t.num_tiles());
  v.perm = im.perm.as<int32_t>();
  v.chunk_group = im.chunk_group.as<int32_t>();
  v.scale_kind = t.scale_kind;
  v.exl2_scale = im.exl2_scale.as<uint32_t>();
  v.group_info = im.group_info.as<uint32_t>();
  v.gptq_scale = im.gptq_scale.as<__half>();
  v.gptq_zero = im.gptq_zero.as<uint8_t>();
  v.in_features = K;
  v.out_features = N;
  v.width = t.width;
  v.bias = t.bias.empty() ? nullptr : im.bias.as<__half>();

  int device = 0, sms = 0;
  EXL_CUDA_CHECK(cudaGetDevice(&device));
  EXL_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  if (options.gemv_splits > 0) {
    im.plan = kernels::plan_gemv_splits(t.chunk_group.data(), v.num_tiles, options.gemv_splits);
  } else {
    // Tuned for decode (1 token): one full wave of resident blocks. Occupancy depends on the plan's shared memory,
    // so plan with the register/thread limit first and re-plan once if the real shared memory allows fewer blocks.
    // At most tuning.gemv_blocks_per_sm per SM (default 2): with 3 resident (the 1-token occupancy on H100) 12
    // splits measured slower than 8 (bench/results/2026-11-22-linear-tuned.md).
    int per_sm = std::min(kernels::gemv_blocks_per_sm(kernels::GemvSplitPlan{}, 1), im.tuning.gemv_blocks_per_sm);
    im.plan = kernels::plan_gemv_splits(t.chunk_group.data(), v.num_tiles,
                                        kernels::gemv_default_splits(t.width, v.num_tiles, sms, per_sm));
    const int real = kernels::gemv_blocks_per_sm(im.plan, 1);
    if (real > 0 && real < per_sm) {
      per_sm = real;
      im.plan = kernels::plan_gemv_splits(t.chunk_group.data(), v.num_tiles,
                                          kernels::gemv_default_splits(t.width, v.num_tiles, sms, per_sm));
    }
  }
  int max_smem = 0;
  EXL_CUDA_CHECK(cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  while (kernels::gemv_shared_bytes(im.plan, kGemvMaxTokens) > static_cast<size_t>(max_smem)) {
    EXL_CHECK(im.plan.splits < v.num_tiles, kUnsupported,
              "{}: the GEMV slice of {}x{} does not fit in {} bytes of shared memory", w.key, K, N, max_smem);
    const int32_t before = im.plan.splits;
    im.plan = kernels::plan_gemv_splits(t.chunk_group.data(), v.num_tiles, 2 * before);  // shorter slices
    EXL_CHECK(im.plan.splits > before, kUnsupported,
              "{}: the GEMV slice of {}x{} does not fit in {} bytes of shared memory", w.key, K, N, max_smem);
  }
  return out;
}

bool CudaLinear::quantized() const { return impl_->format != quant::WeightFormat::kFloat; }
const kernels::QuantTilesView* CudaLinear::quant_view() const { return quantized() ? &impl_->view : nullptr; }
const kernels::GemvSplitPlan* CudaLinear::quant_plan() const { return quantized() ? &impl_->plan : nullptr; }
const __half* CudaLinear::f16_weight() const { return quantized() ? nullptr : impl_->weight.as<__half>(); }
const __half* CudaLinear::f16_bias() const { return quantized() ? nullptr : impl_->bias.as<__half>(); }
int64_t CudaLinear::in_features() const { return impl_->in_features; }
int64_t CudaLinear::out_features() const { return impl_->out_features; }
size_t CudaLinear::device_bytes() const { return impl_->bytes; }

int64_t CudaLinear::scratch_elements_needed() const {
  if (impl_->format == quant::WeightFormat::kFloat) return 0;
  return std::max(impl_->in_features * impl_->view.width, min_scratch_elements());
}

int64_t CudaLinear::min_scratch_elements() const {
  if (impl_->format == quant::WeightFormat::kFloat) return 0;
  const int64_t partial_halves = 2 * kernels::gemv_partial_floats(impl_->plan, impl_->view.width, kGemvMaxTokens);
  return std::max(partial_halves, impl_->in_features * std::min<int64_t>(128, impl_->view.width));
}

void CudaLinear::forward(const __half* x, __half* y, int64_t num_tokens, const LinearContext& ctx) const {
  const Impl& im = *impl_;
  if (num_tokens <= 0) return;
  const int64_t N = im.out_features, K = im.in_features;
  if (im.format == quant::WeightFormat::kFloat || num_tokens > kGemvMaxTokens) {
    EXL_CHECK(ctx.cublas != nullptr, kInvalidArgument, "CudaLinear::forward: LinearContext.cublas is null");
  }
  auto cublas = static_cast<cublasHandle_t>(ctx.cublas);
  if (im.format == quant::WeightFormat::kFloat) {
    // One token: the PDL-launched GEMV (kernels/gemv_f16.cuh). cuBLAS measured 0.9-1.3% slower in decode with an
    // FP16 head (GPTQ) and 10.6% slower with FP16 layers (bench/results/2026-11-24b-attention-merge.md, runs 3, 7, 8).
    const kernels::GemvF16Args g{im.weight.as<__half>(), x, im.bias.get() ? im.bias.as<__half>() : nullptr, y, N, K,
                                 im.tuning.f16_gemv};
    if (num_tokens == 1 && kernels::gemv_f16_supported(g)) {
      kernels::launch_gemv_f16(g, ctx.stream);
      return;
    }
    EXL_CUBLAS_CHECK(cublasSetStream(cublas, ctx.stream));
    gemm_f16(cublas, CUBLAS_OP_T, N, num_tokens, K, im.weight.as<__half>(), K, x, K, y, N);
    if (im.bias.get()) kernels::add_bias(y, im.bias.as<__half>(), num_tokens, N, ctx.stream);
    return;
  }
  if (num_tokens <= kGemvMaxTokens) {
    run_gemv(x, nullptr, y, num_tokens, ctx, "CudaLinear::forward");
    return;
  }
  const int64_t W = im.view.width;
  const int64_t chunk = std::min(W, ctx.scratch_elements / K / 128 * 128);
  EXL_CHECK(ctx.scratch != nullptr && chunk > 0, kInvalidArgument,
            "CudaLinear::forward: {} tokens need at least {} scratch halves (K x 128) for the dequantized weights, "
            "context has {}", num_tokens, K * std::min<int64_t>(128, W), ctx.scratch_elements);
  EXL_CUBLAS_CHECK(cublasSetStream(cublas, ctx.stream));
  for (int64_t c0 = 0; c0 < N; c0 += chunk) {
    const int64_t cols = std::min(chunk, W - c0);
    kernels::dequant_quant(im.view, c0, cols, ctx.scratch, ctx.stream);
    gemm_f16(cublas, CUBLAS_OP_N, std::min(cols, N - c0), num_tokens, K, ctx.scratch, cols, x, K, y + c0, N);
  }
  if (im.view.bias) kernels::add_bias(y, im.view.bias, num_tokens, N, ctx.stream);
}

// The single-matrix GEMV (x_up non-null: SwiGLU input), after checking the split-K partials fit in the scratch.
void CudaLinear::run_gemv(const __half* x, const __half* x_up, __half* y, int64_t num_tokens,
                          const LinearContext& ctx, const char* op) const {
  const Impl& im = *impl_;
  const int64_t need = 2 * kernels::gemv_partial_floats(im.plan, im.view.width, num_tokens);
  EXL_CHECK(need == 0 || (ctx.scratch != nullptr && ctx.scratch_elements >= need), kInvalidArgument,
            "{}: {} tokens need {} scratch halves for split-K partials, context has {}", op, num_tokens, need,
            ctx.scratch_elements);
  kernels::gemv_quant(im.view, im.plan, x, x_up, y, num_tokens, reinterpret_cast<float*>(ctx.scratch),
                      im.counters.as<uint32_t>(), im.tuning.gemv1, ctx.stream);
}

bool CudaLinear::frag_capable() const { return impl_->format != quant::WeightFormat::kFloat; }

int64_t CudaLinear::padded_rows() const { return impl_->padded_rows; }

kernels::FragTarget CudaLinear::frag_target(__half* buffer) const {
  EXL_CHECK(frag_capable(), kInvalidArgument, "CudaLinear::frag_target: FP16 weights read a plain input");
  kernels::FragTarget t;
  t.out = buffer;
  t.dest = impl_->frag_dest.as<int32_t>();
  t.pads = impl_->num_pads > 0 ? impl_->frag_pads.as<int32_t>() : nullptr;
  t.num_pads = impl_->num_pads;
  t.src = impl_->frag_src.as<int32_t>();
  t.num_out = static_cast<int32_t>(impl_->padded_rows);
  return t;
}

bool CudaLinear::same_frag_input(const CudaLinear& other) const {
  return frag_capable() && other.frag_capable() && impl_->padded_rows == other.impl_->padded_rows &&
         impl_->frag_dest_host == other.impl_->frag_dest_host;
}

kernels::FragTarget32 CudaLinear::frag_target32(float* buffer) const {
  const kernels::FragTarget t = frag_target(nullptr);
  return {buffer, t.dest, t.pads, t.num_pads};
}

int64_t CudaLinear::frag_blocks() const { return (impl_->view.width + quant::kStripCols - 1) / quant::kStripCols; }

void CudaLinear::forward_frag(const __half* x_frag, __half* y, const LinearContext& ctx) const {
  forward_frag(x_frag, nullptr, nullptr, y, nullptr, ctx);
}

void CudaLinear::forward_frag(const __half* x_frag, const float* x_frag32, const kernels::FragNorm* norm, __half* y,
                              const kernels::FragResidual* res, const LinearContext& ctx) const {
  EXL_CHECK(frag_capable(), kInvalidArgument, "CudaLinear::forward_frag: needs EXL2/GPTQ weights");
  EXL_CHECK((x_frag32 != nullptr) == (norm != nullptr) && (x_frag != nullptr) != (x_frag32 != nullptr),
            kInvalidArgument, "CudaLinear::forward_frag: one input, fp16 or fp32 (with its norm)");
  const Impl& im = *impl_;
  const kernels::GemvPart part{&im.view, &im.plan, y, nullptr, nullptr};
  kernels::GemvOneFrag frag;
  frag.x[0] = x_frag;
  frag.x32[0] = x_frag32;
  if (norm != nullptr) frag.norm = *norm;
  if (res != nullptr) {
    frag.res_on = true;
    frag.res = *res;
  }
  kernels::gemv_one_multi(&part, 1, nullptr, im.tuning.gemv1, ctx.stream, &frag);
}

bool CudaLinear::fuses_swiglu(int64_t num_tokens) const {
  // Up to 8 tokens (one n-tile): with more, the extra gather registers made the kernel spill (ptxas -v).
  return impl_->format != quant::WeightFormat::kFloat && num_tokens >= 1 && num_tokens <= kSwigluMaxTokens;
}

void CudaLinear::forward_swiglu(const __half* gate, const __half* up, __half* y, int64_t num_tokens,
                                const LinearContext& ctx) const {
  EXL_CHECK(fuses_swiglu(num_tokens), kInvalidArgument,
            "CudaLinear::forward_swiglu: needs EXL2/GPTQ weights and 1 .. {} tokens (got {} tokens)", kSwigluMaxTokens,
            num_tokens);
  run_gemv(gate, up, y, num_tokens, ctx, "CudaLinear::forward_swiglu");
}

struct CudaLinearGroup::Impl {
  std::vector<const CudaLinear*> parts;
  std::vector<kernels::GemvSplitPlan> plans;  // empty: never fused
  int max_smem = 0;
};

CudaLinearGroup::CudaLinearGroup() = default;
CudaLinearGroup::~CudaLinearGroup() = default;
CudaLinearGroup::CudaLinearGroup(CudaLinearGroup&&) noexcept = default;
CudaLinearGroup& CudaLinearGroup::operator=(CudaLinearGroup&&) noexcept = default;

CudaLinearGroup CudaLinearGroup::create(std::vector<const CudaLinear*> parts) {
  EXL_CHECK(!parts.empty() && parts.size() <= static_cast<size_t>(kMaxParts), kInvalidArgument,
            "CudaLinearGroup: {} layers (1 .. {})", parts.size(), kMaxParts);
  CudaLinearGroup out;
  out.impl_ = std::make_unique<Impl>();
  Impl& g = *out.impl_;
  g.parts = std::move(parts);
  bool quantized = true;
  int64_t col_blocks = 0;
  int32_t min_tiles = INT32_MAX;
  for (const CudaLinear* p : g.parts) {
    EXL_CHECK(p != nullptr && p->impl_ != nullptr, kInvalidArgument, "CudaLinearGroup: empty layer");
    EXL_CHECK(p->in_features() == g.parts[0]->in_features(), kInvalidArgument,
              "CudaLinearGroup: layers read {} and {} features; a group shares one input", p->in_features(),
              g.parts[0]->in_features());
    if (p->impl_->format == quant::WeightFormat::kFloat) {
      quantized = false;
      continue;
    }
    col_blocks += (p->impl_->view.width + kernels::kGemvBlockCols - 1) / kernels::kGemvBlockCols;
    min_tiles = std::min(min_tiles, p->impl_->view.num_tiles);
  }
  if (!quantized) return out;
  int device = 0, sms = 0;
  EXL_CUDA_CHECK(cudaGetDevice(&device));
  EXL_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  EXL_CUDA_CHECK(cudaDeviceGetAttribute(&g.max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  // Same rule as a single layer (cuda_linear.cpp create): one wave of at most gemv_blocks_per_sm (default 2)
  // resident blocks per SM, now over the column blocks of all parts; every part gets the same split count (they
  // share K).
  auto plan_all = [&](int per_sm) {
    const int64_t want = std::max<int64_t>(1, int64_t{sms} * per_sm / std::max<int64_t>(col_blocks, 1));
    const int32_t splits = static_cast<int32_t>(std::clamp<int64_t>(std::min<int64_t>(want, min_tiles / 2), 1, 64));
    g.plans.clear();
    for (const CudaLinear* p : g.parts)
      g.plans.push_back(kernels::plan_gemv_splits(p->impl_->chunk_group_host.data(), p->impl_->view.num_tiles,
                                                  splits));
  };
  int per_sm = std::min(kernels::gemv_blocks_per_sm(kernels::GemvSplitPlan{}, 1),
                        g.parts[0]->impl_->tuning.gemv_blocks_per_sm);
  plan_all(per_sm);
  int real = per_sm;
  for (const kernels::GemvSplitPlan& pl : g.plans) real = std::min(real, kernels::gemv_blocks_per_sm(pl, 1));
  if (real > 0 && real < per_sm) plan_all(real);
  if (!out.fused(1)) g.plans.clear();
  return out;
}

size_t CudaLinearGroup::size() const { return impl_ ? impl_->parts.size() : 0; }

bool CudaLinearGroup::fused(int64_t num_tokens) const {
  if (!impl_ || impl_->plans.empty() || num_tokens < 1 || num_tokens > CudaLinear::kGemvMaxTokens) return false;
  for (const kernels::GemvSplitPlan& pl : impl_->plans)
    if (kernels::gemv_shared_bytes(pl, num_tokens) > static_cast<size_t>(impl_->max_smem)) return false;
  return true;
}

int64_t CudaLinearGroup::scratch_elements_needed() const {
  if (!impl_ || impl_->plans.empty()) return 0;
  int64_t floats = 0;
  for (size_t i = 0; i < impl_->parts.size(); ++i)
    floats += kernels::gemv_partial_floats(impl_->plans[i], impl_->parts[i]->impl_->view.width,
                                           CudaLinear::kGemvMaxTokens);
  return 2 * floats;
}

void CudaLinearGroup::forward(const __half* x, __half* const* ys, int64_t num_tokens, const LinearContext& ctx) const {
  EXL_CHECK(impl_ != nullptr, kInvalidArgument, "CudaLinearGroup::forward: empty group");
  const Impl& g = *impl_;
  if (num_tokens <= 0) return;
  if (!fused(num_tokens)) {
    for (size_t i = 0; i < g.parts.size(); ++i) g.parts[i]->forward(x, ys[i], num_tokens, ctx);
    return;
  }
  kernels::GemvPart parts[kMaxParts];
  int64_t offset = 0;
  for (size_t i = 0; i < g.parts.size(); ++i) {
    const CudaLinear::Impl& im = *g.parts[i]->impl_;
    parts[i] = {&im.view, &g.plans[i], ys[i], reinterpret_cast<float*>(ctx.scratch) + offset,
                im.counters.as<uint32_t>()};
    offset += kernels::gemv_partial_floats(g.plans[i], im.view.width, num_tokens);
  }
  EXL_CHECK(offset == 0 || (ctx.scratch != nullptr && ctx.scratch_elements >= 2 * offset), kInvalidArgument,
            "CudaLinearGroup::forward: {} tokens need {} scratch halves for split-K partials, context has {}",
            num_tokens, 2 * offset, ctx.scratch_elements);
  kernels::gemv_quant_multi(parts, static_cast<int>(g.parts.size()), x, nullptr, num_tokens,
                            g.parts[0]->impl_->tuning.gemv1, ctx.stream);
}

bool CudaLinearGroup::frag_capable() const {
  if (!impl_) return false;
  for (const CudaLinear* p : impl_->parts)
    if (!p->frag_capable()) return false;
  return true;
}

void CudaLinearGroup::forward_frag(const __half* const* x_frags, __half* const* ys,
                                   const kernels::FragTarget* swiglu_out, const LinearContext& ctx) const {
  run_frag(x_frags, nullptr, nullptr, ys, swiglu_out, ctx);
}

void CudaLinearGroup::forward_frag(const float* const* x_frag32s, const kernels::FragNorm& norm, __half* const* ys,
                                   const kernels::FragTarget* swiglu_out, const LinearContext& ctx) const {
  run_frag(nullptr, x_frag32s, &norm, ys, swiglu_out, ctx);
}

void CudaLinearGroup::run_frag(const __half* const* x_frags, const float* const* x_frag32s,
                               const kernels::FragNorm* norm, __half* const* ys, const kernels::FragTarget* swiglu_out,
                               const LinearContext& ctx) const {
  EXL_CHECK(frag_capable(), kInvalidArgument, "CudaLinearGroup::forward_frag: needs EXL2/GPTQ weights in every layer");
  const Impl& g = *impl_;
  kernels::GemvPart parts[kMaxParts];
  kernels::GemvOneFrag frag;
  for (size_t i = 0; i < g.parts.size(); ++i) {
    const CudaLinear::Impl& im = *g.parts[i]->impl_;
    parts[i] = {&im.view, &im.plan, ys[i], nullptr, nullptr};
    if (x_frags != nullptr) frag.x[i] = x_frags[i];
    if (x_frag32s != nullptr) frag.x32[i] = x_frag32s[i];
  }
  if (norm != nullptr) frag.norm = *norm;
  if (swiglu_out != nullptr) {
    frag.swiglu_pair = true;
    frag.y_frag = *swiglu_out;
  }
  kernels::gemv_one_multi(parts, static_cast<int>(g.parts.size()), nullptr, g.parts[0]->impl_->tuning.gemv1,
                          ctx.stream, &frag);
}

}  // namespace exl::cuda
