// CUDA embedding lookup vs cpu::embedding.
#ifdef EXL_HAVE_CUDA
#include "backend/cpu/ops.h"
#include "cuda_op_test_util.h"
#include "kernels/embedding.cuh"

namespace exl {
namespace {

using namespace exl::testing;

TEST(EmbeddingOps, MatchesCpuOnRealAndOddShapes) {
  EXL_REQUIRE_GPU();
  std::mt19937 rng(1);
  for (auto [vocab, hidden, tokens] : {std::tuple<int64_t, int64_t, int64_t>{32000, 4096, 7}, {1000, 77, 33}, {50, 8, 1}}) {
    const std::vector<float> table = round_half(random_floats(rng, static_cast<size_t>(vocab * hidden)));
    std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(vocab - 1));
    std::vector<int32_t> ids(static_cast<size_t>(tokens));
    for (auto& id : ids) id = pick(rng);
    ids[0] = static_cast<int32_t>(vocab - 1);
    std::vector<float> want(static_cast<size_t>(tokens * hidden));
    cpu::embedding(table.data(), vocab, hidden, ids, want.data());

    GuardedArray<uint16_t> d_table(to_half_bits(table));
    GuardedArray<int32_t> d_ids(ids);
    GuardedArray<float> d_out(want.size());
    kernels::launch_embedding({reinterpret_cast<const __half*>(d_table.get()), vocab, hidden, d_ids.get(), tokens,
                               d_out.get()},
                              nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_EQ(compare(d_out.download(), want).max_abs, 0.0) << vocab << "x" << hidden;
    EXPECT_TRUE(d_out.guards_intact());
  }
}

}  // namespace
}  // namespace exl
#endif
