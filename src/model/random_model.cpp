#include "model/random_model.h"

#include <algorithm>
#include <fstream>
#include <functional>
#include <numeric>
#include <random>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fp16.h"
#include "core/thread_pool.h"
#include "io/model_config.h"
#include "model/model_spec.h"
#include "quant/exl2_pack.h"
#include "tensor/tensor.h"

namespace exl::model {
namespace {

struct Preset {
  std::string name;
  std::string architecture, model_type;
  int64_t vocab, hidden, intermediate, layers, heads, kv_heads, head_dim, max_pos;
  double rope_theta;
  bool llama3_rope, tied;
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();  // architecture-specific config keys
};

const std::vector<Preset>& presets() {
  using J = nlohmann::ordered_json;
  static const std::vector<Preset> all = {
      {"llama3-8b", "LlamaForCausalLM", "llama", 128256, 4096, 14336, 32, 32, 8, 128, 131072, 500000.0, true, false},
      {"llama2-7b", "LlamaForCausalLM", "llama", 32000, 4096, 11008, 32, 32, 32, 128, 4096, 10000.0, false, false},
      {"llama3-70b", "LlamaForCausalLM", "llama", 128256, 8192, 28672, 80, 64, 8, 128, 131072, 500000.0, true, false},
      {"llama3.2-1b", "LlamaForCausalLM", "llama", 128256, 2048, 8192, 16, 32, 8, 64, 131072, 500000.0, true, true},
      {"tiny", "LlamaForCausalLM", "llama", 2048, 256, 512, 2, 4, 2, 64, 4096, 10000.0, false, false},
      {"qwen2.5-7b", "Qwen2ForCausalLM", "qwen2", 152064, 3584, 18944, 28, 28, 4, 128, 32768, 1000000.0, false, false,
       J{{"use_sliding_window", false}, {"sliding_window", 131072}, {"max_window_layers", 28}}},
      {"gemma2-9b", "Gemma2ForCausalLM", "gemma2", 256000, 3584, 14336, 42, 16, 8, 256, 8192, 10000.0, false, true,
       J{{"hidden_activation", "gelu_pytorch_tanh"}, {"hidden_act", "gelu_pytorch_tanh"},
         {"query_pre_attn_scalar", 256}, {"sliding_window", 4096}, {"attn_logit_softcapping", 50.0},
         {"final_logit_softcapping", 30.0}}},
      {"mixtral-8x7b", "MixtralForCausalLM", "mixtral", 32000, 4096, 14336, 32, 32, 8, 128, 32768, 1000000.0, false,
       false, J{{"num_local_experts", 8}, {"num_experts_per_tok", 2}}},
      {"qwen3-30b-a3b", "Qwen3MoeForCausalLM", "qwen3_moe", 151936, 2048, 6144, 48, 32, 4, 128, 40960, 1000000.0, false,
       false, J{{"num_experts", 128}, {"num_experts_per_tok", 8}, {"moe_intermediate_size", 768},
                {"norm_topk_prob", true}, {"decoder_sparse_step", 1}, {"mlp_only_layers", J::array()}}},
      // Small shapes of the same architectures, for tests.
      {"tiny-qwen3-moe", "Qwen3MoeForCausalLM", "qwen3_moe", 2048, 256, 512, 2, 4, 2, 64, 4096, 1000000.0, false, false,
       J{{"num_experts", 8}, {"num_experts_per_tok", 2}, {"moe_intermediate_size", 128}, {"norm_topk_prob", true}}},
      {"tiny-qwen2", "Qwen2ForCausalLM", "qwen2", 2048, 256, 512, 2, 4, 2, 64, 4096, 1000000.0, false, false,
       J{{"use_sliding_window", false}}},
      {"tiny-qwen3", "Qwen3ForCausalLM", "qwen3", 2048, 256, 512, 2, 4, 2, 64, 4096, 1000000.0, false, false},
      {"tiny-gemma2", "Gemma2ForCausalLM", "gemma2", 2048, 256, 512, 2, 4, 2, 64, 4096, 10000.0, false, true,
       J{{"hidden_activation", "gelu_pytorch_tanh"}, {"query_pre_attn_scalar", 64}, {"sliding_window", 16},
         {"attn_logit_softcapping", 50.0}, {"final_logit_softcapping", 30.0}}},
  };
  return all;
}

// A tensor to write: its header entry and a generator that fills its bytes.
struct TensorPlan {
  std::string name;
  DType dtype;
  Shape shape;
  std::function<void(void* out, ThreadPool& pool)> fill;
  size_t nbytes() const { return static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype); }
};

uint64_t mix(uint64_t x) {  // splitmix64
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t name_seed(const std::string& name, uint64_t seed) {
  uint64_t h = seed;
  for (char c : name) h = mix(h ^ static_cast<unsigned char>(c));
  return h;
}

// Random words in parallel chunks, deterministic per tensor.
void fill_random_words(uint32_t* out, int64_t n, uint64_t seed, ThreadPool& pool) {
  pool.parallel_for(n, [&](int64_t b, int64_t e) {
    uint64_t s = mix(seed ^ static_cast<uint64_t>(b));
    for (int64_t i = b; i < e; ++i) {
      s = mix(s);
      out[i] = static_cast<uint32_t>(s);
    }
  }, 1 << 16);
}

// Uniform fp16 values in ±scale, never exactly zero.
void fill_random_half(uint16_t* out, int64_t n, float scale, uint64_t seed, ThreadPool& pool) {
  pool.parallel_for(n, [&](int64_t b, int64_t e) {
    uint64_t s = mix(seed ^ static_cast<uint64_t>(b));
    for (int64_t i = b; i < e; ++i) {
      s = mix(s);
      float u = static_cast<float>(s >> 40) / static_cast<float>(1 << 24) * 2.0f - 1.0f;
      if (u == 0.0f) u = 0.5f;
      out[i] = float_to_half(u * scale);
    }
  }, 1 << 16);
}

TensorPlan half_tensor(const std::string& name, Shape shape, float scale, uint64_t seed) {
  return {name, DType::kF16, shape, [=](void* out, ThreadPool& pool) {
            fill_random_half(static_cast<uint16_t*>(out), shape_numel(shape), scale, name_seed(name, seed), pool);
          }};
}

TensorPlan const_tensor(const std::string& name, int64_t n, float value) {
  return {name, DType::kF16, {n}, [=](void* out, ThreadPool&) {
            std::fill_n(static_cast<uint16_t*>(out), n, float_to_half(value));
          }};
}

// perm_key names the input permutation: matrices that read one input (q/k/v, gate/up) get one permutation, as in
// the files ExLlamaV2 writes (its act-order comes from the input's Hessian).
void add_exl2(std::vector<TensorPlan>& plans, const std::string& key, int64_t K, int64_t N,
              const quant::Exl2PackOptions& options, uint64_t seed, const std::string& perm_key) {
  const auto groups = quant::plan_groups(K, options);
  const int64_t W = (N + 31) / 32 * 32;
  std::vector<int16_t> q_groups;
  int64_t packed = 0;
  for (const auto& g : groups) {
    q_groups.push_back(static_cast<int16_t>(g.bits));
    q_groups.push_back(static_cast<int16_t>(packed));
    packed += g.rows * g.bits / 32;
  }
  EXL_CHECK(packed <= 32767, kUnsupported, "random model: {} needs {} packed rows; EXL2 allows 32767", key, packed);
  const int64_t G = static_cast<int64_t>(groups.size());
  plans.push_back({key + ".q_weight", DType::kI32, {packed, W}, [=](void* out, ThreadPool& pool) {
                     fill_random_words(static_cast<uint32_t*>(out), packed * W, name_seed(key + "w", seed), pool);
                   }});
  plans.push_back({key + ".q_scale", DType::kI32, {G, W / 8}, [=](void* out, ThreadPool& pool) {
                     fill_random_words(static_cast<uint32_t*>(out), G * W / 8, name_seed(key + "s", seed), pool);
                   }});
  plans.push_back({key + ".q_scale_max", DType::kF16, {G}, [=](void* out, ThreadPool&) {
                     // Steps around 0.01 / 2^(b-1): weights of magnitude ~0.01 whatever the width.
                     std::mt19937_64 rng(name_seed(key + "m", seed));
                     for (int64_t g = 0; g < G; ++g) {
                       const float base = 0.02f / static_cast<float>(1 << (groups[g].bits - 1));
                       static_cast<uint16_t*>(out)[g] =
                           float_to_half(base * (0.75f + 0.5f * static_cast<float>(rng() % 1000) / 1000.0f));
                     }
                   }});
  plans.push_back({key + ".q_groups", DType::kI16, {2 * G}, [=](void* out, ThreadPool&) {
                     std::copy(q_groups.begin(), q_groups.end(), static_cast<int16_t*>(out));
                   }});
  plans.push_back({key + ".q_invperm", DType::kI32, {K}, [=](void* out, ThreadPool&) {
                     auto* p = static_cast<int32_t*>(out);
                     std::iota(p, p + K, 0);
                     std::mt19937_64 rng(name_seed(perm_key + "p", seed));
                     std::shuffle(p, p + K, rng);
                   }});
}

void add_gptq(std::vector<TensorPlan>& plans, const std::string& key, int64_t K, int64_t N, int64_t gs,
              uint64_t seed) {
  EXL_CHECK(K % gs == 0 && N % 32 == 0, kUnsupported, "random model: GPTQ {} needs K ({}) divisible by the group "
            "size {} and N ({}) by 32", key, K, gs, N);
  const int64_t G = K / gs;
  plans.push_back({key + ".qweight", DType::kI32, {K / 8, N}, [=](void* out, ThreadPool& pool) {
                     fill_random_words(static_cast<uint32_t*>(out), K / 8 * N, name_seed(key + "w", seed), pool);
                   }});
  plans.push_back({key + ".qzeros", DType::kI32, {G, N / 8}, [=](void* out, ThreadPool&) {
                     std::fill_n(static_cast<uint32_t*>(out), G * N / 8, 0x77777777u);  // symmetric: z_eff = 8
                   }});
  plans.push_back(half_tensor(key + ".scales", {G, N}, 0.003f, seed));
  plans.push_back({key + ".g_idx", DType::kI32, {K}, [=](void* out, ThreadPool&) {
                     for (int64_t k = 0; k < K; ++k) static_cast<int32_t*>(out)[k] = static_cast<int32_t>(k / gs);
                   }});
}

}  // namespace

std::vector<std::string> random_model_presets() {
  std::vector<std::string> names;
  for (const auto& p : presets()) names.push_back(p.name);
  return names;
}

void write_random_model(const std::filesystem::path& dir, const RandomModelOptions& o, const ProgressSink& progress) {
  const Preset* preset = nullptr;
  for (const auto& p : presets())
    if (p.name == o.preset) preset = &p;
  if (!preset) {
    std::string list;
    for (const auto& n : random_model_presets()) list += (list.empty() ? "" : ", ") + n;
    fail(ErrorKind::kInvalidArgument, "--preset '{}' is not known (known: {})", o.preset, list);
  }
  const Preset& p = *preset;
  std::filesystem::create_directories(dir);

  nlohmann::ordered_json config = {
      {"architectures", {p.architecture}},     {"model_type", p.model_type},
      {"hidden_size", p.hidden},               {"intermediate_size", p.intermediate},
      {"num_hidden_layers", p.layers},         {"num_attention_heads", p.heads},
      {"num_key_value_heads", p.kv_heads},     {"head_dim", p.head_dim},
      {"vocab_size", p.vocab},                 {"max_position_embeddings", p.max_pos},
      {"rms_norm_eps", 1e-5},                  {"hidden_act", "silu"},
      {"tie_word_embeddings", p.tied},         {"bos_token_id", 1},
      {"eos_token_id", 2},                     {"torch_dtype", "float16"}};
  config["rope_theta"] = p.rope_theta;
  if (p.llama3_rope) {
    config["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                              {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  }
  for (const auto& [k, v] : p.extra.items()) config[k] = v;
  if (o.format == RandomFormat::kExl2) {
    config["quantization_config"] = {{"quant_method", "exl2"}, {"bits", o.bpw}, {"head_bits", o.head_bits},
                                     {"note", "random weights made by exl make-random-model"}};
  } else if (o.format == RandomFormat::kGptq) {
    config["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}, {"group_size", o.gptq_group_size}};
  }
  // The tensors follow the architecture's ModelSpec: every linear at its first (split) source key.
  const ModelSpec spec = build_model_spec(io::parse_model_config(nlohmann::json::parse(config.dump()), "preset " + p.name));
  std::ofstream(dir / "config.json") << config.dump(2) << "\n";
  std::ofstream(dir / "generation_config.json") << nlohmann::json{{"bos_token_id", 1}, {"eos_token_id", 2}}.dump(2)
                                                << "\n";

  const uint64_t seed = o.seed;
  const quant::Exl2PackOptions layer_opts = quant::exl2_options_for_bpw(o.bpw);
  quant::Exl2PackOptions head_opts;
  head_opts.bits = {{o.head_bits, 1.0, 128}};
  std::vector<TensorPlan> plans;
  plans.push_back(half_tensor(spec.embed_key + ".weight", {p.vocab, p.hidden}, 0.02f, seed));
  if (!spec.pos_embed_key.empty())
    plans.push_back(half_tensor(spec.pos_embed_key + ".weight", {spec.max_positions, p.hidden}, 0.02f, seed));
  auto norm = [&](const NormSpec& n) {
    if (!n.present()) return;
    // Unit effective weight (Gemma's offset norms store w = 0).
    if (n.weight) plans.push_back(const_tensor(n.key + ".weight", n.weight_rows * n.size, 1.0f - n.weight_offset));
    if (n.bias) plans.push_back(const_tensor(n.key + ".bias", n.size, 0.0f));
  };
  // perm_key: matrices that read one input share an EXL2 act-order permutation, as in ExLlamaV2's files.
  auto lin = [&](const LinearSpec& l, const std::string& perm_key, bool quantize) {
    const std::string& key = l.key();
    const RandomFormat f = quantize ? o.format : RandomFormat::kFp16;
    switch (f) {
      case RandomFormat::kExl2: add_exl2(plans, key, l.in, l.out, layer_opts, seed, perm_key); break;
      case RandomFormat::kGptq: add_gptq(plans, key, l.in, l.out, o.gptq_group_size, seed); break;
      case RandomFormat::kFp16: plans.push_back(half_tensor(key + ".weight", {l.out, l.in}, 0.02f, seed)); break;
    }
    if (l.bias) plans.push_back(half_tensor(key + ".bias", {l.out}, 0.02f, seed));
  };
  for (int64_t i = 0; i < p.layers; ++i) {
    const LayerSpec& l = spec.layers[static_cast<size_t>(i)];
    const std::string pre = "layer" + std::to_string(i) + ".";
    for (const NormSpec* n : {&l.attn_norm, &l.attn_post_norm, &l.mlp_norm, &l.mlp_post_norm, &l.attn.q_norm,
                              &l.attn.k_norm})
      norm(*n);
    lin(l.attn.q, pre + "qkv", true);
    lin(l.attn.k, pre + "qkv", true);
    lin(l.attn.v, pre + "qkv", true);
    lin(l.attn.o, l.attn.o.key(), true);
    if (l.mlp.type == MlpType::kMoe) {
      lin(l.mlp.moe.router, l.mlp.moe.router.key(), false);  // routers stay FP16, as in ExLlamaV2's files
      for (size_t e = 0; e < l.mlp.moe.experts.size(); ++e) {
        const ExpertSpec& x = l.mlp.moe.experts[e];
        const std::string ep = pre + "expert" + std::to_string(e);
        lin(x.gate, ep, true);
        lin(x.up, ep, true);
        lin(x.down, x.down.key(), true);
      }
      if (l.mlp.moe.shared_expert) {
        lin(l.mlp.moe.shared.gate, pre + "shared", true);
        lin(l.mlp.moe.shared.up, pre + "shared", true);
        lin(l.mlp.moe.shared.down, l.mlp.moe.shared.down.key(), true);
        if (l.mlp.moe.shared_gate.present()) lin(l.mlp.moe.shared_gate, "", false);
      }
    } else {
      if (l.mlp.type == MlpType::kGated) lin(l.mlp.gate, pre + "gate_up", true);
      lin(l.mlp.up, pre + "gate_up", true);
      lin(l.mlp.down, l.mlp.down.key(), true);
    }
  }
  norm(spec.final_norm);
  // The head: EXL2 files always carry a quantized lm_head (also when tied); GPTQ and FP16 keep it FP16.
  if (o.format == RandomFormat::kExl2) {
    add_exl2(plans, spec.head.key(), p.hidden, p.vocab, head_opts, seed, "lm_head");
  } else if (!p.tied) {
    plans.push_back(half_tensor(spec.head.key() + ".weight", {p.vocab, p.hidden}, 0.02f, seed));
  }

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["__metadata__"] = {{"format", "pt"}, {"generator", "exl make-random-model"}};
  size_t offset = 0, largest = 0;
  for (const auto& t : plans) {
    header[t.name] = {{"dtype", std::string(dtype_name(t.dtype))}, {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
    largest = std::max(largest, t.nbytes());
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) text.push_back(' ');
  const auto path = dir / "model.safetensors";
  const auto tmp = path.string() + ".tmp";
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  EXL_CHECK(out.good(), kInvalidArgument, "{}: cannot open for writing", tmp);
  const uint64_t len = text.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  ThreadPool pool;
  std::vector<char> buffer(largest);
  for (size_t i = 0; i < plans.size(); ++i) {
    plans[i].fill(buffer.data(), pool);
    out.write(buffer.data(), static_cast<std::streamsize>(plans[i].nbytes()));
    EXL_CHECK(out.good(), kInvalidArgument, "{}: write failed at tensor '{}' (disk full?)", tmp, plans[i].name);
    if (progress) progress("write", static_cast<long long>(i + 1), static_cast<long long>(plans.size()));
  }
  out.close();
  std::filesystem::rename(tmp, path);
}

}  // namespace exl::model
