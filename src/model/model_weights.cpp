#include "model/model_weights.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <optional>

#include "core/error.h"
#include "core/fp16.h"
#include "io/safetensors.h"
#include "quant/select_columns.h"

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

std::vector<const quant::LinearWeight*> LayerWeights::linears() const {
  std::vector<const quant::LinearWeight*> out;
  auto add = [&](const quant::LinearWeight& w) {
    if (w.in_features > 0) out.push_back(&w);
  };
  for (const auto* w : {&q_proj, &k_proj, &v_proj, &o_proj, &gate_proj, &up_proj, &down_proj, &router}) add(*w);
  for (const auto& e : experts)
    for (const auto* w : {&e.gate_proj, &e.up_proj, &e.down_proj}) add(*w);
  for (const auto* w : {&shared.gate_proj, &shared.up_proj, &shared.down_proj, &shared_gate}) add(*w);
  return out;
}

size_t LayerWeights::nbytes() const {
  size_t b = 0;
  for (const auto* n : {&attn_norm, &attn_post_norm, &mlp_norm, &mlp_post_norm, &q_norm, &k_norm}) b += n->nbytes();
  for (const auto* w : linears()) b += w->stored_bytes();
  return b;
}

size_t ModelWeights::total_bytes() const {
  size_t bytes = embedding.nbytes() + (pos_embedding.ndim() > 0 ? pos_embedding.nbytes() : 0) + final_norm.nbytes() +
                 head.stored_bytes();
  for (const auto& l : layers) bytes += l.nbytes();
  return bytes;
}

namespace {

// Resolves tensor and module names through the spec's key aliases.
class Loader {
 public:
  Loader(const std::filesystem::path& dir, const io::TensorStore& store, const ModelSpec& spec,
         const quant::LinearLoadOptions& opts)
      : dir_(dir), store_(store), spec_(spec), opts_(opts) {}

  std::optional<std::string> resolve_tensor(const std::string& name) const {
    if (store_.has(name)) return name;
    for (const auto& [from, to] : spec_.key_aliases) {
      const size_t at = name.find(from);
      if (at == std::string::npos) continue;
      std::string alt = name;
      alt.replace(at, from.size(), to);
      if (store_.has(alt)) return alt;
    }
    return std::nullopt;
  }

  std::optional<std::string> resolve_module(const std::string& key, bool bare_ok = false) const {
    for (const char* suffix : {".q_weight", ".qweight", ".weight"}) {
      if (auto t = resolve_tensor(key + suffix)) return t->substr(0, t->size() - std::strlen(suffix));
    }
    // Parameters stacked over experts are stored under the bare name (DBRX ffn.experts.mlp.w1).
    if (bare_ok) return resolve_tensor(key);
    return std::nullopt;
  }

  NormWeights norm(const NormSpec& n) const {
    NormWeights w;
    if (!n.present()) return w;
    if (n.weight) {
      const std::string name = n.key + ".weight";
      const auto stored = resolve_tensor(name);
      EXL_CHECK(stored.has_value(), kNotFound, "{}: tensor '{}' not found ({} norm of {} elements)", dir_.string(),
                name, norm_type_name(n.type), n.size);
      // One weight row per head may be stored [rows, size] also when there is one row (Cohere k_norm with one KV
      // head).
      const bool two_d = n.weight_rows > 1 || store_.info(*stored).shape.size() == 2;
      const Shape shape = two_d ? Shape{n.weight_rows, n.size} : Shape{n.size};
      w.weight = store_.read_f32(*stored, shape);
      if (n.weight_offset != 0.0f)
        for (float& v : w.weight) v += n.weight_offset;
    }
    if (n.bias) {
      const std::string name = n.key + ".bias";
      const auto stored = resolve_tensor(name);
      EXL_CHECK(stored.has_value(), kNotFound, "{}: tensor '{}' not found (LayerNorm bias of {} elements)",
                dir_.string(), name, n.size);
      w.bias = store_.read_f32(*stored, {n.size});
    }
    return w;
  }

  quant::LinearWeight linear(const LinearSpec& spec) const {
    std::string tried;
    for (const TensorSource& src : spec.sources) {
      const auto key = resolve_module(src.key, src.expert >= 0);
      if (!key) {
        tried += (tried.empty() ? "" : ", ") + src.key;
        continue;
      }
      quant::LinearWeight lw = load_source(spec, src, *key);
      if (spec.bias)
        EXL_CHECK(!lw.bias.empty(), kNotFound, "{}: linear layer '{}' has no bias, but the architecture needs one "
                  "(looked for {}.bias)", dir_.string(), *key, *key);
      return lw;
    }
    fail(ErrorKind::kNotFound, "{}: no weights for linear layer '{}' (looked for .q_weight, .qweight and .weight under {})",
         dir_.string(), spec.key(), tried);
  }

 private:
  quant::LinearWeight load_source(const LinearSpec& spec, const TensorSource& src, const std::string& key) const {
    const int64_t stored_out = src.columns.empty() ? spec.out : (src.stored_out > 0 ? src.stored_out : spec.out);
    quant::LinearWeight lw;
    if (src.expert >= 0 || src.stored_kn) {
      lw = float_source(spec, src, key, stored_out);
    } else {
      if (!src.columns.empty()) check_fused_size(spec, src, key, stored_out);
      lw = quant::load_linear(store_, key, spec.in, stored_out, opts_);
    }
    if (!src.columns.empty()) {
      std::vector<quant::ColumnRange> ranges;
      int64_t total = 0;
      for (const ColumnRange& r : src.columns) {
        ranges.push_back({r.start, r.count});
        total += r.count;
      }
      EXL_CHECK(total == spec.out, kInternal, "{}: the column ranges of '{}' select {} columns, the layer has {}",
                dir_.string(), key, total, spec.out);
      lw = quant::select_output_columns(lw, ranges, key);
    }
    return lw;
  }

  // A fused tensor must have exactly the output columns the config's split needs.
  void check_fused_size(const LinearSpec& spec, const TensorSource& src, const std::string& key, int64_t stored_out) const {
    int64_t found = -1;
    if (store_.has(key + ".weight")) {
      const auto& shape = store_.info(key + ".weight").shape;
      if (shape.size() == 2) found = src.stored_kn ? shape[1] : shape[0];
    } else if (store_.has(key + ".qweight")) {
      const auto& shape = store_.info(key + ".qweight").shape;
      if (shape.size() == 2) found = shape[1];
    } else if (store_.has(key + ".q_invperm") && store_.has(key + ".q_weight")) {
      found = -2;  // EXL2 pads the width: load_exl2 checks it against stored_out
    }
    EXL_CHECK(found == -2 || found == stored_out, kCorruptFile,
              "{}: fused tensor '{}' has {} output columns, but the config's split needs {} (this slice: {} columns "
              "for {} inputs)", dir_.string(), key, found, stored_out, spec.out, spec.in);
  }

  // Float tensors stacked over experts ([E, R, C] or [E * R, C]) and/or stored input-major [K, N]: the slice as a
  // float LinearWeight [stored_out, in] in the stored dtype.
  quant::LinearWeight float_source(const LinearSpec& spec, const TensorSource& src, const std::string& key,
                                   int64_t stored_out) const {
    const std::string name = store_.has(key + ".weight") ? key + ".weight" : key;
    EXL_CHECK(store_.has(name), kUnsupported, "{}: '{}' is stored {} in a quantized format, which exl cannot slice "
              "(only float tensors can be)", dir_.string(), key, src.expert >= 0 ? "stacked over experts" : "input-major");
    const TensorView v = store_.view(name);
    EXL_CHECK(v.dtype == DType::kF32 || v.dtype == DType::kF16 || v.dtype == DType::kBF16, kCorruptFile,
              "{}: tensor '{}' has dtype {}, expected a float type", dir_.string(), name, dtype_name(v.dtype));
    // The 2-D matrix as stored: [rows, cols] with rows = out (or in, when input-major).
    const int64_t rows = src.stored_kn ? spec.in : stored_out, cols = src.stored_kn ? stored_out : spec.in;
    const int64_t E = src.expert >= 0 ? src.num_experts : 1;
    const int64_t want = E * rows * cols;
    EXL_CHECK(v.numel() == want && (v.shape.size() == 2 || v.shape.size() == 3) && v.shape.back() == cols,
              kCorruptFile, "{}: tensor '{}' has shape {}, expected {} x [{}, {}]{}", dir_.string(), name,
              shape_str(v.shape), E, rows, cols,
              src.expert >= 0 ? fmt::format(" (expert {} of {} stacked)", src.expert, E) : std::string());
    const size_t es = dtype_size(v.dtype);
    const auto* base = static_cast<const std::byte*>(v.data) +
                       static_cast<size_t>(std::max<int64_t>(src.expert, 0) * rows * cols) * es;
    Tensor t(v.dtype, {stored_out, spec.in});
    auto* out = static_cast<std::byte*>(t.raw());
    if (src.stored_kn) {
      for (int64_t n = 0; n < stored_out; ++n)
        for (int64_t k = 0; k < spec.in; ++k)
          std::memcpy(out + static_cast<size_t>(n * spec.in + k) * es, base + static_cast<size_t>(k * cols + n) * es, es);
    } else {
      std::memcpy(out, base, static_cast<size_t>(rows * cols) * es);
    }
    quant::LinearWeight lw;
    lw.key = key;
    lw.format = quant::WeightFormat::kFloat;
    lw.in_features = spec.in;
    lw.out_features = stored_out;
    lw.float_weight = std::move(t);
    if (src.expert < 0 && store_.has(key + ".bias")) lw.bias = store_.read_f32(key + ".bias", {stored_out});
    return lw;
  }

  const std::filesystem::path& dir_;
  const io::TensorStore& store_;
  const ModelSpec& spec_;
  quant::LinearLoadOptions opts_;
};

// The layer index of a tensor name, if it sits under a numbered layer container ("layers.N.", "blocks.N.", "h.N.").
std::optional<int64_t> layer_of(const std::string& name) {
  for (const char* c : {"layers.", "blocks.", "h."}) {
    size_t at = 0;
    while ((at = name.find(c, at)) != std::string::npos) {
      const bool boundary = at == 0 || name[at - 1] == '.';
      size_t p = at + std::strlen(c);
      size_t q = p;
      while (q < name.size() && std::isdigit(static_cast<unsigned char>(name[q]))) ++q;
      if (boundary && q > p && q < name.size() && name[q] == '.') return std::stoll(name.substr(p, q - p));
      at = p;
    }
  }
  return std::nullopt;
}

}  // namespace

ModelWeights ModelWeights::load(const std::filesystem::path& dir, const ProgressSink& progress,
                                const ModelOverrides& overrides) {
  ModelWeights m;
  m.config = io::load_model_config(dir);
  m.spec = build_model_spec(m.config, overrides);
  const io::ModelConfig& c = m.config;
  const ModelSpec& s = m.spec;
  const io::TensorStore store = io::TensorStore::open_dir(dir);
  quant::LinearLoadOptions opts;
  if (c.gptq_checkpoint_format == "gptq_v2") opts.gptq_zero_format = quant::GptqZeroFormat::kV2;
  const Loader ld(dir, store, s, opts);
  const int64_t H = s.hidden_size;

  const std::string embed_name = s.embed_key + ".weight";
  if (auto e = ld.resolve_tensor(embed_name)) {
    m.embedding = store.read_float_tensor(*e, {s.vocab_size, H});
  } else if (auto h = ld.resolve_tensor(s.head.key() + ".weight"); s.tied && h) {
    m.embedding = store.read_float_tensor(*h, {s.vocab_size, H});  // tied: the head holds it
  } else {
    fail(ErrorKind::kNotFound, "{}: tensor '{}' not found{}", dir.string(), embed_name,
         s.tied ? fmt::format(" (nor the tied '{}.weight')", s.head.key()) : std::string());
  }
  if (!s.pos_embed_key.empty()) {
    const auto p = ld.resolve_tensor(s.pos_embed_key + ".weight");
    EXL_CHECK(p.has_value(), kNotFound, "{}: tensor '{}.weight' (learned position embeddings) not found", dir.string(),
              s.pos_embed_key);
    m.pos_embedding = store.read_float_tensor(*p, {s.max_positions, H});
  }
  const int64_t total = s.num_layers + 2;
  for (int64_t i = 0; i < s.num_layers; ++i) {
    if (progress) progress("load", i + 1, total);
    const LayerSpec& ls = s.layers[static_cast<size_t>(i)];
    LayerWeights l;
    l.attn_norm = ld.norm(ls.attn_norm);
    l.attn_post_norm = ld.norm(ls.attn_post_norm);
    l.mlp_norm = ld.norm(ls.mlp_norm);
    l.mlp_post_norm = ld.norm(ls.mlp_post_norm);
    l.q_norm = ld.norm(ls.attn.q_norm);
    l.k_norm = ld.norm(ls.attn.k_norm);
    l.q_proj = ld.linear(ls.attn.q);
    l.k_proj = ld.linear(ls.attn.k);
    l.v_proj = ld.linear(ls.attn.v);
    l.o_proj = ld.linear(ls.attn.o);
    const MlpSpec& mlp = ls.mlp;
    switch (mlp.type) {
      case MlpType::kGated:
        l.gate_proj = ld.linear(mlp.gate);
        [[fallthrough]];
      case MlpType::kPlain:
        l.up_proj = ld.linear(mlp.up);
        l.down_proj = ld.linear(mlp.down);
        break;
      case MlpType::kMoe: {
        l.router = ld.linear(mlp.moe.router);
        for (const ExpertSpec& e : mlp.moe.experts)
          l.experts.push_back({ld.linear(e.gate), ld.linear(e.up), ld.linear(e.down)});
        if (mlp.moe.shared_expert) {
          l.shared = {ld.linear(mlp.moe.shared.gate), ld.linear(mlp.moe.shared.up), ld.linear(mlp.moe.shared.down)};
          if (mlp.moe.shared_gate.present()) l.shared_gate = ld.linear(mlp.moe.shared_gate);
        }
        break;
      }
    }
    m.layers.push_back(std::move(l));
  }
  m.final_norm = ld.norm(s.final_norm);
  m.head = ld.linear(s.head);
  if (s.head_normalize) {
    const std::vector<float> w = m.head.to_f32_nk();
    m.head_row_scale.resize(static_cast<size_t>(s.vocab_size));
    for (int64_t n = 0; n < s.vocab_size; ++n) {
      double sum = 0;
      for (int64_t k = 0; k < H; ++k) sum += static_cast<double>(w[n * H + k]) * w[n * H + k];
      // F.normalize: x / max(||x||, 1e-12)
      m.head_row_scale[static_cast<size_t>(n)] = static_cast<float>(1.0 / std::max(std::sqrt(sum), 1e-12));
    }
  }
  if (progress) progress("load", total, total);
  // A layer beyond num_hidden_layers means the config disagrees with the file.
  for (const auto& name : store.names()) {
    const auto layer = layer_of(name);
    EXL_CHECK(!layer || *layer < s.num_layers, kCorruptFile,
              "{}: tensor '{}' belongs to layer {} but config.json says num_hidden_layers = {}", dir.string(), name,
              *layer, s.num_layers);
  }
  return m;
}

}  // namespace exl::model
