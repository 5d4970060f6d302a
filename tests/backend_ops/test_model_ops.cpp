// The CUDA kernels of the model-spec ops vs the CPU ops (backend/cpu/ops.h): residual_norm and head_norm
// (cpu::norm), act_mul / act (cpu::act_mul, cpu::act_inplace), rope with interleaved pairs, partial rotary and the
// cache-write-only form (cpu::rope, cpu::write_kv), clamp (cpu::clamp_inplace), logits_transform (cpu::scale_inplace,
// cpu::softcap_inplace), embedding with scale and learned positions, moe_route (cpu::route).
#ifdef EXL_HAVE_CUDA
#include <cmath>
#include <limits>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <tuple>

#include "backend/cpu/ops.h"
#include "cuda_op_test_util.h"
#include "kernels/activation.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/embedding.cuh"
#include "kernels/moe_route.cuh"
#include "kernels/norm.cuh"
#include "kernels/rope.cuh"

namespace exl {
namespace {

using namespace exl::testing;

__half* hp(GuardedArray<uint16_t>& a) {
  return reinterpret_cast<__half*>(a.get());
}

double max_abs_of(const std::vector<float>& v) {
  double m = 0.0;
  for (float x : v) m = std::max(m, static_cast<double>(std::fabs(x)));
  return m;
}

// An fp16 output against the fp32 reference: no NaN/Inf, relative L2 below tol, and every element within one fp16
// step of the reference (2^-10 relative: the rounding plus a neighbour when the fp32 values straddle a rounding
// boundary) plus a small absolute slack for fp32 reduction-order differences.
void expect_half_close(const std::vector<float>& got, const std::vector<float>& want, double tol = 1e-3) {
  ASSERT_EQ(got.size(), want.size());
  const Diff d = compare(got, want);
  EXPECT_TRUE(d.finite) << "NaN/Inf in the output";
  EXPECT_LT(d.rel_l2, tol) << "rel L2 " << d.rel_l2 << ", max abs " << d.max_abs;
  const double slack = 1e-5 * max_abs_of(want) + 1e-6;
  for (size_t i = 0; i < want.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (!(err <= std::ldexp(std::fabs(want[i]), -10) + slack)) {
      ADD_FAILURE() << "element " << i << ": got " << got[i] << ", want " << want[i] << " (max abs " << d.max_abs
                    << ")";
      return;
    }
  }
}

// An fp32 output: no NaN/Inf, relative L2 and max-abs relative to the largest value.
void expect_f32_close(const std::vector<float>& got, const std::vector<float>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  const Diff d = compare(got, want);
  EXPECT_TRUE(d.finite) << "NaN/Inf in the output";
  EXPECT_LT(d.rel_l2, tol) << "rel L2 " << d.rel_l2 << ", max abs " << d.max_abs;
  EXPECT_LE(d.max_abs, tol * (max_abs_of(want) + 1.0)) << "max abs " << d.max_abs;
}

// ---------------------------------------------------------------------------------------------------------------
// residual_norm

enum class Affine { kNone, kWeight, kWeightBias, kWeightRowsBias };  // kWeightRowsBias: 3 weight rows
enum class Post { kNone, kRaw, kRmsWeight, kLayerWeightBias };       // branch0 absent / unnormed / post-normed

struct ResidualCase {
  int out_kind;  // kernels::kNormRms, kNormLayer, kNormNone
  Affine affine;
  Post post;
  bool branch1;
  float scale;
  bool gather;
  std::string str() const {
    std::ostringstream s;
    s << "out_kind " << out_kind << " affine " << static_cast<int>(affine) << " post " << static_cast<int>(post)
      << " branch1 " << branch1 << " scale " << scale << " gather " << gather;
    return s.str();
  }
};

std::vector<ResidualCase> all_residual_cases() {
  std::vector<ResidualCase> cases;
  for (int out_kind : {kernels::kNormRms, kernels::kNormLayer, kernels::kNormNone})
    for (Affine affine : {Affine::kNone, Affine::kWeight, Affine::kWeightBias, Affine::kWeightRowsBias}) {
      if (out_kind == kernels::kNormNone && affine != Affine::kNone) continue;
      for (Post post : {Post::kNone, Post::kRaw, Post::kRmsWeight, Post::kLayerWeightBias})
        for (bool branch1 : {false, true})
          for (float scale : {1.0f, 0.37f})
            for (bool gather : {false, true}) cases.push_back({out_kind, affine, post, branch1, scale, gather});
    }
  return cases;
}

// Host-side norm parameters and their device copies.
struct NormWeights {
  std::vector<float> w, b;
  std::unique_ptr<GuardedArray<float>> d_w, d_b;
  cpu::NormParams cpu;
  kernels::NormParamsDev dev;
};

void make_norm(std::mt19937& rng, NormWeights& n, int kind, bool weight, int64_t weight_rows, bool bias, int64_t size,
               float eps) {
  n.cpu = {};
  n.dev = {};
  n.dev.kind = kind;
  n.cpu.kind = kind == kernels::kNormLayer ? cpu::NormKind::kLayer : cpu::NormKind::kRms;
  n.cpu.eps = n.dev.eps = eps;
  n.cpu.weight_rows = n.dev.weight_rows = weight_rows;
  if (weight) {
    n.w = random_floats(rng, static_cast<size_t>(weight_rows * size));
    for (float& x : n.w) x += 1.0f;
    n.d_w = std::make_unique<GuardedArray<float>>(n.w);
    n.cpu.weight = n.w.data();
    n.dev.weight = n.d_w->get();
  }
  if (bias) {
    n.b = random_floats(rng, static_cast<size_t>(size), 0.5f);
    n.d_b = std::make_unique<GuardedArray<float>>(n.b);
    n.cpu.bias = n.b.data();
    n.dev.bias = n.d_b->get();
  }
}

void run_residual_case(std::mt19937& rng, int64_t H, int64_t T, const ResidualCase& c) {
  SCOPED_TRACE("H " + std::to_string(H) + " T " + std::to_string(T) + " " + c.str());
  const int64_t stream_rows = T + 2;  // rows T, T + 1 are never updated (the gather may read them)
  std::vector<float> x = random_floats(rng, static_cast<size_t>(stream_rows * H), 3.0f);
  const std::vector<float> x0 = x;
  const bool has_b0 = c.post != Post::kNone;
  const std::vector<float> b0 = round_half(random_floats(rng, static_cast<size_t>(T * H), 2.0f));
  const std::vector<float> b1 = round_half(random_floats(rng, static_cast<size_t>(T * H)));
  NormWeights post, outn;
  if (c.post == Post::kRmsWeight) make_norm(rng, post, kernels::kNormRms, true, 1, false, H, 1e-6f);
  if (c.post == Post::kLayerWeightBias) make_norm(rng, post, kernels::kNormLayer, true, 1, true, H, 1e-6f);
  if (c.out_kind != kernels::kNormNone)
    make_norm(rng, outn, c.out_kind, c.affine != Affine::kNone, c.affine == Affine::kWeightRowsBias ? 3 : 1,
              c.affine == Affine::kWeightBias || c.affine == Affine::kWeightRowsBias, H, 1e-5f);
  std::vector<int32_t> pick;
  if (c.gather) {
    std::uniform_int_distribution<int32_t> d(0, static_cast<int32_t>(stream_rows - 1));
    const int64_t n = T / 2 + 2;
    for (int64_t r = 0; r < n; ++r) pick.push_back(d(rng));
    pick[0] = static_cast<int32_t>(T - 1);            // an updated row
    pick[1] = static_cast<int32_t>(stream_rows - 1);  // a row past the update
  }
  const int64_t num_rows = c.gather ? static_cast<int64_t>(pick.size()) : T;

  GuardedArray<float> d_x(x);
  GuardedArray<uint16_t> d_b0(to_half_bits(b0)), d_b1(to_half_bits(b1));
  GuardedArray<int32_t> d_pick(pick.empty() ? std::vector<int32_t>{0} : pick);
  GuardedArray<uint16_t> d_out(static_cast<size_t>(num_rows * H));
  kernels::ResidualNormArgs a;
  a.x = d_x.get();
  a.branch0 = has_b0 ? hp(d_b0) : nullptr;
  if (c.post == Post::kRmsWeight || c.post == Post::kLayerWeightBias) a.branch0_norm = post.dev;
  a.branch1 = c.branch1 ? hp(d_b1) : nullptr;
  a.residual_scale = c.scale;
  a.num_tokens = T;
  a.out_norm = c.out_kind == kernels::kNormNone ? kernels::NormParamsDev{kernels::kNormNone} : outn.dev;
  a.out = hp(d_out);
  a.row_index = c.gather ? d_pick.get() : nullptr;
  a.num_rows = num_rows;
  a.hidden_size = H;
  kernels::launch_residual_norm(a, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);

  // CPU: as the CPU runner (post-norm, + branch1, x += scale * sum), then the gathered rows' norm.
  if (has_b0 || c.branch1) {
    std::vector<float> s(static_cast<size_t>(T * H), 0.0f);
    if (has_b0) {
      s = b0;
      if (c.post == Post::kRmsWeight || c.post == Post::kLayerWeightBias)
        cpu::norm(post.cpu, b0.data(), s.data(), T, H);
    }
    if (c.branch1) cpu::add_inplace(s.data(), b1.data(), T * H);
    cpu::add_scaled_inplace(x.data(), s.data(), T * H, c.scale);
  }
  std::vector<float> rows(static_cast<size_t>(num_rows * H));
  for (int64_t r = 0; r < num_rows; ++r) {
    const int64_t src = c.gather ? pick[static_cast<size_t>(r)] : r;
    std::copy_n(x.begin() + src * H, H, rows.begin() + r * H);
  }
  std::vector<float> want = rows;
  if (c.out_kind != kernels::kNormNone) cpu::norm(outn.cpu, rows.data(), want.data(), num_rows, H);

  expect_half_close(from_half_bits(d_out.download()), want);
  const std::vector<float> got_x = d_x.download();
  expect_f32_close(got_x, x, 1e-5);
  for (int64_t i = T * H; i < stream_rows * H; ++i)
    ASSERT_EQ(got_x[static_cast<size_t>(i)], x0[static_cast<size_t>(i)]) << "row past num_tokens changed at " << i;
  EXPECT_TRUE(d_x.guards_intact() && d_out.guards_intact());
}

TEST(ModelOps, ResidualNormEveryCombinationMatchesCpu) {
  EXL_REQUIRE_GPU();
  std::mt19937 rng(11);
  const std::vector<ResidualCase> cases = all_residual_cases();
  for (int64_t H : {64, 200, 128})
    for (int64_t T : {1, 3, 17})
      for (const ResidualCase& c : cases) {
        run_residual_case(rng, H, T, c);
        if (::testing::Test::HasFailure()) return;
      }
}

TEST(ModelOps, ResidualNormLargeRowsMatchCpu) {
  EXL_REQUIRE_GPU();
  std::mt19937 rng(12);
  const std::vector<ResidualCase> cases = all_residual_cases();
  std::uniform_int_distribution<size_t> pick(0, cases.size() - 1);
  for (int64_t H : {4096, 5120, 1000, 16384})
    for (int64_t T : {1, 3, 17}) {
      // Every out kind with both branches and the gather, then a random sample of the rest.
      run_residual_case(rng, H, T, {kernels::kNormRms, Affine::kWeight, Post::kRmsWeight, true, 1.0f, true});
      run_residual_case(rng, H, T,
                        {kernels::kNormLayer, Affine::kWeightBias, Post::kLayerWeightBias, true, 0.5f, true});
      run_residual_case(rng, H, T, {kernels::kNormNone, Affine::kNone, Post::kRaw, true, 1.0f, false});
      for (int i = 0; i < 12; ++i) run_residual_case(rng, H, T, cases[pick(rng)]);
      if (::testing::Test::HasFailure()) return;
    }
}

TEST(ModelOps, ResidualNormUpdateOnlyAndNormOnly) {
  EXL_REQUIRE_GPU();
  std::mt19937 rng(13);
  const int64_t H = 4096, T = 5;
  std::vector<float> x = random_floats(rng, static_cast<size_t>(T * H), 3.0f);
  const std::vector<float> b1 = round_half(random_floats(rng, static_cast<size_t>(T * H)));
  GuardedArray<float> d_x(x);
  GuardedArray<uint16_t> d_b1(to_half_bits(b1));
  // No output: x += b1 only.
  kernels::ResidualNormArgs a;
  a.x = d_x.get();
  a.branch1 = hp(d_b1);
  a.num_tokens = T;
  a.hidden_size = H;
  kernels::launch_residual_norm(a, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  cpu::add_inplace(x.data(), b1.data(), T * H);
  EXPECT_EQ(compare(d_x.download(), x).max_abs, 0.0);
  // No branch: norm only (the stream unchanged); more output rows than tokens.
  GuardedArray<uint16_t> d_out(static_cast<size_t>(T * H));
  kernels::ResidualNormArgs n;
  n.x = d_x.get();
  n.num_tokens = 2;
  n.out = hp(d_out);
  n.num_rows = T;
  n.hidden_size = H;
  kernels::launch_residual_norm(n, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<float> want(x.size());
  cpu::NormParams p;
  p.eps = n.out_norm.eps;
  cpu::norm(p, x.data(), want.data(), T, H);
  expect_half_close(from_half_bits(d_out.download()), want);
  EXPECT_EQ(compare(d_x.download(), x).max_abs, 0.0);
  EXPECT_TRUE(d_x.guards_intact() && d_out.guards_intact());
}

TEST(ModelOps, ResidualNormRejectsBadArguments) {
  EXL_REQUIRE_GPU();
  GuardedArray<float> d_x(std::vector<float>(64, 1.0f));
  GuardedArray<uint16_t> d_out(64);
  kernels::ResidualNormArgs a;
  a.x = d_x.get();
  a.out = hp(d_out);
  a.num_rows = 1;
  a.hidden_size = 20000;
  EXPECT_THROW(kernels::launch_residual_norm(a, nullptr), Error);  // too wide
  a.hidden_size = 0;
  EXPECT_THROW(kernels::launch_residual_norm(a, nullptr), Error);
  a.hidden_size = 64;
  a.branch0_norm.kind = kernels::kNormRms;  // a post-norm without branch0
  a.num_tokens = 1;
  EXPECT_THROW(kernels::launch_residual_norm(a, nullptr), Error);
  a.branch0_norm.kind = kernels::kNormNone;
  a.out_norm.kind = 7;
  EXPECT_THROW(kernels::launch_residual_norm(a, nullptr), Error);
  a.out_norm.kind = kernels::kNormRms;
  a.out = nullptr;  // rows without an output
  EXPECT_THROW(kernels::launch_residual_norm(a, nullptr), Error);
}

// ---------------------------------------------------------------------------------------------------------------
// head_norm

TEST(ModelOps, HeadNormMatchesCpu) {
  EXL_REQUIRE_GPU();
  std::mt19937 rng(14);
  for (int64_t D : {64, 128, 256, 80, 96, 200, 512, 7})
    for (int64_t tokens : {1, 3, 17})
      for (int64_t heads : {1, 8, 12})
        for (int kind : {kernels::kNormRms, kernels::kNormLayer})
          for (int affine = 0; affine < 3; ++affine) {  // none, one weight row (+bias for LayerNorm), a row per head
            SCOPED_TRACE("D " + std::to_string(D) + " tokens " + std::to_string(tokens) + " heads " +
                         std::to_string(heads) + " kind " + std::to_string(kind) + " affine " + std::to_string(affine));
            const int64_t rows = tokens * heads;
            const std::vector<float> x = round_half(random_floats(rng, static_cast<size_t>(rows * D), 2.0f));
            NormWeights n;
            make_norm(rng, n, kind, affine > 0, affine == 2 ? heads : 1, kind == kernels::kNormLayer && affine == 1, D,
                      1e-6f);
            GuardedArray<uint16_t> d_x(to_half_bits(x));
            kernels::launch_head_norm(hp(d_x), rows, D, n.dev, nullptr);
            ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
            std::vector<float> want(x.size());
            cpu::norm(n.cpu, x.data(), want.data(), rows, D);
            expect_half_close(from_half_bits(d_x.download()), want);
            EXPECT_TRUE(d_x.guards_intact());
            if (::testing::Test::HasFailure()) return;
          }
  kernels::NormParamsDev p;
  EXPECT_THROW(kernels::launch_head_norm(nullptr, 1, 1024, p, nullptr), Error);
  p.kind = kernels::kNormNone;
  EXPECT_THROW(kernels::launch_head_norm(nullptr, 1, 128, p, nullptr), Error);
}

// ---------------------------------------------------------------------------------------------------------------
// activations

TEST(ModelOps, ActivationsMatchCpu) {
  EXL_REQUIRE_GPU();
  std::mt19937 rng(15);
  const std::pair<kernels::ActKindDev, cpu::ActKind> kinds[] = {
      {kernels::ActKindDev::kSilu, cpu::ActKind::kSilu},
      {kernels::ActKindDev::kGeluTanh, cpu::ActKind::kGeluTanh},
      {kernels::ActKindDev::kGelu, cpu::ActKind::kGelu}};
  for (auto [dev_kind, cpu_kind] : kinds)
    for (int64_t n : {int64_t{14336} * 3, int64_t{1000}, int64_t{7}, int64_t{8} * 1001})
      for (int variant = 0; variant < 3; ++variant) {  // 0: separate out, 1: out aliases gate, 2: misaligned (scalar)
        SCOPED_TRACE("kind " + std::to_string(static_cast<int>(cpu_kind)) + " n " + std::to_string(n) + " variant " +
                     std::to_string(variant));
        const size_t sn = static_cast<size_t>(n);
        const std::vector<float> gate = round_half(random_floats(rng, sn, 3.0f));
        const std::vector<float> up = round_half(random_floats(rng, sn));
        const int off = variant == 2 ? 1 : 0;
        std::vector<float> gpad(sn + off, 0.0f), upad(sn + off, 0.0f);
        std::copy(gate.begin(), gate.end(), gpad.begin() + off);
        std::copy(up.begin(), up.end(), upad.begin() + off);
        GuardedArray<uint16_t> d_gate(to_half_bits(gpad)), d_up(to_half_bits(upad)), d_out(sn + off);
        __half* g = hp(d_gate) + off;
        __half* out = variant == 1 ? g : hp(d_out) + off;
        kernels::launch_act_mul({dev_kind, g, hp(d_up) + off, out, n}, nullptr);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        std::vector<float> want(sn);
        cpu::act_mul(cpu_kind, gate.data(), up.data(), want.data(), n);
        std::vector<float> got = from_half_bits(variant == 1 ? d_gate.download() : d_out.download());
        got.erase(got.begin(), got.begin() + off);
        expect_half_close(got, want);
        EXPECT_TRUE(d_gate.guards_intact() && d_out.guards_intact());

        // In place, on the (restored) gate values.
        d_gate.upload(to_half_bits(gpad));
        kernels::launch_act({dev_kind, g, n}, nullptr);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        std::vector<float> want_act = gate;
        cpu::act_inplace(cpu_kind, want_act.data(), n);
        got = from_half_bits(d_gate.download());
        if (off) {
          EXPECT_EQ(got[0], 0.0f) << "element before the range written";
        }
        got.erase(got.begin(), got.begin() + off);
        expect_half_close(got, want_act);
        EXPECT_TRUE(d_gate.guards_intact());
        if (::testing::Test::HasFailure()) return;
      }
}

TEST(ModelOps, SiluMulStillMatchesActMul) {
  EXL_REQUIRE_GPU();
  std::mt19937 rng(16);
  const int64_t n = 4096 * 3 + 8;
  const std::vector<float> gate = round_half(random_floats(rng, static_cast<size_t>(n), 3.0f));
  const std::vector<float> up = round_half(random_floats(rng, static_cast<size_t>(n)));
  GuardedArray<uint16_t> d_gate(to_half_bits(gate)), d_up(to_half_bits(up)), d_a(static_cast<size_t>(n)),
      d_b(static_cast<size_t>(n));
  kernels::launch_silu_mul({hp(d_gate), hp(d_up), hp(d_a), n}, nullptr);
  kernels::launch_act_mul({kernels::ActKindDev::kSilu, hp(d_gate), hp(d_up), hp(d_b), n}, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_EQ(d_a.download(), d_b.download());
}

// ---------------------------------------------------------------------------------------------------------------
// rope: NeoX / interleaved pairs, full / partial rotary, rotation on / off, with and without the cache write.

TEST(ModelOps, RopeEveryLayoutMatchesCpu) {
  EXL_REQUIRE_GPU();
  std::mt19937 rng(17);
  for (int64_t D : {64, 128, 80})
    for (int64_t rot : {D, D / 2, int64_t{16}})
      for (bool interleaved : {false, true})
        for (bool rotate : {true, false})
          for (bool cache : {false, true})
            for (bool with_q : {true, false})
              for (bool misaligned : {false, true}) {
                if (!rotate && !cache && misaligned) continue;
                SCOPED_TRACE("D " + std::to_string(D) + " rot " + std::to_string(rot) + " interleaved " +
                             std::to_string(interleaved) + " rotate " + std::to_string(rotate) + " cache " +
                             std::to_string(cache) + " q " + std::to_string(with_q) + " misaligned " +
                             std::to_string(misaligned));
                const int64_t NH = 6, NKV = 2, page_size = 16, num_pages = 24, max_pages = 12;
                const int64_t rhalf = rot / 2;
                std::vector<float> inv_freq(static_cast<size_t>(rhalf));
                for (int64_t i = 0; i < rhalf; ++i)
                  inv_freq[static_cast<size_t>(i)] =
                      static_cast<float>(std::pow(10000.0, -2.0 * static_cast<double>(i) / static_cast<double>(rot)));
                const float factor = 1.25f;
                // Two sequences: 4 tokens at 13.., 3 tokens at 150..
                const std::vector<int32_t> query_start = {0, 4, 7};
                const std::vector<int32_t> context_len = {17, 153};
                std::vector<int32_t> pages(static_cast<size_t>(num_pages));
                std::iota(pages.begin(), pages.end(), 0);
                std::shuffle(pages.begin(), pages.end(), rng);
                const std::vector<int32_t> block_table(pages.begin(), pages.begin() + 2 * max_pages);
                std::vector<int32_t> positions, token_seq;
                for (int s = 0; s < 2; ++s)
                  for (int32_t t = query_start[static_cast<size_t>(s)]; t < query_start[static_cast<size_t>(s) + 1];
                       ++t) {
                    positions.push_back(context_len[static_cast<size_t>(s)] -
                                        (query_start[static_cast<size_t>(s) + 1] - t));
                    token_seq.push_back(s);
                  }
                const int64_t T = static_cast<int64_t>(positions.size());
                const std::vector<float> q0 = round_half(random_floats(rng, static_cast<size_t>(T * NH * D)));
                const std::vector<float> k0 = round_half(random_floats(rng, static_cast<size_t>(T * NKV * D)));
                const std::vector<float> v = round_half(random_floats(rng, static_cast<size_t>(T * NKV * D)));
                const size_t cache_n = static_cast<size_t>(num_pages * page_size * NKV * D);
                // misaligned: k and v start one half past a 16-byte boundary (the cache copy's scalar path).
                const int off = misaligned ? 1 : 0;
                std::vector<float> kpad(k0.size() + off, 0.0f), vpad(v.size() + off, 0.0f);
                std::copy(k0.begin(), k0.end(), kpad.begin() + off);
                std::copy(v.begin(), v.end(), vpad.begin() + off);
                GuardedArray<uint16_t> d_q(to_half_bits(q0)), d_k(to_half_bits(kpad)), d_v(to_half_bits(vpad));
                GuardedArray<float> d_inv(inv_freq);
                GuardedArray<int32_t> d_pos(positions), d_seq(token_seq), d_table(block_table);
                GuardedArray<uint16_t> d_kc(std::vector<uint16_t>(cache_n, 0)), d_vc(std::vector<uint16_t>(cache_n, 0));
                kernels::RopeArgs a;
                a.q = with_q ? hp(d_q) : nullptr;
                a.k = hp(d_k) + off;
                a.v = hp(d_v) + off;
                a.num_tokens = T;
                a.num_heads = NH;
                a.num_kv_heads = NKV;
                a.head_dim = D;
                a.inv_freq = rotate ? d_inv.get() : nullptr;
                a.rotary_half = rotate ? rhalf : 0;
                a.attention_factor = factor;
                a.slots = {d_pos.get(), d_seq.get()};
                if (cache)
                  a.cache = {reinterpret_cast<__half*>(d_kc.get()),
                             reinterpret_cast<__half*>(d_vc.get()),
                             num_pages,
                             page_size,
                             d_table.get(),
                             max_pages};
                a.interleaved = interleaved;
                a.rotate = rotate;
                kernels::launch_rope(a, nullptr);
                ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);

                std::vector<float> q = q0, k = k0;
                if (rotate) {
                  cpu::rope(q.data(), positions, NH, D, inv_freq, factor, interleaved);
                  cpu::rope(k.data(), positions, NKV, D, inv_freq, factor, interleaved);
                }
                if (!with_q) q = q0;
                const std::vector<float> got_q = from_half_bits(d_q.download());
                std::vector<float> got_k = from_half_bits(d_k.download());
                got_k.erase(got_k.begin(), got_k.begin() + off);
                expect_half_close(got_q, q, 2e-3);
                expect_half_close(got_k, k, 2e-3);
                // Dims past the rotary ones, and everything without rotation, are bit for bit the input.
                const int64_t rotated = rotate ? rot : 0;
                for (size_t i = 0; i < got_q.size(); ++i) {
                  if (static_cast<int64_t>(i) % D >= rotated || !with_q) {
                    ASSERT_EQ(got_q[i], q0[i]) << "q element " << i;
                  }
                }
                for (size_t i = 0; i < got_k.size(); ++i) {
                  if (static_cast<int64_t>(i) % D >= rotated) {
                    ASSERT_EQ(got_k[i], k0[i]) << "k element " << i;
                  }
                }
                if (cache) {
                  std::vector<float> kc(cache_n, 0.0f), vc(cache_n, 0.0f);
                  cpu::PagedKv kv{kc.data(), vc.data(), num_pages, page_size, NKV, D};
                  cpu::AttentionBatch batch{2, query_start.data(), context_len.data(), block_table.data(), max_pages};
                  // The cache holds the kernel's own (rounded) k: compare it with the k output exactly.
                  cpu::write_kv(kv, batch, got_k.data(), v.data());
                  EXPECT_EQ(compare(from_half_bits(d_kc.download()), kc).max_abs, 0.0);
                  EXPECT_EQ(compare(from_half_bits(d_vc.download()), vc).max_abs, 0.0);
                } else {
                  EXPECT_EQ(max_abs_of(from_half_bits(d_kc.download())), 0.0);
                }
                EXPECT_TRUE(d_q.guards_intact() && d_k.guards_intact() && d_kc.guards_intact() && d_vc.guards_intact());
                if (::testing::Test::HasFailure()) return;
              }
}

// ---------------------------------------------------------------------------------------------------------------
// clamp and logits_transform

TEST(ModelOps, ClampMatchesCpu) {
  EXL_REQUIRE_GPU();
  std::mt19937 rng(18);
  for (int64_t n : {int64_t{1}, int64_t{1000}, int64_t{3 * 4096 + 5}})
    for (float limit : {8.0f, 0.3f, 1e-3f}) {
      std::vector<float> x = round_half(random_floats(rng, static_cast<size_t>(n), 10.0f));
      if (n > 3) {
        x[0] = std::numeric_limits<float>::quiet_NaN();
        x[1] = std::numeric_limits<float>::infinity();
        x[2] = -std::numeric_limits<float>::infinity();
      }
      GuardedArray<uint16_t> d_x(to_half_bits(x));
      kernels::launch_clamp(hp(d_x), n, limit, nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      std::vector<float> want = x;
      cpu::clamp_inplace(want.data(), n, limit);
      const std::vector<uint16_t> got = d_x.download();
      const std::vector<uint16_t> want_bits = to_half_bits(want);
      for (size_t i = 0; i < got.size(); ++i) {
        if (std::isnan(want[i]))
          EXPECT_TRUE(std::isnan(half_to_float(got[i]))) << "element " << i;
        else
          ASSERT_EQ(got[i], want_bits[i]) << "element " << i << " of " << n << ", limit " << limit;
      }
      EXPECT_TRUE(d_x.guards_intact());
    }
  EXPECT_THROW(kernels::launch_clamp(nullptr, 4, 0.0f, nullptr), Error);
}

TEST(ModelOps, LogitsTransformMatchesCpu) {
  EXL_REQUIRE_GPU();
  std::mt19937 rng(19);
  for (int64_t rows : {1, 3, 17})
    for (int64_t vocab : {200, 32000, 151936})
      for (int variant = 0; variant < 6; ++variant) {
        // 0: scale; 1: softcap; 2: col_scale; 3: all three, padded rows; 4: scale + softcap, padded; 5: nothing
        const bool col = variant == 2 || variant == 3;
        const float scale = (variant == 0 || variant >= 3) && variant != 5 ? 0.0625f : 1.0f;
        const float cap = variant == 1 || variant == 3 || variant == 4 ? 30.0f : 0.0f;
        const int64_t stride = variant == 3 || variant == 4 ? vocab + 24 : vocab;
        SCOPED_TRACE("rows " + std::to_string(rows) + " vocab " + std::to_string(vocab) + " variant " +
                     std::to_string(variant));
        const std::vector<float> x = round_half(random_floats(rng, static_cast<size_t>(rows * stride), 40.0f));
        std::vector<float> cs = random_floats(rng, static_cast<size_t>(vocab), 0.2f);
        for (float& c : cs) c = 1.0f + std::fabs(c);
        GuardedArray<uint16_t> d_x(to_half_bits(x));
        GuardedArray<float> d_cs(cs);
        kernels::LogitsTransformArgs a;
        a.logits = hp(d_x);
        a.rows = rows;
        a.vocab = vocab;
        a.row_stride = stride;
        a.col_scale = col ? d_cs.get() : nullptr;
        a.scale = scale;
        a.softcap = cap;
        kernels::launch_logits_transform(a, nullptr);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        // CPU, in the CPU runner's order: head row scale, logit scale, soft-cap.
        std::vector<float> want(static_cast<size_t>(rows * vocab));
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < vocab; ++c)
            want[static_cast<size_t>(r * vocab + c)] =
                x[static_cast<size_t>(r * stride + c)] * (col ? cs[static_cast<size_t>(c)] : 1.0f);
        if (scale != 1.0f) cpu::scale_inplace(want.data(), rows * vocab, scale);
        if (cap > 0) cpu::softcap_inplace(want.data(), rows * vocab, cap);
        const std::vector<float> all = from_half_bits(d_x.download());
        std::vector<float> got(want.size());
        for (int64_t r = 0; r < rows; ++r) {
          std::copy_n(all.begin() + r * stride, vocab, got.begin() + r * vocab);
          for (int64_t c = vocab; c < stride; ++c)
            ASSERT_EQ(all[static_cast<size_t>(r * stride + c)], x[static_cast<size_t>(r * stride + c)]) << "padding";
        }
        if (variant == 5) {
          EXPECT_EQ(compare(got, want).max_abs, 0.0);  // no launch
        } else {
          expect_half_close(got, want);
        }
        EXPECT_TRUE(d_x.guards_intact());
        if (::testing::Test::HasFailure()) return;
      }
  kernels::LogitsTransformArgs bad;
  bad.rows = 1;
  bad.vocab = 10;
  bad.row_stride = 5;
  bad.scale = 2.0f;
  EXPECT_THROW(kernels::launch_logits_transform(bad, nullptr), Error);
}

// ---------------------------------------------------------------------------------------------------------------
// embedding with scale and learned positions

TEST(ModelOps, EmbeddingScaleAndPositionsMatchCpu) {
  EXL_REQUIRE_GPU();
  std::mt19937 rng(20);
  for (auto [vocab, hidden, tokens] :
       {std::tuple<int64_t, int64_t, int64_t>{32000, 4096, 7}, {1000, 77, 33}, {50, 8, 1}, {500, 200, 3}})
    for (float scale : {1.0f, 64.0f, 0.37f})
      for (bool with_pos : {false, true}) {
        SCOPED_TRACE(std::to_string(vocab) + "x" + std::to_string(hidden) + " scale " + std::to_string(scale) +
                     " pos " + std::to_string(with_pos));
        const int64_t num_positions = 64;
        const std::vector<float> table = round_half(random_floats(rng, static_cast<size_t>(vocab * hidden)));
        const std::vector<float> pos = round_half(random_floats(rng, static_cast<size_t>(num_positions * hidden)));
        std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(vocab - 1));
        std::uniform_int_distribution<int32_t> pick_pos(0, static_cast<int32_t>(num_positions - 1));
        std::vector<int32_t> ids(static_cast<size_t>(tokens)), positions(static_cast<size_t>(tokens));
        for (auto& id : ids) id = pick(rng);
        for (auto& p : positions) p = pick_pos(rng);
        ids[0] = static_cast<int32_t>(vocab - 1);
        positions[0] = static_cast<int32_t>(num_positions - 1);
        std::vector<float> want(static_cast<size_t>(tokens * hidden));
        cpu::embedding(table.data(), vocab, hidden, ids, want.data());
        if (scale != 1.0f) cpu::scale_inplace(want.data(), tokens * hidden, scale);
        if (with_pos)
          for (int64_t t = 0; t < tokens; ++t)
            cpu::add_inplace(want.data() + t * hidden, pos.data() + positions[static_cast<size_t>(t)] * hidden, hidden);

        GuardedArray<uint16_t> d_table(to_half_bits(table)), d_pos(to_half_bits(pos));
        GuardedArray<int32_t> d_ids(ids), d_positions(positions);
        GuardedArray<float> d_out(want.size());
        kernels::EmbeddingArgs a{hp(d_table), vocab, hidden, d_ids.get(), tokens, d_out.get()};
        a.scale = scale;
        if (with_pos) {
          a.pos_table = hp(d_pos);
          a.positions = d_positions.get();
          a.num_positions = num_positions;
        }
        kernels::launch_embedding(a, nullptr);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        const Diff d = compare(d_out.download(), want);
        EXPECT_TRUE(d.finite);
        EXPECT_EQ(d.max_abs, 0.0);  // the same two roundings (product, sum) as the CPU
        EXPECT_TRUE(d_out.guards_intact());

        if (with_pos && tokens > 1) {
          // A position outside the table writes a NaN row, the others are unaffected.
          positions[1] = static_cast<int32_t>(num_positions);
          d_positions.upload(positions);
          kernels::launch_embedding(a, nullptr);
          ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
          const std::vector<float> got = d_out.download();
          for (int64_t i = 0; i < hidden; ++i) {
            EXPECT_TRUE(std::isnan(got[static_cast<size_t>(hidden + i)]));
            EXPECT_EQ(got[static_cast<size_t>(i)], want[static_cast<size_t>(i)]);
          }
        }
        if (::testing::Test::HasFailure()) return;
      }
  kernels::EmbeddingArgs bad;
  bad.pos_table = reinterpret_cast<const __half*>(16);
  bad.num_tokens = 1;
  EXPECT_THROW(kernels::launch_embedding(bad, nullptr), Error);  // positions missing
}

// ---------------------------------------------------------------------------------------------------------------
// moe_route

struct RouteCase {
  int kind;
  bool renormalize;
  float p;
  float jitter;
};

TEST(ModelOps, MoeRouteMatchesCpu) {
  EXL_REQUIRE_GPU();
  std::mt19937 rng(21);
  const RouteCase cases[] = {
      {kernels::kRouteSoftmaxTopK, false, 1.0f, 0.0f},  {kernels::kRouteSoftmaxTopK, true, 1.0f, 0.0f},
      {kernels::kRouteSoftmaxTopK, true, 2.0f, 0.0f},   {kernels::kRouteTopKSoftmax, false, 1.0f, 0.0f},
      {kernels::kRouteSparseMixer, false, 1.0f, 0.01f}, {kernels::kRouteSparseMixer, false, 1.0f, 0.3f}};
  for (int64_t E : {4, 8, 60, 128, 256})
    for (int64_t k : {1, 2, 4, 8})
      for (const RouteCase& rc : cases)
        for (int64_t T : {1, 3, 17, 100})
          for (bool ties : {false, true}) {
            if (k > E) continue;
            const bool strided = E == 60;  // logits rows padded to 64
            SCOPED_TRACE("E " + std::to_string(E) + " k " + std::to_string(k) + " kind " + std::to_string(rc.kind) +
                         " renorm " + std::to_string(rc.renormalize) + " p " + std::to_string(rc.p) + " jitter " +
                         std::to_string(rc.jitter) + " T " + std::to_string(T) + " ties " + std::to_string(ties));
            const int64_t stride = strided ? 64 : E;
            // ties: logits on a grid of 0.25 in [-2, 2] (many equal values); else normal * 2, rounded to fp16.
            std::vector<float> logits(static_cast<size_t>(T * stride));
            std::normal_distribution<float> nd(0.0f, 2.0f);
            std::uniform_int_distribution<int> grid(-8, 8);
            for (float& x : logits) x = ties ? 0.25f * static_cast<float>(grid(rng)) : round_to_half(nd(rng));
            GuardedArray<uint16_t> d_logits(to_half_bits(logits));
            GuardedArray<int32_t> d_ids(static_cast<size_t>(T * k));
            GuardedArray<float> d_w(static_cast<size_t>(T * k));
            kernels::MoeRouteArgs a;
            a.logits = hp(d_logits);
            a.num_tokens = T;
            a.num_experts = E;
            a.top_k = k;
            a.kind = rc.kind;
            a.renormalize = rc.renormalize;
            a.renormalize_p = rc.p;
            a.jitter_eps = rc.jitter;
            a.ids = d_ids.get();
            a.weights = d_w.get();
            a.row_stride = strided ? stride : 0;
            kernels::launch_moe_route(a, nullptr);
            ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
            cpu::RouteParams p;
            p.kind = rc.kind == kernels::kRouteSoftmaxTopK   ? cpu::RouterKind::kSoftmaxTopK
                     : rc.kind == kernels::kRouteTopKSoftmax ? cpu::RouterKind::kTopKSoftmax
                                                             : cpu::RouterKind::kSparseMixer;
            p.num_experts = E;
            p.top_k = k;
            p.renormalize = rc.renormalize;
            p.renormalize_p = rc.p;
            p.jitter_eps = rc.jitter;
            const std::vector<int32_t> got_ids = d_ids.download();
            const std::vector<float> got_w = d_w.download();
            std::vector<int32_t> ids(static_cast<size_t>(k));
            std::vector<float> w(static_cast<size_t>(k));
            for (int64_t t = 0; t < T; ++t) {
              cpu::route(p, logits.data() + t * stride, ids.data(), w.data());
              for (int64_t j = 0; j < k; ++j) {
                const size_t g = static_cast<size_t>(t * k + j);
                ASSERT_EQ(got_ids[g], ids[static_cast<size_t>(j)]) << "token " << t << " slot " << j;
                ASSERT_TRUE(std::isfinite(got_w[g]));
                ASSERT_NEAR(got_w[g], w[static_cast<size_t>(j)],
                            4e-6 * std::max(1.0f, std::fabs(w[static_cast<size_t>(j)])))
                    << "token " << t << " slot " << j;
              }
            }
            EXPECT_TRUE(d_ids.guards_intact() && d_w.guards_intact());
            if (::testing::Test::HasFailure()) return;
          }
}

TEST(ModelOps, MoeRouteRejectsUnsupportedShapes) {
  EXL_REQUIRE_GPU();
  kernels::MoeRouteArgs a;
  a.num_tokens = 1;
  a.num_experts = 257;
  a.top_k = 2;
  EXPECT_THROW(kernels::launch_moe_route(a, nullptr), Error);
  a.num_experts = 8;
  a.top_k = 9;
  EXPECT_THROW(kernels::launch_moe_route(a, nullptr), Error);
  a.top_k = 2;
  a.kind = 3;
  EXPECT_THROW(kernels::launch_moe_route(a, nullptr), Error);
}

}  // namespace
}  // namespace exl
#endif
