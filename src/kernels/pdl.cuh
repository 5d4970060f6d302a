// Programmatic dependent launch (PDL, sm_90+): a kernel launched with launch_pdl may start while the previous kernel
// on the stream is still running. Rules for every kernel launched this way:
//   * before pdl_wait(): read only data no earlier kernel of the step writes (weights, scales, permutations; and, in
//     attention_decode, lengths, block tables and every KV cache row but each sequence's newest) and write only
//     registers and shared memory;
//   * pdl_wait() blocks until the previous grid has completed and its writes are visible (transitively: that grid
//     waited on its own predecessor before it could complete);
//   * pdl_launch_dependents() (after pdl_wait) lets the next kernel start its own pre-wait part; calling it after the
//     wait keeps at most one kernel waiting behind the running one.
// On GPUs below sm_90 launch_pdl is an ordinary launch and both calls are no-ops (a capability check, not a switch:
// PDL off measured 10% slower in decode, bench/results/2026-11-23-decode-pdl-fusion.md). CUDA graphs captured from
// the stream keep the programmatic edges.
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "kernels/kernel_check.h"

namespace exl::kernels {

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// Host: whether launches on the current device use PDL (compute capability >= 9.0).
bool pdl_enabled();

template <typename... KernelArgs, typename... Args>
void launch_pdl(const char* op, void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smem,
                cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = pdl_enabled() ? 1 : 0;
  config.attrs = attribute;
  config.numAttrs = 1;
  check_cuda(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...), op);
  check_launch(op);
}

}  // namespace exl::kernels
