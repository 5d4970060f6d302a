// Model commands: inspect, logits, perplexity.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/error.h"
#include "core/json_util.h"
#include "io/safetensors_writer.h"
#include "model/evaluate.h"
#include "model/model_weights.h"
#include "progress.h"
#include "runner_select.h"

namespace exl::cli {
namespace {

using nlohmann::json;

model::TokenRows read_token_rows(const std::string& path) {
  const json j = read_json_file(path);
  EXL_CHECK(j.is_array() && !j.empty(), kInvalidArgument, "{}: expected a non-empty JSON array of token-id arrays",
            path);
  model::TokenRows rows;
  for (size_t r = 0; r < j.size(); ++r) {
    EXL_CHECK(j[r].is_array() && !j[r].empty(), kInvalidArgument, "{}: row {}: expected a non-empty array of ids",
              path, r);
    std::vector<int32_t> row;
    for (size_t t = 0; t < j[r].size(); ++t) {
      const json& v = j[r][t];
      EXL_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() < (1ll << 31), kInvalidArgument,
                "{}: row {}, position {}: expected a non-negative token id, found {}", path, r, t, v.dump());
      row.push_back(static_cast<int32_t>(v.get<int64_t>()));
    }
    EXL_CHECK(rows.empty() || row.size() == rows[0].size(), kInvalidArgument,
              "{}: all rows must have the same length; row 0 has {}, row {} has {}", path,
              rows.empty() ? 0 : rows[0].size(), r, row.size());
    rows.push_back(std::move(row));
  }
  return rows;
}

void check_ids(const model::TokenRows& rows, int64_t vocab_size, const std::string& source) {
  for (size_t r = 0; r < rows.size(); ++r)
    for (size_t t = 0; t < rows[r].size(); ++t)
      EXL_CHECK(rows[r][t] < vocab_size, kInvalidArgument, "{}: row {}, position {}: token id {} >= vocab_size {}",
                source, r, t, rows[r][t], vocab_size);
}

json linear_json(const quant::LinearWeight& lw) {
  json j = {{"format", std::string(quant::weight_format_name(lw.format))},
            {"describe", lw.describe()},
            {"in_features", lw.in_features},
            {"out_features", lw.out_features},
            {"bits_per_weight", lw.bits_per_weight()},
            {"bytes", lw.stored_bytes()}};
  if (lw.format == quant::WeightFormat::kExl2) j["bit_widths"] = lw.exl2.bit_widths();
  return j;
}

void run_inspect(const std::string& dir, bool as_json, const model::ModelOverrides& overrides) {
  const auto w = model::ModelWeights::load(dir, {}, overrides);
  const auto& c = w.config;
  json j;
  j["model"] = dir;
  j["architecture"] = c.architecture;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_layers"] = c.num_layers;
  j["num_heads"] = c.num_heads;
  j["num_kv_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rope_type"] = std::string(io::rope_type_name(c.rope.type));
  j["rope_theta"] = c.rope.theta;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["embedding"] = {{"dtype", std::string(dtype_name(w.embedding.dtype()))}, {"bytes", w.embedding.nbytes()}};
  j["head"] = linear_json(w.head);
  j["family"] = w.spec.family;
  j["max_seq_len"] = w.spec.max_seq_len;
  json layers = json::array();
  double layer_bits = 0, layer_weights = 0;
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const auto& l = w.layers[i];
    const auto& ls = w.spec.layers[i];
    json lj = json::object();
    double bits = 0, weights = 0;
    const std::string prefix = "layers." + std::to_string(i) + ".";
    for (const quant::LinearWeight* lw : l.linears()) {
      // Name the linear by its key after the layer prefix (self_attn.q_proj, mlp.experts.3.w1, ...).
      const size_t at = lw->key.find(prefix);
      lj[at == std::string::npos ? lw->key : lw->key.substr(at + prefix.size())] = linear_json(*lw);
      bits += lw->bits_per_weight() * static_cast<double>(lw->in_features * lw->out_features);
      weights += static_cast<double>(lw->in_features * lw->out_features);
    }
    lj["bits_per_weight"] = bits / weights;
    lj["sliding_window"] = ls.attn.sliding_window;
    lj["rope"] = std::string(model::rope_style_name(ls.attn.rope));
    if (ls.mlp.type == model::MlpType::kMoe)
      lj["experts"] = {{"count", ls.mlp.moe.num_experts}, {"top_k", ls.mlp.moe.top_k},
                       {"router", std::string(model::router_type_name(ls.mlp.moe.router_type))}};
    layer_bits += bits;
    layer_weights += weights;
    layers.push_back(lj);
  }
  j["layers"] = layers;
  j["decoder_bits_per_weight"] = layer_bits / layer_weights;
  j["total_bytes"] = w.total_bytes();
  if (as_json) {
    std::cout << j.dump(2) << "\n";
    return;
  }
  fmt::print("model         {}\narchitecture  {} (family {})\n", dir, c.architecture, w.spec.family);
  fmt::print("dimensions    hidden {}, intermediate {}, layers {}, heads {} x {} (kv heads {}), vocab {}\n",
             c.hidden_size, c.intermediate_size, c.num_layers, c.num_heads, c.head_dim, c.num_kv_heads,
             c.vocab_size);
  fmt::print("rope          {} (theta {}), max positions {}\n", io::rope_type_name(c.rope.type), c.rope.theta,
             c.max_position_embeddings);
  fmt::print("embedding     {} ({:.2f} MiB){}\n", dtype_name(w.embedding.dtype()), w.embedding.nbytes() / 1048576.0,
             c.tie_word_embeddings ? ", tied" : "");
  fmt::print("head          {} ({:.2f} MiB)\n", w.head.describe(), w.head.stored_bytes() / 1048576.0);
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const auto& l = w.layers[i];
    const auto& ls = w.spec.layers[i];
    std::string formats;
    for (const quant::LinearWeight* lw : l.linears()) {
      const std::string d = lw->describe();
      if (formats.find(d) == std::string::npos) formats += (formats.empty() ? "" : " | ") + d;
    }
    std::string extra;
    if (ls.attn.sliding_window > 0) extra += fmt::format(", window {}", ls.attn.sliding_window);
    if (ls.mlp.type == model::MlpType::kMoe)
      extra += fmt::format(", {} experts top-{}", ls.mlp.moe.num_experts, ls.mlp.moe.top_k);
    fmt::print("layer {:3}     {:.2f} bpw  {} linears: {}{}\n", i, layers[i]["bits_per_weight"].get<double>(),
               l.linears().size(), formats, extra);
  }
  fmt::print("decoder       {:.3f} bits per weight\ntotal         {} bytes ({:.2f} MiB)\n", layer_bits / layer_weights,
             w.total_bytes(), w.total_bytes() / 1048576.0);
}

void run_logits(const std::string& dir, const std::string& tokens_path, const std::string& output,
                const RunnerChoice& choice) {
  const model::TokenRows rows = read_token_rows(tokens_path);
  const auto weights = model::ModelWeights::load(dir, {}, choice.overrides);
  check_ids(rows, weights.config.vocab_size, tokens_path);
  RunnerChoice c = choice;
  c.cache_tokens = std::max<int64_t>(c.cache_tokens, static_cast<int64_t>(rows[0].size()) + 256);
  auto runner = make_runner(weights, c);
  const std::vector<float> logits = model::compute_logits(*runner, rows);
  io::SafetensorsWriter writer;
  writer.add("logits", DType::kF32,
             {static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size()), weights.config.vocab_size},
             logits);
  writer.write(output);
}

}  // namespace

model::PerplexityResult run_perplexity_rows(const std::string& dir, const model::TokenRows& rows,
                                            const RunnerChoice& choice, const std::string& source) {
  const auto weights = model::ModelWeights::load(dir, {}, choice.overrides);
  check_ids(rows, weights.config.vocab_size, source);
  RunnerChoice c = choice;
  c.cache_tokens = std::max<int64_t>(c.cache_tokens, static_cast<int64_t>(rows[0].size()) + 256);
  auto runner = make_runner(weights, c);
  return model::perplexity(*runner, rows);
}

void print_perplexity(const model::PerplexityResult& r, bool as_json) {
  if (as_json) {
    std::cout << json{{"tokens", r.tokens}, {"nll", r.nll}, {"ppl", r.ppl}}.dump() << "\n";
  } else {
    fmt::print("tokens {}\nnll    {:.6f}\nppl    {:.4f}\n", r.tokens, r.nll, r.ppl);
  }
}

model::TokenRows read_token_rows_file(const std::string& path) { return read_token_rows(path); }

void add_model_commands(CLI::App& app) {
  {
    struct Options {
      std::string dir;
      bool as_json = false;
      model::ModelOverrides overrides;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = app.add_subcommand("inspect", "Show a model's architecture, dimensions and per-layer formats");
    cmd->add_option("--model", o->dir, "Model directory")->required();
    cmd->add_flag("--json", o->as_json, "Print JSON");
    add_override_options(cmd, &o->overrides);
    cmd->callback([o] { run_inspect(o->dir, o->as_json, o->overrides); });
  }
  {
    struct Options {
      std::string dir, tokens, output;
      RunnerChoice choice{.backend = "cpu"};
    };
    auto o = std::make_shared<Options>();
    auto* cmd = app.add_subcommand("logits", "Write the logits of token rows to a safetensors file");
    cmd->add_option("--model", o->dir, "Model directory")->required();
    cmd->add_option("--tokens", o->tokens, "JSON file: array of equal-length arrays of token ids")->required();
    cmd->add_option("--output", o->output, "Output .safetensors (F32 tensor 'logits' [num_seqs, seq_len, vocab])")
        ->required();
    cmd->add_option("--backend", o->choice.backend, "cpu, cuda or auto")->capture_default_str();
    add_override_options(cmd, &o->choice.overrides);
    cmd->callback([o] { run_logits(o->dir, o->tokens, o->output, o->choice); });
  }
}

}  // namespace exl::cli
