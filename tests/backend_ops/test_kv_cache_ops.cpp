// CUDA paged K/V write vs cpu::write_kv: several sequences, shuffled pages, bit-exact copies.
#ifdef EXL_HAVE_CUDA
#include <algorithm>
#include <numeric>

#include "backend/cpu/ops.h"
#include "cuda_op_test_util.h"
#include "kernels/kv_cache.cuh"

namespace exl {
namespace {

using namespace exl::testing;

TEST(KvCacheOps, WriteKvMatchesCpu) {
  EXL_REQUIRE_GPU();
  std::mt19937 rng(7);
  for (auto [NKV, D, page_size] : {std::tuple<int64_t, int64_t, int64_t>{8, 128, 256}, {2, 80, 16}, {1, 96, 7}}) {
    const int64_t num_pages = 80, max_pages = 50;
    const std::vector<int32_t> query_start = {0, 100, 101, 140};
    const std::vector<int32_t> context_len = {100, 300, 45};
    std::vector<int32_t> perm(num_pages);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    std::vector<int32_t> table(static_cast<size_t>(3 * max_pages), -1);
    int used = 0;
    for (int s = 0; s < 3; ++s)
      for (int64_t p = 0; p * page_size < context_len[s]; ++p) table[s * max_pages + p] = perm[used++];
    std::vector<int32_t> positions, seq;
    for (int s = 0; s < 3; ++s)
      for (int32_t t = query_start[s]; t < query_start[s + 1]; ++t) {
        positions.push_back(context_len[s] - (query_start[s + 1] - t));
        seq.push_back(s);
      }
    const int64_t T = static_cast<int64_t>(positions.size());
    const std::vector<float> k = round_half(random_floats(rng, static_cast<size_t>(T * NKV * D)));
    const std::vector<float> v = round_half(random_floats(rng, static_cast<size_t>(T * NKV * D)));
    const size_t cache_n = static_cast<size_t>(num_pages * page_size * NKV * D);
    GuardedArray<uint16_t> d_k(to_half_bits(k)), d_v(to_half_bits(v));
    GuardedArray<uint16_t> d_kc(std::vector<uint16_t>(cache_n, 0)), d_vc(std::vector<uint16_t>(cache_n, 0));
    GuardedArray<int32_t> d_pos(positions), d_seq(seq), d_table(table);
    kernels::WriteKvArgs a;
    a.k = reinterpret_cast<const __half*>(d_k.get());
    a.v = reinterpret_cast<const __half*>(d_v.get());
    a.num_tokens = T;
    a.num_kv_heads = NKV;
    a.head_dim = D;
    a.slots = {d_pos.get(), d_seq.get()};
    a.cache = {reinterpret_cast<__half*>(d_kc.get()), reinterpret_cast<__half*>(d_vc.get()), num_pages, page_size,
               d_table.get(), max_pages};
    kernels::launch_write_kv(a, nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    std::vector<float> kc(cache_n, 0.0f), vc(cache_n, 0.0f);
    cpu::PagedKv kv{kc.data(), vc.data(), num_pages, page_size, NKV, D};
    cpu::AttentionBatch batch{3, query_start.data(), context_len.data(), table.data(), max_pages};
    cpu::write_kv(kv, batch, k.data(), v.data());
    EXPECT_EQ(compare(from_half_bits(d_kc.download()), kc).max_abs, 0.0);
    EXPECT_EQ(compare(from_half_bits(d_vc.download()), vc).max_abs, 0.0);
    EXPECT_TRUE(d_kc.guards_intact() && d_vc.guards_intact());
  }
}

}  // namespace
}  // namespace exl
#endif
