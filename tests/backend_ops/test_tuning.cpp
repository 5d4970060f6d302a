// cuda::CudaTuning by key (exl bench --tune): parsing, range checks and the list of changed keys. Host only: runs
// without a GPU.
#ifdef EXL_HAVE_CUDA
#include <gtest/gtest.h>

#include <string>

#include "backend/cuda/tuning.h"
#include "core/error.h"

namespace exl::cuda {
namespace {

// The message of the exl::Error that `f` throws (kInvalidArgument), or "" when it throws none.
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(CudaTuning, DefaultsAreValidAndUnchanged) {
  const CudaTuning t;
  EXPECT_NO_THROW(validate_tuning(t));
  EXPECT_EQ(tuning_changes(t), "");
  EXPECT_EQ(tuning_keys(),
            "gemv_blocks_per_sm, gemv1_warps, gemv1_slices, gemv1_l1_batches, f16_gemv_batch, decode_splits");
}

TEST(CudaTuning, SetsEveryKey) {
  CudaTuning t;
  for (const char* kv : {"gemv_blocks_per_sm=3", "gemv1_warps=6", "gemv1_slices=8,8,4", "gemv1_l1_batches=3",
                         "f16_gemv_batch=8", "decode_splits=33"})
    set_tuning(t, kv);
  EXPECT_EQ(t.gemv_blocks_per_sm, 3);
  EXPECT_EQ(t.gemv1.warps, 6);
  EXPECT_EQ(t.gemv1.slices[0], 8);
  EXPECT_EQ(t.gemv1.slices[1], 8);
  EXPECT_EQ(t.gemv1.slices[2], 4);
  EXPECT_EQ(t.gemv1.slices[3], CudaTuning{}.gemv1.slices[3]);  // three values keep the fourth
  EXPECT_EQ(t.gemv1.l1_batches, 3);
  EXPECT_EQ(t.f16_gemv.batch, 8);
  EXPECT_EQ(t.decode_splits, 33);
  EXPECT_NO_THROW(validate_tuning(t));
  EXPECT_EQ(tuning_changes(t),
            "gemv_blocks_per_sm=3 gemv1_warps=6 gemv1_slices=8,8,4,4 gemv1_l1_batches=3 f16_gemv_batch=8 "
            "decode_splits=33");
  set_tuning(t, "gemv1_slices=12,8,3,4");
  EXPECT_FALSE(contains(tuning_changes(t), "gemv1_slices"));
  set_tuning(t, "gemv1_slices=1,2,3,5");
  EXPECT_EQ(t.gemv1.slices[3], 5);
}

TEST(CudaTuning, UnknownKeysAndMalformedValuesListTheKeys) {
  CudaTuning t;
  for (const char* bad : {"gemv_warps=3", "decode_splits", "decode_splits=", "decode_splits=3x", "gemv1_warps=-",
                          "gemv1_slices=8,8", "gemv1_slices=1,2,3,4,5", "gemv1_slices=8,,3", "=4"}) {
    const std::string msg = error_of([&] { set_tuning(t, bad); });
    EXPECT_TRUE(contains(msg, "gemv1_slices") && contains(msg, "decode_splits")) << bad << ": " << msg;
  }
  EXPECT_TRUE(contains(error_of([&] { set_tuning(t, "gemv_warps=3"); }), "unknown key 'gemv_warps'"));
  EXPECT_EQ(tuning_changes(t), "");  // failed assignments leave the struct alone
}

TEST(CudaTuning, RangesNameTheKeyTheRangeAndTheValue) {
  struct Case {
    const char* assignment;
    const char* expect;
  };
  for (const Case& c : {Case{"gemv_blocks_per_sm=5", "gemv_blocks_per_sm = 5 is outside 1..4"},
                        Case{"gemv_blocks_per_sm=0", "gemv_blocks_per_sm = 0 is outside 1..4"},
                        Case{"gemv1_warps=13", "gemv1_warps = 13 is outside 0..12"},
                        Case{"gemv1_slices=13,8,3", "value 1 is 13, outside 1..12"},
                        Case{"gemv1_slices=12,8,7", "value 3 is 7, outside 1..6"},
                        Case{"gemv1_slices=12,8,3,0", "value 4 is 0, outside 1..12"},
                        Case{"gemv1_l1_batches=17", "gemv1_l1_batches = 17 is outside 1..16"},
                        Case{"f16_gemv_batch=12", "f16_gemv_batch = 12 is not 4, 8 or 16"},
                        Case{"decode_splits=65", "decode_splits = 65 is outside 0..64"},
                        Case{"decode_splits=-1", "decode_splits = -1 is outside 0..64"}}) {
    CudaTuning t;
    set_tuning(t, c.assignment);
    const std::string msg = error_of([&] { validate_tuning(t); });
    EXPECT_TRUE(contains(msg, c.expect)) << c.assignment << ": " << msg;
  }
}

}  // namespace
}  // namespace exl::cuda
#endif  // EXL_HAVE_CUDA
