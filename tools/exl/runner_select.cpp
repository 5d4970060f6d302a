#include "runner_select.h"

#include "backend/cpu/cpu_runner.h"
#include "cache/kv_format.h"
#include "core/error.h"
#ifdef EXL_HAVE_CUDA
#include "backend/cuda/cuda_runner.h"
#include "backend/cuda/device_buffer.h"
#endif

namespace exl::cli {

void add_override_options(CLI::App* cmd, model::ModelOverrides* o) {
  cmd->add_option("--max-seq-len", o->max_seq_len,
                  "Longest sequence to allow (0: the config's max_position_embeddings)")->capture_default_str();
  cmd->add_option("--rope-scale", o->rope_scale, "Linear RoPE position scale on top of the config's (0: none)")
      ->capture_default_str();
  cmd->add_option("--rope-alpha", o->rope_alpha, "NTK RoPE alpha: base * alpha^(d/(d-2)) (0: none)")
      ->capture_default_str();
}

bool cuda_available() {
#ifdef EXL_HAVE_CUDA
  return cuda::device_count() > 0;
#else
  return false;
#endif
}

std::unique_ptr<model::Runner> make_runner(const model::ModelWeights& weights, const RunnerChoice& choice) {
  std::string backend = choice.backend;
  if (backend == "auto") backend = cuda_available() ? "cuda" : "cpu";
  if (backend == "cpu") {
    const cache::KvFormat format = choice.cache.empty() ? cache::KvFormat::kFp32 : cache::parse_kv_format(choice.cache);
    return std::make_unique<cpu::CpuRunner>(
        weights, cpu::CpuRunnerOptions{.cache_tokens = choice.cache_tokens, .kv_format = format});
  }
  if (backend == "cuda") {
    if (!choice.cache.empty() && cache::parse_kv_format(choice.cache) != cache::KvFormat::kFp16)
      fail(ErrorKind::kUnsupported,
           "--cache {}: the CUDA backend has only the FP16 KV cache so far (use --cache fp16, or --backend cpu for "
           "fp32, q8, q6 and q4)", choice.cache);
#ifdef EXL_HAVE_CUDA
    EXL_CHECK(cuda::device_count() > 0, kUnsupported, "--backend cuda: no CUDA device found (use --backend cpu)");
    return cuda::make_cuda_runner(weights, cuda::CudaRunnerOptions{.cache_tokens = choice.cache_tokens});
#else
    fail(ErrorKind::kUnsupported, "--backend cuda: this exl was built without CUDA (use --backend cpu)");
#endif
  }
  fail(ErrorKind::kInvalidArgument, "--backend: expected cpu, cuda or auto, found '{}'", backend);
}

}  // namespace exl::cli
