#include "quant/gptq.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/fp16.h"

namespace exl::quant {

size_t GptqWeight::stored_bytes() const {
  return qweight.size() * 4 + qzeros.size() * 4 + scales.size() * 2 + (act_order ? g_idx.size() * 4 : 0) +
         bias.size() * 2;
}

int GptqWeight::zero(int64_t g, int64_t n) const {
  uint32_t word = qzeros[g * (out_features / 8) + n / 8];
  if (zero_format == GptqZeroFormat::kV2) {
    word -= 0x11111111u;  // ExLlamaV2 offsets the whole word, borrows included
  }
  return static_cast<int>((word >> (4 * (n % 8))) & 15u) + 1;
}

void validate_gptq(GptqWeight& w, const std::string& source) {
  const int64_t K = w.in_features, N = w.out_features, G = w.num_groups;
  const std::string& key = w.key;
  EXL_CHECK(K % 32 == 0 && K > 0, kUnsupported, "{}: {}: GPTQ in_features {} must be a positive multiple of 32",
            source, key, K);
  EXL_CHECK(N % 32 == 0 && N > 0, kUnsupported, "{}: {}: GPTQ out_features {} must be a positive multiple of 32",
            source, key, N);
  EXL_CHECK(G >= 1 && G <= K, kCorruptFile, "{}: {}.qzeros: {} groups for {} input rows", source, key, G, K);
  int64_t gs = 1;
  while (gs * G < K) gs *= 2;
  w.group_size = gs;
  EXL_CHECK(static_cast<int64_t>(w.qweight.size()) == K / 8 * N, kCorruptFile,
            "{}: {}.qweight: expected [{}, {}], found {} words", source, key, K / 8, N, w.qweight.size());
  EXL_CHECK(static_cast<int64_t>(w.qzeros.size()) == G * N / 8, kCorruptFile,
            "{}: {}.qzeros: expected [{}, {}] (4-bit), found {} words", source, key, G, N / 8, w.qzeros.size());
  EXL_CHECK(static_cast<int64_t>(w.scales.size()) == G * N, kCorruptFile, "{}: {}.scales: expected [{}, {}], found {}",
            source, key, G, N, w.scales.size());
  bool all_zero = true;
  for (int32_t gi : w.g_idx) all_zero = all_zero && gi == 0;
  if (w.g_idx.empty() || all_zero) {
    w.g_idx.resize(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; ++k) w.g_idx[k] = static_cast<int32_t>(k / gs);
    w.act_order = false;
  } else {
    EXL_CHECK(static_cast<int64_t>(w.g_idx.size()) == K, kCorruptFile, "{}: {}.g_idx: expected [{}], found {}",
              source, key, K, w.g_idx.size());
    w.act_order = false;
    for (int64_t k = 0; k < K; ++k) {
      EXL_CHECK(w.g_idx[k] >= 0 && w.g_idx[k] < G, kCorruptFile, "{}: {}.g_idx[{}] = {} is outside [0, {})", source,
                key, k, w.g_idx[k], G);
      w.act_order = w.act_order || w.g_idx[k] != k / gs;
    }
  }
  EXL_CHECK(w.bias.empty() || static_cast<int64_t>(w.bias.size()) == N, kCorruptFile,
            "{}: {}.bias: expected [{}], found {}", source, key, N, w.bias.size());
}

GptqWeight load_gptq(const io::TensorStore& store, const std::string& key, int64_t in_features,
                     int64_t out_features, GptqZeroFormat zero_format) {
  GptqWeight w;
  w.key = key;
  w.zero_format = zero_format;
  const std::string source = store.file_of(key + ".qweight");
  const auto& qi = store.info(key + ".qweight");
  EXL_CHECK(qi.dtype == DType::kI32 && qi.shape.size() == 2, kCorruptFile,
            "{}: {}.qweight: expected a 2-D I32 tensor, found {} {}", source, key, dtype_name(qi.dtype),
            shape_str(qi.shape));
  w.in_features = qi.shape[0] * 8;
  w.out_features = qi.shape[1];
  EXL_CHECK(w.in_features == in_features && w.out_features == out_features, kCorruptFile,
            "{}: {}.qweight: expected [{}, {}] for in_features {} and out_features {} (4-bit), found {}", source, key,
            in_features / 8, out_features, in_features, out_features, shape_str(qi.shape));
  const auto& zi = store.info(key + ".qzeros");
  EXL_CHECK(zi.dtype == DType::kI32 && zi.shape.size() == 2, kCorruptFile,
            "{}: {}.qzeros: expected a 2-D I32 tensor, found {} {}", source, key, dtype_name(zi.dtype),
            shape_str(zi.shape));
  EXL_CHECK(zi.shape[1] * 8 == out_features, kUnsupported,
            "{}: {}.qzeros: width {} does not match 4-bit packing of {} columns (only 4-bit GPTQ is supported)",
            source, key, zi.shape[1], out_features);
  w.num_groups = zi.shape[0];
  w.qweight = store.read<uint32_t>(key + ".qweight", DType::kI32);
  w.qzeros = store.read<uint32_t>(key + ".qzeros", DType::kI32);
  const auto& si = store.info(key + ".scales");
  EXL_CHECK(si.shape == (Shape{w.num_groups, out_features}), kCorruptFile, "{}: {}.scales: expected [{}, {}], found {}",
            source, key, w.num_groups, out_features, shape_str(si.shape));
  if (si.dtype == DType::kF16) {
    w.scales = store.read<uint16_t>(key + ".scales", DType::kF16);
  } else {
    for (float v : store.read_f32(key + ".scales")) w.scales.push_back(float_to_half(v));
  }
  if (store.has(key + ".g_idx")) w.g_idx = store.read<int32_t>(key + ".g_idx", DType::kI32, {in_features});
  if (store.has(key + ".bias")) {
    std::vector<float> b = store.read_f32(key + ".bias", {out_features});
    bool any = false;
    for (float v : b) any = any || v != 0.0f;
    if (any)  // ExLlamaV2 drops an all-zero bias
      for (float v : b) w.bias.push_back(float_to_half(v));
  }
  validate_gptq(w, source);
  return w;
}

std::vector<uint16_t> dequantize_gptq(const GptqWeight& w) {
  const int64_t K = w.in_features, N = w.out_features;
  std::vector<uint16_t> out(static_cast<size_t>(K * N));
  for (int64_t k = 0; k < K; ++k) {
    const int64_t g = w.g_idx[k];
    for (int64_t n = 0; n < N; ++n) {
      const int q = static_cast<int>((w.qweight[(k / 8) * N + n] >> (4 * (k % 8))) & 15u);
      const float s = half_to_float(w.scales[g * N + n]);
      out[k * N + n] = float_to_half(static_cast<float>(q - w.zero(g, n)) * s);
    }
  }
  return out;
}

GptqWeight pack_gptq_rtn(const std::vector<float>& weight_nk, int64_t out_features, int64_t in_features,
                         const GptqPackOptions& options) {
  const int64_t N = out_features, K = in_features, gs = options.group_size;
  EXL_CHECK(static_cast<int64_t>(weight_nk.size()) == N * K, kInvalidArgument,
            "pack_gptq_rtn: weight has {} values, expected {}x{}", weight_nk.size(), N, K);
  EXL_CHECK(gs > 0 && (gs & (gs - 1)) == 0 && K % gs == 0, kInvalidArgument,
            "pack_gptq_rtn: group size {} must be a power of two dividing in_features {}", gs, K);
  GptqWeight w;
  w.in_features = K;
  w.out_features = N;
  w.num_groups = K / gs;
  w.zero_format = options.zero_format;
  const int64_t G = w.num_groups;
  w.g_idx = options.g_idx;
  if (w.g_idx.empty()) {
    for (int64_t k = 0; k < K; ++k) w.g_idx.push_back(static_cast<int32_t>(k / gs));
  }
  w.qweight.assign(static_cast<size_t>(K / 8 * N), 0);
  w.qzeros.assign(static_cast<size_t>(G * N / 8), 0);
  w.scales.assign(static_cast<size_t>(G * N), 0);
  std::vector<int> zeros(static_cast<size_t>(G * N));
  for (int64_t g = 0; g < G; ++g) {
    for (int64_t n = 0; n < N; ++n) {
      float lo = 0.0f, hi = 0.0f;
      for (int64_t k = 0; k < K; ++k) {
        if (w.g_idx[k] != g) continue;
        lo = std::min(lo, weight_nk[n * K + k]);
        hi = std::max(hi, weight_nk[n * K + k]);
      }
      float scale;
      int zero;
      if (options.symmetry == GptqSymmetry::kSymmetric) {
        float amax = std::max(std::fabs(lo), std::fabs(hi));
        scale = amax > 0 ? amax / 7.5f : 1.0f;
        zero = 8;
      } else {
        scale = hi > lo ? (hi - lo) / 15.0f : 1.0f;
        zero = std::clamp(static_cast<int>(std::lround(-lo / scale)), 1, 15);
      }
      w.scales[g * N + n] = float_to_half(scale);
      zeros[g * N + n] = zero;
      const uint32_t stored = static_cast<uint32_t>(options.zero_format == GptqZeroFormat::kV1 ? zero - 1 : zero);
      w.qzeros[g * (N / 8) + n / 8] |= stored << (4 * (n % 8));
    }
  }
  for (int64_t k = 0; k < K; ++k) {
    const int64_t g = w.g_idx[k];
    for (int64_t n = 0; n < N; ++n) {
      const float s = half_to_float(w.scales[g * N + n]);
      const int q = std::clamp(static_cast<int>(std::lround(weight_nk[n * K + k] / s)) + zeros[g * N + n], 0, 15);
      w.qweight[(k / 8) * N + n] |= static_cast<uint32_t>(q) << (4 * (k % 8));
    }
  }
  validate_gptq(w, "pack_gptq_rtn");
  return w;
}

}  // namespace exl::quant
