// Small elementwise ops of the model spec: clamping (DBRX clip_qkv) and the transforms of the head's logits (Index's
// unit-norm head rows, logit scale, final soft-capping).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace exl::kernels {

// x[i] = clamp(x[i], -limit, limit) in place (NaN stays NaN, as std::clamp and torch.clamp); limit > 0.
void launch_clamp(__half* x, int64_t n, float limit, cudaStream_t stream);

// For r < rows, c < vocab, on logits[r * row_stride + c]: v = float(logit); v *= col_scale[c] (if set); v *= scale;
// v = softcap * tanh(v / softcap) (if softcap > 0); stored once as half(v). No launch when there is nothing to do
// (no col_scale, scale 1, softcap 0).
struct LogitsTransformArgs {
  __half* logits = nullptr;
  int64_t rows = 0, vocab = 0;
  int64_t row_stride = 0;            // halves between rows (0: vocab)
  const float* col_scale = nullptr;  // [vocab] or null (Index norm_head: 1 / ||head row c||)
  float scale = 1.0f;
  float softcap = 0.0f;
};

void launch_logits_transform(const LogitsTransformArgs& args, cudaStream_t stream);

}  // namespace exl::kernels
