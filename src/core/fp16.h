// IEEE binary16 and bfloat16 conversions on the host (round to nearest even, subnormals kept), matching CUDA's
// __float2half_rn / __half2float bit for bit.
#pragma once

#include <cstdint>

namespace exl {

float half_to_float(uint16_t h);
uint16_t float_to_half(float f);
inline float bf16_to_float(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}
uint16_t float_to_bf16(float f);
// Round a float through fp16 and back (what storing an fp32 value in an fp16 tensor does).
inline float round_to_half(float f) { return half_to_float(float_to_half(f)); }

}  // namespace exl
