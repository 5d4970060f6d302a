#include "io/model_config.h"

#include <climits>
#include <cmath>

#include "core/error.h"
#include "core/json_util.h"

namespace exl::io {
namespace {

using nlohmann::json;

// Field readers: a present field of the wrong type is an error naming the field.
int64_t get_int(const json& j, const std::string& key, const std::string& source, std::optional<int64_t> dflt) {
  if (!j.contains(key) || j[key].is_null()) {
    EXL_CHECK(dflt.has_value(), kInvalidArgument, "{}: required field '{}' is missing", source, key);
    return *dflt;
  }
  const json& v = j[key];
  // A float is accepted when it is a whole number of magnitude below 9.2e18, just inside the int64 range (checked
  // before the cast: casting an out-of-range double is undefined). Unsigned values above INT64_MAX are rejected.
  const bool whole_float = v.is_number_float() && std::abs(v.get<double>()) < 9.2e18 &&
                           v.get<double>() == std::trunc(v.get<double>());
  const bool fits_int = v.is_number_integer() && !(v.is_number_unsigned() && v.get<uint64_t>() > INT64_MAX);
  EXL_CHECK(fits_int || whole_float, kInvalidArgument, "{}: field '{}': expected an integer, found {}", source, key,
            v.dump());
  return fits_int ? v.get<int64_t>() : static_cast<int64_t>(v.get<double>());
}

double get_double(const json& j, const std::string& key, const std::string& source, double dflt) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  EXL_CHECK(j[key].is_number(), kInvalidArgument, "{}: field '{}': expected a number, found {}", source, key,
            j[key].dump());
  return j[key].get<double>();
}

std::optional<double> get_opt_double(const json& j, const std::string& key, const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  return get_double(j, key, source, 0.0);
}

bool get_bool(const json& j, const std::string& key, const std::string& source, bool dflt) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  EXL_CHECK(j[key].is_boolean(), kInvalidArgument, "{}: field '{}': expected true/false, found {}", source, key,
            j[key].dump());
  return j[key].get<bool>();
}

void append_ids(const json& v, std::vector<int64_t>* out, const std::string& source, const std::string& key) {
  auto add = [&](const json& x) {
    EXL_CHECK(x.is_number_integer(), kInvalidArgument, "{}: field '{}': expected an integer id or a list of ids, found {}",
              source, key, v.dump());
    int64_t id = x.get<int64_t>();
    for (int64_t e : *out)
      if (e == id) return;
    out->push_back(id);
  };
  if (v.is_null()) return;
  if (v.is_array()) {
    for (const auto& x : v) add(x);
  } else {
    add(v);
  }
}

DType parse_torch_dtype(const std::string& s, const std::string& source) {
  if (s == "float16" || s == "torch.float16" || s == "half") return DType::kF16;
  if (s == "bfloat16" || s == "torch.bfloat16") return DType::kBF16;
  if (s == "float32" || s == "torch.float32" || s == "float") return DType::kF32;
  fail(ErrorKind::kUnsupported, "{}: dtype '{}' is not supported (supported: float16, bfloat16, float32)", source, s);
}

std::vector<double> get_doubles(const json& j, const std::string& key, const std::string& source) {
  std::vector<double> out;
  if (!j.contains(key) || j[key].is_null()) return out;
  EXL_CHECK(j[key].is_array(), kInvalidArgument, "{}: field '{}': expected a list of numbers, found {}", source, key,
            j[key].dump());
  for (const auto& v : j[key]) {
    EXL_CHECK(v.is_number(), kInvalidArgument, "{}: field '{}': expected a list of numbers, found {}", source, key,
              j[key].dump());
    out.push_back(v.get<double>());
  }
  return out;
}

// The first of `keys` present (not null) in j, or "".
std::string first_key(const json& j, std::initializer_list<const char*> keys) {
  for (const char* k : keys)
    if (j.contains(k) && !j[k].is_null()) return k;
  return {};
}

}  // namespace

RopeParameters parse_rope_parameters(const json& params_in, const json& config, const std::string& source) {
  RopeParameters rope;
  EXL_CHECK(params_in.is_null() || params_in.is_object(), kInvalidArgument,
            "{}: rope parameters: expected an object or null, found {}", source, params_in.dump());
  const json params = params_in.is_object() ? params_in : json::object();
  rope.theta = get_double(config, "rope_theta", source, 10000.0);
  rope.theta = get_double(params, "rope_theta", source + ": rope_parameters", rope.theta);
  std::string type = "default";
  const char* type_key = params.contains("rope_type") ? "rope_type" : "type";
  if (params.contains(type_key) && !params[type_key].is_null()) {
    EXL_CHECK(params[type_key].is_string(), kInvalidArgument, "{}: rope '{}': expected a string, found {}", source,
              type_key, params[type_key].dump());
    type = params[type_key].get<std::string>();
  }
  const std::string psrc = source + ": rope parameters";
  if (type == "default") {
    rope.type = RopeType::kDefault;
  } else if (type == "linear") {
    rope.type = RopeType::kLinear;
  } else if (type == "dynamic") {
    rope.type = RopeType::kDynamic;
  } else if (type == "yarn") {
    rope.type = RopeType::kYarn;
  } else if (type == "llama3") {
    rope.type = RopeType::kLlama3;
  } else if (type == "longrope" || type == "su") {
    rope.type = RopeType::kLongrope;
  } else {
    fail(ErrorKind::kUnsupported,
         "{}: rope type '{}' is not supported (supported: default, linear, dynamic, yarn, llama3, longrope, su)",
         source, type);
  }
  rope.factor = get_double(params, "factor", psrc, 1.0);
  rope.low_freq_factor = get_double(params, "low_freq_factor", psrc, 1.0);
  rope.high_freq_factor = get_double(params, "high_freq_factor", psrc, 4.0);
  rope.original_max_position_embeddings = get_int(config, "original_max_position_embeddings", source, int64_t{0});
  rope.original_max_position_embeddings =
      get_int(params, "original_max_position_embeddings", psrc, rope.original_max_position_embeddings);
  rope.beta_fast = get_double(params, "beta_fast", psrc, 32.0);
  rope.beta_slow = get_double(params, "beta_slow", psrc, 1.0);
  rope.attention_factor = get_opt_double(params, "attention_factor", psrc);
  rope.mscale = get_opt_double(params, "mscale", psrc);
  rope.mscale_all_dim = get_opt_double(params, "mscale_all_dim", psrc);
  rope.truncate = get_bool(params, "truncate", psrc, true);
  rope.partial_rotary_factor = get_double(config, "partial_rotary_factor", source, 1.0);
  rope.partial_rotary_factor = get_double(params, "partial_rotary_factor", psrc, rope.partial_rotary_factor);
  rope.short_factor = get_doubles(params, "short_factor", psrc);
  rope.long_factor = get_doubles(params, "long_factor", psrc);
  rope.short_mscale = get_opt_double(params, "short_mscale", psrc);
  rope.long_mscale = get_opt_double(params, "long_mscale", psrc);
  if (rope.type != RopeType::kDefault && rope.type != RopeType::kLongrope) {
    EXL_CHECK(rope.factor > 0, kInvalidArgument, "{}: rope 'factor' must be > 0 for rope type '{}', found {}", source,
              type, rope.factor);
  }
  if (rope.type == RopeType::kLlama3) {
    EXL_CHECK(rope.original_max_position_embeddings > 0, kInvalidArgument,
              "{}: rope type 'llama3' needs 'original_max_position_embeddings'", source);
    EXL_CHECK(rope.high_freq_factor != rope.low_freq_factor, kInvalidArgument,
              "{}: rope type 'llama3': high_freq_factor must differ from low_freq_factor", source);
  }
  if (rope.type == RopeType::kLongrope) {
    EXL_CHECK(!rope.short_factor.empty() && rope.short_factor.size() == rope.long_factor.size(), kInvalidArgument,
              "{}: rope type '{}' needs 'short_factor' and 'long_factor' lists of one length, found {} and {}",
              source, type, rope.short_factor.size(), rope.long_factor.size());
  }
  EXL_CHECK(rope.theta > 0, kInvalidArgument, "{}: rope_theta must be > 0, found {}", source, rope.theta);
  EXL_CHECK(rope.partial_rotary_factor > 0 && rope.partial_rotary_factor <= 1, kInvalidArgument,
            "{}: partial_rotary_factor must be in (0, 1], found {}", source, rope.partial_rotary_factor);
  return rope;
}

namespace {

RopeParameters parse_rope(const json& config, const std::string& source) {
  // transformers 5 puts everything in rope_parameters; older files use rope_theta + rope_scaling. A rope_parameters
  // keyed by layer type (Gemma 3: full_attention / sliding_attention) is read by the builder; here the full one.
  json params = json::object();
  if (config.contains("rope_parameters") && config["rope_parameters"].is_object()) {
    params = config["rope_parameters"];
    if (params.contains("full_attention") && params["full_attention"].is_object()) params = params["full_attention"];
  } else if (config.contains("rope_scaling") && config["rope_scaling"].is_object()) {
    params = config["rope_scaling"];
  } else if (config.contains("rope_scaling") && !config["rope_scaling"].is_null()) {
    fail(ErrorKind::kInvalidArgument, "{}: field 'rope_scaling': expected an object or null, found {}", source,
         config["rope_scaling"].dump());
  }
  return parse_rope_parameters(params, config, source);
}

// text_config (multimodal models) merged over the top level; architectures and model_type stay the top level's.
json merged_text_config(const json& config) {
  if (!config.contains("text_config") || !config["text_config"].is_object()) return config;
  json merged = config;
  merged.erase("text_config");
  for (const auto& [k, v] : config["text_config"].items()) {
    if (k == "architectures" || k == "model_type") continue;
    merged[k] = v;
  }
  merged["text_model_type"] = config["text_config"].value("model_type", "");
  return merged;
}

}  // namespace

std::string_view rope_type_name(RopeType type) {
  switch (type) {
    case RopeType::kDefault: return "default";
    case RopeType::kLinear: return "linear";
    case RopeType::kDynamic: return "dynamic";
    case RopeType::kYarn: return "yarn";
    case RopeType::kLlama3: return "llama3";
    case RopeType::kLongrope: return "longrope";
  }
  return "?";
}

ModelConfig parse_model_config(const json& config_in, const std::string& source) {
  EXL_CHECK(config_in.is_object(), kInvalidArgument, "{}: expected a JSON object", source);
  const json config = merged_text_config(config_in);
  ModelConfig c;
  c.source = source;
  if (config.contains("architectures")) {
    const json& a = config["architectures"];
    EXL_CHECK(a.is_array() && !a.empty() && a[0].is_string(), kInvalidArgument,
              "{}: field 'architectures': expected a non-empty list of strings, found {}", source, a.dump());
    c.architecture = a[0].get<std::string>();
  } else {
    fail(ErrorKind::kInvalidArgument, "{}: required field 'architectures' is missing", source);
  }
  if (config.contains("model_type") && config["model_type"].is_string()) c.model_type = config["model_type"];
  // Sizes under their aliases (GPT-2 n_embd/n_layer/n_head, DBRX d_model/n_layers/n_heads/attn_config).
  auto key_of = [&](std::initializer_list<const char*> keys) {
    const std::string k = first_key(config, keys);
    return k.empty() ? std::string(*keys.begin()) : k;
  };
  c.hidden_size = get_int(config, key_of({"hidden_size", "n_embd", "d_model"}), source, std::nullopt);
  const json ffn = config.contains("ffn_config") && config["ffn_config"].is_object() ? config["ffn_config"] : json::object();
  const json attn = config.contains("attn_config") && config["attn_config"].is_object() ? config["attn_config"] : json::object();
  if (!first_key(config, {"intermediate_size", "n_inner"}).empty()) {
    c.intermediate_size = get_int(config, key_of({"intermediate_size", "n_inner"}), source, std::nullopt);
  } else if (ffn.contains("ffn_hidden_size")) {
    c.intermediate_size = get_int(ffn, "ffn_hidden_size", source + ": ffn_config", std::nullopt);
  } else {
    c.intermediate_size = 4 * c.hidden_size;  // GPT-2 / BigCode: n_inner null means 4 * hidden
  }
  c.num_layers = get_int(config, key_of({"num_hidden_layers", "n_layer", "n_layers"}), source, std::nullopt);
  c.num_heads = get_int(config, key_of({"num_attention_heads", "n_head", "n_heads"}), source, std::nullopt);
  if (config.contains("num_key_value_heads") && !config["num_key_value_heads"].is_null())
    c.num_kv_heads = get_int(config, "num_key_value_heads", source, c.num_heads);
  else
    c.num_kv_heads = get_int(attn, "kv_n_heads", source + ": attn_config", c.num_heads);
  c.vocab_size = get_int(config, "vocab_size", source, std::nullopt);
  EXL_CHECK(c.hidden_size > 0 && c.intermediate_size > 0 && c.num_layers > 0 && c.num_heads > 0 &&
                c.num_kv_heads > 0 && c.vocab_size > 0,
            kInvalidArgument, "{}: hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, "
            "num_key_value_heads and vocab_size must be positive", source);
  // Upper bounds far above any real model, so that products of sizes (tensor shapes, cache and workspace sizes)
  // cannot overflow int64 downstream.
  constexpr int64_t kMaxDim = int64_t{1} << 24, kMaxCount = int64_t{1} << 16;
  EXL_CHECK(c.hidden_size <= kMaxDim && c.intermediate_size <= kMaxDim && c.vocab_size <= kMaxDim &&
                c.num_layers <= kMaxCount && c.num_heads <= kMaxCount && c.num_kv_heads <= kMaxCount,
            kUnsupported, "{}: sizes out of range (hidden_size {}, intermediate_size {}, vocab_size {}: at most {}; "
            "num_hidden_layers {}, num_attention_heads {}, num_key_value_heads {}: at most {})", source, c.hidden_size,
            c.intermediate_size, c.vocab_size, kMaxDim, c.num_layers, c.num_heads, c.num_kv_heads, kMaxCount);
  c.head_dim = get_int(config, "head_dim", source, c.hidden_size / c.num_heads);
  EXL_CHECK(c.head_dim > 0 && c.head_dim % 2 == 0 && c.head_dim <= kMaxCount, kInvalidArgument,
            "{}: head_dim must be a positive even number of at most {}, found {}", source, kMaxCount, c.head_dim);
  EXL_CHECK(c.num_heads % c.num_kv_heads == 0, kInvalidArgument,
            "{}: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", source, c.num_heads,
            c.num_kv_heads);
  c.max_position_embeddings = get_int(
      config, key_of({"max_position_embeddings", "n_positions", "max_seq_len", "max_sequence_length"}), source,
      int64_t{2048});
  c.rms_norm_eps = get_double(config, key_of({"rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"}),
                              source, 1e-6);
  json rope_config = config;
  if (!config.contains("rope_theta") && attn.contains("rope_theta")) rope_config["rope_theta"] = attn["rope_theta"];
  c.rope = parse_rope(rope_config, source);
  c.tie_word_embeddings = get_bool(config, "tie_word_embeddings", source, false);
  c.attention_bias = get_bool(config, "attention_bias", source, false);
  c.mlp_bias = get_bool(config, "mlp_bias", source, false);
  if (config.contains("sliding_window") && !config["sliding_window"].is_null() &&
      !(config["sliding_window"].is_boolean())) {
    c.sliding_window = get_int(config, "sliding_window", source, std::nullopt);
  }
  for (const char* k : {"hidden_act", "hidden_activation", "activation_function"})
    if (config.contains(k) && config[k].is_string()) {
      c.hidden_act = config[k];
      break;
    }
  std::string dtype;
  if (config.contains("dtype") && config["dtype"].is_string()) {
    dtype = config["dtype"];
  } else if (config.contains("torch_dtype") && config["torch_dtype"].is_string()) {
    dtype = config["torch_dtype"];
  }
  if (!dtype.empty()) c.dtype = parse_torch_dtype(dtype, source);
  if (config.contains("bos_token_id") && config["bos_token_id"].is_number_integer())
    c.bos_token_id = config["bos_token_id"].get<int64_t>();
  if (config.contains("pad_token_id") && config["pad_token_id"].is_number_integer())
    c.pad_token_id = config["pad_token_id"].get<int64_t>();
  if (config.contains("eos_token_id")) append_ids(config["eos_token_id"], &c.eos_token_ids, source, "eos_token_id");
  if (config.contains("quantization_config") && config["quantization_config"].is_object()) {
    const json& q = config["quantization_config"];
    if (q.contains("quant_method") && q["quant_method"].is_string()) c.quant_method = q["quant_method"];
    if (q.contains("checkpoint_format") && q["checkpoint_format"].is_string())
      c.gptq_checkpoint_format = q["checkpoint_format"];
  }
  c.raw = config;
  return c;
}

bool ConfigReader::has(const std::string& key) const { return j_.is_object() && j_.contains(key) && !j_[key].is_null(); }
int64_t ConfigReader::get_int(const std::string& key) const { return io::get_int(j_, key, source_, std::nullopt); }
int64_t ConfigReader::get_int(const std::string& key, int64_t dflt) const { return io::get_int(j_, key, source_, dflt); }
double ConfigReader::get_double(const std::string& key, double dflt) const { return io::get_double(j_, key, source_, dflt); }
bool ConfigReader::get_bool(const std::string& key, bool dflt) const { return io::get_bool(j_, key, source_, dflt); }
std::string ConfigReader::get_string(const std::string& key, const std::string& dflt) const {
  if (!has(key)) return dflt;
  EXL_CHECK(j_[key].is_string(), kInvalidArgument, "{}: field '{}': expected a string, found {}", source_, key,
            j_[key].dump());
  return j_[key].get<std::string>();
}
std::vector<std::string> ConfigReader::get_strings(const std::string& key) const {
  std::vector<std::string> out;
  if (!has(key)) return out;
  EXL_CHECK(j_[key].is_array(), kInvalidArgument, "{}: field '{}': expected a list of strings, found {}", source_, key,
            j_[key].dump());
  for (const auto& v : j_[key]) {
    EXL_CHECK(v.is_string(), kInvalidArgument, "{}: field '{}': expected a list of strings, found {}", source_, key,
              j_[key].dump());
    out.push_back(v.get<std::string>());
  }
  return out;
}
ConfigReader ConfigReader::sub(const std::string& key) const {
  if (!has(key)) return ConfigReader(json::object(), source_ + ": " + key);
  EXL_CHECK(j_[key].is_object(), kInvalidArgument, "{}: field '{}': expected an object, found {}", source_, key,
            j_[key].dump());
  return ConfigReader(j_[key], source_ + ": " + key);
}
void ConfigReader::unsupported(const std::string& key, const std::string& found, const std::string& supported) const {
  fail(ErrorKind::kUnsupported, "{}: field '{}' = {} is not supported (supported: {})", source_, key, found, supported);
}

ModelConfig load_model_config(const std::filesystem::path& dir) {
  const auto path = dir / "config.json";
  EXL_CHECK(std::filesystem::exists(path), kNotFound, "{}: no config.json (is this a Hugging Face model directory?)",
            dir.string());
  ModelConfig c = parse_model_config(read_json_file(path), path.string());
  c.dir = dir;
  const auto gen_path = dir / "generation_config.json";
  if (std::filesystem::exists(gen_path)) {
    json gen = read_json_file(gen_path);
    if (gen.is_object() && gen.contains("eos_token_id")) {
      std::vector<int64_t> ids;
      append_ids(gen["eos_token_id"], &ids, gen_path.string(), "eos_token_id");
      for (int64_t id : ids) {
        bool seen = false;
        for (int64_t e : c.eos_token_ids) seen = seen || e == id;
        if (!seen) c.eos_token_ids.push_back(id);
      }
    }
    if (gen.is_object() && !c.bos_token_id && gen.contains("bos_token_id") && gen["bos_token_id"].is_number_integer())
      c.bos_token_id = gen["bos_token_id"].get<int64_t>();
  }
  return c;
}

}  // namespace exl::io
