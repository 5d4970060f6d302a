// Which specs the CUDA runner accepts and which take its fused one-token fast path (backend/cuda/spec_support.h,
// header-only and CUDA-free, so this runs in every build): specs of the tiny random presets, and variations of the
// Llama one that each leave the fast path for the general path.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <unistd.h>

#include "backend/cuda/spec_support.h"
#include "core/error.h"
#include "io/model_config.h"
#include "model/model_spec.h"
#include "model/random_model.h"

namespace exl {
namespace {

namespace fs = std::filesystem;

model::ModelSpec preset_spec(const std::string& preset) {
  const fs::path dir = fs::temp_directory_path() / ("exl_spec_support_" + preset + "_" + std::to_string(::getpid()));
  model::RandomModelOptions o;
  o.preset = preset;
  o.format = model::RandomFormat::kFp16;
  model::write_random_model(dir, o);
  model::ModelSpec spec = model::build_model_spec(io::load_model_config(dir));
  fs::remove_all(dir);
  return spec;
}

// The kUnsupported message of check_supported, or empty when it accepts.
std::string refusal(const model::ModelSpec& spec) {
  try {
    cuda::check_supported(spec, "test");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported) << e.what();
    return e.what();
  }
  return {};
}

TEST(CudaSpecSupport, LlamaTakesTheFastPath) {
  const model::ModelSpec spec = preset_spec("tiny");
  EXPECT_EQ(refusal(spec), "");
  EXPECT_TRUE(cuda::fast_path_ok(spec)) << cuda::fast_path_refusal(spec);
}

TEST(CudaSpecSupport, Gemma2RunsTheGeneralPath) {
  const model::ModelSpec spec = preset_spec("tiny-gemma2");
  EXPECT_EQ(refusal(spec), "");
  EXPECT_FALSE(cuda::fast_path_ok(spec));
  EXPECT_EQ(cuda::fast_path_refusal(spec), "an embedding scale");  // the first of Gemma 2's options
}

TEST(CudaSpecSupport, MixtureOfExpertsRunsTheGeneralPath) {
  const model::ModelSpec spec = preset_spec("tiny-qwen3-moe");
  EXPECT_EQ(refusal(spec), "");
  EXPECT_EQ(cuda::fast_path_refusal(spec), "layer 0: an MLP other than gated SiLU");
  // More experts or a larger top-k than the routing kernel takes are refused, naming both.
  model::ModelSpec m = spec;
  m.layers[1].mlp.moe.num_experts = 512;
  const std::string why = refusal(m);
  EXPECT_NE(why.find("layer 1: a mixture of 512 experts with top-2 routing"), std::string::npos) << why;
  EXPECT_NE(why.find("Qwen3MoeForCausalLM"), std::string::npos) << why;
}

// Qwen2 (q/k/v biases) and Qwen3 (per-head q/k RMSNorms) take the fused one-token path.
TEST(CudaSpecSupport, QwenTakesTheFastPath) {
  for (const char* preset : {"tiny-qwen2", "tiny-qwen3"}) {
    const model::ModelSpec spec = preset_spec(preset);
    EXPECT_EQ(refusal(spec), "") << preset;
    EXPECT_TRUE(cuda::fast_path_ok(spec)) << preset << ": " << cuda::fast_path_refusal(spec);
  }
  EXPECT_TRUE(preset_spec("tiny-qwen2").layers[0].attn.q.bias);
  EXPECT_TRUE(preset_spec("tiny-qwen3").layers[0].attn.q_norm.present());
}

// Each option outside the Llama pattern, alone, moves the spec to the general path; none of them is refused.
TEST(CudaSpecSupport, EachDenseOptionLeavesTheFastPathOnly) {
  const model::ModelSpec base = preset_spec("tiny");
  ASSERT_TRUE(cuda::fast_path_ok(base));
  struct Variation {
    const char* reason;  // the expected fast_path_refusal (after "layer 0: " for layer options)
    void (*apply)(model::ModelSpec&);
  };
  const Variation variations[] = {
      {"an embedding scale", [](model::ModelSpec& m) { m.embed_scale = 16.0f; }},
      {"learned position embeddings", [](model::ModelSpec& m) { m.pos_embed_key = "wpe"; }},
      {"a row-normalized head", [](model::ModelSpec& m) { m.head_normalize = true; }},
      {"a logit scale", [](model::ModelSpec& m) { m.logit_scale = 0.5f; }},
      {"final logit soft-capping", [](model::ModelSpec& m) { m.final_softcap = 30.0f; }},
      {"several RoPE tables", [](model::ModelSpec& m) { m.ropes.push_back(m.ropes[0]); }},
      {"a final norm other than RMSNorm with weight",
       [](model::ModelSpec& m) { m.final_norm.type = model::NormType::kLayer; }},
      {"layer 0: a norm other than RMSNorm with weight", [](model::ModelSpec& m) { m.layers[0].attn_norm.bias = true; }},
      {"layer 0: norm eps that differ", [](model::ModelSpec& m) { m.layers[0].mlp_norm.eps = 1e-3f; }},
      {"layer 0: post-norms", [](model::ModelSpec& m) { m.layers[0].mlp_post_norm = m.layers[0].mlp_norm; }},
      {"layer 0: a parallel attention/MLP block", [](model::ModelSpec& m) { m.layers[0].parallel = true; }},
      {"layer 0: a residual scale", [](model::ModelSpec& m) { m.layers[0].residual_scale = 0.2f; }},
      {"layer 0: attention soft-capping", [](model::ModelSpec& m) { m.layers[0].attn.softcap = 50.0f; }},
      {"layer 0: q/k/v clipping", [](model::ModelSpec& m) { m.layers[0].attn.clip_qkv = 8.0f; }},
      {"layer 0: a RoPE style other than NeoX", [](model::ModelSpec& m) { m.layers[0].attn.rope = model::RopeStyle::kGptj; }},
      {"layer 0: a RoPE style other than NeoX", [](model::ModelSpec& m) { m.layers[0].attn.rope = model::RopeStyle::kNone; }},
      {"layer 0: an MLP other than gated SiLU",
       [](model::ModelSpec& m) { m.layers[0].mlp.act = model::Activation::kGeluTanh; }},
      {"layer 0: an MLP other than gated SiLU", [](model::ModelSpec& m) { m.layers[0].mlp.type = model::MlpType::kPlain; }},
  };
  for (const Variation& v : variations) {
    model::ModelSpec m = base;
    v.apply(m);
    EXPECT_EQ(refusal(m), "") << v.reason;
    EXPECT_EQ(cuda::fast_path_refusal(m), v.reason);
  }
}

// What has no kernel is refused, naming it.
TEST(CudaSpecSupport, RefusesWhatHasNoKernel) {
  const model::ModelSpec base = preset_spec("tiny");
  {
    model::ModelSpec m = base;
    m.layers[1].attn.num_kv_heads = 1;
    EXPECT_NE(refusal(m).find("layer 1: attention shapes that differ between layers"), std::string::npos);
  }
  {
    model::ModelSpec m = base;
    for (auto& l : m.layers) {
      l.attn.num_heads = 68;
      l.attn.num_kv_heads = 2;
    }
    EXPECT_NE(refusal(m).find("34 query heads per KV head"), std::string::npos) << refusal(m);
  }
  {
    model::ModelSpec m = base;
    m.hidden_size = 32768;
    EXPECT_NE(refusal(m).find("hidden size"), std::string::npos);
  }
  {
    // Phi-3.5-MoE-style longrope with a short and a long mscale: the factor changes at the original context. The
    // same table without them keeps one factor and runs.
    model::ModelSpec m = base;
    io::RopeParameters& rp = m.ropes[0].params;
    rp.type = io::RopeType::kLongrope;
    rp.original_max_position_embeddings = 1024;
    const size_t half = static_cast<size_t>(m.ropes[0].rotary_dim() / 2);
    rp.short_factor.assign(half, 1.0);
    rp.long_factor.assign(half, 4.0);
    m.max_seq_len = m.ropes[0].max_position_embeddings = 4096;
    EXPECT_EQ(refusal(m), "");
    rp.short_mscale = 1.0;
    rp.long_mscale = 1.2;
    EXPECT_NE(refusal(m).find("RoPE attention factor that changes"), std::string::npos) << refusal(m);
  }
  {
    model::ModelSpec m = base;
    m.layers[1].mlp.type = model::MlpType::kMoe;
    m.layers[1].mlp.moe.num_experts = 8;
    m.layers[1].mlp.moe.top_k = 33;
    EXPECT_NE(refusal(m).find("layer 1: a mixture of 8 experts with top-33 routing"), std::string::npos) << refusal(m);
  }
}

}  // namespace
}  // namespace exl
