// MLP activations: the gated product out = act(gate) * up, and act(x) in place (plain MLPs), for SiLU, GELU with the
// tanh approximation (gelu_pytorch_tanh) and exact GELU (erf), as cpu::activation.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace exl::kernels {

enum class ActKindDev { kSilu, kGeluTanh, kGelu };

struct ActMulArgs {
  ActKindDev kind = ActKindDev::kSilu;
  const __half* gate = nullptr;  // [n]
  const __half* up = nullptr;    // [n]
  __half* out = nullptr;         // [n]; may alias gate or up
  int64_t n = 0;
};

struct ActArgs {
  ActKindDev kind = ActKindDev::kSilu;
  __half* x = nullptr;  // [n], in place
  int64_t n = 0;
};

void launch_act_mul(const ActMulArgs& args, cudaStream_t stream);
void launch_act(const ActArgs& args, cudaStream_t stream);

// out = silu(gate) * up (launch_act_mul with kSilu).
struct SiluMulArgs {
  const __half* gate = nullptr;  // [n]
  const __half* up = nullptr;    // [n]
  __half* out = nullptr;         // [n]; may alias gate or up
  int64_t n = 0;
};

void launch_silu_mul(const SiluMulArgs& args, cudaStream_t stream);

}  // namespace exl::kernels
