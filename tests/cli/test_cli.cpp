// The CLI contracts the acceptance checks use, exercised through the real binary: output files and formats,
// exit statuses, and error messages on stderr.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "testdata.h"

namespace exl {
namespace {

namespace fs = std::filesystem;

struct Result {
  int status = -1;
  std::string out;
};

// Runs `exl ARGS` through the shell; stderr is merged into out when merge_stderr is set.
Result run(const std::string& args, const std::string& stdin_text = "", bool merge_stderr = false) {
  const fs::path in = fs::temp_directory_path() / ("exl_cli_in_" + std::to_string(::getpid()));
  std::ofstream(in) << stdin_text;
  std::string cmd = std::string(EXL_CLI_PATH) + " " + args + " < " + in.string() + (merge_stderr ? " 2>&1" : " 2>/dev/null");
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

const fs::path kDemo = testing::source_dir() / "models/demo";

TEST(Cli, HelpOnEveryCommand) {
  for (const char* c : {"inspect", "logits", "perplexity", "generate", "tokenize", "detokenize", "chat-template",
                        "make-random-model", "bench"}) {
    const Result r = run(std::string(c) + " --help");
    EXPECT_EQ(r.status, 0) << c;
    EXPECT_NE(r.out.find("--"), std::string::npos) << c;
  }
}

TEST(Cli, InspectJson) {
  const Result r = run("inspect --json --model " + kDemo.string());
  ASSERT_EQ(r.status, 0);
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["architecture"], "LlamaForCausalLM");
  EXPECT_EQ(j["num_layers"], 6);
  EXPECT_EQ(j["layers"].size(), 6u);
  EXPECT_EQ(j["head"]["format"], "float");
}

TEST(Cli, LogitsWritesF32Tensor) {
  const fs::path ids = fs::temp_directory_path() / ("exl_cli_ids_" + std::to_string(::getpid()) + ".json");
  const fs::path out = fs::temp_directory_path() / ("exl_cli_out_" + std::to_string(::getpid()) + ".safetensors");
  std::ofstream(ids) << "[[0, 1149, 260, 2086], [0, 5, 6, 7]]";
  const Result r = run("logits --backend cpu --model " + kDemo.string() + " --tokens " + ids.string() + " --output " +
                       out.string());
  ASSERT_EQ(r.status, 0);
  const auto store = io::TensorStore::open_file(out);
  EXPECT_EQ(store.info("logits").dtype, DType::kF32);
  EXPECT_EQ(store.info("logits").shape, (Shape{2, 4, 4096}));
  fs::remove(out);
  fs::remove(ids);
}

TEST(Cli, PerplexityJsonAndTextFile) {
  const fs::path ids = fs::temp_directory_path() / ("exl_cli_ppl_" + std::to_string(::getpid()) + ".json");
  std::ofstream(ids) << "[[0, 1149, 260, 2086, 270, 260, 1041, 270]]";
  Result r = run("perplexity --backend cpu --json --model " + kDemo.string() + " --tokens " + ids.string());
  ASSERT_EQ(r.status, 0);
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["tokens"], 7);
  EXPECT_NEAR(std::exp(j["nll"].get<double>()), j["ppl"].get<double>(), 1e-6 * j["ppl"].get<double>());
  fs::remove(ids);

  const fs::path root = testing::testdata_dir() / "models/tiny-llama";
  EXL_REQUIRE_TESTDATA(root);
  // ppl_rows in refs.safetensors are tokens [8000, 8000 + 16*256) of eval_text.txt; refs.json: 129.2322.
  r = run("perplexity --backend cpu --json --model " + (root / "exl2-4.0bpw").string() + " --text-file " +
          (root / "eval_text.txt").string() + " --length 256 --offset-tokens 8000 --max-rows 16");
  ASSERT_EQ(r.status, 0);
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["tokens"], 16 * 255);
  EXPECT_NEAR(j["ppl"].get<double>(), 129.2322, 129.2322 * 0.005);
}

TEST(Cli, GenerateStreamsTheReferenceContinuation) {
  const Result r = run("generate --backend cpu --model " + kDemo.string() +
                       " --prompt 'In the beginning' --max-tokens 14 --ignore-eos");
  ASSERT_EQ(r.status, 0);
  EXPECT_EQ(r.out.rfind("In the beginning of the reign of Darius, the days of Jahaz,", 0), 0u) << r.out;
}

// generate --prompts: all prompts at once through the generator; one result line per prompt in input order, each
// greedy one equal to the same prompt run alone with --prompt; stop strings cut the text; bad lines name the line.
TEST(Cli, GeneratePromptsRunsABatchInInputOrder) {
  const fs::path f = fs::temp_directory_path() / ("exl_cli_prompts_" + std::to_string(::getpid()) + ".jsonl");
  std::ofstream(f) << "{\"prompt\": \"In the beginning\", \"max_tokens\": 14}\n"
                   << "{\"prompt\": \"And God said\", \"max_tokens\": 5, \"temperature\": 0.9, \"seed\": 7}\n\n"
                   << "{\"prompt\": \"In the beginning\", \"max_tokens\": 14, \"stop\": \"Darius\"}\n";
  const Result r = run("generate --backend cpu --ignore-eos --model " + kDemo.string() + " --prompts " + f.string());
  ASSERT_EQ(r.status, 0) << r.out;
  std::vector<nlohmann::json> lines;
  size_t at = 0;
  for (size_t nl; (nl = r.out.find('\n', at)) != std::string::npos; at = nl + 1)
    lines.push_back(nlohmann::json::parse(r.out.substr(at, nl - at)));
  ASSERT_EQ(lines.size(), 3u) << r.out;
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(lines[i]["index"], i);
  EXPECT_EQ(lines[0]["text"], " of the reign of Darius, the days of Jahaz,") << lines[0].dump();
  EXPECT_EQ(lines[0]["token_ids"].size(), 14u);
  EXPECT_EQ(lines[0]["finish_reason"], "length");
  EXPECT_EQ(lines[1]["token_ids"].size(), 5u);
  EXPECT_EQ(lines[2]["text"], " of the reign of ") << lines[2].dump();
  EXPECT_EQ(lines[2]["finish_reason"], "stop");
  std::ofstream(f) << "{\"prompt\": \"a\"}\n{\"prompt\": \"b\", \"max_tokens\": -1}\n";
  const Result bad = run("generate --backend cpu --model " + kDemo.string() + " --prompts " + f.string(), "", true);
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.out.find(":2: max_tokens must be positive"), std::string::npos) << bad.out;
  fs::remove(f);
}

TEST(Cli, TokenizeAndDetokenizeRoundTrip) {
  Result r = run("tokenize --model " + kDemo.string(), "\"In the beginning\"\n\"God\"\n");
  ASSERT_EQ(r.status, 0);
  EXPECT_EQ(r.out, "[1149,260,2086]\n" + run("tokenize --model " + kDemo.string(), "\"God\"\n").out);
  r = run("detokenize --model " + kDemo.string(), "[1149,260,2086]\n");
  ASSERT_EQ(r.status, 0);
  EXPECT_EQ(r.out, "\"In the beginning\"\n");
}

TEST(Cli, ErrorsGoToStderrWithNonZeroStatus) {
  Result r = run("inspect --model /nonexistent/dir", "", true);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("/nonexistent/dir"), std::string::npos) << r.out;
  const fs::path ids = fs::temp_directory_path() / ("exl_cli_bad_" + std::to_string(::getpid()) + ".json");
  std::ofstream(ids) << "[[0, 99999]]";
  r = run("logits --backend cpu --model " + kDemo.string() + " --tokens " + ids.string() + " --output /tmp/x.st", "",
          true);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("99999"), std::string::npos) << r.out;
  std::ofstream(ids) << "[[0, 1], [2]]";
  r = run("perplexity --backend cpu --model " + kDemo.string() + " --tokens " + ids.string(), "", true);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("same length"), std::string::npos) << r.out;
  r = run("generate --model " + kDemo.string() + " --prompt hi --backend tpu", "", true);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("tpu"), std::string::npos) << r.out;
  fs::remove(ids);
}

// exl bench --tune key=value: a wrong key or value fails before the model is loaded (no GPU needed), naming the keys
// or the range. Without CUDA, bench itself is the error.
TEST(Cli, BenchTuneErrors) {
  const std::string bench = "bench --model " + kDemo.string() + " ";
  Result r = run(bench + "--tune gemv_warps=3", "", true);
  EXPECT_NE(r.status, 0);
#ifdef EXL_HAVE_CUDA
  EXPECT_NE(r.out.find("unknown key 'gemv_warps'"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("gemv1_warps, gemv1_slices"), std::string::npos) << r.out;
  r = run(bench + "--tune decode_splits=abc", "", true);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("decode_splits='abc' is not an integer"), std::string::npos) << r.out;
  r = run(bench + "--tune decode_splits=8 --tune gemv1_l1_batches=99", "", true);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("gemv1_l1_batches = 99 is outside 1..16"), std::string::npos) << r.out;
  r = run("bench --help");
  EXPECT_NE(r.out.find("gemv1_l1_batches"), std::string::npos) << r.out;
#else
  EXPECT_NE(r.out.find("without CUDA"), std::string::npos) << r.out;
#endif
}

}  // namespace
}  // namespace exl
