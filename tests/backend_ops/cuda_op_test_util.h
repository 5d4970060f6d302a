// Helpers for CUDA-vs-CPU op tests: fp16 conversion, device arrays with guard regions, relative L2 distance.
#pragma once

#ifdef EXL_HAVE_CUDA

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cuda/device_buffer.h"
#include "core/error.h"
#include "core/fp16.h"
#include "reference_compare.h"

#define EXL_REQUIRE_GPU()                                                                     \
  do {                                                                                        \
    if (::exl::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device: CUDA op test skipped"; \
  } while (0)

namespace exl::testing {

inline std::vector<float> random_floats(std::mt19937& rng, size_t n, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

inline std::vector<uint16_t> to_half_bits(const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = float_to_half(v[i]);
  return h;
}

inline std::vector<float> from_half_bits(const std::vector<uint16_t>& h) {
  std::vector<float> v(h.size());
  for (size_t i = 0; i < h.size(); ++i) v[i] = half_to_float(h[i]);
  return v;
}

// Values as fp16 would store them.
inline std::vector<float> round_half(std::vector<float> v) {
  for (float& x : v) x = round_to_half(x);
  return v;
}

// A device array of T with kGuard elements of a sentinel byte pattern on both sides; check_guards() verifies that
// nothing wrote outside.
template <typename T>
class GuardedArray {
 public:
  static constexpr size_t kGuard = 64;
  explicit GuardedArray(size_t n) : n_(n), buf_((n + 2 * kGuard) * sizeof(T)) {
    std::vector<unsigned char> fill((n + 2 * kGuard) * sizeof(T), 0xA5);
    buf_.upload(fill.data(), fill.size());
  }
  GuardedArray(const std::vector<T>& host) : GuardedArray(host.size()) { upload(host); }
  T* get() const { return buf_.as<T>() + kGuard; }
  size_t size() const { return n_; }
  void upload(const std::vector<T>& host) { buf_.upload(host.data(), host.size() * sizeof(T), kGuard * sizeof(T)); }
  std::vector<T> download() const {
    std::vector<T> host(n_);
    buf_.download(host.data(), n_ * sizeof(T), kGuard * sizeof(T));
    return host;
  }
  bool guards_intact() const {
    std::vector<unsigned char> all(buf_.bytes());
    buf_.download(all.data(), all.size());
    const size_t g = kGuard * sizeof(T);
    for (size_t i = 0; i < g; ++i)
      if (all[i] != 0xA5 || all[all.size() - 1 - i] != 0xA5) return false;
    return true;
  }

 private:
  size_t n_;
  cuda::DeviceBuffer buf_;
};


// A synthetic fragment-ordered layout (kernels/frag.cuh) for n inputs and `pads` pad slots: a random one-to-one
// placement over n + pads slots.
struct SyntheticFrag {
  std::vector<int32_t> dest, pads;
};
inline SyntheticFrag synthetic_frag(std::mt19937& rng, int64_t n, int64_t pads) {
  std::vector<int32_t> slots(static_cast<size_t>(n + pads));
  for (size_t i = 0; i < slots.size(); ++i) slots[i] = static_cast<int32_t>(i);
  std::shuffle(slots.begin(), slots.end(), rng);
  return {std::vector<int32_t>(slots.begin(), slots.begin() + n), std::vector<int32_t>(slots.begin() + n, slots.end())};
}
// frag must hold plain[i] at dest[i] (bit for bit) and 0 at every pad.
inline void expect_frag_matches(const std::vector<uint16_t>& frag, const std::vector<uint16_t>& plain,
                                const SyntheticFrag& f) {
  for (size_t i = 0; i < f.dest.size(); ++i)
    ASSERT_EQ(frag[static_cast<size_t>(f.dest[i])], plain[i]) << "element " << i << " at slot " << f.dest[i];
  for (int32_t p : f.pads) ASSERT_EQ(frag[static_cast<size_t>(p)], 0) << "pad slot " << p << " not zeroed";
}

}  // namespace exl::testing

#define EXL_EXPECT_CLOSE(got, want, tol)                                                              \
  do {                                                                                                \
    const ::exl::testing::Diff exl_d_ = ::exl::testing::compare((got), (want));                       \
    EXPECT_TRUE(exl_d_.finite) << "NaN/Inf in the output";                                            \
    EXPECT_LT(exl_d_.rel_l2, (tol)) << "rel L2 " << exl_d_.rel_l2 << ", max abs " << exl_d_.max_abs; \
  } while (0)

#endif  // EXL_HAVE_CUDA
