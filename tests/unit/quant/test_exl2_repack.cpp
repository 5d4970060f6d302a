// The tiled device layout decodes (on the host, with the kernels' shifts and masks) to exactly the CPU
// dequantizers' FP16 weights: EXL2 of every width and mixes, the real exl2 test vectors, GPTQ sym/asym/act-order/v2.
#include <gtest/gtest.h>

#include <random>

#include "core/thread_pool.h"
#include "io/safetensors.h"
#include "quant/exl2_pack.h"
#include "quant/exl2_repack.h"
#include "testdata.h"

namespace exl::quant {
namespace {

std::vector<float> random_weights(int64_t n, int64_t k, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  std::vector<float> w(static_cast<size_t>(n * k));
  for (float& v : w) v = dist(rng);
  return w;
}

int64_t mismatches(const std::vector<uint16_t>& a, const std::vector<uint16_t>& b) {
  EXPECT_EQ(a.size(), b.size());
  int64_t bad = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) bad += a[i] != b[i];
  return bad;
}

TEST(TiledLayout, Exl2EveryWidthAndMix) {
  const int64_t N = 200, K = 1056;
  const std::vector<float> src = random_weights(N, K, 21);
  std::vector<std::vector<Exl2BitSpec>> mixes;
  for (int b : {2, 3, 4, 5, 6, 8}) mixes.push_back({{b, 1.0, 64}});
  mixes.push_back({{8, 0.1, 32}, {6, 0.1, 64}, {5, 0.2, 32}, {4, 0.2, 128}, {3, 0.2, 64}, {2, 0.2, 32}});
  for (const auto& mix : mixes) {
    Exl2PackOptions opt;
    opt.bits = mix;
    const Exl2Weight w = pack_exl2_rtn(src, N, K, opt);
    const TiledQuantMatrix t = tile_exl2(w);
    EXPECT_EQ(t.padded_rows % kTileRows, 0);
    EXPECT_EQ(mismatches(dequantize_tiled(t), dequantize_exl2(w)), 0) << mix.size() << " widths, first "
                                                                      << mix[0].bits;
  }
}

TEST(TiledLayout, Exl2TestVectors) {
  const auto dir = exl::testing::testdata_dir() / "exl2-vectors";
  EXL_REQUIRE_TESTDATA(dir);
  const std::pair<const char*, int64_t> files[] = {{"exl2_mixed_all_bits", 256}, {"exl2_partial_group_padcols", 200}};
  for (auto [name, n] : files) {
    auto store = io::TensorStore::open_file(dir / (std::string(name) + ".safetensors"));
    const int64_t K = store.info("layer.q_invperm").shape[0];
    const Exl2Weight w = load_exl2(store, "layer", K, n);
    EXPECT_EQ(mismatches(dequantize_tiled(tile_exl2(w)), dequantize_exl2(w)), 0) << name;
  }
}

TEST(TiledLayout, GptqVariants) {
  const int64_t N = 96, K = 512;
  const std::vector<float> src = random_weights(N, K, 9);
  std::vector<int32_t> act(static_cast<size_t>(K));
  for (int64_t k = 0; k < K; ++k) act[k] = static_cast<int32_t>(k % 4);  // 4 groups of 128, interleaved rows
  std::mt19937 rng(3);
  std::shuffle(act.begin(), act.end(), rng);
  for (GptqSymmetry sym : {GptqSymmetry::kSymmetric, GptqSymmetry::kAsymmetric}) {
    for (GptqZeroFormat zf : {GptqZeroFormat::kV1, GptqZeroFormat::kV2}) {
      for (bool act_order : {false, true}) {
        GptqPackOptions opt;
        opt.group_size = 128;
        opt.symmetry = sym;
        opt.zero_format = zf;
        if (act_order) opt.g_idx = act;
        const GptqWeight w = pack_gptq_rtn(src, N, K, opt);
        const TiledQuantMatrix t = tile_gptq(w);
        EXPECT_EQ(mismatches(dequantize_tiled(t), dequantize_gptq(w)), 0)
            << (sym == GptqSymmetry::kSymmetric) << (zf == GptqZeroFormat::kV1) << act_order;
      }
    }
  }
}

// The load-time repack on a thread pool (strips split over threads) writes exactly the serial layout.
TEST(TiledLayout, ParallelRepackEqualsSerial) {
  ThreadPool pool(4);
  const int64_t N = 1000, K = 1056;  // 63 strips of 16 columns (W = 1024 after padding): uneven chunks
  const std::vector<float> src = random_weights(N, K, 33);
  Exl2PackOptions opt;
  opt.bits = {{6, 0.2, 32}, {4, 0.5, 128}, {3, 0.3, 64}};
  const Exl2Weight w = pack_exl2_rtn(src, N, K, opt);
  const TiledQuantMatrix serial = tile_exl2(w), parallel = tile_exl2(w, &pool);
  EXPECT_EQ(parallel.tiles, serial.tiles);
  EXPECT_EQ(parallel.perm, serial.perm);
  EXPECT_EQ(parallel.chunk_group, serial.chunk_group);
  GptqPackOptions gopt;
  gopt.group_size = 128;
  const GptqWeight g = pack_gptq_rtn(random_weights(992, 512, 34), 992, 512, gopt);
  EXPECT_EQ(tile_gptq(g, &pool).tiles, tile_gptq(g).tiles);
  EXPECT_EQ(mismatches(dequantize_tiled(parallel), dequantize_exl2(w)), 0);
}

TEST(TiledLayout, GptqActOrderVector) {
  const auto dir = exl::testing::testdata_dir() / "exl2-vectors";
  EXL_REQUIRE_TESTDATA(dir);
  auto store = io::TensorStore::open_file(dir / "gptq4_actorder_g128.safetensors");
  const GptqWeight w = load_gptq(store, "layer", 512, 256, GptqZeroFormat::kV1);
  EXPECT_EQ(mismatches(dequantize_tiled(tile_gptq(w)), dequantize_gptq(w)), 0);
}

}  // namespace
}  // namespace exl::quant
