// exl bench: prefill and batch-1 decode speed on the GPU, with the bandwidth ceiling measured in the same run.
#include <fstream>
#include <iostream>
#include <memory>

#include "commands.h"
#include "core/error.h"
#include "model/model_weights.h"
#ifdef EXL_HAVE_CUDA
#include "backend/cuda/bench_runner.h"
#include "backend/cuda/tuning.h"
#endif

namespace exl::cli {

void add_bench_command(CLI::App& app) {
  struct Options {
    std::string dir;
    int64_t prompt_tokens = 2048;
    int64_t decode_tokens = 128;
    std::vector<int64_t> contexts = {128, 2048, 8192};
    int repetitions = 3;
    bool as_json = false;
    std::string json_out;
    std::string skip_kernels;
    std::vector<std::string> tune;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("bench", "Benchmark prefill and batch-1 decode on the GPU");
  cmd->add_option("--model", o->dir, "Model directory")->required();
  cmd->add_option("--prompt-tokens", o->prompt_tokens, "Prefill prompt length")->capture_default_str();
  cmd->add_option("--decode-tokens", o->decode_tokens, "Tokens per decode measurement")->capture_default_str();
  cmd->add_option("--contexts", o->contexts, "Decode context lengths, comma-separated")->delimiter(',')->capture_default_str();
  cmd->add_option("--repetitions", o->repetitions, "Repetitions (median reported)")->capture_default_str();
  cmd->add_flag("--json", o->as_json, "Print JSON");
  cmd->add_option("--json-out", o->json_out, "Also write the JSON result to this file");
  cmd->add_option("--skip-kernels", o->skip_kernels,
                  "Timing only: leave these decode launches out (comma list of qkv, attn, o, gateup, down, head); "
                  "the generated tokens are meaningless");
  std::string tune_help = "Set a CUDA launch knob, key=value (repeatable; docs/tuning.md)";
#ifdef EXL_HAVE_CUDA
  tune_help += ". Keys: " + cuda::tuning_keys();
#endif
  cmd->add_option("--tune", o->tune, tune_help)->take_all();
  cmd->callback([o] {
#ifdef EXL_HAVE_CUDA
    // The knobs first: a typo fails before the model loads (and without a GPU).
    cuda::CudaTuning tuning;
    for (const std::string& kv : o->tune) cuda::set_tuning(tuning, kv);
    cuda::validate_tuning(tuning);
    EXL_CHECK(cuda_available(), kUnsupported, "bench: no CUDA device found (the benchmark measures the GPU)");
    const auto weights = model::ModelWeights::load(o->dir);
    cuda::BenchOptions bo;
    bo.prompt_tokens = o->prompt_tokens;
    bo.decode_tokens = o->decode_tokens;
    bo.contexts = o->contexts;
    bo.repetitions = o->repetitions;
    bo.skip_kernels = o->skip_kernels;
    bo.tuning = tuning;
    if (const std::string changed = cuda::tuning_changes(tuning); !changed.empty())
      std::cerr << "bench: tuning " << changed << "\n";
    if (!o->skip_kernels.empty())
      std::cerr << "bench: timing only, skipping decode launches: " << o->skip_kernels
                << " (the outputs are meaningless)\n";
    const cuda::BenchResult r = cuda::run_decode_bench(weights, bo);
    std::cout << (o->as_json ? r.to_json() : r.to_table()) << std::endl;
    if (!o->json_out.empty()) {
      std::ofstream out(o->json_out);
      out << r.to_json() << "\n";
      EXL_CHECK(out.good(), kInvalidArgument, "--json-out {}: write failed", o->json_out);
    }
#else
    fail(ErrorKind::kUnsupported, "bench: this exl was built without CUDA");
#endif
  });
}

}  // namespace exl::cli
