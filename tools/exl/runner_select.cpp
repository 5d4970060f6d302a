#include "runner_select.h"

#include "backend/cpu/cpu_runner.h"
#include "core/error.h"
#ifdef EXL_HAVE_CUDA
#include "backend/cuda/cuda_runner.h"
#include "backend/cuda/device_buffer.h"
#endif

namespace exl::cli {

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
    return std::make_unique<cpu::CpuRunner>(weights, cpu::CpuRunnerOptions{.cache_tokens = choice.cache_tokens});
  }
  if (backend == "cuda") {
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
