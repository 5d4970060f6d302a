#include "quant/select_columns.h"

#include <fmt/format.h>

#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/fp16.h"

namespace exl::quant {
namespace {

std::string range_str(const ColumnRange& r) {
  if (r.count > 0 && r.start <= std::numeric_limits<int64_t>::max() - r.count)
    return fmt::format("[{}, {})", r.start, r.start + r.count);
  return fmt::format("[start {}, count {}]", r.start, r.count);
}

std::string ranges_str(std::span<const ColumnRange> ranges) {
  std::string out;
  for (const ColumnRange& r : ranges) out += (out.empty() ? "" : " ") + range_str(r);
  return out;
}

// The input column of every output column, after checking the ranges against N.
std::vector<int64_t> column_map(const LinearWeight& w, std::span<const ColumnRange> ranges,
                                const std::string& new_key) {
  const int64_t N = w.out_features;
  EXL_CHECK(!ranges.empty(), kInvalidArgument,
            "select_output_columns: no column ranges given for '{}' (-> '{}', {} output columns)", w.key, new_key, N);
  std::vector<int64_t> cols;
  for (size_t i = 0; i < ranges.size(); ++i) {
    const ColumnRange& r = ranges[i];
    EXL_CHECK(r.count > 0, kInvalidArgument,
              "select_output_columns: '{}' (-> '{}'): range {} {} has count {} (must be positive); ranges {}, N = {}",
              w.key, new_key, i, range_str(r), r.count, ranges_str(ranges), N);
    EXL_CHECK(r.start >= 0 && r.start < N && r.count <= N - r.start, kInvalidArgument,
              "select_output_columns: '{}' (-> '{}'): range {} {} is outside the output columns [0, {}); ranges {}, "
              "N = {}",
              w.key, new_key, i, range_str(r), N, ranges_str(ranges), N);
    for (int64_t c = r.start; c < r.start + r.count; ++c) cols.push_back(c);
  }
  return cols;
}

Tensor select_float(const LinearWeight& w, const std::vector<int64_t>& cols) {
  const Tensor& src = w.float_weight;
  const int64_t K = w.in_features;
  EXL_CHECK(src.ndim() == 2 && src.dim(0) == w.out_features && src.dim(1) == K, kInvalidArgument,
            "select_output_columns: '{}': float weight is {}, expected [{}, {}]", w.key, shape_str(src.shape()),
            w.out_features, K);
  const int64_t n = static_cast<int64_t>(cols.size());
  Tensor out(src.dtype(), {n, K});
  const size_t row_bytes = static_cast<size_t>(K) * dtype_size(src.dtype());
  const auto* from = static_cast<const std::byte*>(src.raw());
  auto* to = static_cast<std::byte*>(out.raw());
  for (int64_t j = 0; j < n; ++j) std::memcpy(to + j * row_bytes, from + cols[j] * row_bytes, row_bytes);
  return out;
}

Exl2Weight select_exl2(const LinearWeight& lw, const std::vector<int64_t>& cols, const std::string& new_key) {
  const Exl2Weight& w = lw.exl2;
  EXL_CHECK(w.out_features == lw.out_features && w.in_features == lw.in_features && w.padded_out % 8 == 0,
            kInvalidArgument,
            "select_output_columns: '{}': EXL2 tensors are for {}x{} (width {}), the linear says {}x{}", lw.key,
            w.in_features, w.out_features, w.padded_out, lw.in_features, lw.out_features);
  EXL_CHECK(!w.groups.empty() && w.q_perm.size() == w.q_invperm.size(), kInvalidArgument,
            "select_output_columns: '{}': EXL2 tensor set was not validated (validate_exl2 fills its groups)", lw.key);
  const int64_t n = static_cast<int64_t>(cols.size());
  const int64_t W = w.padded_out, Wn = (n + 31) / 32 * 32, Q = w.packed_rows;
  const int64_t G = static_cast<int64_t>(w.q_scale_max.size());
  Exl2Weight out;
  out.key = new_key;
  out.in_features = w.in_features;
  out.out_features = n;
  out.padded_out = Wn;
  out.packed_rows = Q;
  out.q_scale_max = w.q_scale_max;
  out.q_groups = w.q_groups;
  out.q_invperm = w.q_invperm;
  // q_weight: every column is its own bitstream per group; padding columns hold the code 2^(b-1) of their
  // group's width (converter output, section 3.7), so they dequantize to 0 whatever the scale.
  out.q_weight.assign(static_cast<size_t>(Q * Wn), 0u);
  for (const Exl2Group& grp : w.groups) {
    const int b = grp.bits;
    std::vector<uint32_t> pad_words(static_cast<size_t>(grp.packed_rows), 0u);
    for (int64_t r = 0; r < grp.rows; ++r) {
      const int64_t bitpos = r * b, j = bitpos / 32;
      const int off = static_cast<int>(bitpos % 32);
      const auto mid = static_cast<uint32_t>(1u << (b - 1));
      pad_words[j] |= mid << off;
      if (off + b > 32) pad_words[j + 1] |= mid >> (32 - off);
    }
    for (int64_t pr = 0; pr < grp.packed_rows; ++pr) {
      const int64_t row = grp.packed_start + pr;
      const uint32_t* src = w.q_weight.data() + row * W;
      uint32_t* dst = out.q_weight.data() + row * Wn;
      for (int64_t c = 0; c < n; ++c) dst[c] = src[cols[c]];
      for (int64_t c = n; c < Wn; ++c) dst[c] = pad_words[pr];
    }
  }
  // q_scale: 4-bit codes, eight columns per word; padding columns get code 0 (section 3.7, invariant 7).
  out.q_scale.assign(static_cast<size_t>(G * Wn / 8), 0u);
  for (int64_t g = 0; g < G; ++g) {
    const uint32_t* src = w.q_scale.data() + g * (W / 8);
    uint32_t* dst = out.q_scale.data() + g * (Wn / 8);
    for (int64_t c = 0; c < n; ++c) {
      const uint32_t code = (src[cols[c] / 8] >> (4 * (cols[c] % 8))) & 15u;
      dst[c / 8] |= code << (4 * (c % 8));
    }
  }
  if (!w.bias.empty()) {
    out.bias.assign(static_cast<size_t>(Wn), 0);  // zero-padded as ExLlamaV2's linear.py pads it
    for (int64_t c = 0; c < n; ++c) out.bias[c] = w.bias[cols[c]];
  }
  validate_exl2(out, fmt::format("select_output_columns({})", lw.key));
  return out;
}

GptqWeight select_gptq(const LinearWeight& lw, const std::vector<int64_t>& cols, const std::string& new_key,
                       std::span<const ColumnRange> ranges) {
  const GptqWeight& w = lw.gptq;
  const int64_t K = w.in_features, N = w.out_features, G = w.num_groups;
  EXL_CHECK(N == lw.out_features && K == lw.in_features, kInvalidArgument,
            "select_output_columns: '{}': GPTQ tensors are for {}x{}, the linear says {}x{}", lw.key, K, N,
            lw.in_features, lw.out_features);
  const int64_t n = static_cast<int64_t>(cols.size());
  EXL_CHECK(n % 32 == 0, kUnsupported,
            "select_output_columns: '{}' -> '{}': {} selected GPTQ output columns (ranges {} of N = {}) are not a "
            "multiple of 32; GPTQ tensors carry no padded width (qzeros packs 8 columns per word and ExLlamaV2 "
            "requires widths padded to 32)",
            lw.key, new_key, n, ranges_str(ranges), N);
  GptqWeight out;
  out.key = new_key;
  out.in_features = K;
  out.out_features = n;
  out.num_groups = G;
  out.zero_format = w.zero_format;
  out.g_idx = w.g_idx;
  out.qweight.resize(static_cast<size_t>(K / 8 * n));
  for (int64_t r = 0; r < K / 8; ++r)
    for (int64_t c = 0; c < n; ++c) out.qweight[r * n + c] = w.qweight[r * N + cols[c]];
  out.scales.resize(static_cast<size_t>(G * n));
  for (int64_t g = 0; g < G; ++g)
    for (int64_t c = 0; c < n; ++c) out.scales[g * n + c] = w.scales[g * N + cols[c]];
  // qzeros: word t holds nibbles z_eff - 1 (z_eff in [1, 16] by construction of GptqWeight::zero). v1 stores
  // it as is; v2 stores t + 0x11111111, which the loader's word-wide subtraction turns back into t exactly.
  out.qzeros.assign(static_cast<size_t>(G * n / 8), 0u);
  for (int64_t g = 0; g < G; ++g)
    for (int64_t c = 0; c < n; ++c) {
      const auto t = static_cast<uint32_t>(w.zero(g, cols[c]) - 1);
      out.qzeros[g * (n / 8) + c / 8] |= (t & 15u) << (4 * (c % 8));
    }
  if (out.zero_format == GptqZeroFormat::kV2)
    for (uint32_t& word : out.qzeros) word += 0x11111111u;
  if (!w.bias.empty()) {
    bool any = false;
    for (int64_t c = 0; c < n; ++c) any = any || (w.bias[cols[c]] & 0x7fffu) != 0;
    if (any)  // like load_gptq: ExLlamaV2 drops an all-zero bias
      for (int64_t c = 0; c < n; ++c) out.bias.push_back(w.bias[cols[c]]);
  }
  validate_gptq(out, fmt::format("select_output_columns({})", lw.key));
  return out;
}

std::string leaf_name(const std::string& key) {
  const size_t dot = key.rfind('.');
  return dot == std::string::npos ? key : key.substr(dot + 1);
}

}  // namespace

LinearWeight select_output_columns(const LinearWeight& w, std::span<const ColumnRange> ranges, std::string new_key) {
  const std::vector<int64_t> cols = column_map(w, ranges, new_key);
  LinearWeight out;
  out.format = w.format;
  out.in_features = w.in_features;
  out.out_features = static_cast<int64_t>(cols.size());
  EXL_CHECK(w.bias.empty() || static_cast<int64_t>(w.bias.size()) == w.out_features, kInvalidArgument,
            "select_output_columns: '{}': bias has {} values, expected {}", w.key, w.bias.size(), w.out_features);
  switch (w.format) {
    case WeightFormat::kFloat:
      out.float_weight = select_float(w, cols);
      for (size_t c = 0; c < cols.size() && !w.bias.empty(); ++c) out.bias.push_back(w.bias[cols[c]]);
      break;
    case WeightFormat::kExl2:
      out.exl2 = select_exl2(w, cols, new_key);
      for (int64_t c = 0; c < out.out_features && !out.exl2.bias.empty(); ++c)
        out.bias.push_back(half_to_float(out.exl2.bias[c]));  // as load_linear derives it
      break;
    case WeightFormat::kGptq:
      out.gptq = select_gptq(w, cols, new_key, ranges);
      for (uint16_t b : out.gptq.bias) out.bias.push_back(half_to_float(b));
      break;
  }
  out.key = std::move(new_key);
  return out;
}

std::vector<LinearWeight> split_output_columns(const LinearWeight& fused, std::span<const int64_t> sizes,
                                               std::span<const std::string> new_keys) {
  EXL_CHECK(sizes.size() == new_keys.size() && !sizes.empty(), kInvalidArgument,
            "split_output_columns: fused tensor '{}': {} sizes for {} new keys (need one size per key, at least one)",
            fused.key, sizes.size(), new_keys.size());
  std::string parts;
  int64_t total = 0;
  bool positive = true;
  for (size_t i = 0; i < sizes.size(); ++i) {
    parts += fmt::format("{}{} {}", i ? " + " : "", leaf_name(new_keys[i]), sizes[i]);
    positive = positive && sizes[i] > 0;
    if (sizes[i] > 0 && total <= std::numeric_limits<int64_t>::max() - sizes[i]) total += sizes[i];
  }
  EXL_CHECK(positive && total == fused.out_features, kInvalidArgument,
            "fused tensor '{}' has {} output columns, the config's split {} = {}{}", fused.key, fused.out_features,
            parts, total, positive ? "" : " (every piece must have a positive size)");
  std::vector<LinearWeight> out;
  out.reserve(sizes.size());
  int64_t start = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const ColumnRange r{start, sizes[i]};
    out.push_back(select_output_columns(fused, std::span<const ColumnRange>(&r, 1), new_keys[i]));
    start += sizes[i];
  }
  return out;
}

}  // namespace exl::quant
