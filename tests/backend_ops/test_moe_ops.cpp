// The mixture-of-experts kernels against the CPU oracle: gemv_one_experts (EXL2 experts of different bit mixes and
// GPTQ experts, chosen per slot by device ids; a gate/up pair sharing the input, and a down projection reading one
// input row per slot) and moe_gemv_f16 (FP16 experts with biases) against cpu::linear on each chosen expert's
// dequantized weights; gather_rows / scatter_rows exactly; moe_combine against its formula in fp32. Guard regions
// around every output; unwritten (poisoned) elements never pass.
#ifdef EXL_HAVE_CUDA

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <tuple>

#include "backend/cpu/ops.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_linear.h"
#include "backend/cuda/device_buffer.h"
#include "core/error.h"
#include "core/fp16.h"
#include "core/thread_pool.h"
#include "cuda_op_test_util.h"
#include "kernels/moe.cuh"
#include "kernels/quant_linear.cuh"
#include "quant/exl2_pack.h"
#include "quant/gptq.h"
#include "quant/linear_weight.h"

namespace exl {
namespace {

using namespace exl::testing;
using quant::LinearWeight;

ThreadPool& pool() {
  static ThreadPool p;
  return p;
}

std::vector<float> normal(int64_t n, float stddev, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, stddev);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}

enum class Fmt { kExl2, kGptq, kFp16 };

// Expert e of a set: EXL2 with a bit mix that differs between experts (so their tile classes and groups differ),
// GPTQ with its own group size, or FP16 with a bias.
LinearWeight expert_weight(Fmt f, int64_t N, int64_t K, int e, uint64_t seed) {
  LinearWeight lw;
  lw.key = "expert" + std::to_string(e);
  lw.in_features = K;
  lw.out_features = N;
  const std::vector<float> w = normal(N * K, 0.02f, seed + static_cast<uint64_t>(e));
  switch (f) {
    case Fmt::kExl2: {
      quant::Exl2PackOptions opt;
      opt.seed = seed + 7 * static_cast<uint64_t>(e);
      if (e % 3 == 0) opt.bits = {{4, 1.0, 128}};
      if (e % 3 == 1) opt.bits = {{5, 0.5, 64}, {3, 0.5, 32}};
      if (e % 3 == 2) opt.bits = {{6, 0.25, 32}, {2, 0.75, 128}};
      lw.format = quant::WeightFormat::kExl2;
      lw.exl2 = quant::pack_exl2_rtn(w, N, K, opt);
      break;
    }
    case Fmt::kGptq: {
      quant::GptqPackOptions opt;
      opt.group_size = e % 2 == 0 ? 64 : 32;
      lw.format = quant::WeightFormat::kGptq;
      lw.gptq = quant::pack_gptq_rtn(w, N, K, opt);
      break;
    }
    case Fmt::kFp16: {
      lw.format = quant::WeightFormat::kFloat;
      lw.float_weight = Tensor(DType::kF16, {N, K});
      for (int64_t i = 0; i < N * K; ++i) lw.float_weight.data<uint16_t>()[i] = float_to_half(w[static_cast<size_t>(i)]);
      for (float b : normal(N, 0.3f, seed + 100 + static_cast<uint64_t>(e))) lw.bias.push_back(round_to_half(b));
      break;
    }
  }
  return lw;
}

struct ExpertSet {
  std::vector<LinearWeight> host;
  std::vector<cuda::CudaLinear> lin;
  std::vector<std::vector<float>> w_nk;
  cuda::DeviceBuffer table, biases;  // views (quantized) or weight pointers (FP16), bias pointers
  kernels::GemvExpertPart part;
};

ExpertSet make_set(Fmt f, int64_t E, int64_t N, int64_t K, uint64_t seed) {
  ExpertSet s;
  for (int64_t e = 0; e < E; ++e) {
    s.host.push_back(expert_weight(f, N, K, static_cast<int>(e), seed));
    s.lin.push_back(cuda::CudaLinear::create(s.host.back()));
    s.w_nk.push_back(s.host.back().to_f32_nk());
  }
  if (f == Fmt::kFp16) {
    std::vector<const __half*> w, b;
    for (const auto& l : s.lin) {
      w.push_back(l.f16_weight());
      b.push_back(l.f16_bias());
    }
    s.table = cuda::DeviceBuffer(w.size() * sizeof(void*));
    s.table.upload(w.data(), s.table.bytes());
    s.biases = cuda::DeviceBuffer(b.size() * sizeof(void*));
    s.biases.upload(b.data(), s.biases.bytes());
    return s;
  }
  std::vector<kernels::QuantTilesView> views;
  for (const auto& l : s.lin) {
    views.push_back(*l.quant_view());
    s.part.max_tiles = std::max(s.part.max_tiles, l.quant_view()->num_tiles);
  }
  // Unknown group maxima (0): the launch uses its bound, which must also be right.
  s.table = cuda::DeviceBuffer(views.size() * sizeof(kernels::QuantTilesView));
  s.table.upload(views.data(), s.table.bytes());
  s.part.views = s.table.as<kernels::QuantTilesView>();
  s.part.in_features = K;
  s.part.out_features = N;
  s.part.width = views[0].width;
  return s;
}

// The oracle: y[s] = x[s / x_div] . W_ids[s] (+ bias) in fp32.
std::vector<float> oracle(const ExpertSet& set, const std::vector<int32_t>& ids, const std::vector<float>& x,
                          int64_t x_div, int64_t N, int64_t K) {
  std::vector<float> y(ids.size() * static_cast<size_t>(N));
  for (size_t s = 0; s < ids.size(); ++s) {
    const LinearWeight& lw = set.host[static_cast<size_t>(ids[s])];
    cpu::linear(pool(), x.data() + (static_cast<int64_t>(s) / x_div) * K, set.w_nk[static_cast<size_t>(ids[s])].data(),
                lw.bias.empty() ? nullptr : lw.bias.data(), y.data() + s * static_cast<size_t>(N), 1, K, N);
  }
  return y;
}

class MoeExpertGemv : public ::testing::TestWithParam<Fmt> {};

// Two tokens, top-3 of 5 experts (slot s reads token s / 3), gate and up in one launch; then a down projection with
// one input row per slot.
TEST_P(MoeExpertGemv, MatchesCpuOnTheChosenExperts) {
  EXL_REQUIRE_GPU();
  const Fmt f = GetParam();
  const int64_t E = 5, T = 2, top_k = 3, H = 256, I = 192;
  ExpertSet gate = make_set(f, E, I, H, 11), up = make_set(f, E, I, H, 23), down = make_set(f, E, H, I, 37);
  const std::vector<int32_t> ids = {4, 1, 2, 0, 4, 3};  // slots: token 0 -> 4, 1, 2; token 1 -> 0, 4, 3
  const int64_t S = T * top_k;
  std::mt19937 rng(5);
  const std::vector<float> x = round_half(random_floats(rng, static_cast<size_t>(T * H)));
  const std::vector<float> xd = round_half(random_floats(rng, static_cast<size_t>(S * I)));
  GuardedArray<int32_t> d_ids(ids);
  GuardedArray<uint16_t> d_x(to_half_bits(x)), d_xd(to_half_bits(xd));
  const std::vector<uint16_t> poison(static_cast<size_t>(S * H), 0x7E5A);
  GuardedArray<uint16_t> d_g(std::vector<uint16_t>(poison.begin(), poison.begin() + S * I));
  GuardedArray<uint16_t> d_u(std::vector<uint16_t>(poison.begin(), poison.begin() + S * I));
  GuardedArray<uint16_t> d_y(poison);
  cuda::Stream stream;
  auto* hx = reinterpret_cast<const __half*>(d_x.get());
  auto* hxd = reinterpret_cast<const __half*>(d_xd.get());
  if (f == Fmt::kFp16) {
    for (auto [set, out, xin, xdiv, n, k] : {std::tuple{&gate, &d_g, hx, top_k, I, H}, std::tuple{&up, &d_u, hx, top_k, I, H},
                                             std::tuple{&down, &d_y, hxd, int64_t{1}, H, I}}) {
      kernels::MoeGemvF16Args a;
      a.weights = set->table.as<const __half*>();
      a.biases = set->biases.as<const __half*>();
      a.ids = d_ids.get();
      a.x = xin;
      a.x_div = xdiv;
      a.y = reinterpret_cast<__half*>(out->get());
      a.num_slots = S;
      a.n = n;
      a.k = k;
      kernels::launch_moe_gemv_f16(a, stream.get());
    }
  } else {
    kernels::GemvExpertPart gu[2] = {gate.part, up.part};
    gu[0].y = reinterpret_cast<__half*>(d_g.get());
    gu[1].y = reinterpret_cast<__half*>(d_u.get());
    gu[0].y_stride = gu[1].y_stride = I;
    kernels::gemv_one_experts(gu, 2, d_ids.get(), S, hx, top_k, {}, stream.get());
    kernels::GemvExpertPart d = down.part;
    d.y = reinterpret_cast<__half*>(d_y.get());
    d.y_stride = H;
    kernels::gemv_one_experts(&d, 1, d_ids.get(), S, hxd, 1, {}, stream.get());
  }
  stream.synchronize();
  EXL_EXPECT_CLOSE(from_half_bits(d_g.download()), oracle(gate, ids, x, top_k, I, H), 2e-3);
  EXL_EXPECT_CLOSE(from_half_bits(d_u.download()), oracle(up, ids, x, top_k, I, H), 2e-3);
  EXL_EXPECT_CLOSE(from_half_bits(d_y.download()), oracle(down, ids, xd, 1, H, I), 2e-3);
  EXPECT_TRUE(d_g.guards_intact() && d_u.guards_intact() && d_y.guards_intact());
}

INSTANTIATE_TEST_SUITE_P(Formats, MoeExpertGemv, ::testing::Values(Fmt::kExl2, Fmt::kGptq, Fmt::kFp16),
                         [](const auto& p) {
                           return std::string(p.param == Fmt::kExl2 ? "exl2" : p.param == Fmt::kGptq ? "gptq" : "fp16");
                         });

TEST(MoeOps, GatherAndScatterRowsMoveExactly) {
  EXL_REQUIRE_GPU();
  const int64_t T = 7, H = 40, n = 5;
  std::mt19937 rng(9);
  const std::vector<uint16_t> src = to_half_bits(random_floats(rng, static_cast<size_t>(T * H)));
  const std::vector<int32_t> rows = {6, 0, 3, 3, 1};
  GuardedArray<uint16_t> d_src(src), d_dst(std::vector<uint16_t>(static_cast<size_t>(n * H), 0x7E5A));
  GuardedArray<int32_t> d_rows(rows);
  cuda::Stream stream;
  kernels::launch_gather_rows(reinterpret_cast<const __half*>(d_src.get()), d_rows.get(), n, H,
                              reinterpret_cast<__half*>(d_dst.get()), stream.get());
  stream.synchronize();
  const std::vector<uint16_t> got = d_dst.download();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < H; ++c)
      ASSERT_EQ(got[static_cast<size_t>(i * H + c)], src[static_cast<size_t>(rows[static_cast<size_t>(i)] * H + c)]);
  // Scatter to distinct slots; untouched rows keep their contents.
  const std::vector<int32_t> slots = {2, 5, 0, 6, 1};
  GuardedArray<int32_t> d_slots(slots);
  GuardedArray<uint16_t> d_back(std::vector<uint16_t>(static_cast<size_t>(T * H), 0x1234));
  kernels::launch_scatter_rows(reinterpret_cast<const __half*>(d_dst.get()), d_slots.get(), n, H,
                               reinterpret_cast<__half*>(d_back.get()), stream.get());
  stream.synchronize();
  const std::vector<uint16_t> back = d_back.download();
  std::vector<uint16_t> want(static_cast<size_t>(T * H), 0x1234);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < H; ++c)
      want[static_cast<size_t>(slots[static_cast<size_t>(i)] * H + c)] = got[static_cast<size_t>(i * H + c)];
  EXPECT_EQ(back, want);
  EXPECT_TRUE(d_dst.guards_intact() && d_back.guards_intact());
}

TEST(MoeOps, CombineWeighsSlotsAndTheGatedSharedExpert) {
  EXL_REQUIRE_GPU();
  const int64_t T = 3, K = 2, H = 96;
  std::mt19937 rng(13);
  const std::vector<float> y = round_half(random_floats(rng, static_cast<size_t>(T * K * H)));
  const std::vector<float> sh = round_half(random_floats(rng, static_cast<size_t>(T * H)));
  const std::vector<float> g = round_half(random_floats(rng, static_cast<size_t>(T), 3.0f));
  const std::vector<float> w = {0.7f, 0.3f, 0.55f, 0.45f, 1.0f, 0.0f};
  GuardedArray<uint16_t> d_y(to_half_bits(y)), d_sh(to_half_bits(sh)), d_g(to_half_bits(g));
  GuardedArray<float> d_w(w);
  cuda::Stream stream;
  for (int variant = 0; variant < 3; ++variant) {  // no shared expert, ungated shared expert, gated shared expert
    GuardedArray<uint16_t> d_out(std::vector<uint16_t>(static_cast<size_t>(T * H), 0x7E5A));
    kernels::MoeCombineArgs a;
    a.expert_out = reinterpret_cast<const __half*>(d_y.get());
    a.weights = d_w.get();
    a.num_tokens = T;
    a.top_k = K;
    a.hidden = H;
    a.shared = variant > 0 ? reinterpret_cast<const __half*>(d_sh.get()) : nullptr;
    a.shared_gate = variant > 1 ? reinterpret_cast<const __half*>(d_g.get()) : nullptr;
    a.out = reinterpret_cast<__half*>(d_out.get());
    kernels::launch_moe_combine(a, stream.get());
    stream.synchronize();
    std::vector<float> want(static_cast<size_t>(T * H));
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < H; ++c) {
        double v = 0.0;
        for (int64_t j = 0; j < K; ++j) v += w[static_cast<size_t>(t * K + j)] * y[static_cast<size_t>((t * K + j) * H + c)];
        if (variant > 0) {
          const double gate = variant > 1 ? 1.0 / (1.0 + std::exp(-g[static_cast<size_t>(t)])) : 1.0;
          v += gate * sh[static_cast<size_t>(t * H + c)];
        }
        want[static_cast<size_t>(t * H + c)] = static_cast<float>(v);
      }
    EXL_EXPECT_CLOSE(from_half_bits(d_out.download()), want, 1e-3);
    EXPECT_TRUE(d_out.guards_intact());
  }
}

TEST(MoeOps, BadArgumentsAreErrors) {
  EXL_REQUIRE_GPU();
  cuda::Stream stream;
  kernels::MoeGemvF16Args a;  // every pointer missing
  a.num_slots = 1;
  a.n = 8;
  a.k = 12;  // not a multiple of 8
  EXPECT_THROW(kernels::launch_moe_gemv_f16(a, stream.get()), Error);
  kernels::GemvExpertPart p;
  EXPECT_THROW(kernels::gemv_one_experts(&p, 1, nullptr, 1, nullptr, 1, {}, stream.get()), Error);
  EXPECT_THROW(kernels::launch_gather_rows(nullptr, nullptr, 3, 8, nullptr, stream.get()), Error);
}

}  // namespace
}  // namespace exl

#endif  // EXL_HAVE_CUDA
