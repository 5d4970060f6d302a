// CUDA SiLU-gated multiply vs cpu::silu_mul.
#ifdef EXL_HAVE_CUDA
#include "backend/cpu/ops.h"
#include "cuda_op_test_util.h"
#include "kernels/activation.cuh"

namespace exl {
namespace {

using namespace exl::testing;

TEST(ActivationOps, SiluMulMatchesCpu) {
  EXL_REQUIRE_GPU();
  std::mt19937 rng(4);
  for (int64_t n : {int64_t{14336} * 3, int64_t{1000}, int64_t{7}, int64_t{14336} * 2048}) {
    const std::vector<float> gate = round_half(random_floats(rng, static_cast<size_t>(n), 3.0f));
    const std::vector<float> up = round_half(random_floats(rng, static_cast<size_t>(n)));
    std::vector<float> want(static_cast<size_t>(n));
    cpu::silu_mul(gate.data(), up.data(), want.data(), n);
    GuardedArray<uint16_t> d_gate(to_half_bits(gate)), d_up(to_half_bits(up));
    GuardedArray<uint16_t> d_out(static_cast<size_t>(n));
    kernels::launch_silu_mul({reinterpret_cast<const __half*>(d_gate.get()), reinterpret_cast<const __half*>(d_up.get()),
                              reinterpret_cast<__half*>(d_out.get()), n},
                             nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXL_EXPECT_CLOSE(from_half_bits(d_out.download()), want, 1e-3);
    EXPECT_TRUE(d_out.guards_intact());
  }
}

}  // namespace
}  // namespace exl
#endif
