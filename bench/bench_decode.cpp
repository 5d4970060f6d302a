// End-to-end CUDA runner benchmark on random models in Llama-3-8B shapes (vocab 128256, hidden 4096, MLP 14336,
// 32 layers, 32/8 heads, head_dim 128): EXL2 4.0 bpw with a 6-bit head, GPTQ 4-bit g128 with an FP16 head, FP16.
// One layer's weights are generated (and quantized) once and copied into every layer: the values do not change the
// work, and the device holds separate copies. Prints a table per format and writes JSON with --json.
// Usage: bench_decode [--format exl2|gptq|fp16|all] [--layers N] [--prompt-tokens N] [--decode-tokens N]
//                     [--contexts 128,2048,8192] [--json out.json]
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <string>
#include <vector>

#include "backend/cuda/bench_runner.h"
#include "core/error.h"
#include "core/fp16.h"
#include "quant/exl2_pack.h"
#include "quant/gptq.h"

namespace {

using namespace exl;

enum class Format { kExl2, kGptq, kFp16 };

std::vector<float> random_weights(int64_t n, uint64_t seed) {
  std::vector<float> v(static_cast<size_t>(n));
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& x : v) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    x = (static_cast<float>(s >> 40) / 16777216.0f - 0.5f) * 0.06f;
  }
  return v;
}

Tensor random_half_tensor(Shape shape, uint64_t seed, float offset) {
  Tensor t(DType::kF16, shape);
  const std::vector<float> w = random_weights(t.numel(), seed);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<uint16_t>()[i] = float_to_half(w[static_cast<size_t>(i)] + offset);
  return t;
}

quant::LinearWeight make_linear(Format f, const std::string& key, int64_t K, int64_t N, uint64_t seed, double bpw) {
  quant::LinearWeight lw;
  lw.key = key;
  lw.in_features = K;
  lw.out_features = N;
  const std::vector<float> w = random_weights(N * K, seed);
  if (f == Format::kFp16) {
    lw.format = quant::WeightFormat::kFloat;
    lw.float_weight = Tensor(DType::kF16, {N, K});
    for (int64_t i = 0; i < N * K; ++i) lw.float_weight.data<uint16_t>()[i] = float_to_half(w[static_cast<size_t>(i)]);
  } else if (f == Format::kGptq) {
    lw.format = quant::WeightFormat::kGptq;
    quant::GptqPackOptions o;
    o.group_size = 128;
    lw.gptq = quant::pack_gptq_rtn(w, N, K, o);
  } else {
    lw.format = quant::WeightFormat::kExl2;
    quant::Exl2PackOptions o = quant::exl2_options_for_bpw(bpw);
    o.seed = seed;
    lw.exl2 = quant::pack_exl2_rtn(w, N, K, o);
  }
  return lw;
}

model::ModelWeights make_model(Format f, int64_t layers) {
  model::ModelWeights m;
  io::ModelConfig& c = m.config;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.hidden_size = 4096;
  c.intermediate_size = 14336;
  c.num_layers = layers;
  c.num_heads = 32;
  c.num_kv_heads = 8;
  c.head_dim = 128;
  c.vocab_size = 128256;
  c.max_position_embeddings = 131072;
  c.rms_norm_eps = 1e-5;
  c.rope.type = io::RopeType::kLlama3;
  c.rope.theta = 500000.0;
  c.rope.factor = 8.0;
  c.rope.original_max_position_embeddings = 8192;
  c.source = "bench_decode";
  m.spec = model::build_model_spec(c);
  const int64_t H = c.hidden_size, I = c.intermediate_size, KV = c.num_kv_heads * c.head_dim;
  struct Spec {
    const char* name;
    int64_t K, N;
  };
  const Spec specs[] = {{"q_proj", H, H},    {"k_proj", H, KV},  {"v_proj", H, KV},  {"o_proj", H, H},
                        {"gate_proj", H, I}, {"up_proj", H, I}, {"down_proj", I, H}};
  std::vector<std::future<quant::LinearWeight>> jobs;
  for (size_t i = 0; i < 7; ++i)
    jobs.push_back(std::async(std::launch::async, [&, i] {
      return make_linear(f, specs[i].name, specs[i].K, specs[i].N, 100 + i, 4.0);
    }));
  auto head = std::async(std::launch::async, [&] {
    return make_linear(f == Format::kGptq ? Format::kFp16 : f, "lm_head", H, c.vocab_size, 99, 6.0);
  });
  m.embedding = random_half_tensor({c.vocab_size, H}, 7, 0.0f);
  m.final_norm.weight = model::to_f32(random_half_tensor({H}, 8, 1.0f));
  std::vector<quant::LinearWeight> linears;
  for (auto& j : jobs) linears.push_back(j.get());
  m.head = head.get();
  // Each layer gets its own tensors: exl::Tensor copies do not own fresh storage, so build rather than copy.
  for (int64_t l = 0; l < layers; ++l) {
    model::LayerWeights layer;
    layer.attn_norm.weight = model::to_f32(random_half_tensor({H}, 9, 1.0f));
    layer.mlp_norm.weight = model::to_f32(random_half_tensor({H}, 10, 1.0f));
    quant::LinearWeight* slots[] = {&layer.q_proj, &layer.k_proj, &layer.v_proj, &layer.o_proj,
                                    &layer.gate_proj, &layer.up_proj, &layer.down_proj};
    for (size_t i = 0; i < 7; ++i) {
      const quant::LinearWeight& src = linears[i];
      *slots[i] = quant::LinearWeight{src.key, src.format, src.in_features, src.out_features, Tensor(), src.exl2,
                                      src.gptq, src.bias};
      if (src.format == quant::WeightFormat::kFloat) {
        slots[i]->float_weight = Tensor(src.float_weight.dtype(), src.float_weight.shape());
        std::memcpy(slots[i]->float_weight.raw(), src.float_weight.raw(), src.float_weight.nbytes());
      }
    }
    m.layers.push_back(std::move(layer));
  }
  return m;
}

std::vector<int64_t> parse_list(const char* s) {
  std::vector<int64_t> v;
  for (const char* p = s; *p;) {
    v.push_back(std::strtoll(p, nullptr, 10));
    p = std::strchr(p, ',');
    if (!p) break;
    ++p;
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  std::string format = "all", json_path;
  int64_t layers = 32;
  cuda::BenchOptions opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* next = i + 1 < argc ? argv[i + 1] : "";
    if (a == "--format") format = next, ++i;
    else if (a == "--layers") layers = std::atoll(next), ++i;
    else if (a == "--prompt-tokens") opt.prompt_tokens = std::atoll(next), ++i;
    else if (a == "--decode-tokens") opt.decode_tokens = std::atoll(next), ++i;
    else if (a == "--contexts") opt.contexts = parse_list(next), ++i;
    else if (a == "--json") json_path = next, ++i;
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  std::vector<std::pair<std::string, Format>> formats;
  if (format == "all" || format == "exl2") formats.push_back({"exl2-4.0bpw (6-bit head)", Format::kExl2});
  if (format == "all" || format == "gptq") formats.push_back({"gptq-4bit-g128 (fp16 head)", Format::kGptq});
  if (format == "all" || format == "fp16") formats.push_back({"fp16", Format::kFp16});
  std::string json = "{";
  try {
    for (size_t i = 0; i < formats.size(); ++i) {
      std::printf("== %s, %lld layers ==\n", formats[i].first.c_str(), static_cast<long long>(layers));
      std::fflush(stdout);
      const model::ModelWeights m = make_model(formats[i].second, layers);
      const cuda::BenchResult r = cuda::run_decode_bench(m, opt);
      std::printf("%s\n", r.to_table().c_str());
      std::fflush(stdout);
      json += (i ? ",\n\"" : "\n\"") + formats[i].first + "\": " + r.to_json();
    }
  } catch (const exl::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  json += "\n}\n";
  if (!json_path.empty()) std::ofstream(json_path) << json;
  return 0;
}
