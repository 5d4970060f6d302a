// CudaLinear (EXL2 every width and mixed, GPTQ sym/asym/act-order/v2, FP16, BF16) against cpu::linear on the
// CPU dequantized weights, for the GEMV (num_tokens <= 32) and dequantize + cuBLAS paths; guard regions around the
// output, NaN/Inf never pass, repeated runs and CUDA-graph replays must agree. Real files: the exl2 test vectors
// and the tiny-llama EXL2 models (EXL_TESTDATA_DIR in the environment overrides the compiled-in path).
#ifdef EXL_HAVE_CUDA

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <random>

#include "backend/cpu/ops.h"
#include "backend/cuda/cuda_linear.h"
#include "backend/cuda/device_buffer.h"
#include "backend/cuda/cuda_check.h"
#include "core/fp16.h"
#include "kernels/gemv_f16.cuh"
#include "core/thread_pool.h"
#include "io/safetensors.h"
#include "kernels/quant_linear.cuh"
#include "quant/exl2_pack.h"
#include "quant/linear_weight.h"
#include "testdata.h"

namespace exl::cuda {
namespace {

using quant::LinearWeight;

constexpr uint16_t kPoison = 0x7E5A;  // a NaN: an unwritten element can never pass
constexpr int64_t kGuard = 256;       // halves before and after the output
const int64_t kTokenCounts[] = {1, 2, 3, 8, 33, 128, 512};

std::filesystem::path testdata() {
  if (const char* env = std::getenv("EXL_TESTDATA_DIR")) return env;
  return exl::testing::testdata_dir();
}

#define EXL_REQUIRE_GPU() \
  if (device_count() == 0) GTEST_SKIP() << "no CUDA device"

ThreadPool& pool() {
  static ThreadPool p;
  return p;
}

std::vector<float> random_normal(int64_t n, float stddev, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, stddev);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}

LinearWeight exl2_weight(int64_t N, int64_t K, std::vector<quant::Exl2BitSpec> bits, bool with_bias, uint64_t seed) {
  quant::Exl2PackOptions opt;
  opt.bits = std::move(bits);
  opt.seed = seed;
  if (with_bias) opt.bias = random_normal(N, 0.5f, seed + 1);
  LinearWeight lw;
  lw.key = "test.exl2";
  lw.format = quant::WeightFormat::kExl2;
  lw.in_features = K;
  lw.out_features = N;
  lw.exl2 = quant::pack_exl2_rtn(random_normal(N * K, 0.02f, seed), N, K, opt);
  for (int64_t n = 0; n < N && with_bias; ++n) lw.bias.push_back(half_to_float(lw.exl2.bias[n]));
  return lw;
}

LinearWeight gptq_weight(int64_t N, int64_t K, const quant::GptqPackOptions& opt, bool with_bias, uint64_t seed) {
  LinearWeight lw;
  lw.key = "test.gptq";
  lw.format = quant::WeightFormat::kGptq;
  lw.in_features = K;
  lw.out_features = N;
  lw.gptq = quant::pack_gptq_rtn(random_normal(N * K, 0.02f, seed), N, K, opt);
  if (with_bias) {
    for (float b : random_normal(N, 0.5f, seed + 1)) lw.gptq.bias.push_back(float_to_half(b));
    for (uint16_t b : lw.gptq.bias) lw.bias.push_back(half_to_float(b));
  }
  return lw;
}

LinearWeight float_weight(int64_t N, int64_t K, DType dtype, bool with_bias, uint64_t seed) {
  LinearWeight lw;
  lw.key = "test.float";
  lw.format = quant::WeightFormat::kFloat;
  lw.in_features = K;
  lw.out_features = N;
  lw.float_weight = Tensor(dtype, {N, K});
  const std::vector<float> src = random_normal(N * K, 0.02f, seed);
  for (int64_t i = 0; i < N * K; ++i) {
    lw.float_weight.data<uint16_t>()[i] = dtype == DType::kF16 ? float_to_half(src[i]) : float_to_bf16(src[i]);
  }
  if (with_bias) {
    for (float b : random_normal(N, 0.5f, seed + 1)) lw.bias.push_back(round_to_half(b));
  }
  return lw;
}

// M x K activations uniform in [-1, 1], rounded to fp16: the device copy (fp16 bits) and the oracle's floats.
struct RandomInput {
  std::vector<uint16_t> half_bits;
  std::vector<float> floats;
};
RandomInput random_input(int64_t M, int64_t K, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  RandomInput in{std::vector<uint16_t>(static_cast<size_t>(M * K)), std::vector<float>(static_cast<size_t>(M * K))};
  for (size_t i = 0; i < in.half_bits.size(); ++i) {
    in.half_bits[i] = float_to_half(d(rng));
    in.floats[i] = half_to_float(in.half_bits[i]);
  }
  return in;
}

struct Checker {
  const LinearWeight& lw;
  CudaLinear lin;
  std::vector<float> w_nk;
  CublasHandle cublas;
  Stream stream;

  explicit Checker(const LinearWeight& w, const LinearOptions& options = {})
      : lw(w), lin(CudaLinear::create(w, options)), w_nk(w.to_f32_nk()) {}

  // Runs num_tokens through CUDA and the CPU oracle; `scratch_elements` < 0 means the full requirement.
  void check(int64_t M, uint64_t seed, int64_t scratch_elements = -1) {
    SCOPED_TRACE(::testing::Message() << lw.key << " " << lw.describe() << " N=" << lw.out_features
                                      << " K=" << lw.in_features << " tokens=" << M);
    const int64_t N = lw.out_features, K = lw.in_features;
    const RandomInput in = random_input(M, K, seed);
    const std::vector<uint16_t>& xh = in.half_bits;
    const std::vector<float>& xf = in.floats;
    std::vector<float> ref(static_cast<size_t>(M * N));
    cpu::linear(pool(), xf.data(), w_nk.data(), lw.bias.empty() ? nullptr : lw.bias.data(), ref.data(), M, K, N);

    DeviceBuffer x(xh.size() * 2);
    x.upload(xh.data(), xh.size() * 2);
    const int64_t out_elems = M * N + 2 * kGuard;
    std::vector<uint16_t> poison(static_cast<size_t>(out_elems), kPoison);
    DeviceBuffer y(static_cast<size_t>(out_elems) * 2);
    const int64_t scratch_n = scratch_elements < 0 ? lin.scratch_elements_needed() : scratch_elements;
    DeviceBuffer scratch(static_cast<size_t>(std::max<int64_t>(scratch_n, 1)) * 2);
    LinearContext ctx{stream.get(), cublas.get(), scratch.as<__half>(), scratch_n};

    std::vector<uint16_t> first;
    for (int rep = 0; rep < 2; ++rep) {  // a second run checks that split-K counters were left at zero
      y.upload(poison.data(), poison.size() * 2);
      lin.forward(x.as<__half>(), y.as<__half>() + kGuard, M, ctx);
      stream.synchronize();
      EXL_CUDA_CHECK(cudaGetLastError());
      std::vector<uint16_t> got(static_cast<size_t>(out_elems));
      y.download(got.data(), got.size() * 2);
      for (int64_t i = 0; i < kGuard; ++i) {
        ASSERT_EQ(got[i], kPoison) << "guard before the output overwritten at " << i;
        ASSERT_EQ(got[kGuard + M * N + i], kPoison) << "guard after the output overwritten at " << i;
      }
      std::vector<uint16_t> out(got.begin() + kGuard, got.begin() + kGuard + M * N);
      if (rep == 0) {
        compare(out, ref);
        first = out;
      } else {
        EXPECT_EQ(out, first) << "second run differs from the first";
      }
    }
  }

  static void compare(const std::vector<uint16_t>& got, const std::vector<float>& ref) {
    double err = 0.0, norm = 0.0, max_abs = 0.0, ref_max = 0.0;
    int64_t bad = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      const float g = half_to_float(got[i]);
      if (!std::isfinite(g)) {
        ++bad;
        continue;
      }
      const double diff = static_cast<double>(g) - ref[i];
      err += diff * diff;
      norm += static_cast<double>(ref[i]) * ref[i];
      max_abs = std::max(max_abs, std::fabs(diff));
      ref_max = std::max(ref_max, std::fabs(static_cast<double>(ref[i])));
    }
    ASSERT_EQ(bad, 0) << "NaN/Inf (or unwritten) outputs";
    const double rel = std::sqrt(err / std::max(norm, 1e-30));
    EXPECT_LE(rel, 2e-3) << "relative L2";
    EXPECT_LE(max_abs, 1e-2 * ref_max + 1e-3) << "max abs (ref max " << ref_max << ")";
  }
};

TEST(LinearOps, Exl2EachWidth) {
  EXL_REQUIRE_GPU();
  for (int bits : {2, 3, 4, 5, 6, 8}) {
    const LinearWeight lw = exl2_weight(256, 1024, {{bits, 1.0, bits <= 3 ? 64 : 128}}, false, 100 + bits);
    Checker c(lw);
    for (int64_t M : kTokenCounts) c.check(M, M * 7 + bits);
  }
}

TEST(LinearOps, Exl2AllWidthsMixedOddShapeBias) {
  EXL_REQUIRE_GPU();
  // K = 1056 (not a multiple of 128), N = 200 padded to W = 224, all six widths, g32/64/128.
  const LinearWeight lw = exl2_weight(
      200, 1056, {{8, 0.1, 32}, {6, 0.1, 64}, {5, 0.2, 32}, {4, 0.2, 128}, {3, 0.2, 64}, {2, 0.2, 32}}, true, 7);
  Checker c(lw);
  for (int64_t M : kTokenCounts) c.check(M, M + 1);
  for (int64_t M : {int64_t{32}, int64_t{31}, int64_t{17}, int64_t{9}}) c.check(M, M + 2);
}

TEST(LinearOps, Exl2SplitKShapes) {
  EXL_REQUIRE_GPU();
  // Long K against few columns (many split-K slices), and a wide layer with few slices.
  const LinearWeight tall = exl2_weight(256, 14336, {{4, 1.0, 128}}, true, 31);
  Checker a(tall);
  for (int64_t M : {int64_t{1}, int64_t{5}, int64_t{32}, int64_t{40}}) a.check(M, M + 3);
  const LinearWeight wide = exl2_weight(4096, 1024, {{5, 0.25, 32}, {4, 0.75, 64}}, false, 32);
  Checker b(wide);
  for (int64_t M : {int64_t{1}, int64_t{16}, int64_t{64}}) b.check(M, M + 4);
}

TEST(LinearOps, Exl2GemmChunkedScratch) {
  EXL_REQUIRE_GPU();
  const LinearWeight lw = exl2_weight(600, 512, {{6, 0.5, 64}, {3, 0.5, 64}}, true, 41);  // W = 608
  Checker c(lw);
  c.check(48, 5, c.lin.min_scratch_elements());      // one 128-column chunk at a time
  c.check(48, 6, 512 * 300);                         // 256-column chunks, last one partial
}

// Runs a CudaLinearGroup (one fused launch for few tokens) against the CPU oracle of each part.
void check_group(const std::vector<const LinearWeight*>& ws, bool expect_fused) {
  std::vector<CudaLinear> lins;
  for (const LinearWeight* w : ws) lins.push_back(CudaLinear::create(*w));
  std::vector<const CudaLinear*> ptrs;
  for (const CudaLinear& l : lins) ptrs.push_back(&l);
  const CudaLinearGroup group = CudaLinearGroup::create(ptrs);
  ASSERT_EQ(group.size(), ws.size());
  EXPECT_EQ(group.fused(1), expect_fused);
  CublasHandle cublas;
  Stream stream;
  int64_t scratch_n = group.scratch_elements_needed();
  for (const CudaLinear& l : lins) scratch_n = std::max(scratch_n, l.scratch_elements_needed());
  DeviceBuffer scratch(static_cast<size_t>(std::max<int64_t>(scratch_n, 1)) * 2);
  const LinearContext ctx{stream.get(), cublas.get(), scratch.as<__half>(), scratch_n};
  const int64_t K = ws[0]->in_features;
  for (int64_t M : {int64_t{1}, int64_t{3}, int64_t{8}, int64_t{16}, int64_t{32}, int64_t{40}}) {
    SCOPED_TRACE(::testing::Message() << "tokens=" << M << " fused=" << group.fused(M));
    const RandomInput in = random_input(M, K, static_cast<uint64_t>(M) * 131);
    const std::vector<uint16_t>& xh = in.half_bits;
    const std::vector<float>& xf = in.floats;
    DeviceBuffer x(xh.size() * 2);
    x.upload(xh.data(), xh.size() * 2);
    std::vector<DeviceBuffer> ys;
    std::vector<__half*> yp;
    for (const LinearWeight* w : ws) {
      ys.emplace_back(static_cast<size_t>(M * w->out_features) * 2);
      yp.push_back(ys.back().as<__half>());
    }
    std::vector<std::vector<uint16_t>> first(ws.size());
    for (int rep = 0; rep < 2; ++rep) {  // the second run checks that the parts' split-K counters were reset
      for (size_t i = 0; i < ws.size(); ++i) EXL_CUDA_CHECK(cudaMemset(yp[i], 0xff, ys[i].bytes()));
      group.forward(x.as<__half>(), yp.data(), M, ctx);
      stream.synchronize();
      EXL_CUDA_CHECK(cudaGetLastError());
      for (size_t i = 0; i < ws.size(); ++i) {
        const LinearWeight& w = *ws[i];
        SCOPED_TRACE(::testing::Message() << "part " << i << " " << w.describe());
        std::vector<uint16_t> got(static_cast<size_t>(M * w.out_features));
        ys[i].download(got.data(), got.size() * 2);
        if (rep == 0) {
          const std::vector<float> w_nk = w.to_f32_nk();
          std::vector<float> ref(got.size());
          cpu::linear(pool(), xf.data(), w_nk.data(), w.bias.empty() ? nullptr : w.bias.data(), ref.data(), M, K,
                      w.out_features);
          Checker::compare(got, ref);
          first[i] = got;
        } else {
          EXPECT_EQ(got, first[i]) << "second run differs from the first";
        }
      }
    }
  }
}

TEST(LinearOps, GroupedQkvExl2) {
  EXL_REQUIRE_GPU();
  // q/k/v-like: one K, three widths (one padded), different bit mixes and permutations, bias on one part.
  const LinearWeight q = exl2_weight(512, 1024, {{4, 0.5, 32}, {3, 0.5, 64}}, false, 51);
  const LinearWeight k = exl2_weight(128, 1024, {{6, 0.3, 32}, {4, 0.7, 128}}, true, 52);
  const LinearWeight v = exl2_weight(200, 1024, {{8, 0.2, 32}, {5, 0.3, 32}, {2, 0.5, 64}}, false, 53);
  check_group({&q, &k, &v}, true);
}

TEST(LinearOps, GroupedGateUpGptqAndFallback) {
  EXL_REQUIRE_GPU();
  quant::GptqPackOptions opt;
  opt.group_size = 128;
  opt.symmetry = quant::GptqSymmetry::kAsymmetric;
  opt.g_idx.resize(2048);
  for (int64_t r = 0; r < 2048; ++r) opt.g_idx[static_cast<size_t>(r)] = static_cast<int32_t>(r % 16);
  std::shuffle(opt.g_idx.begin(), opt.g_idx.end(), std::mt19937(9));
  const LinearWeight gate = gptq_weight(768, 2048, opt, false, 61);
  const LinearWeight up = exl2_weight(768, 2048, {{4, 1.0, 128}}, false, 62);
  check_group({&gate, &up}, true);
  // A float part: each layer runs on its own.
  const LinearWeight f = float_weight(256, 2048, DType::kF16, true, 63);
  check_group({&gate, &f}, false);
}

void check_swiglu() {
  const LinearWeight lw = exl2_weight(384, 1024, {{5, 0.3, 32}, {4, 0.7, 64}}, true, 71);
  const CudaLinear lin = CudaLinear::create(lw);
  const std::vector<float> w_nk = lw.to_f32_nk();
  CublasHandle cublas;
  Stream stream;
  const int64_t scratch_n = lin.scratch_elements_needed();
  DeviceBuffer scratch(static_cast<size_t>(scratch_n) * 2);
  const LinearContext ctx{stream.get(), cublas.get(), scratch.as<__half>(), scratch_n};
  const int64_t K = 1024, N = 384;
  EXPECT_FALSE(lin.fuses_swiglu(CudaLinear::kSwigluMaxTokens + 1));
  for (int64_t M : {int64_t{1}, int64_t{5}, CudaLinear::kSwigluMaxTokens}) {
    SCOPED_TRACE(::testing::Message() << "tokens=" << M);
    ASSERT_TRUE(lin.fuses_swiglu(M));
    std::mt19937_64 rng(static_cast<uint64_t>(M) + 900);
    std::uniform_real_distribution<float> d(-4.0f, 4.0f);
    std::vector<uint16_t> gh(static_cast<size_t>(M * K)), uh(gh.size());
    std::vector<float> act(gh.size());
    for (size_t i = 0; i < gh.size(); ++i) {
      gh[i] = float_to_half(d(rng));
      uh[i] = float_to_half(d(rng));
      const float g = half_to_float(gh[i]), u = half_to_float(uh[i]);
      act[i] = round_to_half(g / (1.0f + std::exp(-g)) * u);
    }
    std::vector<float> ref(static_cast<size_t>(M * N));
    cpu::linear(pool(), act.data(), w_nk.data(), lw.bias.data(), ref.data(), M, K, N);
    DeviceBuffer g(gh.size() * 2), u(uh.size() * 2), y(ref.size() * 2);
    g.upload(gh.data(), gh.size() * 2);
    u.upload(uh.data(), uh.size() * 2);
    lin.forward_swiglu(g.as<__half>(), u.as<__half>(), y.as<__half>(), M, ctx);
    stream.synchronize();
    std::vector<uint16_t> got(ref.size());
    y.download(got.data(), got.size() * 2);
    Checker::compare(got, ref);
  }
  EXPECT_THROW(lin.forward_swiglu(nullptr, nullptr, nullptr, 40, ctx), Error);
}

TEST(LinearOps, SwigluFusedIntoGemv) {
  EXL_REQUIRE_GPU();
  check_swiglu();
}

// Both one-token kernels against the CPU oracle on the same shapes: every width and an odd shape with bias, routed
// by their split plans (kernels::gemv_one_preferred: gemv_one where the plan splits K and K <= 8192, gemv_quant for
// one slice), and a long K (gemv_quant only: gemv_one takes it on the fragment-ordered path, FragInputOneToken).
// Then the default routing of grouped launches (EXL2 q/k/v, GPTQ act-order + EXL2) and of SwiGLU (gemv_quant).
TEST(LinearOps, OneTokenBothKernels) {
  EXL_REQUIRE_GPU();
  for (const int32_t splits : {4, 1}) {
    SCOPED_TRACE(splits > 1 ? "gemv_one" : "gemv_quant");
    const LinearOptions options{.gemv_splits = splits};
    // (Checker keeps a reference to its weight: each one is a named local.)
    for (int bits : {2, 3, 4, 5, 6, 8}) {
      const LinearWeight one = exl2_weight(256, 1024, {{bits, 1.0, bits <= 3 ? 64 : 128}}, false, 300 + bits);
      Checker c(one, options);
      ASSERT_EQ(c.lin.gemv_splits() > 1, splits > 1);
      c.check(1, 11 + bits);
    }
    const LinearWeight mixed_w = exl2_weight(
        200, 1056, {{8, 0.1, 32}, {6, 0.1, 64}, {5, 0.2, 32}, {4, 0.2, 128}, {3, 0.2, 64}, {2, 0.2, 32}}, true, 8);
    Checker mixed(mixed_w, options);
    mixed.check(1, 21);
  }
  const LinearWeight tall_w = exl2_weight(256, 14336, {{4, 1.0, 128}}, true, 33);
  Checker tall(tall_w, LinearOptions{.gemv_splits = 4});
  tall.check(1, 22);
  const LinearWeight q = exl2_weight(512, 1024, {{4, 0.5, 32}, {3, 0.5, 64}}, false, 54);
  const LinearWeight k = exl2_weight(128, 1024, {{6, 0.3, 32}, {4, 0.7, 128}}, true, 55);
  const LinearWeight v = exl2_weight(200, 1024, {{8, 0.2, 32}, {5, 0.3, 32}, {2, 0.5, 64}}, false, 56);
  check_group({&q, &k, &v}, true);
  quant::GptqPackOptions opt;
  opt.group_size = 128;
  opt.g_idx.resize(1024);
  for (int64_t r = 0; r < 1024; ++r) opt.g_idx[static_cast<size_t>(r)] = static_cast<int32_t>((r * 5) % 8);
  const LinearWeight gate = gptq_weight(384, 1024, opt, true, 64);
  check_group({&gate, &q}, true);
  check_swiglu();
}

// Host only (no GPU needed): gemv_one sizes each warp's scale table from the plan's group count for the slice count
// the launch actually uses. 10 tiles = 20 chunks of 32 rows in groups of 128 rows (4 chunks), except chunks 0-1
// (group 0, 64 rows) and 2-3 (group 1): groups 0, 1, then 2, 2, 2, 2, 3, 3, 3, 3, ... up to 5.
TEST(LinearOps, PlanCountsGroupsPerSliceCount) {
  std::vector<int32_t> chunk_group(20);
  for (int c = 0; c < 20; ++c) chunk_group[static_cast<size_t>(c)] = c < 2 ? 0 : c < 4 ? 1 : 2 + (c - 4) / 4;
  const kernels::GemvSplitPlan plan = kernels::plan_gemv_splits(chunk_group.data(), 10, 1);
  EXPECT_EQ(plan.one_max_groups_by_slices[0], 0);
  // One slice: all 6 groups. Two slices of 5 tiles: chunks 0-9 hold groups 0..3, chunks 10-19 groups 3..5.
  EXPECT_EQ(plan.one_max_groups_by_slices[1], 6);
  EXPECT_EQ(plan.one_max_groups_by_slices[2], 4);
  // Three slices (tiles 0-2, 3-5, 6-9): chunks 0-5 -> groups 0..2 (3); 6-11 -> 2..3 (2); 12-19 -> 4..5 (2).
  EXPECT_EQ(plan.one_max_groups_by_slices[3], 3);
  // Ten slices of one tile: chunks 2c and 2c + 1 never span more than 2 groups; 12 slices leave two empty.
  EXPECT_EQ(plan.one_max_groups_by_slices[10], 1);
  EXPECT_EQ(plan.one_max_groups_by_slices[12], 1);
  for (int s = 1; s <= kernels::kGemvOneMaxSlices; ++s) EXPECT_GE(plan.one_max_groups_by_slices[s], 1) << s;
}

TEST(LinearOps, GptqVariants) {
  EXL_REQUIRE_GPU();
  const int64_t N = 256, K = 1024;
  std::vector<int32_t> act(static_cast<size_t>(K));
  for (int64_t k = 0; k < K; ++k) act[k] = static_cast<int32_t>(k % 8);
  std::shuffle(act.begin(), act.end(), std::mt19937(5));
  int seed = 50;
  for (auto sym : {quant::GptqSymmetry::kSymmetric, quant::GptqSymmetry::kAsymmetric}) {
    for (auto zf : {quant::GptqZeroFormat::kV1, quant::GptqZeroFormat::kV2}) {
      for (bool act_order : {false, true}) {
        quant::GptqPackOptions opt;
        opt.group_size = 128;
        opt.symmetry = sym;
        opt.zero_format = zf;
        if (act_order) opt.g_idx = act;
        const LinearWeight lw = gptq_weight(N, K, opt, act_order, ++seed);
        Checker c(lw);
        for (int64_t M : {int64_t{1}, int64_t{3}, int64_t{8}, int64_t{33}, int64_t{128}}) c.check(M, M + seed);
      }
    }
  }
}

TEST(LinearOps, FloatWeights) {
  EXL_REQUIRE_GPU();
  for (DType dt : {DType::kF16, DType::kBF16}) {
    const LinearWeight lw = float_weight(200, 1056, dt, true, 77);
    Checker c(lw);
    for (int64_t M : kTokenCounts) c.check(M, M + 9);
  }
}

// One token on fp16 weights runs kernels::gemv_f16 (PDL-launched, not cuBLAS): a head-like shape, the smallest
// and the largest k it takes, with and without bias; k % 8 != 0 goes to cuBLAS; every batch depth
// (CudaTuning f16_gemv_batch). Bad arguments are errors.
TEST(LinearOps, FloatWeightsOneTokenGemv) {
  EXL_REQUIRE_GPU();
  struct Shape {
    int64_t n, k;
    bool bias;
  };
  for (const Shape& sh : {Shape{5003, 4096, false}, Shape{7, 8, true}, Shape{65, 16384, true}, Shape{33, 1004, true},
                          Shape{300, 14336, false}}) {
    const LinearWeight lw = float_weight(sh.n, sh.k, DType::kF16, sh.bias, 500 + static_cast<uint64_t>(sh.n));
    Checker c(lw);
    c.check(1, static_cast<uint64_t>(sh.k));
    for (const int32_t batch : {4, 8}) {
      SCOPED_TRACE(::testing::Message() << "batch " << batch);
      LinearOptions o;
      o.tuning.f16_gemv.batch = batch;
      Checker cb(lw, o);
      cb.check(1, static_cast<uint64_t>(sh.k) + 1);
    }
  }
  kernels::GemvF16Args bad;
  bad.n = 4;
  bad.k = 12;  // not a multiple of 8
  EXPECT_FALSE(kernels::gemv_f16_supported(bad));
  EXPECT_THROW(kernels::launch_gemv_f16(bad, nullptr), Error);
}

TEST(LinearOps, CudaGraphReplay) {
  EXL_REQUIRE_GPU();
  const LinearWeight lw = exl2_weight(512, 4096, {{4, 1.0, 128}}, true, 61);  // split-K with counters
  CudaLinear lin = CudaLinear::create(lw);
  Stream stream;
  CublasHandle cublas;
  DeviceBuffer scratch(static_cast<size_t>(lin.scratch_elements_needed()) * 2);
  LinearContext ctx{stream.get(), cublas.get(), scratch.as<__half>(), lin.scratch_elements_needed()};
  const int64_t M = 2, K = 4096, N = 512;
  std::vector<uint16_t> xh(static_cast<size_t>(M * K));
  std::mt19937 rng(1);
  for (auto& v : xh) v = float_to_half(std::uniform_real_distribution<float>(-1, 1)(rng));
  DeviceBuffer x(xh.size() * 2), y_direct(M * N * 2), y_graph(M * N * 2);
  x.upload(xh.data(), xh.size() * 2);
  lin.forward(x.as<__half>(), y_direct.as<__half>(), M, ctx);
  stream.synchronize();
  cudaGraph_t graph;
  EXL_CUDA_CHECK(cudaStreamBeginCapture(stream.get(), cudaStreamCaptureModeGlobal));
  lin.forward(x.as<__half>(), y_graph.as<__half>(), M, ctx);
  EXL_CUDA_CHECK(cudaStreamEndCapture(stream.get(), &graph));
  cudaGraphExec_t exec;
  EXL_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  std::vector<uint16_t> a(static_cast<size_t>(M * N)), b(a.size());
  y_direct.download(a.data(), a.size() * 2);
  for (int rep = 0; rep < 3; ++rep) {
    EXL_CUDA_CHECK(cudaMemset(y_graph.get(), 0xFF, y_graph.bytes()));
    EXL_CUDA_CHECK(cudaGraphLaunch(exec, stream.get()));
    stream.synchronize();
    y_graph.download(b.data(), b.size() * 2);
    EXPECT_EQ(a, b) << "graph replay " << rep;
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
}

TEST(LinearOps, Exl2TestVectorFiles) {
  EXL_REQUIRE_GPU();
  const auto dir = testdata() / "exl2-vectors";
  EXL_REQUIRE_TESTDATA(dir);
  const std::pair<const char*, int64_t> files[] = {{"exl2_mixed_all_bits", 256}, {"exl2_partial_group_padcols", 200}};
  for (auto [name, n] : files) {
    auto store = io::TensorStore::open_file(dir / (std::string(name) + ".safetensors"));
    const int64_t K = store.info("layer.q_invperm").shape[0];
    const LinearWeight lw = quant::load_linear(store, "layer", K, n, {});
    Checker c(lw);
    for (int64_t M : {int64_t{1}, int64_t{8}, int64_t{33}}) c.check(M, M);
  }
  auto store = io::TensorStore::open_file(dir / "gptq4_actorder_g128.safetensors");
  const LinearWeight lw = quant::load_linear(store, "layer", 512, 256, {});
  Checker c(lw);
  for (int64_t M : {int64_t{1}, int64_t{8}, int64_t{33}}) c.check(M, M);
}

TEST(LinearOps, TinyLlamaExl2Layers) {
  EXL_REQUIRE_GPU();
  int checked = 0;
  for (const char* model : {"exl2-2.5bpw", "exl2-4.0bpw", "exl2-6.0bpw"}) {
    const auto dir = testdata() / "models/tiny-llama" / model;
    if (!std::filesystem::exists(dir)) continue;
    auto store = io::TensorStore::open_dir(dir);
    struct Layer {
      std::string key;
      int64_t in, out;
    };
    const std::vector<Layer> layers = {
        {"model.layers.0.self_attn.q_proj", 512, 512}, {"model.layers.0.self_attn.k_proj", 512, 256},
        {"model.layers.0.self_attn.v_proj", 512, 256}, {"model.layers.0.self_attn.o_proj", 512, 512},
        {"model.layers.1.mlp.gate_proj", 512, 1024},   {"model.layers.2.mlp.up_proj", 512, 1024},
        {"model.layers.3.mlp.down_proj", 1024, 512},   {"lm_head", 512, 2048}};
    for (const Layer& l : layers) {
      const LinearWeight lw = quant::load_linear(store, l.key, l.in, l.out, {});
      Checker c(lw);
      for (int64_t M : {int64_t{1}, int64_t{4}, int64_t{33}}) c.check(M, M + checked);
      ++checked;
    }
  }
  if (checked == 0) GTEST_SKIP() << "tiny-llama exl2 models not found under " << testdata().string();
}


// ---- Fragment-ordered one-token inputs (kernels/frag.cuh) ----

// A matrix's fragment target read back: dest (per input feature) and pads, checked to be disjoint and inside the
// padded rows.
struct FragLayout {
  std::vector<int32_t> dest, pads;
};
FragLayout read_frag_layout(const CudaLinear& lin) {
  const kernels::FragTarget t = lin.frag_target(nullptr);
  FragLayout f;
  f.dest.resize(static_cast<size_t>(lin.in_features()));
  f.pads.resize(static_cast<size_t>(t.num_pads));
  EXL_CUDA_CHECK(cudaMemcpy(f.dest.data(), t.dest, f.dest.size() * 4, cudaMemcpyDeviceToHost));
  if (t.num_pads > 0) EXL_CUDA_CHECK(cudaMemcpy(f.pads.data(), t.pads, f.pads.size() * 4, cudaMemcpyDeviceToHost));
  std::vector<int> seen(static_cast<size_t>(lin.padded_rows()), 0);
  for (const std::vector<int32_t>* v : {&f.dest, &f.pads})
    for (int32_t i : *v) {
      EXPECT_TRUE(i >= 0 && i < lin.padded_rows()) << "fragment index " << i << " outside " << lin.padded_rows();
      if (i >= 0 && i < lin.padded_rows()) ++seen[static_cast<size_t>(i)];
    }
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], 1) << "fragment slot " << i;
  EXPECT_EQ(static_cast<int64_t>(f.dest.size() + f.pads.size()), lin.padded_rows());
  // The inverse map (what add_rms_norm gathers through): the input feature at each slot, -1 at the pads.
  EXPECT_EQ(t.num_out, lin.padded_rows());
  std::vector<int32_t> src(static_cast<size_t>(lin.padded_rows()));
  EXL_CUDA_CHECK(cudaMemcpy(src.data(), t.src, src.size() * 4, cudaMemcpyDeviceToHost));
  for (size_t n = 0; n < f.dest.size(); ++n) {
    if (f.dest[n] >= 0 && f.dest[n] < lin.padded_rows()) {
      EXPECT_EQ(src[static_cast<size_t>(f.dest[n])], static_cast<int32_t>(n));
    }
  }
  for (int32_t p : f.pads) {
    if (p >= 0 && p < lin.padded_rows()) {
      EXPECT_EQ(src[static_cast<size_t>(p)], -1) << "pad slot " << p;
    }
  }
  return f;
}

// What a producer writes: x[n] at dest[n], 0 at the pads (the buffer starts poisoned: nothing may be left unset).
DeviceBuffer frag_buffer(const FragLayout& f, const std::vector<uint16_t>& x, int64_t padded) {
  std::vector<uint16_t> h(static_cast<size_t>(padded), kPoison);
  for (size_t n = 0; n < f.dest.size(); ++n) h[static_cast<size_t>(f.dest[n])] = x[n];
  for (int32_t p : f.pads) h[static_cast<size_t>(p)] = 0;
  DeviceBuffer b(h.size() * 2);
  b.upload(h.data(), h.size() * 2);
  return b;
}

std::vector<float> oracle(const LinearWeight& w, const std::vector<float>& x) {
  const std::vector<float> w_nk = w.to_f32_nk();
  std::vector<float> ref(static_cast<size_t>(w.out_features));
  cpu::linear(pool(), x.data(), w_nk.data(), w.bias.empty() ? nullptr : w.bias.data(), ref.data(), 1, w.in_features,
              w.out_features);
  return ref;
}

std::vector<uint16_t> download_halves(const DeviceBuffer& b, int64_t n) {
  std::vector<uint16_t> h(static_cast<size_t>(n));
  b.download(h.data(), h.size() * 2);
  return h;
}

void check_frag_input_one_token() {
  quant::GptqPackOptions act;
  act.group_size = 128;
  act.g_idx.resize(1024);
  for (int64_t r = 0; r < 1024; ++r) act.g_idx[static_cast<size_t>(r)] = static_cast<int32_t>((r * 7) % 8);
  std::vector<LinearWeight> ws;
  for (int bits : {2, 3, 4, 5, 6, 8}) ws.push_back(exl2_weight(256, 1024, {{bits, 1.0, bits <= 3 ? 64 : 128}}, false, 400 + bits));
  ws.push_back(exl2_weight(
      200, 1056, {{8, 0.1, 32}, {6, 0.1, 64}, {5, 0.2, 32}, {4, 0.2, 128}, {3, 0.2, 64}, {2, 0.2, 32}}, true, 410));
  ws.push_back(exl2_weight(256, 14336, {{4, 1.0, 128}}, true, 411));
  ws.push_back(gptq_weight(384, 1024, act, true, 412));
  Stream stream;
  const LinearContext ctx{stream.get(), nullptr, nullptr, 0};
  for (const LinearWeight& w : ws) {
    SCOPED_TRACE(::testing::Message() << w.describe() << " N=" << w.out_features << " K=" << w.in_features);
    const CudaLinear lin = CudaLinear::create(w);
    ASSERT_TRUE(lin.frag_capable());
    const FragLayout f = read_frag_layout(lin);
    const RandomInput in = random_input(1, w.in_features, 77);
    const DeviceBuffer xf = frag_buffer(f, in.half_bits, lin.padded_rows());
    DeviceBuffer y(static_cast<size_t>(w.out_features) * 2);
    EXL_CUDA_CHECK(cudaMemset(y.get(), 0xff, y.bytes()));
    lin.forward_frag(xf.as<__half>(), y.as<__half>(), ctx);
    stream.synchronize();
    EXL_CUDA_CHECK(cudaGetLastError());
    Checker::compare(download_halves(y, w.out_features), oracle(w, in.floats));
  }
  const LinearWeight fw = float_weight(64, 256, DType::kF16, false, 413);
  const CudaLinear flin = CudaLinear::create(fw);
  EXPECT_FALSE(flin.frag_capable());
  EXPECT_THROW(flin.frag_target(nullptr), Error);
}

TEST(LinearOps, FragInputOneToken) {
  EXL_REQUIRE_GPU();
  check_frag_input_one_token();
}


// q/k/v as one fragment-ordered launch; then gate/up as a SwiGLU pair whose product feeds a down projection.
TEST(LinearOps, FragGroupAndSwigluPair) {
  EXL_REQUIRE_GPU();
  Stream stream;
  const LinearContext ctx{stream.get(), nullptr, nullptr, 0};
  const int64_t K = 1024;
  const RandomInput in = random_input(1, K, 99);
  {
    const LinearWeight q = exl2_weight(512, K, {{4, 0.5, 32}, {3, 0.5, 64}}, false, 451);
    const LinearWeight k = exl2_weight(128, K, {{6, 0.3, 32}, {4, 0.7, 128}}, true, 452);
    const LinearWeight v = exl2_weight(200, K, {{8, 0.2, 32}, {5, 0.3, 32}, {2, 0.5, 64}}, false, 453);
    const CudaLinear lq = CudaLinear::create(q), lk = CudaLinear::create(k), lv = CudaLinear::create(v);
    const CudaLinearGroup g = CudaLinearGroup::create({&lq, &lk, &lv});
    ASSERT_TRUE(g.frag_capable());
    const DeviceBuffer fq = frag_buffer(read_frag_layout(lq), in.half_bits, lq.padded_rows());
    const DeviceBuffer fk = frag_buffer(read_frag_layout(lk), in.half_bits, lk.padded_rows());
    const DeviceBuffer fv = frag_buffer(read_frag_layout(lv), in.half_bits, lv.padded_rows());
    DeviceBuffer yq(512 * 2), yk(128 * 2), yv(200 * 2);
    const __half* xs[] = {fq.as<__half>(), fk.as<__half>(), fv.as<__half>()};
    __half* ys[] = {yq.as<__half>(), yk.as<__half>(), yv.as<__half>()};
    g.forward_frag(xs, ys, nullptr, ctx);
    stream.synchronize();
    EXL_CUDA_CHECK(cudaGetLastError());
    Checker::compare(download_halves(yq, 512), oracle(q, in.floats));
    Checker::compare(download_halves(yk, 128), oracle(k, in.floats));
    Checker::compare(download_halves(yv, 200), oracle(v, in.floats));
  }
  const int64_t I = 1056;  // not a multiple of 16 columns: padded strips
  quant::GptqPackOptions opt;
  opt.group_size = 128;
  opt.g_idx.resize(static_cast<size_t>(K));
  for (int64_t r = 0; r < K; ++r) opt.g_idx[static_cast<size_t>(r)] = static_cast<int32_t>((r * 3) % 8);
  const LinearWeight gate = gptq_weight(I, K, opt, true, 461);
  const LinearWeight up = exl2_weight(I, K, {{5, 0.4, 32}, {4, 0.6, 128}}, false, 462);
  const LinearWeight down = exl2_weight(384, I, {{6, 0.2, 64}, {4, 0.5, 128}, {3, 0.3, 32}}, true, 463);
  const CudaLinear lg = CudaLinear::create(gate), lu = CudaLinear::create(up), ld = CudaLinear::create(down);
  const CudaLinearGroup gu = CudaLinearGroup::create({&lg, &lu});
  const DeviceBuffer fg = frag_buffer(read_frag_layout(lg), in.half_bits, lg.padded_rows());
  const DeviceBuffer fu = frag_buffer(read_frag_layout(lu), in.half_bits, lu.padded_rows());
  const FragLayout fd = read_frag_layout(ld);
  std::vector<uint16_t> poison(static_cast<size_t>(ld.padded_rows()), kPoison);
  DeviceBuffer xdown(poison.size() * 2);
  xdown.upload(poison.data(), poison.size() * 2);
  DeviceBuffer yg(static_cast<size_t>(I) * 2), yu(static_cast<size_t>(I) * 2);
  const __half* xs[] = {fg.as<__half>(), fu.as<__half>()};
  __half* ys[] = {yg.as<__half>(), yu.as<__half>()};
  const kernels::FragTarget target = ld.frag_target(xdown.as<__half>());
  gu.forward_frag(xs, ys, &target, ctx);
  stream.synchronize();
  EXL_CUDA_CHECK(cudaGetLastError());
  const std::vector<uint16_t> gh = download_halves(yg, I), uh = download_halves(yu, I);
  Checker::compare(gh, oracle(gate, in.floats));
  Checker::compare(uh, oracle(up, in.floats));
  // The product, in down's fragment order, against silu(gate) * up of the stored outputs.
  const std::vector<uint16_t> prod = download_halves(xdown, ld.padded_rows());
  std::vector<float> act(static_cast<size_t>(I));
  for (int64_t n = 0; n < I; ++n) {
    const float g = half_to_float(gh[static_cast<size_t>(n)]), u = half_to_float(uh[static_cast<size_t>(n)]);
    act[static_cast<size_t>(n)] = round_to_half(g / (1.0f + std::exp(-g)) * u);
    const float got = half_to_float(prod[static_cast<size_t>(fd.dest[static_cast<size_t>(n)])]);
    ASSERT_NEAR(got, act[static_cast<size_t>(n)], 2e-3f * std::fabs(act[static_cast<size_t>(n)]) + 1e-6f)
        << "silu(gate) * up of column " << n;
  }
  for (int32_t p : fd.pads) ASSERT_EQ(prod[static_cast<size_t>(p)], 0) << "pad slot " << p << " not zeroed";
  DeviceBuffer yd(384 * 2);
  ld.forward_frag(xdown.as<__half>(), yd.as<__half>(), ctx);
  stream.synchronize();
  Checker::compare(download_halves(yd, 384), oracle(down, act));
  // A pair needs two matrices of one shape.
  const LinearWeight odd = exl2_weight(512, K, {{4, 1.0, 128}}, false, 464);
  const CudaLinear lo = CudaLinear::create(odd);
  const CudaLinearGroup bad = CudaLinearGroup::create({&lg, &lo});
  EXPECT_THROW(bad.forward_frag(xs, ys, &target, ctx), Error);
}

// RMSNorm fused across two GEMVs: o_proj-like producer adds its output to the residual stream and writes x * w with
// per-block sums of squares; a (gate, up) pair finishes the norm while staging. Against add + norm + linear on
// the CPU.
TEST(LinearOps, FragFusedNormBetweenGemvs) {
  EXL_REQUIRE_GPU();
  Stream stream;
  const LinearContext ctx{stream.get(), nullptr, nullptr, 0};
  const int64_t H = 1056, I = 512;  // H: 66 strips of the producer (in_features: multiples of 32)
  const LinearWeight o = exl2_weight(H, 768, {{6, 0.3, 32}, {4, 0.7, 128}}, true, 481);
  const LinearWeight gate = exl2_weight(I, H, {{5, 0.5, 32}, {4, 0.5, 64}}, false, 482);
  const LinearWeight up = exl2_weight(I, H, {{4, 0.6, 128}, {3, 0.4, 64}}, false, 483);
  const CudaLinear lo = CudaLinear::create(o), lg = CudaLinear::create(gate), lu = CudaLinear::create(up);
  const CudaLinearGroup gu = CudaLinearGroup::create({&lg, &lu});
  const RandomInput in = random_input(1, 768, 5);
  const DeviceBuffer xo = frag_buffer(read_frag_layout(lo), in.half_bits, lo.padded_rows());
  std::mt19937 rng(6);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::vector<float> x(static_cast<size_t>(H)), w(static_cast<size_t>(H));
  for (float& e : x) e = nd(rng);
  for (float& e : w) e = 1.0f + 0.3f * nd(rng);
  DeviceBuffer dx(x.size() * 4), dw(w.size() * 4), parts(static_cast<size_t>(lo.frag_blocks()) * 4);
  dx.upload(x.data(), x.size() * 4);
  dw.upload(w.data(), w.size() * 4);
  std::vector<float> poison32(static_cast<size_t>(lg.padded_rows() + lu.padded_rows()), -12345.0f);
  DeviceBuffer xg(static_cast<size_t>(lg.padded_rows()) * 4), xu(static_cast<size_t>(lu.padded_rows()) * 4);
  xg.upload(poison32.data(), xg.bytes());
  xu.upload(poison32.data(), xu.bytes());
  kernels::FragResidual res;
  res.x = dx.as<float>();
  res.weight = dw.as<float>();
  res.partials = parts.as<float>();
  res.targets[0] = lg.frag_target32(xg.as<float>());
  res.targets[1] = lu.frag_target32(xu.as<float>());
  res.num_targets = 2;
  DeviceBuffer yo(static_cast<size_t>(H) * 2), yg(static_cast<size_t>(I) * 2), yu(static_cast<size_t>(I) * 2);
  DeviceBuffer xdown(static_cast<size_t>(I + 64) * 2);
  lo.forward_frag(xo.as<__half>(), nullptr, nullptr, yo.as<__half>(), &res, ctx);
  const float* x32[] = {xg.as<float>(), xu.as<float>()};
  const kernels::FragNorm fn{parts.as<float>(), static_cast<int32_t>(lo.frag_blocks()), static_cast<int32_t>(H), 1e-5f};
  __half* ys[] = {yg.as<__half>(), yu.as<__half>()};
  const LinearWeight down = exl2_weight(256, I, {{4, 1.0, 128}}, false, 484);
  const CudaLinear ld = CudaLinear::create(down);
  const kernels::FragTarget dt = ld.frag_target(xdown.as<__half>());
  gu.forward_frag(x32, fn, ys, &dt, ctx);
  stream.synchronize();
  EXL_CUDA_CHECK(cudaGetLastError());
  // CPU: o = x_o . W_o; x += half(o); xn = half(rms_norm(x) * w); gate/up = xn . W.
  const std::vector<uint16_t> oh = download_halves(yo, H);
  Checker::compare(oh, oracle(o, in.floats));
  std::vector<float> xnew = x;
  for (int64_t n = 0; n < H; ++n) xnew[static_cast<size_t>(n)] += half_to_float(oh[static_cast<size_t>(n)]);
  std::vector<float> got_x(x.size());
  dx.download(got_x.data(), got_x.size() * 4);
  for (int64_t n = 0; n < H; ++n) ASSERT_EQ(got_x[static_cast<size_t>(n)], xnew[static_cast<size_t>(n)]) << "x[" << n << "]";
  std::vector<float> xn(static_cast<size_t>(H));
  cpu::rms_norm(xnew.data(), w.data(), xn.data(), 1, H, 1e-5f);
  for (float& e : xn) e = round_to_half(e);
  Checker::compare(download_halves(yg, I), oracle(gate, xn));
  Checker::compare(download_halves(yu, I), oracle(up, xn));
  // Pads of the fp32 inputs were zeroed (the poison would otherwise have spoiled the outputs above).
  std::vector<float> g32(static_cast<size_t>(lg.padded_rows()));
  xg.download(g32.data(), g32.size() * 4);
  for (int32_t p : read_frag_layout(lg).pads) ASSERT_EQ(g32[static_cast<size_t>(p)], 0.0f) << "pad slot " << p;
  // Bad combinations are refused.
  EXPECT_THROW(lo.forward_frag(xo.as<__half>(), x32[0], &fn, yo.as<__half>(), nullptr, ctx), Error);
  EXPECT_THROW(lo.forward_frag(nullptr, x32[0], nullptr, yo.as<__half>(), nullptr, ctx), Error);
}

}  // namespace
}  // namespace exl::cuda

#endif  // EXL_HAVE_CUDA
