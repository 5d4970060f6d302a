#include "quant/linear_weight.h"

#include <fmt/format.h>

#include "core/error.h"
#include "core/fp16.h"

namespace exl::quant {

std::string_view weight_format_name(WeightFormat format) {
  switch (format) {
    case WeightFormat::kFloat: return "float";
    case WeightFormat::kExl2: return "exl2";
    case WeightFormat::kGptq: return "gptq";
  }
  return "?";
}

size_t LinearWeight::stored_bytes() const {
  switch (format) {
    case WeightFormat::kFloat: return float_weight.nbytes() + bias.size() * dtype_size(float_weight.dtype());
    case WeightFormat::kExl2: return exl2.stored_bytes();
    case WeightFormat::kGptq: return gptq.stored_bytes();
  }
  return 0;
}

double LinearWeight::bits_per_weight() const {
  switch (format) {
    case WeightFormat::kFloat: return 8.0 * static_cast<double>(dtype_size(float_weight.dtype()));
    case WeightFormat::kExl2: return exl2.bits_per_weight();
    case WeightFormat::kGptq:
      return 8.0 * static_cast<double>(gptq.stored_bytes() - gptq.bias.size() * 2) /
             static_cast<double>(in_features * out_features);
  }
  return 0;
}

std::string LinearWeight::describe() const {
  switch (format) {
    case WeightFormat::kFloat: {
      std::string name(dtype_name(float_weight.dtype()));
      for (auto& ch : name) ch = static_cast<char>(std::tolower(ch));
      return name == "f16" ? "fp16" : name == "f32" ? "fp32" : name;
    }
    case WeightFormat::kExl2: {
      std::string bits;
      for (int b : exl2.bit_widths()) bits += (bits.empty() ? "" : ",") + std::to_string(b);
      return fmt::format("exl2 {:.2f} bpw ({} bit)", bits_per_weight(), bits);
    }
    case WeightFormat::kGptq:
      return fmt::format("gptq 4-bit g{}{}{}", gptq.group_size, gptq.act_order ? " act-order" : "",
                         gptq.zero_format == GptqZeroFormat::kV2 ? " v2" : "");
  }
  return "?";
}

std::vector<float> LinearWeight::to_f32_nk() const {
  const int64_t K = in_features, N = out_features;
  std::vector<float> out(static_cast<size_t>(N * K));
  switch (format) {
    case WeightFormat::kFloat: {
      const size_t n = out.size();
      if (float_weight.dtype() == DType::kF32) {
        for (size_t i = 0; i < n; ++i) out[i] = float_weight.data<float>()[i];
      } else if (float_weight.dtype() == DType::kF16) {
        for (size_t i = 0; i < n; ++i) out[i] = half_to_float(float_weight.data<uint16_t>()[i]);
      } else {
        for (size_t i = 0; i < n; ++i) out[i] = bf16_to_float(float_weight.data<uint16_t>()[i]);
      }
      break;
    }
    case WeightFormat::kExl2: {
      const std::vector<uint16_t> kw = dequantize_exl2(exl2);
      const int64_t W = exl2.padded_out;
      for (int64_t k = 0; k < K; ++k)
        for (int64_t n = 0; n < N; ++n) out[n * K + k] = half_to_float(kw[k * W + n]);
      break;
    }
    case WeightFormat::kGptq: {
      const std::vector<uint16_t> kn = dequantize_gptq(gptq);
      for (int64_t k = 0; k < K; ++k)
        for (int64_t n = 0; n < N; ++n) out[n * K + k] = half_to_float(kn[k * N + n]);
      break;
    }
  }
  return out;
}

namespace {

bool has_module(const io::TensorStore& store, const std::string& key) {
  return store.has(key + ".q_weight") || store.has(key + ".qweight") || store.has(key + ".weight");
}

}  // namespace

LinearWeight load_linear(const io::TensorStore& store, const std::string& key_in, int64_t in_features,
                         int64_t out_features, const LinearLoadOptions& options) {
  std::string key = key_in;
  if (!has_module(store, key) && options.alt_key && has_module(store, *options.alt_key)) key = *options.alt_key;
  LinearWeight lw;
  lw.key = key;
  lw.in_features = in_features;
  lw.out_features = out_features;
  if (store.has(key + ".q_weight")) {
    lw.format = WeightFormat::kExl2;
    lw.exl2 = load_exl2(store, key, in_features, out_features);
    for (int64_t n = 0; n < out_features && !lw.exl2.bias.empty(); ++n)
      lw.bias.push_back(half_to_float(lw.exl2.bias[n]));
  } else if (store.has(key + ".qweight")) {
    lw.format = WeightFormat::kGptq;
    lw.gptq = load_gptq(store, key, in_features, out_features, options.gptq_zero_format);
    for (uint16_t b : lw.gptq.bias) lw.bias.push_back(half_to_float(b));
  } else if (store.has(key + ".weight")) {
    lw.format = WeightFormat::kFloat;
    lw.float_weight = store.read_float_tensor(key + ".weight", {out_features, in_features});
    if (store.has(key + ".bias")) lw.bias = store.read_f32(key + ".bias", {out_features});
  } else {
    fail(ErrorKind::kNotFound, "{}: no weights for linear layer '{}' (looked for {}.q_weight, {}.qweight, {}.weight{})",
         store.location().string(), key_in, key_in, key_in, key_in,
         options.alt_key ? " and the same under " + *options.alt_key : std::string());
  }
  return lw;
}

}  // namespace exl::quant
