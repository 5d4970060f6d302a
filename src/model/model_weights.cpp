#include "model/model_weights.h"

#include <fmt/format.h>

#include "core/error.h"
#include "core/fp16.h"
#include "io/safetensors.h"

namespace exl::model {

std::vector<float> to_f32(const Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    switch (t.dtype()) {
      case DType::kF32: out[i] = t.data<float>()[i]; break;
      case DType::kF16: out[i] = half_to_float(t.data<uint16_t>()[i]); break;
      case DType::kBF16: out[i] = bf16_to_float(t.data<uint16_t>()[i]); break;
      default: fail(ErrorKind::kInternal, "to_f32: tensor dtype {} is not a float type", dtype_name(t.dtype()));
    }
  }
  return out;
}

size_t ModelWeights::total_bytes() const {
  size_t bytes = embedding.nbytes() + final_norm.nbytes() + head.stored_bytes();
  for (const auto& l : layers) {
    bytes += l.attn_norm.nbytes() + l.mlp_norm.nbytes();
    for (const auto* lw : {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj})
      bytes += lw->stored_bytes();
  }
  return bytes;
}

ModelWeights ModelWeights::load(const std::filesystem::path& dir, const ProgressSink& progress) {
  ModelWeights m;
  m.config = io::load_model_config(dir);
  const io::ModelConfig& c = m.config;
  m.arch = &find_architecture(c.architecture);
  EXL_CHECK(c.hidden_act == "silu", kUnsupported, "{}/config.json: hidden_act '{}' is not supported for {} (supported: silu)",
            dir.string(), c.hidden_act, c.architecture);
  if (c.sliding_window && !m.arch->supports_sliding_window) {
    // Llama configs sometimes carry a null/unused sliding_window; a real value on Llama is not something HF uses.
    m.config.sliding_window.reset();
  }
  const io::TensorStore store = io::TensorStore::open_dir(dir);
  const ArchitectureSpec& a = *m.arch;
  const int64_t H = c.hidden_size, I = c.intermediate_size, D = c.head_dim;
  quant::LinearLoadOptions opts;
  if (c.gptq_checkpoint_format == "gptq_v2") opts.gptq_zero_format = quant::GptqZeroFormat::kV2;

  const std::string embed_name = a.embed_key + ".weight";
  if (store.has(embed_name)) {
    m.embedding = store.read_float_tensor(embed_name, {c.vocab_size, H});
  } else if (c.tie_word_embeddings && store.has(a.head_key + ".weight")) {
    m.embedding = store.read_float_tensor(a.head_key + ".weight", {c.vocab_size, H});  // tied: head holds it
  } else {
    fail(ErrorKind::kNotFound, "{}: tensor '{}' not found{}", dir.string(), embed_name,
         c.tie_word_embeddings ? fmt::format(" (nor the tied '{}.weight')", a.head_key) : std::string());
  }
  const int64_t total = c.num_layers + 2;
  for (int64_t i = 0; i < c.num_layers; ++i) {
    if (progress) progress("load", i + 1, total);
    const std::string p = a.layer_prefix + std::to_string(i) + ".";
    LayerWeights l;
    l.attn_norm = store.read_float_tensor(p + a.attn_norm + ".weight", {H});
    l.mlp_norm = store.read_float_tensor(p + a.mlp_norm + ".weight", {H});
    l.q_proj = quant::load_linear(store, p + a.q_proj, H, c.num_heads * D, opts);
    l.k_proj = quant::load_linear(store, p + a.k_proj, H, c.num_kv_heads * D, opts);
    l.v_proj = quant::load_linear(store, p + a.v_proj, H, c.num_kv_heads * D, opts);
    l.o_proj = quant::load_linear(store, p + a.o_proj, c.num_heads * D, H, opts);
    l.gate_proj = quant::load_linear(store, p + a.gate_proj, H, I, opts);
    l.up_proj = quant::load_linear(store, p + a.up_proj, H, I, opts);
    l.down_proj = quant::load_linear(store, p + a.down_proj, I, H, opts);
    m.layers.push_back(std::move(l));
  }
  m.final_norm = store.read_float_tensor(a.final_norm_key + ".weight", {H});
  quant::LinearLoadOptions head_opts = opts;
  if (c.tie_word_embeddings) head_opts.alt_key = a.embed_key;
  m.head = quant::load_linear(store, a.head_key, H, c.vocab_size, head_opts);
  if (progress) progress("load", total, total);
  // A layer beyond num_hidden_layers means the config disagrees with the file.
  const std::string extra = a.layer_prefix + std::to_string(c.num_layers) + ".";
  for (const auto& name : store.names()) {
    EXL_CHECK(name.rfind(extra, 0) != 0, kCorruptFile,
              "{}: tensor '{}' belongs to layer {} but config.json says num_hidden_layers = {}", dir.string(), name,
              c.num_layers, c.num_layers);
  }
  return m;
}

}  // namespace exl::model
