#include "quant/exl2.h"

#include <algorithm>

#include "core/error.h"
#include "core/fp16.h"

namespace exl::quant {
namespace {

bool valid_bits(int b) { return b == 2 || b == 3 || b == 4 || b == 5 || b == 6 || b == 8; }

}  // namespace

double Exl2Weight::bits_per_weight() const {
  size_t bits = (q_weight.size() * 4 + q_scale.size() * 4 + q_scale_max.size() * 2 + q_groups.size() * 2 +
                 q_invperm.size() * 4) * 8;
  return static_cast<double>(bits) / static_cast<double>(in_features * padded_out);
}

size_t Exl2Weight::stored_bytes() const {
  return q_weight.size() * 4 + q_scale.size() * 4 + q_scale_max.size() * 2 + q_groups.size() * 2 +
         q_invperm.size() * 4 + bias.size() * 2;
}

std::vector<int> Exl2Weight::bit_widths() const {
  std::vector<int> out;
  for (const auto& g : groups)
    if (std::find(out.begin(), out.end(), g.bits) == out.end()) out.push_back(g.bits);
  return out;
}

void validate_exl2(Exl2Weight& w, const std::string& source) {
  const std::string& key = w.key;
  const int64_t K = w.in_features;
  const int64_t W = w.padded_out;
  const int64_t Q = w.packed_rows;
  EXL_CHECK(W % 32 == 0, kCorruptFile, "{}: {}.q_weight: width {} is not a multiple of 32", source, key, W);
  EXL_CHECK(W == (w.out_features + 31) / 32 * 32, kCorruptFile,
            "{}: {}.q_weight: expected width {} (out_features {} padded to 32), found {} (config disagrees with the "
            "tensors?)", source, key, (w.out_features + 31) / 32 * 32, w.out_features, W);
  EXL_CHECK(w.q_groups.size() % 2 == 0 && !w.q_groups.empty(), kCorruptFile,
            "{}: {}.q_groups: expected 2*G int16 values with G >= 1, found {}", source, key, w.q_groups.size());
  const int64_t G = static_cast<int64_t>(w.q_groups.size() / 2);
  EXL_CHECK(static_cast<int64_t>(w.q_scale.size()) == G * W / 8, kCorruptFile,
            "{}: {}.q_scale: expected [{}, {}] for G={} groups, found {} words", source, key, G, W / 8, G,
            w.q_scale.size());
  EXL_CHECK(static_cast<int64_t>(w.q_scale_max.size()) == G, kCorruptFile,
            "{}: {}.q_scale_max: expected [{}], found {} values", source, key, G, w.q_scale_max.size());
  EXL_CHECK(w.q_groups[1] == 0, kCorruptFile, "{}: {}.q_groups: first group offset must be 0, found {}", source, key,
            w.q_groups[1]);
  w.groups.clear();
  int64_t row = 0;
  for (int64_t g = 0; g < G; ++g) {
    Exl2Group grp;
    grp.bits = w.q_groups[2 * g];
    grp.packed_start = w.q_groups[2 * g + 1];
    const int64_t end = g + 1 < G ? w.q_groups[2 * g + 3] : Q;
    EXL_CHECK(valid_bits(grp.bits), kCorruptFile,
              "{}: {}.q_groups: group {} has bit width {} (expected 2, 3, 4, 5, 6 or 8)", source, key, g, grp.bits);
    EXL_CHECK(g == 0 || grp.bits <= w.groups.back().bits, kCorruptFile,
              "{}: {}.q_groups: bit widths must not increase, group {} has {} after {}", source, key, g, grp.bits,
              w.groups.back().bits);
    EXL_CHECK(end > grp.packed_start && end <= Q, kCorruptFile,
              "{}: {}.q_groups: group {} packed rows [{}, {}) are empty or run past q_weight's {} rows", source, key,
              g, grp.packed_start, end, Q);
    grp.packed_rows = end - grp.packed_start;
    EXL_CHECK(grp.packed_rows * 32 % grp.bits == 0, kCorruptFile,
              "{}: {}.q_groups: group {} has {} packed rows, not a whole number of {}-bit rows", source, key, g,
              grp.packed_rows, grp.bits);
    grp.rows = grp.packed_rows * 32 / grp.bits;
    grp.row_start = row;
    row += grp.rows;
    w.groups.push_back(grp);
  }
  EXL_CHECK(row == K, kCorruptFile,
            "{}: {}: the groups hold {} input rows but q_invperm has {} (tensor set does not add up)", source, key,
            row, K);
  EXL_CHECK(static_cast<int64_t>(w.q_invperm.size()) == K, kCorruptFile, "{}: {}.q_invperm: expected [{}], found {}",
            source, key, K, w.q_invperm.size());
  w.q_perm.assign(static_cast<size_t>(K), -1);
  for (int64_t j = 0; j < K; ++j) {
    const int32_t p = w.q_invperm[j];
    EXL_CHECK(p >= 0 && p < K && w.q_perm[p] < 0, kCorruptFile,
              "{}: {}.q_invperm is not a permutation of 0..{} (entry {} = {})", source, key, K - 1, j, p);
    w.q_perm[p] = static_cast<int32_t>(j);
  }
  EXL_CHECK(w.bias.empty() || static_cast<int64_t>(w.bias.size()) == W, kCorruptFile,
            "{}: {}.bias: expected [{}], found {}", source, key, W, w.bias.size());
}

Exl2Weight load_exl2(const io::TensorStore& store, const std::string& key, int64_t in_features,
                     int64_t out_features) {
  Exl2Weight w;
  w.key = key;
  w.out_features = out_features;
  const auto& qw = store.info(key + ".q_weight");
  const std::string source = store.file_of(key + ".q_weight");
  EXL_CHECK(qw.dtype == DType::kI32 && qw.shape.size() == 2, kCorruptFile,
            "{}: {}.q_weight: expected a 2-D I32 tensor, found {} {}", source, key, dtype_name(qw.dtype),
            shape_str(qw.shape));
  w.packed_rows = qw.shape[0];
  w.padded_out = qw.shape[1];
  w.q_weight = store.read<uint32_t>(key + ".q_weight", DType::kI32);
  EXL_CHECK(w.padded_out % 8 == 0, kCorruptFile, "{}: {}.q_weight: width {} is not a multiple of 32", source, key,
            w.padded_out);
  w.q_groups = store.read<int16_t>(key + ".q_groups", DType::kI16);
  const int64_t G = static_cast<int64_t>(w.q_groups.size() / 2);
  w.q_scale = store.read<uint32_t>(key + ".q_scale", DType::kI32, {G, w.padded_out / 8});
  w.q_scale_max = store.read<uint16_t>(key + ".q_scale_max", DType::kF16, {G});
  w.q_invperm = store.read<int32_t>(key + ".q_invperm", DType::kI32);
  w.in_features = static_cast<int64_t>(w.q_invperm.size());
  EXL_CHECK(w.in_features == in_features, kCorruptFile,
            "{}: {}.q_invperm: expected in_features {} from the config, found {}", source, key, in_features,
            w.in_features);
  if (store.has(key + ".bias")) {
    const auto& bi = store.info(key + ".bias");
    if (bi.dtype == DType::kF16) {
      w.bias = store.read<uint16_t>(key + ".bias", DType::kF16, {w.padded_out});
    } else {
      std::vector<float> b = store.read_f32(key + ".bias", {w.padded_out});
      for (float v : b) w.bias.push_back(float_to_half(v));
    }
  }
  validate_exl2(w, source);
  return w;
}

std::vector<uint16_t> dequantize_exl2(const Exl2Weight& w) {
  const int64_t K = w.in_features;
  const int64_t W = w.padded_out;
  std::vector<uint16_t> stored(static_cast<size_t>(K * W));
  for (int64_t g = 0; g < w.num_groups(); ++g) {
    const Exl2Group& grp = w.groups[g];
    const int b = grp.bits;
    const uint32_t mask = (1u << b) - 1u;
    const float mid = static_cast<float>(1 << (b - 1));
    // m_g = fp16(M_g / 256): one rounding, may be subnormal (section 5.3).
    const float m = round_to_half(half_to_float(w.q_scale_max[g]) * (1.0f / 256.0f));
    for (int64_t c = 0; c < W; ++c) {
      const uint32_t s = (w.q_scale[g * (W / 8) + c / 8] >> (4 * (c % 8))) & 15u;
      const float step = round_to_half(static_cast<float>((s + 1) * (s + 1)) * m);
      for (int64_t r = 0; r < grp.rows; ++r) {
        const int64_t bitpos = r * b;
        const int64_t j = grp.packed_start + bitpos / 32;
        const int off = static_cast<int>(bitpos % 32);
        uint32_t v = w.q_weight[j * W + c] >> off;
        if (off + b > 32) v |= w.q_weight[(j + 1) * W + c] << (32 - off);
        const float q = static_cast<float>(v & mask);
        stored[(grp.row_start + r) * W + c] = float_to_half((q - mid) * step);
      }
    }
  }
  std::vector<uint16_t> out(static_cast<size_t>(K * W));
  for (int64_t j = 0; j < K; ++j) {
    std::copy_n(stored.begin() + w.q_invperm[j] * W, W, out.begin() + j * W);
  }
  return out;
}

}  // namespace exl::quant
