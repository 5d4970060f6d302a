// CudaTuning by key: parsing "key=value", the range checks and the list of changed keys.
#include "backend/cuda/tuning.h"

#include <charconv>
#include <vector>

#include "core/error.h"
#include "kernels/attention.cuh"
#include "kernels/quant_linear.cuh"

namespace exl::cuda {
namespace {

bool parse_int(std::string_view s, int32_t& out) {
  if (s.empty()) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

// "a,b,c" or "a,b,c,d" into gemv1.slices (three values keep the fourth).
bool parse_slices(std::string_view s, int32_t (&slices)[4]) {
  int32_t v[4] = {0, 0, 0, slices[3]};
  int n = 0;
  while (true) {
    const size_t comma = s.find(',');
    if (n == 4 || !parse_int(s.substr(0, comma), v[n])) return false;
    ++n;
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  if (n < 3) return false;
  for (int i = 0; i < 4; ++i) slices[i] = v[i];
  return true;
}

std::string slices_text(const int32_t (&s)[4]) {
  return fmt::format("{},{},{},{}", s[0], s[1], s[2], s[3]);
}

struct Key {
  const char* name;
  const char* form;  // what a malformed value should have been
  bool (*set)(CudaTuning&, std::string_view);
  std::string (*get)(const CudaTuning&);
};

const std::vector<Key>& keys() {
  static const std::vector<Key> k = {
      {"gemv_blocks_per_sm", "an integer", [](CudaTuning& t, std::string_view v) { return parse_int(v, t.gemv_blocks_per_sm); },
       [](const CudaTuning& t) { return std::to_string(t.gemv_blocks_per_sm); }},
      {"gemv1_warps", "an integer", [](CudaTuning& t, std::string_view v) { return parse_int(v, t.gemv1.warps); },
       [](const CudaTuning& t) { return std::to_string(t.gemv1.warps); }},
      {"gemv1_slices", "three or four comma-separated integers 'a,b,c[,d]'",
       [](CudaTuning& t, std::string_view v) { return parse_slices(v, t.gemv1.slices); },
       [](const CudaTuning& t) { return slices_text(t.gemv1.slices); }},
      {"gemv1_l1_batches", "an integer", [](CudaTuning& t, std::string_view v) { return parse_int(v, t.gemv1.l1_batches); },
       [](const CudaTuning& t) { return std::to_string(t.gemv1.l1_batches); }},
      {"f16_gemv_batch", "an integer", [](CudaTuning& t, std::string_view v) { return parse_int(v, t.f16_gemv.batch); },
       [](const CudaTuning& t) { return std::to_string(t.f16_gemv.batch); }},
      {"decode_splits", "an integer", [](CudaTuning& t, std::string_view v) { return parse_int(v, t.decode_splits); },
       [](const CudaTuning& t) { return std::to_string(t.decode_splits); }},
  };
  return k;
}

void check_range(const char* key, int32_t value, int32_t lo, int32_t hi, const char* note = "") {
  EXL_CHECK(value >= lo && value <= hi, kInvalidArgument, "cuda tuning: {} = {} is outside {}..{}{}", key, value, lo,
            hi, note);
}

}  // namespace

std::string tuning_keys() {
  std::string s;
  for (const Key& k : keys()) s += (s.empty() ? "" : ", ") + std::string(k.name);
  return s;
}

void set_tuning(CudaTuning& tuning, std::string_view assignment) {
  const size_t eq = assignment.find('=');
  EXL_CHECK(eq != std::string_view::npos, kInvalidArgument, "cuda tuning: '{}' is not key=value (keys: {})",
            assignment, tuning_keys());
  const std::string_view name = assignment.substr(0, eq), value = assignment.substr(eq + 1);
  for (const Key& k : keys()) {
    if (name != k.name) continue;
    CudaTuning t = tuning;
    EXL_CHECK(k.set(t, value), kInvalidArgument, "cuda tuning: {}='{}' is not {} (keys: {})", name, value, k.form,
              tuning_keys());
    tuning = t;
    return;
  }
  fail(ErrorKind::kInvalidArgument, "cuda tuning: unknown key '{}' in '{}' (keys: {})", name, assignment,
       tuning_keys());
}

void validate_tuning(const CudaTuning& t) {
  check_range("gemv_blocks_per_sm", t.gemv_blocks_per_sm, 1, 4);
  check_range("gemv1_warps", t.gemv1.warps, 0, kernels::kGemvOneMaxSlices, " (0: by kind of launch)");
  const int32_t* s = t.gemv1.slices;
  for (int i = 0; i < 4; ++i) {
    const int32_t hi = i == 2 ? kernels::kGemvOneMaxSlices / 2 : kernels::kGemvOneMaxSlices;
    EXL_CHECK(s[i] >= 1 && s[i] <= hi, kInvalidArgument,
              "cuda tuning: gemv1_slices = {}: value {} is {}, outside 1..{} (a, b, d in 1..{}; c, warps per part "
              "of a SwiGLU pair, in 1..{})",
              slices_text(t.gemv1.slices), i + 1, s[i], hi, kernels::kGemvOneMaxSlices,
              kernels::kGemvOneMaxSlices / 2);
  }
  check_range("gemv1_l1_batches", t.gemv1.l1_batches, 1, 16);
  const int32_t b = t.f16_gemv.batch;
  EXL_CHECK(b == 4 || b == 8 || b == 16, kInvalidArgument, "cuda tuning: f16_gemv_batch = {} is not 4, 8 or 16", b);
  check_range("decode_splits", t.decode_splits, 0, kernels::kMaxDecodeSplits, " (0: chosen per model and GPU)");
}

std::string tuning_changes(const CudaTuning& tuning) {
  const CudaTuning defaults;
  std::string s;
  for (const Key& k : keys()) {
    const std::string v = k.get(tuning);
    if (v != k.get(defaults)) s += (s.empty() ? "" : " ") + std::string(k.name) + "=" + v;
  }
  return s;
}

}  // namespace exl::cuda
