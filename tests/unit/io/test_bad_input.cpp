// Bad input: crafted files that are truncated, malformed or inconsistent must give an exl::Error that names the
// file/tensor/field, never a crash or an out-of-bounds read (this suite also runs under ASan/UBSan in CI).
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "model/model_weights.h"
#include "quant/exl2.h"
#include "testdata.h"

namespace exl {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("exl_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

void write_raw(const fs::path& path, const std::string& header, size_t data_bytes, uint64_t declared_len = 0) {
  std::ofstream out(path, std::ios::binary);
  uint64_t len = declared_len ? declared_len : header.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  std::string data(data_bytes, '\x01');
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

// Expects an exl::Error of `kind` whose message contains every needle.
template <typename Fn>
void expect_error(Fn&& fn, ErrorKind kind, std::vector<std::string> needles) {
  try {
    fn();
    FAIL() << "expected an exl::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
}

TEST(SafetensorsBadInput, TruncatedAndMalformedHeaders) {
  const fs::path dir = temp_dir("st");
  const fs::path f = dir / "a.safetensors";
  {
    std::ofstream out(f, std::ios::binary);
    out.write("\x05\x00", 2);
  }
  expect_error([&] { io::SafetensorsFile::open(f); }, ErrorKind::kCorruptFile, {"a.safetensors", "too short"});
  write_raw(f, "{}", 0, 1000);
  expect_error([&] { io::SafetensorsFile::open(f); }, ErrorKind::kCorruptFile, {"runs past the end"});
  write_raw(f, "{not json", 0);
  expect_error([&] { io::SafetensorsFile::open(f); }, ErrorKind::kCorruptFile, {"malformed"});
  write_raw(f, R"({"w":{"dtype":"F16","shape":[4,4],"data_offsets":[0,32]}})", 16);
  expect_error([&] { io::SafetensorsFile::open(f); }, ErrorKind::kCorruptFile, {"'w'", "run past the end"});
  write_raw(f, R"({"w":{"dtype":"F16","shape":[4,4],"data_offsets":[0,30]}})", 32);
  expect_error([&] { io::SafetensorsFile::open(f); }, ErrorKind::kCorruptFile, {"'w'", "needs 32 bytes"});
  write_raw(f,
            R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
            24);
  expect_error([&] { io::SafetensorsFile::open(f); }, ErrorKind::kCorruptFile, {"overlap"});
  write_raw(f, R"({"w":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})", 4);
  expect_error([&] { io::SafetensorsFile::open(f); }, ErrorKind::kUnsupported, {"'w'", "F8_E4M3"});
  write_raw(f, R"({"w":{"dtype":"F32","shape":[-4],"data_offsets":[0,4]}})", 4);
  expect_error([&] { io::SafetensorsFile::open(f); }, ErrorKind::kCorruptFile, {"'w'", "negative"});
  write_raw(f, R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 16);
  expect_error([&] { io::SafetensorsFile::open(f); }, ErrorKind::kCorruptFile, {"'w'"});
  write_raw(f, R"([1,2,3])", 0);
  expect_error([&] { io::SafetensorsFile::open(f); }, ErrorKind::kCorruptFile, {"not a JSON object"});
  fs::remove_all(dir);
}

TEST(SafetensorsBadInput, EveryTruncationOfARealFileIsAnError) {
  const fs::path src = testing::testdata_dir() / "exl2-vectors/gptq4_actorder_g128.safetensors";
  EXL_REQUIRE_TESTDATA(src);
  std::ifstream in(src, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  const fs::path dir = temp_dir("trunc");
  const fs::path f = dir / "t.safetensors";
  for (size_t cut : {size_t{0}, size_t{7}, size_t{8}, size_t{100}, bytes.size() / 2, bytes.size() - 1}) {
    {
      std::ofstream out(f, std::ios::binary | std::ios::trunc);
      out.write(bytes.data(), static_cast<std::streamsize>(cut));
    }
    EXPECT_THROW(io::SafetensorsFile::open(f), Error) << "cut at " << cut;
  }
  fs::remove_all(dir);
}

TEST(SafetensorsBadInput, MissingTensorAndWrongShapeOrDtype) {
  const fs::path dir = temp_dir("shape");
  io::SafetensorsWriter w;
  w.add("x", DType::kF32, {2, 3}, std::vector<float>(6, 1.0f));
  w.write(dir / "m.safetensors");
  const auto store = io::TensorStore::open_dir(dir);
  expect_error([&] { store.info("y"); }, ErrorKind::kNotFound, {"'y'"});
  expect_error([&] { store.read_f32("x", {3, 2}); }, ErrorKind::kCorruptFile, {"'x'", "[3, 2]", "[2, 3]"});
  expect_error([&] { store.read<int32_t>("x", DType::kI32); }, ErrorKind::kCorruptFile, {"'x'", "I32", "F32"});
  fs::remove_all(dir);
}

TEST(SafetensorsBadInput, DuplicateTensorAcrossShards) {
  const fs::path dir = temp_dir("dup");
  io::SafetensorsWriter w;
  w.add("x", DType::kF32, {1}, std::vector<float>{1.0f});
  w.write(dir / "a.safetensors");
  w.write(dir / "b.safetensors");
  expect_error([&] { io::TensorStore::open_dir(dir); }, ErrorKind::kCorruptFile, {"'x'", "twice"});
  fs::remove_all(dir);
}

nlohmann::json base_config() {
  return {{"architectures", {"LlamaForCausalLM"}}, {"hidden_size", 64},  {"intermediate_size", 128},
          {"num_hidden_layers", 1},                {"num_attention_heads", 4}, {"num_key_value_heads", 2},
          {"vocab_size", 32},                      {"rms_norm_eps", 1e-5}};
}

TEST(ConfigBadInput, FieldsAndRope) {
  auto c = base_config();
  c.erase("hidden_size");
  expect_error([&] { io::parse_model_config(c, "config.json"); }, ErrorKind::kInvalidArgument,
               {"config.json", "hidden_size"});
  c = base_config();
  c["num_attention_heads"] = "four";
  expect_error([&] { io::parse_model_config(c, "config.json"); }, ErrorKind::kInvalidArgument,
               {"num_attention_heads", "integer"});
  // Floats must be whole and inside int64 (a huge float used to be cast first, which is undefined behaviour);
  // unsigned values past INT64_MAX are refused rather than wrapped.
  for (const nlohmann::json& bad : {nlohmann::json(1e300), nlohmann::json(-1e300), nlohmann::json(2.5),
                                   nlohmann::json(uint64_t{18446744073709551615ull})}) {
    c = base_config();
    c["hidden_size"] = bad;
    expect_error([&] { io::parse_model_config(c, "config.json"); }, ErrorKind::kInvalidArgument,
                 {"hidden_size", "integer"});
  }
  c = base_config();
  c["vocab_size"] = int64_t{1} << 40;  // an integer, but no model is this large: products would overflow
  expect_error([&] { io::parse_model_config(c, "config.json"); }, ErrorKind::kUnsupported, {"vocab_size", "at most"});
  c = base_config();
  c["hidden_size"] = 64.0;  // a whole float is accepted
  EXPECT_EQ(io::parse_model_config(c, "config.json").hidden_size, 64);
  c = base_config();
  c["rope_scaling"] = {{"rope_type", "longrope"}, {"factor", 2.0}};  // no factor lists
  expect_error([&] { io::parse_model_config(c, "config.json"); }, ErrorKind::kInvalidArgument,
               {"longrope", "short_factor", "long_factor"});
  c = base_config();
  c["rope_scaling"] = {{"rope_type", "ntk-by-parts"}, {"factor", 2.0}};
  expect_error([&] { io::parse_model_config(c, "config.json"); }, ErrorKind::kUnsupported,
               {"ntk-by-parts", "longrope", "llama3"});
  c = base_config();
  c["num_key_value_heads"] = 3;
  expect_error([&] { io::parse_model_config(c, "config.json"); }, ErrorKind::kInvalidArgument, {"multiple"});
  c = base_config();
  c["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
  expect_error([&] { io::parse_model_config(c, "config.json"); }, ErrorKind::kInvalidArgument,
               {"original_max_position_embeddings"});
}

TEST(ConfigParsing, OldAndNewRopeSpellings) {
  auto c = base_config();
  c["rope_theta"] = 500000.0;
  c["rope_scaling"] = {{"rope_type", "llama3"},        {"factor", 8.0},
                       {"low_freq_factor", 1.0},       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  c["torch_dtype"] = "bfloat16";
  c["eos_token_id"] = {128001, 128008, 128009};
  auto cfg = io::parse_model_config(c, "config.json");
  EXPECT_EQ(cfg.rope.type, io::RopeType::kLlama3);
  EXPECT_EQ(cfg.rope.theta, 500000.0);
  EXPECT_EQ(cfg.dtype, DType::kBF16);
  EXPECT_EQ(cfg.eos_token_ids.size(), 3u);
  EXPECT_EQ(cfg.head_dim, 16);
  auto n = base_config();
  n["rope_parameters"] = {{"rope_theta", 1e6}, {"rope_type", "yarn"}, {"factor", 4.0},
                          {"original_max_position_embeddings", 32768}};
  n["dtype"] = "float16";
  n["sliding_window"] = 4096;
  cfg = io::parse_model_config(n, "config.json");
  EXPECT_EQ(cfg.rope.type, io::RopeType::kYarn);
  EXPECT_EQ(cfg.rope.theta, 1e6);
  EXPECT_EQ(cfg.sliding_window.value_or(0), 4096);
  n["rope_parameters"] = {{"rope_theta", 1e4}, {"type", "dynamic"}, {"factor", 2.0}};
  EXPECT_EQ(io::parse_model_config(n, "config.json").rope.type, io::RopeType::kDynamic);
  n["rope_parameters"] = {{"rope_theta", 1e4}, {"rope_type", "linear"}, {"factor", 2.0}};
  EXPECT_EQ(io::parse_model_config(n, "config.json").rope.type, io::RopeType::kLinear);
}

TEST(ModelBadInput, UnknownArchitectureListsSupported) {
  const fs::path dir = temp_dir("arch");
  auto c = base_config();
  c["architectures"] = {"FalconForCausalLM"};
  std::ofstream(dir / "config.json") << c.dump();
  expect_error([&] { model::ModelWeights::load(dir); }, ErrorKind::kUnsupported,
               {"FalconForCausalLM", "LlamaForCausalLM", "MistralForCausalLM"});
  fs::remove_all(dir);
}

// Copies a real model directory with config.json edited, to check config/tensor disagreement.
TEST(ModelBadInput, ConfigDisagreeingWithTensors) {
  const fs::path src = testing::testdata_dir() / "models/tiny-llama/exl2-4.0bpw";
  EXL_REQUIRE_TESTDATA(src);
  const fs::path dir = temp_dir("disagree");
  fs::create_symlink(src / "output.safetensors", dir / "output.safetensors");
  std::ifstream in(src / "config.json");
  nlohmann::json c = nlohmann::json::parse(in);
  c["intermediate_size"] = 2048;
  std::ofstream(dir / "config.json") << c.dump();
  expect_error([&] { model::ModelWeights::load(dir); }, ErrorKind::kCorruptFile, {"gate_proj", "2048"});
  c["intermediate_size"] = 1024;
  c["num_hidden_layers"] = 3;
  std::ofstream(dir / "config.json") << c.dump();
  expect_error([&] { model::ModelWeights::load(dir); }, ErrorKind::kCorruptFile, {"layers.3", "num_hidden_layers"});
  c["num_hidden_layers"] = 5;
  std::ofstream(dir / "config.json") << c.dump();
  expect_error([&] { model::ModelWeights::load(dir); }, ErrorKind::kNotFound, {"layers.4"});
  fs::remove_all(dir);
}

quant::Exl2Weight small_exl2() {
  quant::Exl2Weight w;
  w.key = "layer";
  w.in_features = 64;
  w.out_features = 32;
  w.padded_out = 32;
  w.q_groups = {4, 0, 2, 4};  // 32 rows of 4 bit (4 packed rows), 32 rows of 2 bit (2 packed rows)
  w.packed_rows = 6;
  w.q_weight.assign(6 * 32, 0x12345678u);
  w.q_scale.assign(2 * 4, 0x76543210u);
  w.q_scale_max = {0x2e66, 0x2e66};
  for (int i = 0; i < 64; ++i) w.q_invperm.push_back((i * 7) % 64);
  return w;
}

TEST(Exl2BadInput, InvariantsOfSection13) {
  auto w = small_exl2();
  EXPECT_NO_THROW(quant::validate_exl2(w, "f"));
  w = small_exl2();
  w.q_groups[0] = 7;
  expect_error([&] { quant::validate_exl2(w, "f"); }, ErrorKind::kCorruptFile, {"layer.q_groups", "bit width 7"});
  w = small_exl2();
  w.q_groups = {2, 0, 4, 2};
  expect_error([&] { quant::validate_exl2(w, "f"); }, ErrorKind::kCorruptFile, {"must not increase"});
  w = small_exl2();
  w.q_invperm[5] = w.q_invperm[6];
  expect_error([&] { quant::validate_exl2(w, "f"); }, ErrorKind::kCorruptFile, {"q_invperm", "permutation"});
  w = small_exl2();
  w.q_invperm.resize(63);
  w.in_features = 63;
  expect_error([&] { quant::validate_exl2(w, "f"); }, ErrorKind::kCorruptFile, {"does not add up"});
  w = small_exl2();
  w.q_groups = {4, 0, 2, 12};
  expect_error([&] { quant::validate_exl2(w, "f"); }, ErrorKind::kCorruptFile, {"q_groups", "run past"});
  w = small_exl2();
  w.q_groups = {3, 0, 2, 5};
  expect_error([&] { quant::validate_exl2(w, "f"); }, ErrorKind::kCorruptFile, {"3-bit"});
  w = small_exl2();
  w.q_scale.resize(7);
  expect_error([&] { quant::validate_exl2(w, "f"); }, ErrorKind::kCorruptFile, {"q_scale"});
  w = small_exl2();
  w.out_features = 100;
  expect_error([&] { quant::validate_exl2(w, "f"); }, ErrorKind::kCorruptFile, {"width", "out_features 100"});
}

}  // namespace
}  // namespace exl

namespace exl {
namespace {

// Copies a model directory with config.json edited and the tensors passed through `keep` (true: keep).
fs::path edited_copy(const fs::path& src, const std::string& name, const std::function<void(nlohmann::json&)>& edit,
                     const std::function<bool(const std::string&)>& keep = {}) {
  const fs::path dir = temp_dir(name);
  std::ifstream in(src / "config.json");
  nlohmann::json c = nlohmann::json::parse(in);
  edit(c);
  std::ofstream(dir / "config.json") << c.dump();
  const auto store = io::TensorStore::open_dir(src);
  io::SafetensorsWriter w;
  for (const auto& n : store.names()) {
    if (keep && !keep(n)) continue;
    const auto v = store.view(n);
    w.add(n, v.dtype, v.shape, v.data);
  }
  w.write(dir / "model.safetensors");
  return dir;
}

// Architecture options the config gets wrong, a fused tensor that does not split as the config says, a missing
// expert: each an exl::Error naming the file, key or tensor, what was expected and what was found.
TEST(ArchBadInput, MoeFusedAndMissingTensors) {
  const fs::path mixtral = testing::testdata_dir() / "models/arch-exl2/mixtral";
  EXL_REQUIRE_TESTDATA(mixtral);
  SCOPED_TRACE("topk");
  fs::path dir = edited_copy(mixtral, "topk", [](nlohmann::json& c) { c["num_experts_per_tok"] = 9; });
  expect_error([&] { model::ModelWeights::load(dir); }, ErrorKind::kInvalidArgument,
               {"config.json", "num_experts_per_tok", "9", "num_local_experts", "4"});
  fs::remove_all(dir);
  SCOPED_TRACE("noexpert");
  dir = edited_copy(mixtral, "noexpert", [](nlohmann::json&) {},
                    [](const std::string& n) { return n.find("layers.1.block_sparse_moe.experts.3.w2.") == std::string::npos; });
  expect_error([&] { model::ModelWeights::load(dir); }, ErrorKind::kNotFound,
               {"model.layers.1.block_sparse_moe.experts.3.w2", "experts.down_proj"});
  fs::remove_all(dir);
  SCOPED_TRACE("ropetype");
  dir = edited_copy(mixtral, "ropetype", [](nlohmann::json& c) {
    c["rope_parameters"]["rope_type"] = "mystery";
  });
  expect_error([&] { model::ModelWeights::load(dir); }, ErrorKind::kUnsupported, {"config.json", "mystery", "longrope"});
  fs::remove_all(dir);
  SCOPED_TRACE("layertypes");
  dir = edited_copy(mixtral, "layertypes", [](nlohmann::json& c) {
    c["layer_types"] = {"full_attention", "chunked_attention", "full_attention", "full_attention"};
  });
  expect_error([&] { model::ModelWeights::load(dir); }, ErrorKind::kUnsupported,
               {"layer_types[1]", "chunked_attention", "sliding_attention"});
  fs::remove_all(dir);

  SCOPED_TRACE("fused");
  // Phi-3 with a fused qkv_proj whose rows do not match the heads the config gives.
  const fs::path phi = temp_dir("fused");
  nlohmann::json c = {{"architectures", {"Phi3ForCausalLM"}}, {"hidden_size", 64}, {"intermediate_size", 128},
                      {"num_hidden_layers", 1}, {"num_attention_heads", 2}, {"num_key_value_heads", 1},
                      {"vocab_size", 32}, {"torch_dtype", "float32"}};
  std::ofstream(phi / "config.json") << c.dump();
  io::SafetensorsWriter w;
  w.add("model.embed_tokens.weight", DType::kF32, {32, 64}, std::vector<float>(32 * 64, 0.1f));
  for (const char* n : {"model.layers.0.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight"})
    w.add(n, DType::kF32, {64}, std::vector<float>(64, 1.0f));
  w.add("model.layers.0.self_attn.qkv_proj.weight", DType::kF32, {96, 64}, std::vector<float>(96 * 64, 0.1f));
  w.write(phi / "model.safetensors");
  expect_error([&] { model::ModelWeights::load(phi); }, ErrorKind::kCorruptFile,
               {"model.layers.0.self_attn.qkv_proj", "96", "128"});
  fs::remove_all(phi);
}

}  // namespace
}  // namespace exl
