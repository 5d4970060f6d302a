// Tokenizer benchmarks: tokenizer.json load time and single-thread encode throughput (MB/s of UTF-8 input).
// Encode is measured cold (a freshly loaded tokenizer, empty word cache) and warm (cache filled by earlier runs).
// Data: ../shared/testdata (tokenizers/, models/tiny-llama/eval_text.txt, corpora/).
#include <benchmark/benchmark.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tokenizer/tokenizer.h"

namespace {

namespace fs = std::filesystem;
using exl::tokenizer::AddSpecialTokens;
using exl::tokenizer::Tokenizer;

fs::path data_dir() { return fs::path(EXL_TESTDATA_DIR); }

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string& english_text() {
  static const std::string text = read_file(data_dir() / "models" / "tiny-llama" / "eval_text.txt");
  return text;
}

// All corpora concatenated (English, multilingual and technical text).
const std::string& corpora_text() {
  static const std::string text = [] {
    std::string all;
    fs::path dir = data_dir() / "corpora";
    if (!fs::exists(dir)) return all;
    for (const auto& entry : fs::recursive_directory_iterator(dir)) {
      if (entry.is_regular_file()) all += read_file(entry.path());
    }
    return all;
  }();
  return text;
}

void load(benchmark::State& state, const std::string& name) {
  fs::path dir = data_dir() / "tokenizers" / name;
  if (!fs::exists(dir)) {
    state.SkipWithError("test data not found");
    return;
  }
  int32_t vocab = 0;
  for (auto _ : state) {
    Tokenizer tok = Tokenizer::from_dir(dir);
    vocab = tok.vocab_size();
    benchmark::DoNotOptimize(vocab);
  }
  state.counters["vocab_size"] = vocab;
}

void encode(benchmark::State& state, const std::string& name, const std::string& (*text_fn)(), bool cold) {
  fs::path dir = data_dir() / "tokenizers" / name;
  const std::string& text = text_fn();
  if (!fs::exists(dir) || text.empty()) {
    state.SkipWithError("test data not found");
    return;
  }
  Tokenizer tok = Tokenizer::from_dir(dir);
  if (!cold) benchmark::DoNotOptimize(tok.encode(text, AddSpecialTokens::kNo));
  size_t tokens = 0;
  for (auto _ : state) {
    if (cold) {
      state.PauseTiming();
      tok = Tokenizer::from_dir(dir);
      state.ResumeTiming();
    }
    auto ids = tok.encode(text, AddSpecialTokens::kNo);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["input_bytes"] = static_cast<double>(text.size());
  state.counters["tokens"] = static_cast<double>(tokens);
}

void register_all() {
  for (const char* name : {"qwen2.5", "llama3-8b", "gemma2"}) {
    benchmark::RegisterBenchmark((std::string("load/") + name).c_str(), load, std::string(name))
        ->Unit(benchmark::kMillisecond)
        ->Iterations(5);
  }
  for (const char* name : {"llama3-8b", "qwen2.5", "llama2", "gpt2", "mistral-nemo-tekken", "gemma2"}) {
    for (bool cold : {true, false}) {
      std::string label = std::string("encode_eval_text/") + name + (cold ? "/cold" : "/warm");
      benchmark::RegisterBenchmark(label.c_str(), encode, std::string(name), &english_text, cold)
          ->Unit(benchmark::kMillisecond)
          ->Iterations(cold ? 3 : 10);
    }
  }
  for (const char* name : {"llama3-8b", "qwen2.5", "llama2"}) {
    benchmark::RegisterBenchmark((std::string("encode_corpora/") + name + "/cold").c_str(), encode, std::string(name),
                                 &corpora_text, true)
        ->Unit(benchmark::kMillisecond)
        ->Iterations(3);
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
