// The CUDA runner: embedding -> layers (residual add + norm, q/k/v, clamp, q/k norms, rope + KV write, paged
// attention, o, residual add + norm, MLP) -> final norm -> head -> logit transforms, FP16 activations with an fp32
// residual stream, for any dense ModelSpec (spec_support.h says which). Two paths run a step: the fused one-token
// path for Llama-pattern specs with EXL2/GPTQ layers (fused_, below) and the general path for everything else, which
// follows the CPU runner's forward() op by op (model/model_spec.h gives the order). forward() runs host-driven
// chunks; decode() replays one captured graph per step, with the token, position and length kept on the device (the
// sampler advances them) and the host reading each token through pinned memory one step behind.
#include "backend/cuda/cuda_runner.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_graph.h"
#include "backend/cuda/cuda_linear.h"
#include "backend/cuda/device_buffer.h"
#include "backend/cuda/spec_support.h"
#include "core/error.h"
#include "core/fp16.h"
#include "core/thread_pool.h"
#include "kernels/activation.cuh"
#include "kernels/attention.cuh"
#include "kernels/dispatch.h"
#include "kernels/elementwise.cuh"
#include "kernels/embedding.cuh"
#include "kernels/moe.cuh"
#include "kernels/moe_route.cuh"
#include "kernels/norm.cuh"
#include "kernels/quant_linear.cuh"
#include "kernels/rms_norm.cuh"
#include "kernels/rope.cuh"
#include "kernels/sampling.cuh"
#include "model/rope.h"

namespace exl::cuda {
namespace {

constexpr size_t kCublasWorkspaceBytes = size_t{32} << 20;
constexpr size_t kHeadLogitsBytes = size_t{128} << 20;
constexpr size_t kSafetyMarginBytes = size_t{256} << 20;  // CUDA context growth, cuBLAS, fragmentation
constexpr int kMaxDecodeSplits = kernels::kMaxDecodeSplits;
// CudaRunnerOptions::timing_skip names, in bit order (CudaRunner::Skip).
constexpr int kSkipNames = 6;
constexpr const char* kSkipName[kSkipNames] = {"qkv", "attn", "o", "gateup", "down", "head"};

size_t device_linear_bytes(const quant::LinearWeight& w) {
  if (w.format == quant::WeightFormat::kFloat)
    return static_cast<size_t>(w.in_features * w.out_features) * 2 + w.bias.size() * 2;
  return w.stored_bytes();
}

int64_t scratch_estimate(const quant::LinearWeight& w) {
  return w.format == quant::WeightFormat::kFloat ? 0 : w.in_features * w.out_features;
}

DeviceBuffer upload_floats(const std::vector<float>& v) {
  DeviceBuffer b(v.size() * sizeof(float));
  b.upload(v.data(), b.bytes());
  return b;
}

// A norm of the spec on the device: its kind and eps, fp32 weight (offset folded in at load) and bias.
struct DeviceNorm {
  int kind = kernels::kNormNone;
  float eps = 1e-6f;
  int64_t weight_rows = 1;
  DeviceBuffer weight, bias;  // empty: unit weight / no bias
  // RMSNorm with one weight row and no bias: what kernels::launch_add_rms_norm computes.
  bool plain_rms() const {
    return kind == kernels::kNormRms && weight.get() != nullptr && bias.get() == nullptr && weight_rows == 1;
  }
  kernels::NormParamsDev params() const { return {kind, eps, weight.as<float>(), weight_rows, bias.as<float>()}; }
};

DeviceNorm upload_norm(const model::NormSpec& spec, const model::NormWeights& w) {
  DeviceNorm n;
  if (!spec.present()) return n;
  n.kind = spec.type == model::NormType::kLayer ? kernels::kNormLayer : kernels::kNormRms;
  n.eps = spec.eps;
  n.weight_rows = spec.weight_rows;
  if (!w.weight.empty()) n.weight = upload_floats(w.weight);
  if (!w.bias.empty()) n.bias = upload_floats(w.bias);
  return n;
}

kernels::ActKindDev act_kind(model::Activation a) {
  switch (a) {
    case model::Activation::kSilu: return kernels::ActKindDev::kSilu;
    case model::Activation::kGeluTanh: return kernels::ActKindDev::kGeluTanh;
    case model::Activation::kGelu: return kernels::ActKindDev::kGelu;
  }
  return kernels::ActKindDev::kSilu;
}

DeviceBuffer upload_embedding(const Tensor& t) {
  DeviceBuffer b(static_cast<size_t>(t.numel()) * 2);
  if (t.dtype() == DType::kF16) {
    b.upload(t.raw(), b.bytes());
    return b;
  }
  // Convert in slices to bound host memory.
  const int64_t n = t.numel();
  constexpr int64_t kSlice = int64_t{1} << 24;
  std::vector<uint16_t> h(static_cast<size_t>(std::min(n, kSlice)));
  for (int64_t i0 = 0; i0 < n; i0 += kSlice) {
    const int64_t m = std::min(kSlice, n - i0);
    for (int64_t i = 0; i < m; ++i) {
      float f = 0.0f;
      switch (t.dtype()) {
        case DType::kF32: f = t.data<float>()[i0 + i]; break;
        case DType::kBF16: f = bf16_to_float(t.data<uint16_t>()[i0 + i]); break;
        default: fail(ErrorKind::kUnsupported, "cuda runner: embedding dtype {} is not a float type", dtype_name(t.dtype()));
      }
      h[static_cast<size_t>(i)] = float_to_half(f);
    }
    b.upload(h.data(), static_cast<size_t>(m) * 2, static_cast<size_t>(i0) * 2);
  }
  return b;
}

// A mixture-of-experts MLP on the device (model::MoeSpec). Every expert's gate/up/down is a CudaLinear; the experts of
// one layer share one weight format. One-token steps and small batches (at most kMoeDeviceSlots (token, expert)
// slots) route on the device and run only the chosen experts through an expert-indexed GEMV (gemv_one_experts for
// EXL2/GPTQ, moe_gemv_f16 for FP16): no host round trip, so the decode graph captures it. Larger steps copy the
// routing to the host, group the tokens by expert and run each used expert once over its rows (GEMV or dequantize +
// cuBLAS GEMM, as any CudaLinear), then scatter the outputs to their slots; moe_combine sums the slots with their
// routing weights plus the gated shared expert.
constexpr int64_t kMoeDeviceSlots = 64;

struct MoeLayer {
  CudaLinear router, shared_gate;
  std::vector<CudaLinear> gate, up, down;  // [num_experts]
  std::vector<CudaLinearGroup> gate_up;    // [num_experts], point into gate / up (built after they stop growing)
  CudaLinear sh_gate, sh_up, sh_down;
  CudaLinearGroup sh_gate_up;
  bool shared = false, gated_shared = false, quant = false;
  int64_t inter = 0;  // the experts' intermediate size
  // Quantized experts: device arrays of the QuantTilesViews of every expert's gate, up, down, and the launch records.
  DeviceBuffer views[3];
  kernels::GemvExpertPart parts[3];
  // FP16 experts: device arrays of every expert's weight and bias pointers (gate, up, down).
  DeviceBuffer f16_w[3], f16_b[3];
};

struct Layer {
  DeviceNorm attn_norm, attn_post_norm, mlp_norm, mlp_post_norm, q_norm, k_norm;  // absent: kNormNone
  CudaLinear q, k, v, o, gate, up, down;  // gate: gated MLPs only (plain MLPs: up and down)
  CudaLinearGroup qkv, gate_up;  // point into this Layer: built once layers_ stops growing (gate_up: gated only)
  DeviceBuffer k_pages, v_pages;     // fp16 [num_pages, page_size, num_kv_heads, head_dim] (this layer's heads)
  std::unique_ptr<MoeLayer> moe;     // MoE layers only (gate/up/down above then unused)
};

// One RoPE frequency table of the spec (ModelSpec::ropes) on the device, recomputed when it depends on the length.
struct DeviceRope {
  model::RopeSpec spec;
  DeviceBuffer inv_freq;         // fp32 [rotary_dim / 2]
  std::vector<float> host;       // what inv_freq holds
  float attention_factor = 1.0f;
};

// Branch outputs of a layer not yet added to the residual stream: the next norm adds them first
// (x += scale * (post(branch0) + branch1); kernels::ResidualNormArgs).
struct Branches {
  const __half* branch0 = nullptr;  // null: nothing to add (before the first layer)
  const DeviceNorm* post = nullptr;  // post-norm of branch0, or null
  const __half* branch1 = nullptr;
  float scale = 1.0f;
};

// Device pointers describing one step's tokens (forward chunk or the decode graph).
struct StepView {
  int64_t num_tokens = 0;
  int64_t num_seqs = 0;
  const int32_t* ids = nullptr;
  const int32_t* positions = nullptr;
  const int32_t* token_seq = nullptr;
  const int32_t* query_start = nullptr;
  const int32_t* context_len = nullptr;
  const int32_t* block_table = nullptr;
  int64_t max_pages_per_seq = 0;
  int64_t max_query_len = 0;  // 1 with decode_splits > 0: one token per sequence (flash-decoding path)
  int decode_splits = 0;
  const int32_t* final_rows = nullptr;  // rows of the final norm (gather), device
  int64_t num_final_rows = 0;
};

class CudaRunner final : public model::Runner {
 public:
  CudaRunner(const model::ModelWeights& weights, const CudaRunnerOptions& options);
  const io::ModelConfig& config() const override { return config_; }
  std::string backend_name() const override { return "cuda"; }
  int64_t page_size() const override { return page_size_; }
  int64_t num_pages() const override { return num_pages_; }
  void forward(std::span<const model::SequenceStep> seqs, model::LogitsFor which,
               std::vector<float>* logits) override;
  model::DecodeStats decode(const model::DecodeRequest& request, const model::TokenCallback& on_token) override;

 private:
  struct Piece {
    size_t seq;
    int64_t offset, count;
  };
  void run_chunk(std::span<const model::SequenceStep> seqs, const std::vector<Piece>& pieces, model::LogitsFor which,
                 std::vector<float>* logits);
  // Embedding .. final norm into xn_ rows [0, num_final_rows). Returns whether the step ran the fused one-token path
  // and the final norm also wrote the head's fragment-ordered input (head_frag_).
  bool run_model(const StepView& v);
  bool run_fused(const StepView& v);  // the fused one-token path (returns whether the head input is frag-ordered)
  void run_general(const StepView& v);  // every other step, op by op as the CPU runner
  // x_ += branches (when any), then xn_[r] = norm(x_[rows ? rows[r] : r]) for r < num_rows (T rows updated).
  void residual_norm(const Branches& b, const DeviceNorm& norm, const int32_t* rows, int64_t num_rows, int64_t T);
  void run_mlp(const Layer& l, const model::MlpSpec& spec, const __half* in, __half* out, int64_t T);
  // act(gate) * up -> down on one gated MLP's linears; gate_buf / up_buf hold [T, intermediate].
  void run_gated(const CudaLinearGroup& gate_up, const CudaLinear& down, model::Activation act, const __half* in,
                 __half* out, int64_t T, __half* gate_buf, __half* up_buf);
  void run_moe(const MoeLayer& m, const model::MlpSpec& spec, const __half* in, __half* out, int64_t T);
  void create_moe(Layer& l, const model::LayerWeights& lw, const model::LayerSpec& ls, size_t layer,
                  const LinearOptions& lopt);
  void run_head(int64_t row0, int64_t rows);  // logits_ = head(xn_[row0 .. row0 + rows))
  // The spec's head row scale, logit scale and final softcap on logits_ rows, after either head launch.
  void transform_logits(int64_t rows);
  void decode_step_body();
  void ensure_meta(size_t ints);
  void set_rope_length(int64_t seq_len);
  kernels::PagedKvArgs paged(const Layer& l, const StepView& v) const;
  kernels::AttentionArgs attention_args(const Layer& l, const model::AttentionSpec& a, const StepView& v) const;
  LinearContext linear_context() const;

  io::ModelConfig config_;
  model::ModelSpec spec_;
  // Attention shape (the same in every layer: spec_support.h) and the largest MLP width.
  int64_t num_heads_ = 0, num_kv_heads_ = 0, head_dim_ = 0, intermediate_ = 0;
  int device_ = 0;
  int num_sms_ = 1;
  kernels::GemvOneTuning gemv1_tuning_;  // CudaTuning::gemv1, for the runner's own gemv_one launches (MoE experts)
  int decode_splits_ = 0;  // CudaTuning::decode_splits: the decode graph's attention splits; 0: choose_decode_splits
  int64_t page_size_ = 0, num_pages_ = 0, max_tokens_ = 0, head_rows_ = 0;
  Stream stream_;
  CublasHandle cublas_;
  DeviceBuffer cublas_workspace_;
  DeviceBuffer embedding_;
  DeviceBuffer pos_embedding_;        // fp16 [num_positions_, hidden] learned positions, or empty
  int64_t num_positions_ = 0;
  DeviceNorm final_norm_;
  std::vector<Layer> layers_;
  CudaLinear head_;
  DeviceBuffer head_row_scale_;       // fp32 [vocab] (spec.head_normalize), or empty
  DeviceBuffer scratch_;
  int64_t scratch_elements_ = 0;
  // Activations for max_tokens_ rows.
  // o_ holds the attention's o projection and, for sequential blocks, the MLP output (branch0 of the next norm);
  // mlp_out_ the MLP output of parallel blocks (branch1; allocated only when a layer is parallel).
  DeviceBuffer x_, xn_, q_, k_, v_, attn_, o_, mlp_out_, gate_, up_, logits_, attn_ws_;
  // MoE (any MoE layer): router logits [T, E], ids and weights [T, K], slot outputs [T * K, H], expert rows [T, H]
  // in and out, expert gate/up [max(T, kMoeDeviceSlots), I_e], shared expert output [T, H] and gate logits [T]; the
  // host grouping's pinned ids and per-expert row / slot lists.
  int64_t moe_max_experts_ = 0, moe_max_top_k_ = 0, moe_inter_ = 0;
  DeviceBuffer moe_logits_, moe_ids_, moe_weights_, moe_y_, moe_x_, moe_out_, moe_gate_, moe_up_, moe_sh_, moe_sg_,
      moe_lists_;
  PinnedBuffer moe_ids_host_, moe_lists_host_;
  DeviceBuffer attn_counters_;  // [2 * max_tokens * num_kv_heads] uint32, zeroed once (kernels::DecodeSplit::counters)
  // The fused one-token path: one-token steps of one sequence when every layer is EXL2/GPTQ (FP16 layers never take
  // it). The GEMV inputs are fragment-ordered (kernels/frag.cuh): each producer (the first layer's norm, the
  // attention's merge, the gate/up SwiGLU pair, the residual epilogues) writes its consumer's input already
  // permuted, so no GEMV gathers x. The RMSNorms between layers run inside the GEMVs: o_proj and down_proj add their
  // output to the residual stream and write x * w (fp32) for the next GEMV plus per-block sums of squares; the next
  // GEMV finishes the norm while staging its input (kernels/frag.cuh FragResidual / FragNorm). RoPE and the new
  // token's K/V write run inside the attention kernel (AttentionArgs::rope) instead of a rope launch per layer.
  // Other steps (FP16 weights, several sequences, prefill) and every spec outside the Llama pattern
  // (fast_path_ok, spec_support.h) run the general path: residual norms, the gathering GEMVs, the rope kernel.
  // Measured: bench/results/2026-11-23e-frag-inputs.md, 2026-11-23f-norm-gather-and-fusions.md.
  bool fused_ = false, head_frag_ = false;
  float fused_eps_ = 1e-6f;  // the one RMSNorm eps of a fast-path spec
  // fp16 fragment-ordered inputs: q/k/v of the first layer (written by its norm), o (the attention), down (the
  // SwiGLU pair), the head (the final norm).
  DeviceBuffer xf_q_, xf_k_, xf_v_, xf_o_, xf_down_, xf_head_;
  // Timing only (CudaRunnerOptions::timing_skip): one-token decode launches left out, bit i = kSkipName[i].
  enum Skip : uint32_t { kSkipQkv = 1, kSkipAttn = 2, kSkipO = 4, kSkipGateUp = 8, kSkipDown = 16, kSkipHead = 32 };
  uint32_t skip_ = 0;
  // fp32 x * w inputs of the GEMVs after a residual epilogue, and the epilogues' per-block sums of squares.
  DeviceBuffer xf32_q_, xf32_k_, xf32_v_, xf32_gate_, xf32_up_, norm_partials_a_, norm_partials_b_;
  // Per layer: k and v (up) read q's (gate's) fragment order, so the fused decode writes and reads one fp32 copy
  // (CudaLinear::same_frag_input; +1.2-1.7% decode: bench/results/2026-11-24d-prefetch-and-lab.md).
  std::vector<bool> share_qkv_, share_gate_up_;
  int64_t attn_ws_floats_ = 0;
  // Rope: one table per ModelSpec::ropes entry.
  std::vector<DeviceRope> ropes_;
  // Per-forward metadata (int32) and its pinned staging.
  DeviceBuffer meta_;
  PinnedBuffer meta_host_;
  PinnedBuffer logits_host_;
  // Decode state: [token, position, context_len], block table, sampling params; the graph; token readback.
  DeviceBuffer decode_state_, decode_table_, decode_params_, decode_row_;
  PinnedBuffer decode_host_;
  CudaGraph decode_graph_;
  Event token_ready_[2];
};

CudaRunner::CudaRunner(const model::ModelWeights& w, const CudaRunnerOptions& opt)
    : config_(w.config), device_(opt.device), gemv1_tuning_(opt.tuning.gemv1), decode_splits_(opt.tuning.decode_splits), page_size_(opt.page_size),
      max_tokens_(opt.max_batch_tokens) {
  const io::ModelConfig& c = config_;
  if (!opt.timing_skip.empty()) {
    std::string_view rest = opt.timing_skip;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      const std::string_view name = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
      int bit = -1;
      for (int i = 0; i < kSkipNames; ++i)
        if (name == kSkipName[i]) bit = i;
      EXL_CHECK(bit >= 0, kInvalidArgument,
                "cuda runner: timing_skip '{}' is not one of qkv, attn, o, gateup, down, head", name);
      skip_ |= 1u << bit;
    }
  }
  EXL_CHECK(page_size_ > 0 && opt.cache_tokens > 0 && max_tokens_ > 0, kInvalidArgument,
            "cuda runner: page_size ({}), cache_tokens ({}) and max_batch_tokens ({}) must be positive", page_size_,
            opt.cache_tokens, max_tokens_);
  check_supported(w.spec, c.source);
  spec_ = w.spec;
  EXL_CHECK(static_cast<int64_t>(w.layers.size()) == c.num_layers &&
                static_cast<int64_t>(spec_.layers.size()) == c.num_layers,
            kInvalidArgument, "cuda runner: config has {} layers, the spec {}, the weights {}", c.num_layers,
            spec_.layers.size(), w.layers.size());
  // Every layer has the same attention shape (check_supported); the MLP width may differ (plain / gated).
  const model::AttentionSpec* a0 = spec_.layers.empty() ? nullptr : &spec_.layers[0].attn;
  num_heads_ = a0 ? a0->num_heads : c.num_heads;
  num_kv_heads_ = a0 ? a0->num_kv_heads : c.num_kv_heads;
  head_dim_ = a0 ? a0->head_dim : c.head_dim;
  for (const auto& lw : w.layers) {
    intermediate_ = std::max(intermediate_, lw.up_proj.out_features);
    intermediate_ = std::max(intermediate_, lw.shared.up_proj.out_features);
    for (const model::ExpertWeights& e : lw.experts) moe_inter_ = std::max(moe_inter_, e.up_proj.out_features);
  }
  for (const model::LayerSpec& l : spec_.layers)
    if (l.mlp.type == model::MlpType::kMoe) {
      moe_max_experts_ = std::max(moe_max_experts_, l.mlp.moe.num_experts);
      moe_max_top_k_ = std::max(moe_max_top_k_, l.mlp.moe.top_k);
    }
  EXL_CHECK(kernels::head_dim_supported(head_dim_), kUnsupported,
            "cuda runner: head_dim {} is not supported (supported: {})", head_dim_, kernels::kSupportedHeadDims);
  EXL_CHECK(num_kv_heads_ > 0 && num_heads_ % num_kv_heads_ == 0, kInvalidArgument,
            "cuda runner: num_heads {} is not a multiple of num_kv_heads {}", num_heads_, num_kv_heads_);
  for (const model::LayerSpec& l : spec_.layers)
    EXL_CHECK(l.attn.rope == model::RopeStyle::kNone ||
                  (l.attn.rope_table >= 0 && l.attn.rope_table < static_cast<int>(spec_.ropes.size())),
              kInvalidArgument, "cuda runner: a layer uses RoPE table {} of {}", l.attn.rope_table,
              spec_.ropes.size());
  const int count = device_count();
  EXL_CHECK(count > 0, kCuda, "cuda runner: no CUDA device is available");
  EXL_CHECK(device_ >= 0 && device_ < count, kInvalidArgument, "cuda runner: device {} does not exist ({} devices)",
            device_, count);
  EXL_CUDA_CHECK(cudaSetDevice(device_));
  EXL_CUDA_CHECK(cudaDeviceGetAttribute(&num_sms_, cudaDevAttrMultiProcessorCount, device_));

  num_pages_ = kernels::ceil_div(opt.cache_tokens, page_size_);
  const int64_t H = spec_.hidden_size, I = intermediate_, D = head_dim_, NH = num_heads_, NKV = num_kv_heads_;
  const int64_t V = c.vocab_size;
  const int64_t T = max_tokens_;
  head_rows_ = std::clamp<int64_t>(static_cast<int64_t>(kHeadLogitsBytes / (V * 2)), 1, T);
  attn_ws_floats_ = NH * (D + 2) * std::max<int64_t>(kMaxDecodeSplits, T);
  bool any_parallel = false;
  for (const model::LayerSpec& l : spec_.layers) any_parallel = any_parallel || l.parallel;

  // Everything this runner will allocate, before allocating any of it: the embedding tables, every norm (weights,
  // biases, post-norms, q/k norms), the RoPE tables, the head's row scale and the linears.
  size_t weights = static_cast<size_t>(w.embedding.numel()) * 2 + device_linear_bytes(w.head) +
                   w.final_norm.nbytes() + w.head_row_scale.size() * 4;
  if (w.pos_embedding.ndim() > 0) weights += static_cast<size_t>(w.pos_embedding.numel()) * 2;
  for (const model::RopeSpec& r : spec_.ropes) weights += static_cast<size_t>(r.rotary_dim() / 2) * 4;
  int64_t scratch = scratch_estimate(w.head);
  for (const auto& l : w.layers) {
    for (const model::NormWeights* n : {&l.attn_norm, &l.attn_post_norm, &l.mlp_norm, &l.mlp_post_norm, &l.q_norm,
                                        &l.k_norm})
      weights += n->nbytes();
    for (const quant::LinearWeight* lw : l.linears()) {
      weights += device_linear_bytes(*lw);
      scratch = std::max(scratch, scratch_estimate(*lw));
    }
  }
  // The KV cache, per layer with that layer's KV heads and head_dim.
  auto layer_kv_bytes = [&](const model::AttentionSpec& a) {
    return static_cast<size_t>(num_pages_ * page_size_ * a.num_kv_heads * a.head_dim) * 2;
  };
  size_t kv = 0;
  for (const model::LayerSpec& l : spec_.layers) kv += 2 * layer_kv_bytes(l.attn);
  const int64_t moe_rows = std::max(T, kMoeDeviceSlots);
  const size_t moe_acts =
      moe_max_experts_ == 0
          ? 0
          : static_cast<size_t>(T * moe_max_experts_) * 2 + static_cast<size_t>(T * moe_max_top_k_) * (4 + 4 + 8) +
                static_cast<size_t>(T * moe_max_top_k_ * H) * 2 + static_cast<size_t>(T * H) * 2 * 3 +
                static_cast<size_t>(moe_rows * moe_inter_) * 2 * 2 + static_cast<size_t>(T) * 2;
  const size_t acts = moe_acts + static_cast<size_t>(T * H) * (4 + 2 + 2) + static_cast<size_t>(T * NH * D) * 2 * 2 +
                      static_cast<size_t>(T * NKV * D) * 2 * 2 + static_cast<size_t>(T * I) * 2 * 2 +
                      (any_parallel ? static_cast<size_t>(T * H) * 2 : 0) +
                      static_cast<size_t>(head_rows_ * V) * 2 +
                      static_cast<size_t>(attn_ws_floats_) * 4 + static_cast<size_t>(T * NKV) * 8 +
                      static_cast<size_t>(scratch) * 2 +
                      kCublasWorkspaceBytes;
  const size_t needed = weights + kv + acts + kSafetyMarginBytes;
  size_t free_b = 0, total_b = 0;
  EXL_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  EXL_CHECK(needed <= free_b, kOutOfMemory,
            "cuda runner: the model and cache need {:.0f} MiB (weights {:.0f}, KV cache {:.0f} for {} tokens, "
            "activations and workspaces {:.0f}, margin {:.0f}) but device {} has {:.0f} MiB free of {:.0f} MiB "
            "(hint: lower cache_tokens or max_batch_tokens)",
            needed / 1048576.0, weights / 1048576.0, kv / 1048576.0, num_pages_ * page_size_, acts / 1048576.0,
            kSafetyMarginBytes / 1048576.0, device_, free_b / 1048576.0, total_b / 1048576.0);

  stream_ = Stream();
  cublas_ = CublasHandle();
  cublas_workspace_ = DeviceBuffer(kCublasWorkspaceBytes);
  EXL_CUBLAS_CHECK(cublasSetStream(cublas_.get(), stream_.get()));
  EXL_CUBLAS_CHECK(cublasSetWorkspace(cublas_.get(), cublas_workspace_.get(), cublas_workspace_.bytes()));
  EXL_CUBLAS_CHECK(cublasSetMathMode(cublas_.get(), CUBLAS_DEFAULT_MATH));

  embedding_ = upload_embedding(w.embedding);
  if (w.pos_embedding.ndim() > 0) {
    pos_embedding_ = upload_embedding(w.pos_embedding);
    num_positions_ = w.pos_embedding.shape()[0];
  }
  final_norm_ = upload_norm(spec_.final_norm, w.final_norm);
  if (!w.head_row_scale.empty()) head_row_scale_ = upload_floats(w.head_row_scale);
  // The load-time repack of EXL2/GPTQ tensors runs on every core (a 70B model is about 20 GB of tiles), then the
  // pool goes away.
  ThreadPool repack_pool;
  LinearOptions lopt;
  lopt.repack_pool = &repack_pool;
  lopt.tuning = opt.tuning;
  head_ = CudaLinear::create(w.head, lopt);
  scratch_elements_ = head_.scratch_elements_needed();
  for (size_t li = 0; li < w.layers.size(); ++li) {
    const model::LayerWeights& lw = w.layers[li];
    const model::LayerSpec& ls = spec_.layers[li];
    Layer l;
    l.attn_norm = upload_norm(ls.attn_norm, lw.attn_norm);
    l.attn_post_norm = upload_norm(ls.attn_post_norm, lw.attn_post_norm);
    l.mlp_norm = upload_norm(ls.mlp_norm, lw.mlp_norm);
    l.mlp_post_norm = upload_norm(ls.mlp_post_norm, lw.mlp_post_norm);
    l.q_norm = upload_norm(ls.attn.q_norm, lw.q_norm);
    l.k_norm = upload_norm(ls.attn.k_norm, lw.k_norm);
    l.q = CudaLinear::create(lw.q_proj, lopt);
    l.k = CudaLinear::create(lw.k_proj, lopt);
    l.v = CudaLinear::create(lw.v_proj, lopt);
    l.o = CudaLinear::create(lw.o_proj, lopt);
    const bool gated = ls.mlp.type == model::MlpType::kGated;
    if (ls.mlp.type == model::MlpType::kMoe) {
      create_moe(l, lw, ls, li, lopt);
    } else {
      if (gated) l.gate = CudaLinear::create(lw.gate_proj, lopt);
      l.up = CudaLinear::create(lw.up_proj, lopt);
      l.down = CudaLinear::create(lw.down_proj, lopt);
      for (const CudaLinear* lin : {&l.up, &l.down})
        scratch_elements_ = std::max(scratch_elements_, lin->scratch_elements_needed());
      if (gated) scratch_elements_ = std::max(scratch_elements_, l.gate.scratch_elements_needed());
    }
    for (const CudaLinear* lin : {&l.q, &l.k, &l.v, &l.o})
      scratch_elements_ = std::max(scratch_elements_, lin->scratch_elements_needed());
    const size_t kv_bytes = layer_kv_bytes(ls.attn);
    l.k_pages = DeviceBuffer(kv_bytes);
    l.v_pages = DeviceBuffer(kv_bytes);
    // Unwritten cache slots are never read, but keep them finite so a bug shows as wrong numbers, not NaN noise.
    EXL_CUDA_CHECK(cudaMemsetAsync(l.k_pages.get(), 0, kv_bytes, stream_.get()));
    EXL_CUDA_CHECK(cudaMemsetAsync(l.v_pages.get(), 0, kv_bytes, stream_.get()));
    layers_.push_back(std::move(l));
  }
  for (size_t li = 0; li < layers_.size(); ++li) {
    Layer& l = layers_[li];
    l.qkv = CudaLinearGroup::create({&l.q, &l.k, &l.v});
    scratch_elements_ = std::max(scratch_elements_, l.qkv.scratch_elements_needed());
    if (spec_.layers[li].mlp.type == model::MlpType::kGated) {
      l.gate_up = CudaLinearGroup::create({&l.gate, &l.up});
      scratch_elements_ = std::max(scratch_elements_, l.gate_up.scratch_elements_needed());
    }
  }
  scratch_ = DeviceBuffer(static_cast<size_t>(std::max<int64_t>(scratch_elements_, 1)) * 2);

  x_ = DeviceBuffer(static_cast<size_t>(T * H) * 4);
  xn_ = DeviceBuffer(static_cast<size_t>(T * H) * 2);
  q_ = DeviceBuffer(static_cast<size_t>(T * NH * D) * 2);
  attn_ = DeviceBuffer(static_cast<size_t>(T * NH * D) * 2);
  k_ = DeviceBuffer(static_cast<size_t>(T * NKV * D) * 2);
  v_ = DeviceBuffer(static_cast<size_t>(T * NKV * D) * 2);
  o_ = DeviceBuffer(static_cast<size_t>(T * H) * 2);
  if (any_parallel) mlp_out_ = DeviceBuffer(static_cast<size_t>(T * H) * 2);
  gate_ = DeviceBuffer(static_cast<size_t>(T * I) * 2);
  up_ = DeviceBuffer(static_cast<size_t>(T * I) * 2);
  logits_ = DeviceBuffer(static_cast<size_t>(head_rows_ * V) * 2);
  attn_ws_ = DeviceBuffer(static_cast<size_t>(attn_ws_floats_) * 4);
  attn_counters_ = DeviceBuffer(static_cast<size_t>(T * NKV) * 8);
  EXL_CUDA_CHECK(cudaMemsetAsync(attn_counters_.get(), 0, attn_counters_.bytes(), stream_.get()));
  logits_host_ = PinnedBuffer(static_cast<size_t>(head_rows_ * V) * 2);
  if (moe_max_experts_ > 0) {
    const int64_t E = moe_max_experts_, K = moe_max_top_k_;
    moe_logits_ = DeviceBuffer(static_cast<size_t>(T * E) * 2);
    moe_ids_ = DeviceBuffer(static_cast<size_t>(T * K) * 4);
    moe_weights_ = DeviceBuffer(static_cast<size_t>(T * K) * 4);
    moe_y_ = DeviceBuffer(static_cast<size_t>(T * K * H) * 2);
    moe_x_ = DeviceBuffer(static_cast<size_t>(T * H) * 2);
    moe_out_ = DeviceBuffer(static_cast<size_t>(T * H) * 2);
    moe_gate_ = DeviceBuffer(static_cast<size_t>(moe_rows * moe_inter_) * 2);
    moe_up_ = DeviceBuffer(static_cast<size_t>(moe_rows * moe_inter_) * 2);
    moe_sh_ = DeviceBuffer(static_cast<size_t>(T * H) * 2);
    moe_sg_ = DeviceBuffer(static_cast<size_t>(T) * 2);
    moe_lists_ = DeviceBuffer(static_cast<size_t>(2 * T * K) * 4);
    moe_ids_host_ = PinnedBuffer(static_cast<size_t>(T * K) * 4);
    moe_lists_host_ = PinnedBuffer(static_cast<size_t>(2 * T * K) * 4);
  }

  {
    // The fused one-token path: Llama-pattern specs only (fast_path_ok) with every layer EXL2/GPTQ.
    fused_ = !layers_.empty() && fast_path_ok(spec_);
    fused_eps_ = spec_.final_norm.eps;
    int64_t rq = 0, rk = 0, rv = 0, ro = 0, rg = 0, ru = 0, rd = 0;
    for (const Layer& l : layers_) {
      if (!fused_) break;
      fused_ = fused_ && l.qkv.frag_capable() && l.gate_up.frag_capable() && l.o.frag_capable() &&
               l.down.frag_capable() && l.gate.out_features() == l.up.out_features();
      if (!fused_) break;
      rq = std::max(rq, l.q.padded_rows());
      rk = std::max(rk, l.k.padded_rows());
      rv = std::max(rv, l.v.padded_rows());
      ro = std::max(ro, l.o.padded_rows());
      rg = std::max(rg, l.gate.padded_rows());
      ru = std::max(ru, l.up.padded_rows());
      rd = std::max(rd, l.down.padded_rows());
    }
    head_frag_ = fused_ && head_.frag_capable();
    // The skips are wired into the fused one-token path only: anywhere else they would be ignored.
    EXL_CHECK(skip_ == 0 || fused_, kUnsupported,
              "cuda runner: timing_skip '{}' needs the fused one-token decode path (a Llama-pattern model with every "
              "layer EXL2/GPTQ)", opt.timing_skip);
    // Zeroed buffers of n elements of `bytes` each, rounded up to 16 bytes (pads are rewritten every step anyway).
    auto zeroed = [&](int64_t n, size_t bytes = 2) {
      DeviceBuffer b((static_cast<size_t>(n) * bytes + 15) / 16 * 16);
      EXL_CUDA_CHECK(cudaMemset(b.get(), 0, b.bytes()));
      return b;
    };
    if (fused_)
      for (auto [buf, n] : {std::pair{&xf_q_, rq}, {&xf_k_, rk}, {&xf_v_, rv}, {&xf_o_, ro}, {&xf_down_, rd}})
        *buf = zeroed(n);
    if (head_frag_) xf_head_ = zeroed(head_.padded_rows());
    if (fused_) {
      int64_t blocks = 0;
      for (const Layer& l : layers_) blocks = std::max({blocks, l.o.frag_blocks(), l.down.frag_blocks()});
      for (auto [buf, n] : {std::pair{&xf32_q_, rq}, {&xf32_k_, rk}, {&xf32_v_, rv}, {&xf32_gate_, rg},
                            {&xf32_up_, ru}, {&norm_partials_a_, blocks}, {&norm_partials_b_, blocks}})
        *buf = zeroed(n, 4);
      for (const Layer& l : layers_) {
        share_qkv_.push_back(l.q.same_frag_input(l.k) && l.q.same_frag_input(l.v));
        share_gate_up_.push_back(l.gate.same_frag_input(l.up));
      }
    }
  }

  // One device table per RoPE spec, at length 1 (set_rope_length recomputes those that depend on the length).
  for (const model::RopeSpec& r : spec_.ropes) {
    DeviceRope dr;
    dr.spec = r;
    const model::RopeTable table = model::compute_rope(r, 1);
    dr.host = table.inv_freq;
    dr.attention_factor = table.attention_factor;
    dr.inv_freq = upload_floats(dr.host.empty() ? std::vector<float>(1, 0.0f) : dr.host);
    ropes_.push_back(std::move(dr));
  }

  ensure_meta(static_cast<size_t>(6 * T + 1 + T * std::min<int64_t>(num_pages_, 64)));

  decode_state_ = DeviceBuffer(4 * sizeof(int32_t));
  decode_table_ = DeviceBuffer(static_cast<size_t>(num_pages_) * 4);
  decode_params_ = DeviceBuffer(sizeof(kernels::DeviceSamplingParams));
  decode_row_ = DeviceBuffer(sizeof(int32_t));
  decode_host_ = PinnedBuffer(2 * sizeof(int32_t) + sizeof(kernels::DeviceSamplingParams) +
                              static_cast<size_t>(num_pages_) * 4 + 4 * sizeof(int32_t));
  const int32_t zero_row = 0;
  decode_row_.upload(&zero_row, sizeof(zero_row));
  stream_.synchronize();
}

// Metadata per chunk: ids, positions, token_seq, final rows (T each), query_start (S + 1), context_len (S), block
// table (S x pages); grown on demand (forward only, never inside a graph).
void CudaRunner::ensure_meta(size_t ints) {
  if (meta_.bytes() >= ints * 4) return;
  meta_ = DeviceBuffer();
  meta_ = DeviceBuffer(ints * 4);
  meta_host_ = PinnedBuffer(ints * 4);
}

LinearContext CudaRunner::linear_context() const {
  return {stream_.get(), cublas_.get(), scratch_.as<__half>(), scratch_elements_};
}

kernels::PagedKvArgs CudaRunner::paged(const Layer& l, const StepView& v) const {
  return {l.k_pages.as<__half>(), l.v_pages.as<__half>(), num_pages_, page_size_, v.block_table, v.max_pages_per_seq};
}

void CudaRunner::set_rope_length(int64_t seq_len) {
  for (DeviceRope& r : ropes_) {
    if (!model::rope_depends_on_length(r.spec)) continue;
    const model::RopeTable rope = model::compute_rope(r.spec, seq_len);
    // The factor is a launch argument of captured graphs: a table whose factor changes with the length
    // (Phi-3.5-MoE's short/long mscale) cannot be served here.
    EXL_CHECK(rope.attention_factor == r.attention_factor, kUnsupported,
              "cuda runner: the RoPE attention factor changes from {} to {} at length {}; not supported by the CUDA "
              "backend yet (--backend cpu)", r.attention_factor, rope.attention_factor, seq_len);
    if (rope.inv_freq == r.host) continue;
    r.host = rope.inv_freq;
    // Pageable source: the copy is staged before cudaMemcpyAsync returns, so the host vector may change afterwards.
    EXL_CUDA_CHECK(cudaMemcpyAsync(r.inv_freq.get(), r.host.data(), r.host.size() * 4, cudaMemcpyHostToDevice,
                                   stream_.get()));
  }
}

kernels::AttentionArgs CudaRunner::attention_args(const Layer& l, const model::AttentionSpec& a,
                                                  const StepView& v) const {
  kernels::AttentionArgs att;
  att.q = q_.as<__half>();
  att.out = attn_.as<__half>();
  att.k_pages = l.k_pages.as<__half>();
  att.v_pages = l.v_pages.as<__half>();
  att.num_pages = num_pages_;
  att.page_size = page_size_;
  att.num_seqs = v.num_seqs;
  att.query_start = v.query_start;
  att.context_len = v.context_len;
  att.block_table = v.block_table;
  att.max_pages_per_seq = v.max_pages_per_seq;
  att.num_heads = a.num_heads;
  att.num_kv_heads = a.num_kv_heads;
  att.head_dim = a.head_dim;
  att.scale = a.scale;
  att.sliding_window = a.sliding_window;
  att.softcap = a.softcap;
  return att;
}

bool CudaRunner::run_model(const StepView& v) {
  const int64_t T = v.num_tokens, H = spec_.hidden_size;
  kernels::EmbeddingArgs emb{embedding_.as<__half>(), config_.vocab_size, H, v.ids, T, x_.as<float>()};
  emb.scale = spec_.embed_scale;
  if (pos_embedding_.get() != nullptr) {
    emb.pos_table = pos_embedding_.as<__half>();
    emb.positions = v.positions;
    emb.num_positions = num_positions_;
  }
  kernels::launch_embedding(emb, stream_.get());
  // The fused one-token path (fused_, above).
  if (fused_ && T == 1 && v.num_seqs == 1 && v.decode_splits > 0) return run_fused(v);
  run_general(v);
  return false;
}

// The fused one-token path of Llama-pattern specs (fast_path_ok): every RMSNorm after the first layer's runs inside
// a GEMV, RoPE and the KV write inside the attention kernel.
bool CudaRunner::run_fused(const StepView& v) {
  const cudaStream_t st = stream_.get();
  const LinearContext ctx = linear_context();
  const int64_t T = v.num_tokens, H = spec_.hidden_size;
  const float eps = fused_eps_;
  const DeviceRope& rt = ropes_[0];
  for (size_t li = 0; li < layers_.size(); ++li) {
    const Layer& l = layers_[li];
    __half* const qkv_out[] = {q_.as<__half>(), k_.as<__half>(), v_.as<__half>()};
    if (li > 0) {
      // The previous down_proj added its output to x and wrote x * w and its partial sums of squares.
      // One copy when k and v read the same fragment order as q (share_qkv_; res2 below writes only q's).
      const bool share = share_qkv_[li];
      const float* const qkv_in[] = {xf32_q_.as<float>(), share ? xf32_q_.as<float>() : xf32_k_.as<float>(),
                                     share ? xf32_q_.as<float>() : xf32_v_.as<float>()};
      const kernels::FragNorm fn{norm_partials_b_.as<float>(), static_cast<int32_t>(layers_[li - 1].down.frag_blocks()),
                                 static_cast<int32_t>(H), eps};
      if (!(skip_ & kSkipQkv)) l.qkv.forward_frag(qkv_in, fn, qkv_out, nullptr, ctx);
    } else {
      // Only the first layer's norm runs on its own; it writes q/k/v's fragment-ordered inputs.
      kernels::AddRmsNormArgs norm{x_.as<float>(), nullptr, l.attn_norm.weight.as<float>(), xn_.as<__half>(), nullptr,
                                   T, H, eps};
      norm.frag[0] = l.q.frag_target(xf_q_.as<__half>());
      norm.frag[1] = l.k.frag_target(xf_k_.as<__half>());
      norm.frag[2] = l.v.frag_target(xf_v_.as<__half>());
      norm.num_frag = 3;
      kernels::launch_add_rms_norm(norm, st);
      const __half* const qkv_in[] = {xf_q_.as<__half>(), xf_k_.as<__half>(), xf_v_.as<__half>()};
      if (!(skip_ & kSkipQkv)) l.qkv.forward_frag(qkv_in, qkv_out, nullptr, ctx);
    }
    const model::AttentionSpec& as = spec_.layers[li].attn;
    if (as.q_norm.present()) kernels::launch_head_norm(q_.as<__half>(), as.num_heads, as.head_dim, l.q_norm.params(), st);
    if (as.k_norm.present())
      kernels::launch_head_norm(k_.as<__half>(), as.num_kv_heads, as.head_dim, l.k_norm.params(), st);
    kernels::AttentionArgs att = attention_args(l, as, v);
    att.out_frag = l.o.frag_target(xf_o_.as<__half>());
    att.rope = {k_.as<__half>(), v_.as<__half>(), l.k_pages.as<__half>(), l.v_pages.as<__half>(),
                rt.inv_freq.as<float>(), static_cast<int32_t>(rt.host.size()), rt.attention_factor};
    if (!(skip_ & kSkipAttn))
      kernels::launch_attention_decode(att, {v.decode_splits, attn_ws_.as<float>(), attn_counters_.as<uint32_t>()},
                                       st);
    __half* const gate_up_out[] = {gate_.as<__half>(), up_.as<__half>()};
    kernels::FragResidual res;
    res.x = x_.as<float>();
    res.weight = l.mlp_norm.weight.as<float>();
    res.partials = norm_partials_a_.as<float>();
    // gate and up read one copy when their fragment orders are the same (share_gate_up_).
    const bool share_gu = share_gate_up_[li];
    res.targets[0] = l.gate.frag_target32(xf32_gate_.as<float>());
    res.targets[1] = l.up.frag_target32(xf32_up_.as<float>());
    res.num_targets = share_gu ? 1 : 2;
    if (!(skip_ & kSkipO)) l.o.forward_frag(xf_o_.as<__half>(), nullptr, nullptr, o_.as<__half>(), &res, ctx);
    const float* const gate_up_in[] = {xf32_gate_.as<float>(),
                                       share_gu ? xf32_gate_.as<float>() : xf32_up_.as<float>()};
    const kernels::FragNorm fn{norm_partials_a_.as<float>(), static_cast<int32_t>(l.o.frag_blocks()),
                               static_cast<int32_t>(H), eps};
    const kernels::FragTarget down_in = l.down.frag_target(xf_down_.as<__half>());
    if (!(skip_ & kSkipGateUp)) l.gate_up.forward_frag(gate_up_in, fn, gate_up_out, &down_in, ctx);
    kernels::FragResidual res2;
    res2.x = x_.as<float>();
    res2.partials = norm_partials_b_.as<float>();
    if (li + 1 < layers_.size()) {
      const Layer& nl = layers_[li + 1];
      res2.weight = nl.attn_norm.weight.as<float>();
      res2.targets[0] = nl.q.frag_target32(xf32_q_.as<float>());
      res2.targets[1] = nl.k.frag_target32(xf32_k_.as<float>());
      res2.targets[2] = nl.v.frag_target32(xf32_v_.as<float>());
      res2.num_targets = share_qkv_[li + 1] ? 1 : 3;
    } else {
      res2.weight = final_norm_.weight.as<float>();  // the final norm runs on its own (no targets)
    }
    if (!(skip_ & kSkipDown))
      l.down.forward_frag(xf_down_.as<__half>(), nullptr, nullptr, o_.as<__half>(), &res2, ctx);
  }
  // The last down_proj already added its output to x.
  kernels::AddRmsNormArgs fin{x_.as<float>(), nullptr, final_norm_.weight.as<float>(), xn_.as<__half>(),
                              v.final_rows, v.num_final_rows, H, eps};
  const bool head_frag = head_frag_ && v.num_final_rows == 1;
  if (head_frag) {
    fin.frag[0] = head_.frag_target(xf_head_.as<__half>());
    fin.num_frag = 1;
  }
  kernels::launch_add_rms_norm(fin, st);
  return head_frag;
}

void CudaRunner::residual_norm(const Branches& b, const DeviceNorm& norm, const int32_t* rows, int64_t num_rows,
                               int64_t T) {
  const int64_t H = spec_.hidden_size;
  const cudaStream_t st = stream_.get();
  if (b.post == nullptr && b.branch1 == nullptr && b.scale == 1.0f && norm.plain_rms()) {
    // Plain add + RMSNorm (the Llama pattern): the dedicated kernel.
    kernels::launch_add_rms_norm({x_.as<float>(), b.branch0, norm.weight.as<float>(), xn_.as<__half>(), rows,
                                  num_rows, H, norm.eps}, st);
    return;
  }
  kernels::ResidualNormArgs r;
  r.x = x_.as<float>();
  r.branch0 = b.branch0;
  if (b.post != nullptr) r.branch0_norm = b.post->params();
  r.branch1 = b.branch1;
  r.residual_scale = b.scale;
  r.num_tokens = b.branch0 != nullptr || b.branch1 != nullptr ? T : 0;
  r.out_norm = norm.params();
  r.out = xn_.as<__half>();
  r.row_index = rows;
  r.num_rows = num_rows;
  r.hidden_size = H;
  kernels::launch_residual_norm(r, st);
}

void CudaRunner::run_gated(const CudaLinearGroup& gate_up, const CudaLinear& down, model::Activation act,
                           const __half* in, __half* out, int64_t T, __half* gate_buf, __half* up_buf) {
  const LinearContext ctx = linear_context();
  const int64_t I = down.in_features();
  // act(gate) * up -> down; SiLU's product is formed inside the down GEMV when that kernel can (few tokens).
  __half* const gate_up_out[] = {gate_buf, up_buf};
  gate_up.forward(in, gate_up_out, T, ctx);
  if (act == model::Activation::kSilu && down.fuses_swiglu(T)) {
    down.forward_swiglu(gate_buf, up_buf, out, T, ctx);
  } else {
    kernels::launch_act_mul({act_kind(act), gate_buf, up_buf, gate_buf, T * I}, stream_.get());
    down.forward(gate_buf, out, T, ctx);
  }
}

void CudaRunner::run_mlp(const Layer& l, const model::MlpSpec& spec, const __half* in, __half* out, int64_t T) {
  if (spec.type == model::MlpType::kMoe) {
    run_moe(*l.moe, spec, in, out, T);
  } else if (spec.type == model::MlpType::kGated) {
    run_gated(l.gate_up, l.down, spec.act, in, out, T, gate_.as<__half>(), up_.as<__half>());
  } else {
    // Plain: act(up) -> down.
    const LinearContext ctx = linear_context();
    l.up.forward(in, up_.as<__half>(), T, ctx);
    kernels::launch_act({act_kind(spec.act), up_.as<__half>(), T * l.up.out_features()}, stream_.get());
    l.down.forward(up_.as<__half>(), out, T, ctx);
  }
}

void CudaRunner::create_moe(Layer& l, const model::LayerWeights& lw, const model::LayerSpec& ls, size_t layer,
                            const LinearOptions& lopt) {
  const model::MoeSpec& ms = ls.mlp.moe;
  auto m = std::make_unique<MoeLayer>();
  const int64_t E = ms.num_experts;
  EXL_CHECK(static_cast<int64_t>(lw.experts.size()) == E && E > 0, kInvalidArgument,
            "cuda runner: layer {} has {} experts, its spec {}", layer, lw.experts.size(), E);
  m->router = CudaLinear::create(lw.router, lopt);
  EXL_CHECK(m->router.out_features() == E, kInvalidArgument, "cuda runner: layer {}: the router has {} outputs for {} "
            "experts", layer, m->router.out_features(), E);
  scratch_elements_ = std::max(scratch_elements_, m->router.scratch_elements_needed());
  const quant::WeightFormat fmt = lw.experts[0].up_proj.format;
  m->quant = fmt != quant::WeightFormat::kFloat;
  for (int64_t e = 0; e < E; ++e) {
    const model::ExpertWeights& ew = lw.experts[static_cast<size_t>(e)];
    for (const quant::LinearWeight* w : {&ew.gate_proj, &ew.up_proj, &ew.down_proj})
      EXL_CHECK((w->format != quant::WeightFormat::kFloat) == m->quant, kUnsupported,
                "cuda runner: layer {}: expert {} ({}) is stored as {} while expert 0 is {}; the CUDA backend needs "
                "one weight format for all experts of a layer", layer, e, w->key,
                w->format == quant::WeightFormat::kFloat ? "floating point" : "quantized",
                m->quant ? "quantized" : "floating point");
    m->gate.push_back(CudaLinear::create(ew.gate_proj, lopt));
    m->up.push_back(CudaLinear::create(ew.up_proj, lopt));
    m->down.push_back(CudaLinear::create(ew.down_proj, lopt));
    for (const CudaLinear* lin : {&m->gate.back(), &m->up.back(), &m->down.back()}) {
      scratch_elements_ = std::max(scratch_elements_, lin->scratch_elements_needed());
      EXL_CHECK(lin->in_features() == (lin == &m->down.back() ? m->gate[0].out_features() : spec_.hidden_size) &&
                    lin->out_features() == (lin == &m->down.back() ? spec_.hidden_size : m->gate[0].out_features()),
                kInvalidArgument, "cuda runner: layer {}: expert {} has a {}x{} matrix; every expert of a layer needs "
                "the shape of expert 0", layer, e, lin->in_features(), lin->out_features());
    }
  }
  m->inter = m->gate[0].out_features();
  for (int64_t e = 0; e < E; ++e) {
    m->gate_up.push_back(CudaLinearGroup::create({&m->gate[static_cast<size_t>(e)], &m->up[static_cast<size_t>(e)]}));
    scratch_elements_ = std::max(scratch_elements_, m->gate_up.back().scratch_elements_needed());
  }
  const std::vector<CudaLinear>* kinds[3] = {&m->gate, &m->up, &m->down};
  for (int k = 0; k < 3; ++k) {
    const std::vector<CudaLinear>& v = *kinds[k];
    if (m->quant) {
      std::vector<kernels::QuantTilesView> views;
      kernels::GemvExpertPart& part = m->parts[k];
      for (const CudaLinear& lin : v) {
        const kernels::QuantTilesView& qv = *lin.quant_view();
        EXL_CHECK(qv.width == v[0].quant_view()->width, kUnsupported,
                  "cuda runner: layer {}: experts' padded widths differ ({} vs {})", layer, qv.width,
                  v[0].quant_view()->width);
        views.push_back(qv);
        part.max_tiles = std::max(part.max_tiles, qv.num_tiles);
        const kernels::GemvSplitPlan& plan = *lin.quant_plan();
        for (int s = 0; s <= kernels::kGemvOneMaxSlices; ++s) {
          // 0 (unknown) anywhere makes the maximum unknown: the launch then uses its bound.
          const int32_t g = plan.one_max_groups_by_slices[s];
          part.max_groups_by_slices[s] =
              (&lin == &v[0] || part.max_groups_by_slices[s] > 0) && g > 0 ? std::max(part.max_groups_by_slices[s], g)
                                                                           : 0;
        }
      }
      m->views[k] = DeviceBuffer(views.size() * sizeof(kernels::QuantTilesView));
      m->views[k].upload(views.data(), m->views[k].bytes());
      part.views = m->views[k].as<kernels::QuantTilesView>();
      part.in_features = v[0].in_features();
      part.out_features = v[0].out_features();
      part.width = v[0].quant_view()->width;
    } else {
      std::vector<const __half*> w, b;
      bool any_bias = false;
      for (const CudaLinear& lin : v) {
        w.push_back(lin.f16_weight());
        b.push_back(lin.f16_bias());
        any_bias = any_bias || lin.f16_bias() != nullptr;
      }
      m->f16_w[k] = DeviceBuffer(w.size() * sizeof(void*));
      m->f16_w[k].upload(w.data(), m->f16_w[k].bytes());
      if (any_bias) {
        m->f16_b[k] = DeviceBuffer(b.size() * sizeof(void*));
        m->f16_b[k].upload(b.data(), m->f16_b[k].bytes());
      }
    }
  }
  if (ms.shared_expert) {
    m->shared = true;
    m->sh_gate = CudaLinear::create(lw.shared.gate_proj, lopt);
    m->sh_up = CudaLinear::create(lw.shared.up_proj, lopt);
    m->sh_down = CudaLinear::create(lw.shared.down_proj, lopt);
    m->sh_gate_up = CudaLinearGroup::create({&m->sh_gate, &m->sh_up});
    for (const CudaLinear* lin : {&m->sh_gate, &m->sh_up, &m->sh_down})
      scratch_elements_ = std::max(scratch_elements_, lin->scratch_elements_needed());
    scratch_elements_ = std::max(scratch_elements_, m->sh_gate_up.scratch_elements_needed());
    if (lw.shared_gate.out_features > 0) {
      m->gated_shared = true;
      m->shared_gate = CudaLinear::create(lw.shared_gate, lopt);
      scratch_elements_ = std::max(scratch_elements_, m->shared_gate.scratch_elements_needed());
    }
  }
  l.moe = std::move(m);
}

void CudaRunner::run_moe(const MoeLayer& m, const model::MlpSpec& spec, const __half* in, __half* out, int64_t T) {
  const cudaStream_t st = stream_.get();
  const LinearContext ctx = linear_context();
  const model::MoeSpec& ms = spec.moe;
  const int64_t E = ms.num_experts, K = ms.top_k, H = spec_.hidden_size, I = m.inter;
  __half* logits = moe_logits_.as<__half>();
  int32_t* ids = moe_ids_.as<int32_t>();
  __half* y = moe_y_.as<__half>();
  m.router.forward(in, logits, T, ctx);
  kernels::MoeRouteArgs ra;
  ra.logits = logits;
  ra.num_tokens = T;
  ra.num_experts = E;
  ra.top_k = K;
  ra.kind = ms.router_type == model::RouterType::kSoftmaxTopK   ? kernels::kRouteSoftmaxTopK
            : ms.router_type == model::RouterType::kTopKSoftmax ? kernels::kRouteTopKSoftmax
                                                                : kernels::kRouteSparseMixer;
  ra.renormalize = ms.renormalize;
  ra.renormalize_p = ms.renormalize_p;
  ra.jitter_eps = ms.jitter_eps;
  ra.ids = ids;
  ra.weights = moe_weights_.as<float>();
  kernels::launch_moe_route(ra, st);
  const int64_t slots = T * K;
  if (slots <= kMoeDeviceSlots) {
    // On the device: the chosen experts' gate and up for every slot, the activation, their down projections.
    __half* g = moe_gate_.as<__half>();
    __half* u = moe_up_.as<__half>();
    if (m.quant) {
      kernels::GemvExpertPart gu[2] = {m.parts[0], m.parts[1]};
      gu[0].y = g;
      gu[1].y = u;
      gu[0].y_stride = gu[1].y_stride = I;
      kernels::gemv_one_experts(gu, 2, ids, slots, in, K, gemv1_tuning_, st);
    } else {
      for (int k = 0; k < 2; ++k) {
        kernels::MoeGemvF16Args a;
        a.weights = m.f16_w[k].as<const __half*>();
        a.biases = m.f16_b[k].as<const __half*>();
        a.ids = ids;
        a.x = in;
        a.x_div = K;
        a.y = k == 0 ? g : u;
        a.num_slots = slots;
        a.n = I;
        a.k = H;
        kernels::launch_moe_gemv_f16(a, st);
      }
    }
    kernels::launch_act_mul({act_kind(spec.act), g, u, g, slots * I}, st);
    if (m.quant) {
      kernels::GemvExpertPart d = m.parts[2];
      d.y = y;
      d.y_stride = H;
      kernels::gemv_one_experts(&d, 1, ids, slots, g, 1, gemv1_tuning_, st);
    } else {
      kernels::MoeGemvF16Args a;
      a.weights = m.f16_w[2].as<const __half*>();
      a.biases = m.f16_b[2].as<const __half*>();
      a.ids = ids;
      a.x = g;
      a.x_div = 1;
      a.y = y;
      a.num_slots = slots;
      a.n = H;
      a.k = I;
      kernels::launch_moe_gemv_f16(a, st);
    }
  } else {
    // On the host: group the slots by expert, run each used expert once over its rows.
    int32_t* ids_host = moe_ids_host_.as<int32_t>();
    EXL_CUDA_CHECK(cudaMemcpyAsync(ids_host, ids, static_cast<size_t>(slots) * 4, cudaMemcpyDeviceToHost, st));
    stream_.synchronize();
    std::vector<int64_t> count(static_cast<size_t>(E) + 1, 0);
    for (int64_t s = 0; s < slots; ++s) {
      const int32_t e = ids_host[s];
      EXL_CHECK(e >= 0 && e < E, kInternal, "cuda runner: the router chose expert {} of {}", e, E);
      ++count[static_cast<size_t>(e) + 1];
    }
    for (int64_t e = 0; e < E; ++e) count[static_cast<size_t>(e) + 1] += count[static_cast<size_t>(e)];
    // Lists: token rows of every expert's slots (in slot order), then the slots themselves, both grouped by expert.
    int32_t* lists = moe_lists_host_.as<int32_t>();
    std::vector<int64_t> fill(count.begin(), count.end() - 1);
    for (int64_t s = 0; s < slots; ++s) {
      const int64_t at = fill[static_cast<size_t>(ids_host[s])]++;
      lists[at] = static_cast<int32_t>(s / K);
      lists[slots + at] = static_cast<int32_t>(s);
    }
    int32_t* dl = moe_lists_.as<int32_t>();
    EXL_CUDA_CHECK(cudaMemcpyAsync(dl, lists, static_cast<size_t>(2 * slots) * 4, cudaMemcpyHostToDevice, st));
    for (int64_t e = 0; e < E; ++e) {
      const int64_t b = count[static_cast<size_t>(e)], n = count[static_cast<size_t>(e) + 1] - b;
      if (n == 0) continue;
      kernels::launch_gather_rows(in, dl + b, n, H, moe_x_.as<__half>(), st);
      run_gated(m.gate_up[static_cast<size_t>(e)], m.down[static_cast<size_t>(e)], spec.act, moe_x_.as<__half>(),
                moe_out_.as<__half>(), n, moe_gate_.as<__half>(), moe_up_.as<__half>());
      kernels::launch_scatter_rows(moe_out_.as<__half>(), dl + slots + b, n, H, y, st);
    }
    // The host list buffer is rewritten by the next MoE layer only after its own synchronize (above), by which time
    // this upload has completed.
  }
  kernels::MoeCombineArgs c;
  c.expert_out = y;
  c.weights = moe_weights_.as<float>();
  c.num_tokens = T;
  c.top_k = K;
  c.hidden = H;
  c.out = out;
  if (m.shared) {
    run_gated(m.sh_gate_up, m.sh_down, spec.act, in, moe_sh_.as<__half>(), T, gate_.as<__half>(), up_.as<__half>());
    c.shared = moe_sh_.as<__half>();
    if (m.gated_shared) {
      m.shared_gate.forward(in, moe_sg_.as<__half>(), T, ctx);
      c.shared_gate = moe_sg_.as<__half>();
    }
  }
  kernels::launch_moe_combine(c, st);
}

// Every step outside the fused path, op by op in the CPU runner's order (cpu_runner.cpp forward()). The residual adds
// are fused into the norms: a layer's branch outputs stay pending until the next norm adds them to x (Branches).
void CudaRunner::run_general(const StepView& v) {
  const cudaStream_t st = stream_.get();
  const LinearContext ctx = linear_context();
  const int64_t T = v.num_tokens;
  Branches pending;  // nothing to add before the first layer
  for (size_t li = 0; li < layers_.size(); ++li) {
    const Layer& l = layers_[li];
    const model::LayerSpec& ls = spec_.layers[li];
    const model::AttentionSpec& as = ls.attn;
    const int64_t NH = as.num_heads, NKV = as.num_kv_heads, D = as.head_dim;
    // x += the previous layer's branches; h = attn_norm(x) in xn_.
    residual_norm(pending, l.attn_norm, nullptr, T, T);
    __half* const qkv_out[] = {q_.as<__half>(), k_.as<__half>(), v_.as<__half>()};
    l.qkv.forward(xn_.as<__half>(), qkv_out, T, ctx);
    if (as.clip_qkv > 0.0f) {
      kernels::launch_clamp(q_.as<__half>(), T * NH * D, as.clip_qkv, st);
      kernels::launch_clamp(k_.as<__half>(), T * NKV * D, as.clip_qkv, st);
      kernels::launch_clamp(v_.as<__half>(), T * NKV * D, as.clip_qkv, st);
    }
    if (as.q_norm.present()) kernels::launch_head_norm(q_.as<__half>(), T * NH, D, l.q_norm.params(), st);
    if (as.k_norm.present()) kernels::launch_head_norm(k_.as<__half>(), T * NKV, D, l.k_norm.params(), st);
    // RoPE with the layer's style and table (none: only the KV-cache write), then attention.
    kernels::RopeArgs rope;
    rope.q = q_.as<__half>();
    rope.k = k_.as<__half>();
    rope.v = v_.as<__half>();
    rope.num_tokens = T;
    rope.num_heads = NH;
    rope.num_kv_heads = NKV;
    rope.head_dim = D;
    rope.slots = {v.positions, v.token_seq};
    rope.cache = paged(l, v);
    rope.rotate = as.rope != model::RopeStyle::kNone;
    if (rope.rotate) {
      const DeviceRope& rt = ropes_[static_cast<size_t>(as.rope_table)];
      rope.inv_freq = rt.inv_freq.as<float>();
      rope.rotary_half = static_cast<int64_t>(rt.host.size());
      rope.attention_factor = rt.attention_factor;
      rope.interleaved = as.rope == model::RopeStyle::kGptj;
    }
    kernels::launch_rope(rope, st);
    const kernels::AttentionArgs att = attention_args(l, as, v);
    if (v.decode_splits > 0)
      kernels::launch_attention_decode(att, {v.decode_splits, attn_ws_.as<float>(), attn_counters_.as<uint32_t>()},
                                       st);
    else
      kernels::launch_attention_prefill(att, v.max_query_len, st);
    l.o.forward(attn_.as<__half>(), o_.as<__half>(), T, ctx);
    if (ls.parallel) {
      // Both branches read h; the next norm adds attn_post_norm(o) + mlp(h).
      run_mlp(l, ls.mlp, xn_.as<__half>(), mlp_out_.as<__half>(), T);
      pending = {o_.as<__half>(), l.attn_post_norm.kind != kernels::kNormNone ? &l.attn_post_norm : nullptr,
                 mlp_out_.as<__half>(), ls.residual_scale};
    } else {
      // x += r * attn_post_norm(o); h = mlp_norm(x); the MLP output (into o_, already consumed) stays pending.
      const Branches attn{o_.as<__half>(),
                          l.attn_post_norm.kind != kernels::kNormNone ? &l.attn_post_norm : nullptr, nullptr,
                          ls.residual_scale};
      residual_norm(attn, l.mlp_norm, nullptr, T, T);
      run_mlp(l, ls.mlp, xn_.as<__half>(), o_.as<__half>(), T);
      pending = {o_.as<__half>(), l.mlp_post_norm.kind != kernels::kNormNone ? &l.mlp_post_norm : nullptr, nullptr,
                 ls.residual_scale};
    }
  }
  // The last layer's branches, then the final norm of the rows that need logits.
  residual_norm(pending, final_norm_, v.final_rows, v.num_final_rows, T);
}

void CudaRunner::run_head(int64_t row0, int64_t rows) {
  head_.forward(xn_.as<__half>() + row0 * spec_.hidden_size, logits_.as<__half>(), rows, linear_context());
}

void CudaRunner::transform_logits(int64_t rows) {
  kernels::LogitsTransformArgs t;
  t.logits = logits_.as<__half>();
  t.rows = rows;
  t.vocab = config_.vocab_size;
  t.row_stride = config_.vocab_size;
  t.col_scale = head_row_scale_.as<float>();
  t.scale = spec_.logit_scale;
  t.softcap = spec_.final_softcap;
  kernels::launch_logits_transform(t, stream_.get());  // no launch when there is nothing to do
}

void CudaRunner::forward(std::span<const model::SequenceStep> seqs, model::LogitsFor which,
                         std::vector<float>* logits) {
  EXL_CHECK(logits != nullptr, kInvalidArgument, "forward: no logits output");
  EXL_CHECK(!seqs.empty(), kInvalidArgument, "forward: no sequences");
  EXL_CUDA_CHECK(cudaSetDevice(device_));
  int64_t max_end = 0, total = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const auto& q = seqs[s];
    const int64_t end = q.start_pos + static_cast<int64_t>(q.tokens.size());
    EXL_CHECK(!q.tokens.empty(), kInvalidArgument, "forward: sequence {} has no new tokens", s);
    EXL_CHECK(q.start_pos >= 0, kInvalidArgument, "forward: sequence {} has start_pos {}", s, q.start_pos);
    EXL_CHECK(end <= static_cast<int64_t>(q.pages.size()) * page_size_, kInvalidArgument,
              "forward: sequence {} of length {} needs {} pages, its block table has {}", s, end,
              kernels::ceil_div(end, page_size_), q.pages.size());
    EXL_CHECK(static_cast<int64_t>(q.pages.size()) <= num_pages_, kInvalidArgument,
              "forward: sequence {} has {} pages, the cache has {}", s, q.pages.size(), num_pages_);
    for (size_t p = 0; p < q.pages.size(); ++p)
      EXL_CHECK(q.pages[p] >= 0 && q.pages[p] < num_pages_, kInvalidArgument,
                "forward: block table entry {} of sequence {} is page {}, outside the pool of {} pages", p, s,
                q.pages[p], num_pages_);
    for (size_t t = 0; t < q.tokens.size(); ++t)
      EXL_CHECK(q.tokens[t] >= 0 && q.tokens[t] < config_.vocab_size, kInvalidArgument,
                "forward: token id {} at position {} of sequence {} is out of range (vocab_size {})", q.tokens[t], t, s,
                config_.vocab_size);
    if (num_positions_ > 0)
      EXL_CHECK(end <= num_positions_, kInvalidArgument,
                "forward: sequence {} of length {} exceeds the model's {} learned positions", s, end, num_positions_);
    max_end = std::max(max_end, end);
    total += static_cast<int64_t>(q.tokens.size());
  }
  set_rope_length(max_end);
  logits->clear();
  logits->reserve(static_cast<size_t>((which == model::LogitsFor::kAllTokens ? total : static_cast<int64_t>(seqs.size())) *
                                      config_.vocab_size));
  std::vector<Piece> pieces;
  int64_t in_chunk = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const int64_t n = static_cast<int64_t>(seqs[s].tokens.size());
    for (int64_t off = 0; off < n;) {
      const int64_t take = std::min(n - off, max_tokens_ - in_chunk);
      pieces.push_back({s, off, take});
      off += take;
      in_chunk += take;
      if (in_chunk == max_tokens_) {
        run_chunk(seqs, pieces, which, logits);
        pieces.clear();
        in_chunk = 0;
      }
    }
  }
  if (!pieces.empty()) run_chunk(seqs, pieces, which, logits);
}

void CudaRunner::run_chunk(std::span<const model::SequenceStep> seqs, const std::vector<Piece>& pieces,
                           model::LogitsFor which, std::vector<float>* logits) {
  const int64_t S = static_cast<int64_t>(pieces.size());
  int64_t T = 0, max_pages = 1, max_q = 0, max_ctx = 0;
  for (const Piece& p : pieces) {
    T += p.count;
    max_pages = std::max<int64_t>(max_pages, static_cast<int64_t>(seqs[p.seq].pages.size()));
    max_q = std::max(max_q, p.count);
    max_ctx = std::max(max_ctx, seqs[p.seq].start_pos + p.offset + p.count);
  }
  ensure_meta(static_cast<size_t>(4 * T + 2 * S + 1 + S * max_pages));
  int32_t* m = meta_host_.as<int32_t>();
  int32_t* ids = m;
  int32_t* positions = ids + T;
  int32_t* token_seq = positions + T;
  int32_t* rows = token_seq + T;
  int32_t* query_start = rows + T;
  int32_t* context_len = query_start + S + 1;
  int32_t* table = context_len + S;
  int64_t num_rows = 0, t = 0;
  query_start[0] = 0;
  for (int64_t s = 0; s < S; ++s) {
    const Piece& p = pieces[static_cast<size_t>(s)];
    const model::SequenceStep& q = seqs[p.seq];
    for (int64_t i = 0; i < p.count; ++i, ++t) {
      ids[t] = q.tokens[static_cast<size_t>(p.offset + i)];
      positions[t] = static_cast<int32_t>(q.start_pos + p.offset + i);
      token_seq[t] = static_cast<int32_t>(s);
      if (which == model::LogitsFor::kAllTokens) rows[num_rows++] = static_cast<int32_t>(t);
    }
    if (which == model::LogitsFor::kLastToken && p.offset + p.count == static_cast<int64_t>(q.tokens.size()))
      rows[num_rows++] = static_cast<int32_t>(t - 1);
    query_start[s + 1] = static_cast<int32_t>(t);
    context_len[s] = static_cast<int32_t>(q.start_pos + p.offset + p.count);
    for (int64_t pg = 0; pg < max_pages; ++pg)
      table[s * max_pages + pg] = pg < static_cast<int64_t>(q.pages.size()) ? q.pages[static_cast<size_t>(pg)] : 0;
  }
  const size_t ints = static_cast<size_t>(table + S * max_pages - m);
  const cudaStream_t st = stream_.get();
  EXL_CUDA_CHECK(cudaMemcpyAsync(meta_.get(), m, ints * 4, cudaMemcpyHostToDevice, st));
  const int32_t* dm = meta_.as<int32_t>();
  StepView v;
  v.num_tokens = T;
  v.num_seqs = S;
  v.ids = dm;
  v.positions = dm + T;
  v.token_seq = dm + 2 * T;
  v.final_rows = dm + 3 * T;
  v.num_final_rows = num_rows;
  v.query_start = dm + 4 * T;
  v.context_len = v.query_start + S + 1;
  v.block_table = v.context_len + S;
  v.max_pages_per_seq = max_pages;
  v.max_query_len = max_q;
  if (max_q == 1) {
    const int64_t per_split = S * num_heads_ * (head_dim_ + 2);
    const int want = kernels::choose_decode_splits(S, num_kv_heads_, max_ctx, num_sms_);
    v.decode_splits = static_cast<int>(std::clamp<int64_t>(attn_ws_floats_ / per_split, 1, want));
  }
  const bool head_frag = run_model(v);
  const int64_t V = config_.vocab_size;
  for (int64_t r0 = 0; r0 < num_rows; r0 += head_rows_) {
    const int64_t n = std::min(head_rows_, num_rows - r0);
    if (head_frag)
      head_.forward_frag(xf_head_.as<__half>(), logits_.as<__half>(), linear_context());
    else
      run_head(r0, n);
    transform_logits(n);
    EXL_CUDA_CHECK(cudaMemcpyAsync(logits_host_.get(), logits_.get(), static_cast<size_t>(n * V) * 2,
                                   cudaMemcpyDeviceToHost, st));
    stream_.synchronize();
    const uint16_t* h = logits_host_.as<uint16_t>();
    const size_t base = logits->size();
    logits->resize(base + static_cast<size_t>(n * V));
    float* out = logits->data() + base;
    for (int64_t i = 0; i < n * V; ++i) out[i] = half_to_float(h[i]);
  }
  stream_.synchronize();  // the metadata staging buffer is reused by the next chunk
}

void CudaRunner::decode_step_body() {
  int32_t* state = decode_state_.as<int32_t>();
  StepView v;
  v.num_tokens = 1;
  v.num_seqs = 1;
  v.ids = state;
  v.positions = state + 1;
  v.context_len = state + 2;
  v.block_table = decode_table_.as<int32_t>();
  v.max_pages_per_seq = num_pages_;
  v.max_query_len = 1;
  // CudaTuning::decode_splits, when set, replaces the chosen count (the workspace holds kMaxDecodeSplits).
  v.decode_splits = decode_splits_ > 0 ? decode_splits_
                                       : kernels::choose_decode_splits(1, num_kv_heads_,
                                                                       num_pages_ * page_size_, num_sms_);
  v.final_rows = decode_row_.as<int32_t>();
  v.num_final_rows = 1;
  // timing_skip "head" leaves out whichever head launch the step has (the fragment-ordered one, or an FP16 head's).
  const bool head_frag = run_model(v);
  if (!(skip_ & kSkipHead)) {
    if (head_frag)
      head_.forward_frag(xf_head_.as<__half>(), logits_.as<__half>(), linear_context());
    else
      run_head(0, 1);
    transform_logits(1);  // before sampling
  }
  kernels::SampleArgs s;
  s.logits = logits_.as<__half>();
  s.vocab_size = config_.vocab_size;
  s.row_stride = config_.vocab_size;
  s.num_rows = 1;
  s.params = decode_params_.as<kernels::DeviceSamplingParams>();
  s.tokens = state;
  s.advance = state + 1;
  s.num_advance = 2;
  kernels::launch_sample(s, stream_.get());
}

model::DecodeStats CudaRunner::decode(const model::DecodeRequest& r, const model::TokenCallback& on_token) {
  EXL_CHECK(r.pages != nullptr, kInvalidArgument, "decode: no block table");
  EXL_CHECK(r.max_new_tokens >= 0 && r.start_pos >= 0, kInvalidArgument,
            "decode: start_pos ({}) and max_new_tokens ({}) must not be negative", r.start_pos, r.max_new_tokens);
  EXL_CHECK(r.last_token >= 0 && r.last_token < config_.vocab_size, kInvalidArgument,
            "decode: token id {} is out of range (vocab_size {})", r.last_token, config_.vocab_size);
  const std::vector<int32_t>& pages = *r.pages;
  const int64_t end = r.start_pos + r.max_new_tokens;
  EXL_CHECK(end <= static_cast<int64_t>(pages.size()) * page_size_, kInvalidArgument,
            "decode: {} + {} new tokens need {} pages, the block table has {}", r.start_pos, r.max_new_tokens,
            kernels::ceil_div(end, page_size_), pages.size());
  EXL_CHECK(static_cast<int64_t>(pages.size()) <= num_pages_, kInvalidArgument,
            "decode: the block table has {} pages, the cache {}", pages.size(), num_pages_);
  if (num_positions_ > 0)
    EXL_CHECK(end <= num_positions_, kInvalidArgument,
              "decode: {} + {} new tokens exceed the model's {} learned positions", r.start_pos, r.max_new_tokens,
              num_positions_);
  for (size_t p = 0; p < pages.size(); ++p)
    EXL_CHECK(pages[p] >= 0 && pages[p] < num_pages_, kInvalidArgument,
              "decode: block table entry {} is page {}, outside the pool of {} pages", p, pages[p], num_pages_);
  model::DecodeStats stats;
  if (r.max_new_tokens == 0) return stats;
  EXL_CUDA_CHECK(cudaSetDevice(device_));
  const auto t0 = std::chrono::steady_clock::now();
  const cudaStream_t st = stream_.get();

  // Stage state, sampling settings and block table through pinned memory.
  char* host = static_cast<char*>(decode_host_.get());
  int32_t* tokens_host = reinterpret_cast<int32_t*>(host);
  auto* params_host = reinterpret_cast<kernels::DeviceSamplingParams*>(host + 2 * sizeof(int32_t));
  int32_t* table_host = reinterpret_cast<int32_t*>(host + 2 * sizeof(int32_t) + sizeof(kernels::DeviceSamplingParams));
  int32_t* state_host = table_host + num_pages_;
  stream_.synchronize();
  state_host[0] = r.last_token;
  state_host[1] = static_cast<int32_t>(r.start_pos);
  state_host[2] = static_cast<int32_t>(r.start_pos + 1);
  state_host[3] = 0;
  *params_host = {r.sampling.temperature, r.sampling.top_k, r.sampling.top_p, 0, r.sampling.seed, 0};
  std::fill(table_host, table_host + num_pages_, 0);
  std::copy(pages.begin(), pages.end(), table_host);
  EXL_CUDA_CHECK(cudaMemcpyAsync(decode_state_.get(), state_host, 4 * sizeof(int32_t), cudaMemcpyHostToDevice, st));
  EXL_CUDA_CHECK(cudaMemcpyAsync(decode_params_.get(), params_host, sizeof(*params_host), cudaMemcpyHostToDevice, st));
  EXL_CUDA_CHECK(cudaMemcpyAsync(decode_table_.get(), table_host, static_cast<size_t>(num_pages_) * 4,
                                 cudaMemcpyHostToDevice, st));
  set_rope_length(r.start_pos + 1);
  if (!decode_graph_.valid()) decode_graph_ = CudaGraph::capture(st, [this] { decode_step_body(); });
  stats.launches_per_token = static_cast<double>(decode_graph_.kernel_node_count());

  auto enqueue = [&](int64_t i) {
    set_rope_length(r.start_pos + i + 1);
    decode_graph_.launch(st);
    EXL_CUDA_CHECK(cudaMemcpyAsync(tokens_host + i % 2, decode_state_.get(), sizeof(int32_t), cudaMemcpyDeviceToHost, st));
    token_ready_[i % 2].record(st);
  };
  enqueue(0);
  for (int64_t i = 0; i < r.max_new_tokens; ++i) {
    if (i + 1 < r.max_new_tokens) enqueue(i + 1);  // the GPU runs a step ahead of the host
    EXL_CUDA_CHECK(cudaEventSynchronize(token_ready_[i % 2].get()));
    const int32_t token = tokens_host[i % 2];
    ++stats.tokens;
    const bool stop = std::find(r.stop_tokens.begin(), r.stop_tokens.end(), token) != r.stop_tokens.end();
    if (!on_token(token) || stop) break;
  }
  stream_.synchronize();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return stats;
}

}  // namespace

std::unique_ptr<model::Runner> make_cuda_runner(const model::ModelWeights& weights, const CudaRunnerOptions& options) {
  validate_tuning(options.tuning);  // before the runner's members touch the device
  return std::make_unique<CudaRunner>(weights, options);
}

}  // namespace exl::cuda
