// Comparing outputs with references (relative L2 over the whole tensor, max-abs, NaN/Inf) and reading token
// rows from reference files. Shared by the model and backend_ops tests.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/evaluate.h"

namespace exl::testing {

struct Diff {
  double rel_l2 = 0.0;
  double max_abs = 0.0;
  bool finite = true;
};

inline Diff compare(const std::vector<float>& got, const std::vector<float>& want) {
  Diff d;
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i])) d.finite = false;
    const double e = static_cast<double>(got[i]) - want[i];
    num += e * e;
    den += static_cast<double>(want[i]) * want[i];
    d.max_abs = std::max(d.max_abs, std::fabs(e));
  }
  d.rel_l2 = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  if (!std::isfinite(d.rel_l2)) d.finite = false;
  return d;
}

// An I32 [rows, len] tensor as token rows.
inline model::TokenRows read_token_rows(const io::TensorStore& store, const std::string& name) {
  const auto& info = store.info(name);
  const std::vector<int32_t> flat = store.read<int32_t>(name, DType::kI32);
  model::TokenRows rows;
  for (int64_t r = 0; r < info.shape[0]; ++r)
    rows.emplace_back(flat.begin() + r * info.shape[1], flat.begin() + (r + 1) * info.shape[1]);
  return rows;
}

}  // namespace exl::testing
