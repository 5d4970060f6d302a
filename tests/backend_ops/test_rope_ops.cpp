// CUDA rope (every rope type, partial rotary) with the fused K/V cache write vs cpu::rope + cpu::write_kv.
#ifdef EXL_HAVE_CUDA
#include <algorithm>
#include <numeric>

#include "backend/cpu/ops.h"
#include "cuda_op_test_util.h"
#include "kernels/rope.cuh"
#include "model/rope.h"

namespace exl {
namespace {

using namespace exl::testing;

io::ModelConfig rope_config(io::RopeType type, int64_t head_dim, double partial) {
  io::ModelConfig c;
  c.head_dim = head_dim;
  c.max_position_embeddings = 131072;
  c.rope.type = type;
  c.rope.theta = 500000.0;
  c.rope.partial_rotary_factor = partial;
  switch (type) {
    case io::RopeType::kLinear: c.rope.factor = 4.0; break;
    case io::RopeType::kDynamic: c.rope.factor = 2.0; c.rope.original_max_position_embeddings = 4096; break;
    case io::RopeType::kYarn: c.rope.factor = 8.0; c.rope.original_max_position_embeddings = 8192; break;
    case io::RopeType::kLlama3:
      c.rope.factor = 8.0;
      c.rope.low_freq_factor = 1.0;
      c.rope.high_freq_factor = 4.0;
      c.rope.original_max_position_embeddings = 8192;
      break;
    default: break;
  }
  return c;
}

struct RopeCase {
  io::RopeType type;
  int64_t head_dim;
  double partial;
};

TEST(RopeOps, EveryRopeTypeWithCacheWriteMatchesCpu) {
  EXL_REQUIRE_GPU();
  std::mt19937 rng(5);
  const RopeCase cases[] = {{io::RopeType::kDefault, 128, 1.0}, {io::RopeType::kLinear, 64, 1.0},
                            {io::RopeType::kDynamic, 80, 1.0},  {io::RopeType::kYarn, 96, 1.0},
                            {io::RopeType::kLlama3, 256, 1.0},  {io::RopeType::kDefault, 128, 0.5}};
  for (const RopeCase& rc : cases) {
    const io::ModelConfig c = rope_config(rc.type, rc.head_dim, rc.partial);
    const model::RopeTable table = model::compute_rope(c, 20000);
    const int64_t NH = 8, NKV = 2, D = rc.head_dim, page_size = 16, num_pages = 40;
    // Two sequences: 5 tokens at 17.., 3 tokens at 250..; shuffled pages.
    const std::vector<int32_t> query_start = {0, 5, 8};
    const std::vector<int32_t> context_len = {22, 253};
    std::vector<int32_t> pages(num_pages);
    std::iota(pages.begin(), pages.end(), 0);
    std::shuffle(pages.begin(), pages.end(), rng);
    const int64_t max_pages = 20;
    std::vector<int32_t> block_table(pages.begin(), pages.begin() + 2 * max_pages);
    std::vector<int32_t> positions, token_seq;
    for (int s = 0; s < 2; ++s)
      for (int32_t t = query_start[s]; t < query_start[s + 1]; ++t) {
        positions.push_back(context_len[s] - (query_start[s + 1] - t));
        token_seq.push_back(s);
      }
    const int64_t T = static_cast<int64_t>(positions.size());
    std::vector<float> q = round_half(random_floats(rng, static_cast<size_t>(T * NH * D)));
    std::vector<float> k = round_half(random_floats(rng, static_cast<size_t>(T * NKV * D)));
    const std::vector<float> v = round_half(random_floats(rng, static_cast<size_t>(T * NKV * D)));
    const size_t cache_n = static_cast<size_t>(num_pages * page_size * NKV * D);

    GuardedArray<uint16_t> d_q(to_half_bits(q)), d_k(to_half_bits(k)), d_v(to_half_bits(v));
    GuardedArray<float> d_inv(table.inv_freq);
    GuardedArray<int32_t> d_pos(positions), d_seq(token_seq), d_table(block_table);
    GuardedArray<uint16_t> d_kc(std::vector<uint16_t>(cache_n, 0)), d_vc(std::vector<uint16_t>(cache_n, 0));
    kernels::RopeArgs a;
    a.q = reinterpret_cast<__half*>(d_q.get());
    a.k = reinterpret_cast<__half*>(d_k.get());
    a.v = reinterpret_cast<const __half*>(d_v.get());
    a.num_tokens = T;
    a.num_heads = NH;
    a.num_kv_heads = NKV;
    a.head_dim = D;
    a.inv_freq = d_inv.get();
    a.rotary_half = static_cast<int64_t>(table.inv_freq.size());
    a.attention_factor = table.attention_factor;
    a.slots = {d_pos.get(), d_seq.get()};
    a.cache = {reinterpret_cast<__half*>(d_kc.get()), reinterpret_cast<__half*>(d_vc.get()), num_pages, page_size,
               d_table.get(), max_pages};
    kernels::launch_rope(a, nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);

    cpu::rope(q.data(), positions, NH, D, table.inv_freq, table.attention_factor);
    cpu::rope(k.data(), positions, NKV, D, table.inv_freq, table.attention_factor);
    std::vector<float> kc(cache_n, 0.0f), vc(cache_n, 0.0f);
    cpu::PagedKv kv{kc.data(), vc.data(), num_pages, page_size, NKV, D};
    cpu::AttentionBatch batch{2, query_start.data(), context_len.data(), block_table.data(), max_pages};
    cpu::write_kv(kv, batch, k.data(), v.data());

    SCOPED_TRACE(std::string(io::rope_type_name(rc.type)) + " head_dim " + std::to_string(D));
    EXL_EXPECT_CLOSE(from_half_bits(d_q.download()), q, 2e-3);
    EXL_EXPECT_CLOSE(from_half_bits(d_k.download()), k, 2e-3);
    EXL_EXPECT_CLOSE(from_half_bits(d_kc.download()), kc, 2e-3);
    EXPECT_EQ(compare(from_half_bits(d_vc.download()), vc).max_abs, 0.0);
    EXPECT_TRUE(d_q.guards_intact() && d_k.guards_intact() && d_kc.guards_intact() && d_vc.guards_intact());
  }
}

TEST(RopeOps, LargePositionsWithoutCache) {
  EXL_REQUIRE_GPU();
  std::mt19937 rng(6);
  const io::ModelConfig c = rope_config(io::RopeType::kLlama3, 128, 1.0);
  const model::RopeTable table = model::compute_rope(c, 1);
  const std::vector<int32_t> positions = {0, 1, 4095, 8191, 65535, 131071};
  const int64_t T = 6, NH = 32, NKV = 8, D = 128;
  std::vector<float> q = round_half(random_floats(rng, static_cast<size_t>(T * NH * D)));
  std::vector<float> k = round_half(random_floats(rng, static_cast<size_t>(T * NKV * D)));
  GuardedArray<uint16_t> d_q(to_half_bits(q)), d_k(to_half_bits(k));
  GuardedArray<float> d_inv(table.inv_freq);
  GuardedArray<int32_t> d_pos(positions);
  kernels::RopeArgs a;
  a.q = reinterpret_cast<__half*>(d_q.get());
  a.k = reinterpret_cast<__half*>(d_k.get());
  a.num_tokens = T;
  a.num_heads = NH;
  a.num_kv_heads = NKV;
  a.head_dim = D;
  a.inv_freq = d_inv.get();
  a.rotary_half = 64;
  a.attention_factor = table.attention_factor;
  a.slots = {d_pos.get(), nullptr};
  kernels::launch_rope(a, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  cpu::rope(q.data(), positions, NH, D, table.inv_freq, table.attention_factor);
  cpu::rope(k.data(), positions, NKV, D, table.inv_freq, table.attention_factor);
  EXL_EXPECT_CLOSE(from_half_bits(d_q.download()), q, 2e-3);
  EXL_EXPECT_CLOSE(from_half_bits(d_k.download()), k, 2e-3);
}

}  // namespace
}  // namespace exl
#endif
