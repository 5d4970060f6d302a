#include "model/rope.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace exl::model {
namespace {

double yarn_mscale(double scale, double mscale) { return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0; }

double yarn_correction_dim(double num_rotations, double dim, double base, double max_pos) {
  return dim * std::log(max_pos / (num_rotations * 2.0 * M_PI)) / (2.0 * std::log(base));
}

}  // namespace

int64_t RopeSpec::rotary_dim() const {
  return static_cast<int64_t>(static_cast<double>(head_dim) * params.partial_rotary_factor);
}

bool rope_depends_on_length(const RopeSpec& spec) {
  return spec.params.type == io::RopeType::kDynamic || spec.params.type == io::RopeType::kLongrope;
}

RopeTable compute_rope(const io::ModelConfig& config, int64_t seq_len) {
  return compute_rope(RopeSpec{config.rope, config.head_dim, config.max_position_embeddings}, seq_len);
}

RopeTable compute_rope(const RopeSpec& spec, int64_t seq_len) {
  const io::RopeParameters& rp = spec.params;
  const int64_t head_dim = spec.head_dim, max_pos = spec.max_position_embeddings;
  const int64_t dim = spec.rotary_dim();
  EXL_CHECK(dim >= 2 && dim % 2 == 0 && dim <= head_dim, kInvalidArgument,
            "rope: rotary dimension {} (head_dim {} x partial_rotary_factor {}) must be even and in [2, head_dim]",
            dim, head_dim, rp.partial_rotary_factor);
  const int64_t half = dim / 2;
  double base = rp.theta;
  if (rp.ntk_alpha != 1.0)
    base *= std::pow(rp.ntk_alpha, static_cast<double>(dim) / static_cast<double>(dim - 2));
  const int64_t original_ctx = rp.original_max_position_embeddings > 0 ? rp.original_max_position_embeddings : max_pos;
  if (rp.type == io::RopeType::kDynamic && seq_len > original_ctx) {
    base = base * std::pow(rp.factor * static_cast<double>(seq_len) / static_cast<double>(original_ctx) -
                               (rp.factor - 1.0),
                           static_cast<double>(dim) / static_cast<double>(dim - 2));
  }
  RopeTable table;
  std::vector<double> inv(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) inv[i] = 1.0 / std::pow(base, static_cast<double>(2 * i) / static_cast<double>(dim));

  switch (rp.type) {
    case io::RopeType::kDefault:
    case io::RopeType::kDynamic:
      break;
    case io::RopeType::kLinear:
      for (double& f : inv) f /= rp.factor;
      break;
    case io::RopeType::kLlama3: {
      const double low_wavelen = static_cast<double>(original_ctx) / rp.low_freq_factor;
      const double high_wavelen = static_cast<double>(original_ctx) / rp.high_freq_factor;
      for (double& f : inv) {
        const double wavelen = 2.0 * M_PI / f;
        if (wavelen > low_wavelen) {
          f = f / rp.factor;
        } else if (wavelen >= high_wavelen) {
          const double smooth = (static_cast<double>(original_ctx) / wavelen - rp.low_freq_factor) /
                                (rp.high_freq_factor - rp.low_freq_factor);
          f = (1.0 - smooth) * f / rp.factor + smooth * f;
        }
      }
      break;
    }
    case io::RopeType::kYarn: {
      // transformers 5 takes the configured factor for both the interpolation and the attention factor (checked on
      // the llama_yarn fixture, whose max_position_embeddings / original ratio differs from its factor).
      const double factor = rp.factor;
      if (rp.attention_factor) {
        table.attention_factor = static_cast<float>(*rp.attention_factor);
      } else if (rp.mscale && rp.mscale_all_dim) {
        table.attention_factor =
            static_cast<float>(yarn_mscale(factor, *rp.mscale) / yarn_mscale(factor, *rp.mscale_all_dim));
      } else {
        table.attention_factor = static_cast<float>(yarn_mscale(factor, 1.0));
      }
      double low = yarn_correction_dim(rp.beta_fast, static_cast<double>(dim), rp.theta, static_cast<double>(original_ctx));
      double high = yarn_correction_dim(rp.beta_slow, static_cast<double>(dim), rp.theta, static_cast<double>(original_ctx));
      if (rp.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      low = std::max(low, 0.0);
      high = std::min(high, static_cast<double>(dim - 1));
      if (low == high) high += 0.001;
      for (int64_t i = 0; i < half; ++i) {
        const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
        const double extrapolation_factor = 1.0 - ramp;
        const double extrapolation = inv[i];
        const double interpolation = inv[i] / factor;
        inv[i] = interpolation * (1.0 - extrapolation_factor) + extrapolation * extrapolation_factor;
      }
      break;
    }
    case io::RopeType::kLongrope: {
      // transformers' longrope: the factor is the ratio of the two contexts when the original is given; the
      // magnitude correction sqrt(1 + ln(factor) / ln(original)); long factors once seq_len passes the original.
      EXL_CHECK(static_cast<int64_t>(rp.short_factor.size()) == half && static_cast<int64_t>(rp.long_factor.size()) == half,
                kInvalidArgument, "rope: longrope factor lists have {} and {} entries, the rotary dimension {} needs {}",
                rp.short_factor.size(), rp.long_factor.size(), dim, half);
      double factor = rp.factor;
      if (rp.original_max_position_embeddings > 0 && max_pos > 0)
        factor = static_cast<double>(max_pos) / static_cast<double>(rp.original_max_position_embeddings);
      if (rp.attention_factor) {
        table.attention_factor = static_cast<float>(*rp.attention_factor);
      } else if (factor > 1.0) {
        table.attention_factor =
            static_cast<float>(std::sqrt(1.0 + std::log(factor) / std::log(static_cast<double>(original_ctx))));
      }
      const bool long_regime = seq_len > original_ctx;
      // Phi-3.5-MoE gives the attention factor of each regime explicitly.
      if (long_regime && rp.long_mscale) table.attention_factor = static_cast<float>(*rp.long_mscale);
      if (!long_regime && rp.short_mscale) table.attention_factor = static_cast<float>(*rp.short_mscale);
      const std::vector<double>& ext = long_regime ? rp.long_factor : rp.short_factor;
      for (int64_t i = 0; i < half; ++i) inv[i] /= ext[i];
      break;
    }
  }
  if (rp.position_scale != 1.0)
    for (double& f : inv) f /= rp.position_scale;
  table.inv_freq.assign(inv.begin(), inv.end());
  return table;
}

}  // namespace exl::model
