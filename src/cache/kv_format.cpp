#include "cache/kv_format.h"

#include <cmath>

#include "core/error.h"
#include "core/fp16.h"

namespace exl::cache {
namespace {

constexpr uint16_t kLargestFiniteHalf = 0x7BFF;  // 65504

void check_code_bits(int bits, const char* what) {
  EXL_CHECK(bits == 4 || bits == 8, kInvalidArgument, "{}: expected 4 or 8 bits per code, found {}", what, bits);
}

}  // namespace

KvFormat parse_kv_format(std::string_view name) {
  if (name == "fp32") return KvFormat::kFp32;
  if (name == "fp16") return KvFormat::kFp16;
  if (name == "q8") return KvFormat::kQ8;
  if (name == "q6") return KvFormat::kQ6;
  if (name == "q4") return KvFormat::kQ4;
  fail(ErrorKind::kInvalidArgument, "KV cache format: expected fp32, fp16, q8, q6 or q4, found '{}'", name);
}

std::string_view kv_format_name(KvFormat format) {
  switch (format) {
    case KvFormat::kFp32: return "fp32";
    case KvFormat::kFp16: return "fp16";
    case KvFormat::kQ8: return "q8";
    case KvFormat::kQ6: return "q6";
    case KvFormat::kQ4: return "q4";
  }
  fail(ErrorKind::kInternal, "KV cache format: unknown enumerator {}", static_cast<int>(format));
}

int key_bits(KvFormat format) {
  switch (format) {
    case KvFormat::kFp32: return 32;
    case KvFormat::kFp16: return 16;
    case KvFormat::kQ8: return 8;
    case KvFormat::kQ6: return 8;
    case KvFormat::kQ4: return 4;
  }
  fail(ErrorKind::kInternal, "KV cache format: unknown enumerator {}", static_cast<int>(format));
}

int value_bits(KvFormat format) {
  switch (format) {
    case KvFormat::kFp32: return 32;
    case KvFormat::kFp16: return 16;
    case KvFormat::kQ8: return 8;
    case KvFormat::kQ6: return 4;
    case KvFormat::kQ4: return 4;
  }
  fail(ErrorKind::kInternal, "KV cache format: unknown enumerator {}", static_cast<int>(format));
}

int64_t group_code_bytes(int bits) {
  check_code_bits(bits, "KV cache group");
  return kKvGroupSize * bits / 8;
}

int64_t vector_bytes(int bits, int64_t head_dim) {
  EXL_CHECK(head_dim > 0, kInvalidArgument, "KV cache: head_dim must be positive, found {}", head_dim);
  if (bits == 32 || bits == 16) return head_dim * bits / 8;
  check_code_bits(bits, "KV cache vector");
  EXL_CHECK(head_dim % kKvGroupSize == 0, kUnsupported,
            "KV cache: {}-bit storage needs head_dim a multiple of {}, found {}", bits, kKvGroupSize, head_dim);
  const int64_t groups = head_dim / kKvGroupSize;
  return groups * (group_code_bytes(bits) + static_cast<int64_t>(sizeof(uint16_t)));
}

int64_t kv_bytes_per_token_head(KvFormat format, int64_t head_dim) {
  return vector_bytes(key_bits(format), head_dim) + vector_bytes(value_bits(format), head_dim);
}

void check_head_dim(KvFormat format, int64_t head_dim) {
  if (format == KvFormat::kFp32 || format == KvFormat::kFp16) return;
  EXL_CHECK(head_dim % kKvGroupSize == 0, kUnsupported,
            "KV cache format {}: head_dim must be a multiple of {}, found {} (use the fp16 or fp32 cache)",
            kv_format_name(format), kKvGroupSize, head_dim);
}

void hadamard32(float* v) {
  for (int h = 1; h < kKvGroupSize; h <<= 1) {
    for (int j = 0; j < kKvGroupSize; ++j) {
      if (j & h) continue;
      const float a = v[j];
      const float b = v[j + h];
      v[j] = a + b;
      v[j + h] = a - b;
    }
  }
}

namespace {

// Codes r[i] in [-offset, offset - 1] of y at scale s (s == 0: all 0) and their squared error, summed in the
// butterfly order of the header.
float codes_and_error(const float* y, float s, int offset, int* r) {
  float e[kKvGroupSize];
  for (int i = 0; i < kKvGroupSize; ++i) {
    float q = 0.0f;
    if (s != 0.0f) {
      q = std::nearbyint(y[i] / s);  // the default rounding mode: to nearest, ties to even
      if (std::isnan(q)) q = 0.0f;
      q = std::fmin(std::fmax(q, static_cast<float>(-offset)), static_cast<float>(offset - 1));
    }
    r[i] = static_cast<int>(q);
    const float d = y[i] - q * s;  // q * s is exact: |q| <= 128, s has 11 significant bits
    e[i] = d * d;
  }
  for (int h = kKvGroupSize / 2; h >= 1; h >>= 1) {
    float next[kKvGroupSize];
    for (int i = 0; i < kKvGroupSize; ++i) next[i] = e[i] + e[i ^ h];
    for (int i = 0; i < kKvGroupSize; ++i) e[i] = next[i];
  }
  return e[0];
}

// float_to_half with an infinite result replaced by the largest finite value of its sign and -0 by +0.
uint16_t scale_to_half(float s) {
  uint16_t h = float_to_half(s);
  if ((h & 0x7FFF) == 0x7C00) h = static_cast<uint16_t>((h & 0x8000) | kLargestFiniteHalf);
  if ((h & 0x7FFF) == 0) h = 0;
  return h;
}

}  // namespace

void quantize_group(const float* x, int bits, uint8_t* codes, uint16_t* scale_fp16) {
  check_code_bits(bits, "quantize_group");
  const int offset = 1 << (bits - 1);
  float y[kKvGroupSize];
  for (int i = 0; i < kKvGroupSize; ++i) y[i] = x[i];
  hadamard32(y);
  float m = 0.0f, y_max = 0.0f;  // the first value of the largest magnitude, with its sign
  for (int i = 0; i < kKvGroupSize; ++i) {
    if (std::fabs(y[i]) > m) {
      m = std::fabs(y[i]);
      y_max = y[i];
    }
  }
  // Candidate A puts the largest value on code 0 (full range, step m / offset); candidate B is symmetric (step
  // m / (offset - 1)) and keeps both signs of the largest magnitude unclamped. The smaller squared error wins, A on
  // a tie.
  const uint16_t s16_a = scale_to_half(-y_max / static_cast<float>(offset));
  const uint16_t s16_b = scale_to_half(m / static_cast<float>(offset - 1));
  int r_a[kKvGroupSize], r_b[kKvGroupSize];
  const float e_a = codes_and_error(y, half_to_float(s16_a), offset, r_a);
  const float e_b = codes_and_error(y, half_to_float(s16_b), offset, r_b);
  const bool use_b = e_b < e_a;
  const int* r = use_b ? r_b : r_a;
  *scale_fp16 = use_b ? s16_b : s16_a;
  if (bits == 8) {
    for (int i = 0; i < kKvGroupSize; ++i) codes[i] = static_cast<uint8_t>(r[i] + offset);
  } else {
    for (int j = 0; j < kKvGroupSize / 2; ++j)
      codes[j] = static_cast<uint8_t>((r[2 * j] + offset) | ((r[2 * j + 1] + offset) << 4));
  }
}

void dequantize_group(const uint8_t* codes, uint16_t scale_fp16, int bits, float* x) {
  check_code_bits(bits, "dequantize_group");
  const int offset = 1 << (bits - 1);
  const float s = half_to_float(scale_fp16);
  for (int i = 0; i < kKvGroupSize; ++i) {
    const int code = bits == 8 ? codes[i] : (i % 2 == 0 ? codes[i / 2] & 0xF : codes[i / 2] >> 4);
    x[i] = static_cast<float>(code - offset) * s;
  }
  hadamard32(x);
  for (int i = 0; i < kKvGroupSize; ++i) x[i] *= 0.03125f;
}

void roundtrip(float* x, int64_t n, int bits) {
  EXL_CHECK(n >= 0, kInvalidArgument, "KV roundtrip: value count must not be negative, found {}", n);
  if (bits == 32) return;
  if (bits == 16) {
    for (int64_t i = 0; i < n; ++i) x[i] = round_to_half(x[i]);
    return;
  }
  EXL_CHECK(bits == 4 || bits == 8, kInvalidArgument, "KV roundtrip: expected 4, 8, 16 or 32 bits, found {}", bits);
  EXL_CHECK(n % kKvGroupSize == 0, kInvalidArgument,
            "KV roundtrip: {}-bit groups need a multiple of {} values, found {}", bits, kKvGroupSize, n);
  uint8_t codes[kKvGroupSize];
  uint16_t scale = 0;
  for (int64_t g = 0; g < n; g += kKvGroupSize) {
    quantize_group(x + g, bits, codes, &scale);
    dequantize_group(codes, scale, bits, x + g);
  }
}

}  // namespace exl::cache
