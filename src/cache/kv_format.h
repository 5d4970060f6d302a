// KV cache storage formats and the group codec of the quantized ones (FP16, Q8, Q6, Q4), after ExLlamaV2's
// ExLlamaV2Cache_Q4/Q6/Q8: a Walsh-Hadamard rotation of 32 values, one fp16 scale per group, round-to-nearest integer
// codes. The CPU functions here are the oracle a CUDA cache kernel matches bit for bit.
//
// Formats (bits of keys / values): kFp32 32/32 (the CPU's exact default, nothing is rounded), kFp16 16/16, kQ8 8/8,
// kQ6 8/4 (keys 8-bit, values 4-bit, as ExLlamaV2's Q6), kQ4 4/4.
//
// The group codec, one group = 32 consecutive values x[0..31] of one KV head's vector (head_dim % 32 == 0), all
// arithmetic IEEE fp32 with round-to-nearest-even, no fused multiply-add, no fast-math (correctly rounded division):
//   WHT (in place on v[32], unnormalised, Sylvester/natural order, y = H32 v with H32[i][j] = (-1)^popcount(i & j)):
//     for h in 1, 2, 4, 8, 16 (this order):
//       for every j with (j & h) == 0:  a = v[j]; b = v[j + h]; v[j] = a + b; v[j + h] = a - b;
//     (warp form: lane j holds v[j]; p = shfl_xor(v, h); v = (j & h) ? p - v : v + p.)
//   quantize(x, bits):
//     offset = 2^(bits-1) (128, 8); codes are stored as r + offset, r in [-offset, offset - 1]
//     y = WHT(x)
//     m = the largest |y[i]| (NaNs ignored; 0 if none is above 0); p = the lowest i with |y[i]| == m (y[p] = 0 if
//     m = 0)
//     two candidate scales, each s16 = half(v) where half(v) = float_to_half_rn(v), with +-Inf replaced by +-0x7BFF
//     (65504, the largest finite fp16) and -0 by +0:
//       A (full range):  s16_a = half(-y[p] / (float)offset)   the largest value lands on r = -offset (code 0)
//       B (symmetric):   s16_b = half(m / (float)(offset - 1))  the largest magnitude lands on r = +-(offset - 1)
//     for each candidate, s = half_to_float(s16):
//       r[i] = 0 if s == 0, else clamp(rint(y[i] / s), -offset, offset - 1) (rint: half to even; NaN gives 0)
//       d[i] = y[i] - (float)r[i] * s;  e[i] = d[i] * d[i]            (the product r * s is exact)
//       E = sum of e in butterfly order: for h in 16, 8, 4, 2, 1: e[i] = e[i] + e[i ^ h] for all i at once; E = e[0]
//       (warp form: e += shfl_xor(e, h); every lane then holds E.)
//     B is stored if E_b < E_a, else A (so A on ties and when either E is NaN): its s16 and codes r[i] + offset.
//   dequantize(codes, s16, bits):
//     s = half_to_float(s16); y'[i] = (float)(code[i] - offset) * s; x'[i] = WHT(y')[i] * 0.03125f
// Why two candidates: A uses the whole code range (step m / offset, 1/8 finer than B at 4 bits) but clamps a value of
// the sign opposite to the largest by up to a step when its magnitude is within a step of m; B (the classic absmax /
// qmax of ExLlamaV2-style caches) never clamps but leaves code 0 unused. A wins on Gaussian-like groups, B on groups
// that one outlier dominates (its WHT is +-a in both signs, which A would clamp on half the values). On tiny-llama's
// keys and values the choice has 12% less rms error and 23% less KL divergence of the logits than B alone at 4 bits
// (docs/kv-cache.md). ExLlamaV2 itself computes in fp16 with step m / offset and a positive scale.
// Every product and sum of the dequantization is exact in fp32 (|code - offset| <= 128 and s has 11 significant
// bits, so each WHT partial sum is an integer below 2^23 times s's significand), so its result does not depend on
// the butterfly order; the forward WHT rounds, hence its order above is part of the format.
// Packing of one group's codes: 8-bit: 32 bytes, code i in byte i; 4-bit: 16 bytes, byte j = code[2j] (low nibble)
// | code[2j+1] << 4. The scale is one fp16 per group. Bytes per token per KV head: see kv_bytes_per_token_head.
//
// Error bound per element (the tests check it), with m = max|y| and no saturated scale (m / (offset - 1) <= 65504):
// |y[i] - y'[i]| <= (m / offset) (1 + offset * 2^-9) + offset * 2^-24 whichever candidate is stored. A: codes that
// do not clamp are off by at most |s|/2 (times 1 + 2^-16 for the rounding of y/s); with a normal fp16 scale
// m <= offset |s| (1 + 2^-11) and the only clamp is at r = offset - 1, reached by a value of the opposite sign within
// a step of m, whose error is at most m - (offset - 1)|s|. B: no clamp with a normal scale, error at most |s|/2 =
// m / (2 offset - 2). Below the fp16 normal range (|s| < 2^-14) the scale's rounding is absolute, at most 2^-25,
// which the last term covers (with clamps at either end and a scale that underflows to zero). As H32 H32 = 32 I,
// |x[j] - x'[j]| <= max_i |y[i] - y'[i]| plus the forward WHT's own rounding (5 stages, at most 5 * 2^-24 * sum|x|
// per output).
#pragma once

#include <cstdint>
#include <string_view>

namespace exl::cache {

enum class KvFormat { kFp32, kFp16, kQ8, kQ6, kQ4 };

inline constexpr int kKvGroupSize = 32;  // values per quantization group

// "fp32", "fp16", "q8", "q6", "q4" (kInvalidArgument listing these for anything else).
KvFormat parse_kv_format(std::string_view name);
std::string_view kv_format_name(KvFormat format);

// Stored bits per key / per value element: 32, 16, 8 or 4.
int key_bits(KvFormat format);
int value_bits(KvFormat format);

// Bytes one head's vector of head_dim values takes at `bits` (4, 8: codes + one fp16 scale per 32 values; 16, 32:
// plain floats). head_dim must be positive and, for 4 and 8 bits, a multiple of 32.
int64_t vector_bytes(int bits, int64_t head_dim);
// Bytes one token takes per KV head, key plus value.
int64_t kv_bytes_per_token_head(KvFormat format, int64_t head_dim);

// Throws kUnsupported when head_dim cannot be stored in `format` (quantized formats need a multiple of 32).
void check_head_dim(KvFormat format, int64_t head_dim);

// The unnormalised 32-point Walsh-Hadamard transform above, in place. Applying it twice multiplies by 32.
void hadamard32(float* v);

// Bytes of one group's packed codes: 32 for 8 bits, 16 for 4 bits.
int64_t group_code_bytes(int bits);

// x[32] -> packed codes (group_code_bytes(bits) bytes) and one fp16 scale (bits). bits: 4 or 8.
void quantize_group(const float* x, int bits, uint8_t* codes, uint16_t* scale_fp16);
// Packed codes and fp16 scale -> x[32].
void dequantize_group(const uint8_t* codes, uint16_t scale_fp16, int bits, float* x);

// x[n] replaced by what a store of `bits` gives back: 4, 8: each group of 32 consecutive values through the codec
// (n a multiple of 32); 16: every value rounded to fp16 (round to nearest even) and back; 32: unchanged.
void roundtrip(float* x, int64_t n, int bits);

}  // namespace exl::cache
