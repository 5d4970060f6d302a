// CUDA add + RMSNorm vs cpu::add_inplace + cpu::rms_norm (fp16 output: relative L2 1e-3).
#ifdef EXL_HAVE_CUDA
#include <memory>

#include "backend/cpu/ops.h"
#include "cuda_op_test_util.h"
#include "kernels/rms_norm.cuh"

namespace exl {
namespace {

using namespace exl::testing;

TEST(RmsNormOps, AddAndNormMatchCpu) {
  EXL_REQUIRE_GPU();
  std::mt19937 rng(2);
  for (auto [rows, hidden] : {std::pair<int64_t, int64_t>{5, 4096}, {1, 512}, {33, 8192}, {3, 77}, {2, 16384}}) {
    for (bool with_residual : {false, true}) {
      const size_t n = static_cast<size_t>(rows * hidden);
      std::vector<float> x = random_floats(rng, n, 3.0f);
      const std::vector<float> res = round_half(random_floats(rng, n));
      const std::vector<float> w = random_floats(rng, static_cast<size_t>(hidden));
      GuardedArray<float> d_x(x);
      GuardedArray<uint16_t> d_res(to_half_bits(res));
      GuardedArray<float> d_w(w);
      GuardedArray<uint16_t> d_out(n);
      kernels::launch_add_rms_norm({d_x.get(), with_residual ? reinterpret_cast<const __half*>(d_res.get()) : nullptr,
                                    d_w.get(), reinterpret_cast<__half*>(d_out.get()), nullptr, rows, hidden, 1e-5f},
                                   nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      if (with_residual) cpu::add_inplace(x.data(), res.data(), static_cast<int64_t>(n));
      std::vector<float> want(n);
      cpu::rms_norm(x.data(), w.data(), want.data(), rows, hidden, 1e-5f);
      EXL_EXPECT_CLOSE(from_half_bits(d_out.download()), want, 1e-3);
      EXL_EXPECT_CLOSE(d_x.download(), x, 1e-6);
      EXPECT_TRUE(d_out.guards_intact() && d_x.guards_intact());
    }
  }
}

TEST(RmsNormOps, GathersRows) {
  EXL_REQUIRE_GPU();
  std::mt19937 rng(3);
  const int64_t rows = 9, hidden = 4096;
  const std::vector<float> x = random_floats(rng, static_cast<size_t>(rows * hidden));
  const std::vector<float> w = random_floats(rng, static_cast<size_t>(hidden));
  const std::vector<int32_t> pick = {8, 0, 4};
  GuardedArray<float> d_x(x);
  GuardedArray<float> d_w(w);
  GuardedArray<int32_t> d_pick(pick);
  GuardedArray<uint16_t> d_out(pick.size() * hidden);
  kernels::launch_add_rms_norm({d_x.get(), nullptr, d_w.get(), reinterpret_cast<__half*>(d_out.get()), d_pick.get(),
                                static_cast<int64_t>(pick.size()), hidden, 1e-6f},
                               nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<float> want(pick.size() * hidden);
  for (size_t r = 0; r < pick.size(); ++r)
    cpu::rms_norm(x.data() + pick[r] * hidden, w.data(), want.data() + r * hidden, 1, hidden, 1e-6f);
  EXL_EXPECT_CLOSE(from_half_bits(d_out.download()), want, 1e-3);
}

TEST(RmsNormOps, FragmentOrderedCopies) {
  EXL_REQUIRE_GPU();
  std::mt19937 rng(4);
  // with_src: the targets also carry their inverse maps, so the kernel gathers from shared memory (8192: a second
  // step beyond the preloaded one); without, it scatters through dest.
  for (int64_t hidden : {4096, 8192, 77}) {
    for (bool with_src : {false, true}) {
      const std::vector<float> x = random_floats(rng, static_cast<size_t>(hidden), 3.0f);
      const std::vector<float> res = round_half(random_floats(rng, static_cast<size_t>(hidden)));
      const std::vector<float> w = random_floats(rng, static_cast<size_t>(hidden));
      GuardedArray<float> d_x(x), d_w(w);
      GuardedArray<uint16_t> d_res(to_half_bits(res)), d_out(static_cast<size_t>(hidden));
      kernels::AddRmsNormArgs a{d_x.get(), reinterpret_cast<const __half*>(d_res.get()), d_w.get(),
                                reinterpret_cast<__half*>(d_out.get()), nullptr, 1, hidden, 1e-5f};
      std::vector<SyntheticFrag> layouts;
      std::vector<std::unique_ptr<GuardedArray<int32_t>>> idx;
      std::vector<std::unique_ptr<GuardedArray<uint16_t>>> outs;
      for (int f = 0; f < kernels::kMaxFragTargets; ++f) {
        const int64_t pads = f * 40;
        layouts.push_back(synthetic_frag(rng, hidden, pads));
        const SyntheticFrag& l = layouts.back();
        std::vector<int32_t> inverse(static_cast<size_t>(hidden + pads), -1);
        for (size_t n = 0; n < l.dest.size(); ++n) inverse[static_cast<size_t>(l.dest[n])] = static_cast<int32_t>(n);
        idx.push_back(std::make_unique<GuardedArray<int32_t>>(l.dest));
        idx.push_back(std::make_unique<GuardedArray<int32_t>>(l.pads.empty() ? std::vector<int32_t>{0} : l.pads));
        idx.push_back(std::make_unique<GuardedArray<int32_t>>(inverse));
        outs.push_back(std::make_unique<GuardedArray<uint16_t>>(static_cast<size_t>(hidden + pads)));
        a.frag[f] = {reinterpret_cast<__half*>(outs.back()->get()), idx[3 * f]->get(),
                     l.pads.empty() ? nullptr : idx[3 * f + 1]->get(), static_cast<int32_t>(l.pads.size())};
        if (with_src) {
          a.frag[f].src = idx[3 * f + 2]->get();
          a.frag[f].num_out = static_cast<int32_t>(hidden + pads);
        }
      }
      a.num_frag = kernels::kMaxFragTargets;
      if (with_src && hidden % 8 != 0) {
        // An inverse map must cover a multiple of 8 halves (16-byte stores).
        EXPECT_THROW(kernels::launch_add_rms_norm(a, nullptr), Error);
        continue;
      }
      kernels::launch_add_rms_norm(a, nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      std::vector<float> xs = x;
      cpu::add_inplace(xs.data(), res.data(), hidden);
      std::vector<float> want(static_cast<size_t>(hidden));
      cpu::rms_norm(xs.data(), w.data(), want.data(), 1, hidden, 1e-5f);
      const std::vector<uint16_t> plain = d_out.download();
      EXL_EXPECT_CLOSE(from_half_bits(plain), want, 1e-3);
      for (int f = 0; f < kernels::kMaxFragTargets; ++f) {
        expect_frag_matches(outs[static_cast<size_t>(f)]->download(), plain, layouts[static_cast<size_t>(f)]);
        EXPECT_TRUE(outs[static_cast<size_t>(f)]->guards_intact());
      }
      // Fragment copies are for one row only.
      a.num_rows = 2;
      EXPECT_THROW(kernels::launch_add_rms_norm(a, nullptr), Error);
    }
  }
}

TEST(RmsNormOps, RejectsOversizedRows) {
  EXL_REQUIRE_GPU();
  EXPECT_THROW(kernels::launch_add_rms_norm({nullptr, nullptr, nullptr, nullptr, nullptr, 1, 20000, 1e-6f}, nullptr),
               Error);
}

}  // namespace
}  // namespace exl
#endif
