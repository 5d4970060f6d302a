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

RopeParameters parse_rope(const json& config, const std::string& source) {
  RopeParameters rope;
  // transformers 5 puts everything in rope_parameters; older files use rope_theta + rope_scaling.
  json params = json::object();
  if (config.contains("rope_parameters") && config["rope_parameters"].is_object()) {
    params = config["rope_parameters"];
  } else if (config.contains("rope_scaling") && config["rope_scaling"].is_object()) {
    params = config["rope_scaling"];
  } else if (config.contains("rope_scaling") && !config["rope_scaling"].is_null()) {
    fail(ErrorKind::kInvalidArgument, "{}: field 'rope_scaling': expected an object or null, found {}", source,
         config["rope_scaling"].dump());
  }
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
  } else {
    fail(ErrorKind::kUnsupported, "{}: rope type '{}' is not supported (supported: default, linear, dynamic, yarn, llama3)",
         source, type);
  }
  rope.factor = get_double(params, "factor", psrc, 1.0);
  rope.low_freq_factor = get_double(params, "low_freq_factor", psrc, 1.0);
  rope.high_freq_factor = get_double(params, "high_freq_factor", psrc, 4.0);
  rope.original_max_position_embeddings = get_int(params, "original_max_position_embeddings", psrc, int64_t{0});
  rope.beta_fast = get_double(params, "beta_fast", psrc, 32.0);
  rope.beta_slow = get_double(params, "beta_slow", psrc, 1.0);
  rope.attention_factor = get_opt_double(params, "attention_factor", psrc);
  rope.mscale = get_opt_double(params, "mscale", psrc);
  rope.mscale_all_dim = get_opt_double(params, "mscale_all_dim", psrc);
  rope.truncate = get_bool(params, "truncate", psrc, true);
  rope.partial_rotary_factor = get_double(config, "partial_rotary_factor", source, 1.0);
  if (rope.type != RopeType::kDefault) {
    EXL_CHECK(rope.factor > 0, kInvalidArgument, "{}: rope 'factor' must be > 0 for rope type '{}', found {}", source,
              type, rope.factor);
  }
  if (rope.type == RopeType::kLlama3) {
    EXL_CHECK(rope.original_max_position_embeddings > 0, kInvalidArgument,
              "{}: rope type 'llama3' needs 'original_max_position_embeddings'", source);
    EXL_CHECK(rope.high_freq_factor != rope.low_freq_factor, kInvalidArgument,
              "{}: rope type 'llama3': high_freq_factor must differ from low_freq_factor", source);
  }
  EXL_CHECK(rope.theta > 0, kInvalidArgument, "{}: rope_theta must be > 0, found {}", source, rope.theta);
  return rope;
}

}  // namespace

std::string_view rope_type_name(RopeType type) {
  switch (type) {
    case RopeType::kDefault: return "default";
    case RopeType::kLinear: return "linear";
    case RopeType::kDynamic: return "dynamic";
    case RopeType::kYarn: return "yarn";
    case RopeType::kLlama3: return "llama3";
  }
  return "?";
}

ModelConfig parse_model_config(const json& config, const std::string& source) {
  EXL_CHECK(config.is_object(), kInvalidArgument, "{}: expected a JSON object", source);
  ModelConfig c;
  if (config.contains("architectures")) {
    const json& a = config["architectures"];
    EXL_CHECK(a.is_array() && !a.empty() && a[0].is_string(), kInvalidArgument,
              "{}: field 'architectures': expected a non-empty list of strings, found {}", source, a.dump());
    c.architecture = a[0].get<std::string>();
  } else {
    fail(ErrorKind::kInvalidArgument, "{}: required field 'architectures' is missing", source);
  }
  if (config.contains("model_type") && config["model_type"].is_string()) c.model_type = config["model_type"];
  c.hidden_size = get_int(config, "hidden_size", source, std::nullopt);
  c.intermediate_size = get_int(config, "intermediate_size", source, std::nullopt);
  c.num_layers = get_int(config, "num_hidden_layers", source, std::nullopt);
  c.num_heads = get_int(config, "num_attention_heads", source, std::nullopt);
  c.num_kv_heads = get_int(config, "num_key_value_heads", source, c.num_heads);
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
  c.max_position_embeddings = get_int(config, "max_position_embeddings", source, int64_t{2048});
  c.rms_norm_eps = get_double(config, "rms_norm_eps", source, 1e-6);
  c.rope = parse_rope(config, source);
  c.tie_word_embeddings = get_bool(config, "tie_word_embeddings", source, false);
  c.attention_bias = get_bool(config, "attention_bias", source, false);
  c.mlp_bias = get_bool(config, "mlp_bias", source, false);
  if (config.contains("sliding_window") && !config["sliding_window"].is_null()) {
    c.sliding_window = get_int(config, "sliding_window", source, std::nullopt);
  }
  if (config.contains("hidden_act") && config["hidden_act"].is_string()) c.hidden_act = config["hidden_act"];
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
  return c;
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
