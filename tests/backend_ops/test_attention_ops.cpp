// CUDA paged attention (tensor-core prefill kernel and split-sequence decode kernel) vs cpu::attention: several
// sequences of different lengths, ragged shuffled block tables, GQA 1/4/8, every supported head_dim, sliding
// window, attention soft-capping, single-token and multi-token steps.
#ifdef EXL_HAVE_CUDA
#include <algorithm>
#include <cmath>
#include <numeric>

#include "backend/cpu/ops.h"
#include "core/thread_pool.h"
#include "cuda_op_test_util.h"
#include "kernels/attention.cuh"
#include "kernels/rope.cuh"

namespace exl {
namespace {

using namespace exl::testing;

struct SeqSpec {
  int32_t new_tokens;
  int32_t context_len;
};

struct AttnCase {
  int64_t num_heads, num_kv_heads, head_dim, page_size, window;
  std::vector<SeqSpec> seqs;
  float softcap = 0.0f;  // > 0: scores soft-capped (AttentionArgs::softcap)
};

enum class Kernel { kPrefill, kDecode };

// Device arguments over guarded device copies (q, out, the two cache pools and the int arrays).
kernels::AttentionArgs device_args(GuardedArray<uint16_t>& q, GuardedArray<uint16_t>& out, GuardedArray<uint16_t>& kc,
                                   GuardedArray<uint16_t>& vc, GuardedArray<int32_t>& query_start,
                                   GuardedArray<int32_t>& context_len, GuardedArray<int32_t>& table,
                                   int64_t num_pages, int64_t page_size, int64_t num_seqs, int64_t max_pages,
                                   int64_t NH, int64_t NKV, int64_t D) {
  kernels::AttentionArgs a;
  a.q = reinterpret_cast<const __half*>(q.get());
  a.out = reinterpret_cast<__half*>(out.get());
  a.k_pages = reinterpret_cast<const __half*>(kc.get());
  a.v_pages = reinterpret_cast<const __half*>(vc.get());
  a.num_pages = num_pages;
  a.page_size = page_size;
  a.num_seqs = num_seqs;
  a.query_start = query_start.get();
  a.context_len = context_len.get();
  a.block_table = table.get();
  a.max_pages_per_seq = max_pages;
  a.num_heads = NH;
  a.num_kv_heads = NKV;
  a.head_dim = D;
  a.scale = 1.0f / std::sqrt(static_cast<float>(D));
  return a;
}

// A ragged block table over a shuffled page pool for sequences of the given lengths (spare pages at the end).
struct PageTable {
  std::vector<int32_t> table;
  int64_t num_pages = 0, max_pages = 1;
};
PageTable shuffled_pages(const std::vector<int32_t>& lens, int64_t page_size, int64_t spare, std::mt19937& rng) {
  PageTable t;
  int64_t total = 0;
  for (int32_t len : lens) {
    t.max_pages = std::max<int64_t>(t.max_pages, (len + page_size - 1) / page_size);
    total += (len + page_size - 1) / page_size;
  }
  t.num_pages = total + spare;
  std::vector<int32_t> perm(static_cast<size_t>(t.num_pages));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  t.table.assign(lens.size() * static_cast<size_t>(t.max_pages), 0);
  int64_t used = 0;
  for (size_t s = 0; s < lens.size(); ++s)
    for (int64_t p = 0; p * page_size < lens[s]; ++p) t.table[s * t.max_pages + p] = perm[used++];
  return t;
}

// Shapes only (one sequence, 8 query heads over 2 KV heads, head_dim 64), no buffers: for launches that must fail
// their argument checks.
kernels::AttentionArgs small_decode_args() {
  kernels::AttentionArgs a;
  a.num_seqs = 1;
  a.num_heads = 8;
  a.num_kv_heads = 2;
  a.head_dim = 64;
  return a;
}

// Decode merges its splits inside the kernel: `counters` (DecodeSplit::counters) is required for Kernel::kDecode.
void run_case(const AttnCase& c, Kernel kernel, int splits, std::mt19937& rng, ThreadPool& pool,
              uint32_t* counters = nullptr) {
  const int64_t S = static_cast<int64_t>(c.seqs.size()), D = c.head_dim, NH = c.num_heads, NKV = c.num_kv_heads;
  std::vector<int32_t> query_start{0}, context_len;
  int64_t max_q = 0;
  for (const auto& s : c.seqs) {
    query_start.push_back(query_start.back() + s.new_tokens);
    context_len.push_back(s.context_len);
    max_q = std::max<int64_t>(max_q, s.new_tokens);
  }
  const PageTable pt = shuffled_pages(context_len, c.page_size, 5, rng);
  const std::vector<int32_t>& table = pt.table;
  const int64_t num_pages = pt.num_pages, max_pages = pt.max_pages;
  const int64_t T = query_start.back();
  const size_t cache_n = static_cast<size_t>(num_pages * c.page_size * NKV * D);
  const std::vector<float> q = round_half(random_floats(rng, static_cast<size_t>(T * NH * D)));
  std::vector<float> kc = round_half(random_floats(rng, cache_n, 1.5f));
  std::vector<float> vc = round_half(random_floats(rng, cache_n));

  std::vector<float> want(q.size());
  cpu::PagedKv kv{kc.data(), vc.data(), num_pages, c.page_size, NKV, D};
  cpu::AttentionBatch batch{S, query_start.data(), context_len.data(), table.data(), max_pages};
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  cpu::attention(pool, {NH, NKV, D, scale, c.window, c.softcap}, batch, kv, q.data(), want.data());

  GuardedArray<uint16_t> d_q(to_half_bits(q)), d_kc(to_half_bits(kc)), d_vc(to_half_bits(vc));
  GuardedArray<uint16_t> d_out(q.size());
  GuardedArray<int32_t> d_qs(query_start), d_cl(context_len), d_table(table);
  kernels::AttentionArgs a =
      device_args(d_q, d_out, d_kc, d_vc, d_qs, d_cl, d_table, num_pages, c.page_size, S, max_pages, NH, NKV, D);
  a.sliding_window = c.window;
  a.softcap = c.softcap;
  if (kernel == Kernel::kPrefill) {
    kernels::launch_attention_prefill(a, max_q, nullptr);
  } else {
    GuardedArray<float> ws(static_cast<size_t>(kernels::decode_attention_workspace_floats(S, NH, D, splits)));
    // One sequence: also the fragment-ordered copy for the o projection (a synthetic layout with 24 pads).
    const SyntheticFrag layout = synthetic_frag(rng, NH * D, 24);
    GuardedArray<int32_t> d_dest(layout.dest), d_pads(layout.pads);
    GuardedArray<uint16_t> d_frag(static_cast<size_t>(NH * D + 24));
    if (S == 1) a.out_frag = {reinterpret_cast<__half*>(d_frag.get()), d_dest.get(), d_pads.get(), 24};
    kernels::launch_attention_decode(a, {splits, ws.get(), counters}, nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_TRUE(ws.guards_intact());
    if (S == 1) {
      expect_frag_matches(d_frag.download(), d_out.download(), layout);
      EXPECT_TRUE(d_frag.guards_intact());
    }
  }
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const Diff d = compare(from_half_bits(d_out.download()), want);
  EXPECT_TRUE(d.finite);
  EXPECT_LT(d.rel_l2, 3e-3) << (kernel == Kernel::kPrefill ? "prefill" : "decode") << " splits " << splits
                            << " heads " << NH << "/" << NKV << " head_dim " << D << " page " << c.page_size
                            << " window " << c.window << " softcap " << c.softcap
                            << " (max abs " << d.max_abs << ")";
  EXPECT_TRUE(d_out.guards_intact());
}

TEST(AttentionOps, PrefillMatchesCpu) {
  EXL_REQUIRE_GPU();
  std::mt19937 rng(8);
  ThreadPool pool(0);
  for (int64_t D : {32, 64, 80, 96, 128, 256}) {
    for (auto [NH, NKV] : {std::pair<int64_t, int64_t>{8, 8}, {8, 2}, {16, 2}}) {
      // Fresh prompt, a continuation after cached tokens, a single token, a long odd one.
      run_case({NH, NKV, D, 16, 0, {{37, 37}, {20, 150}, {1, 77}, {130, 300}}}, Kernel::kPrefill, 0, rng, pool);
    }
    run_case({8, 2, D, 64, 0, {{64, 64}, {65, 129}}}, Kernel::kPrefill, 0, rng, pool);
  }
  // Sliding window, page size 256 (default), and 1 sequence of 700 tokens.
  run_case({32, 8, 128, 256, 100, {{300, 300}, {5, 900}}}, Kernel::kPrefill, 0, rng, pool);
  run_case({32, 8, 128, 256, 0, {{700, 700}}}, Kernel::kPrefill, 0, rng, pool);
}

// The splits of each (KV head, sequence) merged inside the attention kernel (DecodeSplit::counters): split counts 1,
// 5, 7, 16, 33, 64 and the chosen count for Llama-3-8B on an H100, empty splits (short sequences), every head_dim,
// GQA 1/4/8/16, a sliding window. The counters are zeroed once and shared by every case (split counts change
// between launches, as in a decode graph replayed every token and the batched steps between), and one case runs
// three times in a row.
TEST(AttentionOps, DecodeMatchesCpu) {
  EXL_REQUIRE_GPU();
  std::mt19937 rng(19);
  ThreadPool pool(0);
  GuardedArray<uint32_t> counters(std::vector<uint32_t>(128, 0u));
  uint32_t* c = counters.get();
  for (int64_t D : {32, 64, 80, 96, 128, 256}) {
    for (auto [NH, NKV] : {std::pair<int64_t, int64_t>{8, 8}, {8, 2}, {32, 4}}) {
      for (int splits : {1, 7, 33}) {
        run_case({NH, NKV, D, 16, 0, {{1, 1}, {1, 37}, {1, 1000}, {1, 64}}}, Kernel::kDecode, splits, rng, pool, c);
      }
    }
  }
  for (int rep = 0; rep < 3; ++rep)
    run_case({32, 8, 128, 256, 0, {{1, 2048}}}, Kernel::kDecode, 33, rng, pool, c);  // llama3-8b at 2k
  run_case({32, 8, 128, 256, 0, {{1, 8192}}}, Kernel::kDecode, 64, rng, pool, c);
  run_case({32, 8, 128, 256, 1000, {{1, 4000}, {1, 999}}}, Kernel::kDecode, 16, rng, pool, c);
  run_case({64, 4, 128, 256, 0, {{1, 300}}}, Kernel::kDecode, 5, rng, pool, c);  // 16 query heads per KV head
  run_case({32, 8, 128, 256, 0, {{1, 5000}}}, Kernel::kDecode, kernels::choose_decode_splits(1, 8, 8192, 132), rng,
           pool, c);
  for (int64_t D : {64, 128, 256}) run_case({8, 2, D, 16, 0, {{1, 333}}}, Kernel::kDecode, 7, rng, pool, c);
  EXPECT_TRUE(counters.guards_intact());
  // The merge needs its counters.
  float dummy_ws[4];
  EXPECT_THROW(kernels::launch_attention_decode(small_decode_args(), {4, dummy_ws, nullptr}, nullptr), Error);
}

// Attention logit soft-capping (Gemma 2: s = cap * tanh(s / cap) on the scaled score) in both kernels. q ~ N(0, 1)
// and k ~ N(0, 1.5^2) give scaled scores of standard deviation about 1.5: a cap of 1.5 bends most of them, a cap of
// 30 almost none. With sliding windows and GQA, as Gemma 2 runs it.
TEST(AttentionOps, SoftcapMatchesCpu) {
  EXL_REQUIRE_GPU();
  std::mt19937 rng(23);
  ThreadPool pool(0);
  GuardedArray<uint32_t> counters(std::vector<uint32_t>(128, 0u));
  for (float cap : {1.5f, 30.0f}) {
    for (int64_t D : {64, 128, 256}) {
      run_case({8, 2, D, 16, 0, {{37, 37}, {20, 150}, {1, 77}}, cap}, Kernel::kPrefill, 0, rng, pool);
      run_case({8, 4, D, 16, 40, {{90, 90}, {3, 200}}, cap}, Kernel::kPrefill, 0, rng, pool);
      for (int splits : {1, 7})
        run_case({8, 2, D, 16, 0, {{1, 1}, {1, 300}}, cap}, Kernel::kDecode, splits, rng, pool, counters.get());
      run_case({16, 2, D, 16, 50, {{1, 333}}, cap}, Kernel::kDecode, 5, rng, pool, counters.get());
    }
  }
  EXPECT_TRUE(counters.guards_intact());
}

// Decode with RoPE and the new token's KV write fused into the kernel (AttentionArgs::rope): raw q, k and v of the
// new token in, against cpu::rope + cpu::write_kv + cpu::attention. The new token's cache slot starts poisoned.
// chained: instead of the fused RoPE, rope_kernel rotates q and k and writes the new rows, and attention_decode runs
// right after it on the same stream (programmatic dependent launch: attention loads every other row before its
// wait, the newest row after it).
void run_fused_rope_case(int64_t NH, int64_t NKV, int64_t D, int64_t rotary_half, float attention_factor,
                         std::vector<int32_t> lens, int splits, std::mt19937& rng, ThreadPool& pool,
                         bool chained = false, uint32_t* counters = nullptr) {
  const int64_t S = static_cast<int64_t>(lens.size()), page_size = 16;
  std::vector<int32_t> query_start{0}, positions;
  for (int32_t len : lens) {
    query_start.push_back(query_start.back() + 1);
    positions.push_back(len - 1);
  }
  const PageTable pt = shuffled_pages(lens, page_size, 3, rng);
  const std::vector<int32_t>& table = pt.table;
  const int64_t num_pages = pt.num_pages, max_pages = pt.max_pages;
  std::vector<float> inv_freq(static_cast<size_t>(rotary_half));
  for (int64_t i = 0; i < rotary_half; ++i)
    inv_freq[static_cast<size_t>(i)] = static_cast<float>(std::pow(10000.0, -2.0 * i / (2.0 * rotary_half)));
  const size_t cache_n = static_cast<size_t>(num_pages * page_size * NKV * D);
  std::vector<float> kc = round_half(random_floats(rng, cache_n, 1.5f));
  std::vector<float> vc = round_half(random_floats(rng, cache_n));
  cpu::PagedKv kv{kc.data(), vc.data(), num_pages, page_size, NKV, D};
  cpu::AttentionBatch batch{S, query_start.data(), lens.data(), table.data(), max_pages};
  // Poison the new tokens' slots on the device copy: the kernel must write them before reading.
  std::vector<float> kc_dev = kc, vc_dev = vc;
  for (int64_t s = 0; s < S; ++s) {
    const int32_t pos = positions[static_cast<size_t>(s)];
    const int64_t row = (static_cast<int64_t>(table[s * max_pages + pos / page_size]) * page_size + pos % page_size) * NKV * D;
    for (int64_t e = 0; e < NKV * D; ++e) kc_dev[static_cast<size_t>(row + e)] = vc_dev[static_cast<size_t>(row + e)] = 7.0f;
  }
  const std::vector<float> q = round_half(random_floats(rng, static_cast<size_t>(S * NH * D)));
  const std::vector<float> k_new = round_half(random_floats(rng, static_cast<size_t>(S * NKV * D), 1.5f));
  const std::vector<float> v_new = round_half(random_floats(rng, static_cast<size_t>(S * NKV * D)));

  // CPU: rotate (rounded to fp16 as the stored values are), write the new K/V, attend.
  std::vector<float> q_rot = q, k_rot = k_new;
  cpu::rope(q_rot.data(), positions, NH, D, inv_freq, attention_factor);
  cpu::rope(k_rot.data(), positions, NKV, D, inv_freq, attention_factor);
  q_rot = round_half(q_rot);
  k_rot = round_half(k_rot);
  cpu::write_kv(kv, batch, k_rot.data(), v_new.data());
  std::vector<float> want(q.size());
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  cpu::attention(pool, {NH, NKV, D, scale, 0}, batch, kv, q_rot.data(), want.data());

  GuardedArray<uint16_t> d_q(to_half_bits(q)), d_kc(to_half_bits(kc_dev)), d_vc(to_half_bits(vc_dev));
  GuardedArray<uint16_t> d_kn(to_half_bits(k_new)), d_vn(to_half_bits(v_new)), d_out(q.size());
  GuardedArray<int32_t> d_qs(query_start), d_cl(lens), d_table(table);
  GuardedArray<float> d_inv(inv_freq);
  kernels::AttentionArgs a =
      device_args(d_q, d_out, d_kc, d_vc, d_qs, d_cl, d_table, num_pages, page_size, S, max_pages, NH, NKV, D);
  GuardedArray<float> ws(static_cast<size_t>(kernels::decode_attention_workspace_floats(S, NH, D, splits)));
  if (!chained) {
    a.rope = {reinterpret_cast<const __half*>(d_kn.get()), reinterpret_cast<const __half*>(d_vn.get()),
              reinterpret_cast<__half*>(d_kc.get()), reinterpret_cast<__half*>(d_vc.get()), d_inv.get(),
              static_cast<int32_t>(rotary_half), attention_factor};
    kernels::launch_attention_decode(a, {splits, ws.get(), counters}, nullptr);
  } else {
    std::vector<int32_t> token_seq(static_cast<size_t>(S));
    for (int64_t i = 0; i < S; ++i) token_seq[static_cast<size_t>(i)] = static_cast<int32_t>(i);
    GuardedArray<int32_t> d_pos(positions), d_seq(token_seq);
    kernels::RopeArgs r;
    r.q = reinterpret_cast<__half*>(d_q.get());
    r.k = reinterpret_cast<__half*>(d_kn.get());
    r.v = reinterpret_cast<const __half*>(d_vn.get());
    r.num_tokens = S;
    r.num_heads = NH;
    r.num_kv_heads = NKV;
    r.head_dim = D;
    r.inv_freq = d_inv.get();
    r.rotary_half = rotary_half;
    r.attention_factor = attention_factor;
    r.slots = {d_pos.get(), d_seq.get()};
    r.cache = {reinterpret_cast<__half*>(d_kc.get()), reinterpret_cast<__half*>(d_vc.get()), num_pages, page_size,
               d_table.get(), max_pages};
    cudaStream_t st = nullptr;
    ASSERT_EQ(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking), cudaSuccess);
    kernels::launch_rope(r, st);
    kernels::launch_attention_decode(a, {splits, ws.get(), counters}, st);
    ASSERT_EQ(cudaStreamSynchronize(st), cudaSuccess);
    ASSERT_EQ(cudaStreamDestroy(st), cudaSuccess);
  }
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  SCOPED_TRACE(::testing::Message() << (chained ? "rope kernel then attention" : "fused rope")
                                    << ": heads " << NH
                                    << "/" << NKV << " head_dim " << D << " rotary_half " << rotary_half << " splits "
                                    << splits);
  const Diff d = compare(from_half_bits(d_out.download()), want);
  EXPECT_TRUE(d.finite);
  EXPECT_LT(d.rel_l2, 3e-3) << "(max abs " << d.max_abs << ")";
  // The new tokens' slots now hold the rotated k and the v (the rest of the cache is untouched).
  EXL_EXPECT_CLOSE(from_half_bits(d_kc.download()), kc, 2e-3);
  EXPECT_EQ(compare(from_half_bits(d_vc.download()), vc).max_abs, 0.0);
  EXPECT_TRUE(d_out.guards_intact() && d_kc.guards_intact() && d_vc.guards_intact());
}

TEST(AttentionOps, DecodeWithFusedRopeMatchesCpu) {
  EXL_REQUIRE_GPU();
  std::mt19937 rng(12);
  ThreadPool pool(0);
  GuardedArray<uint32_t> counters(std::vector<uint32_t>(32, 0u));
  uint32_t* c = counters.get();
  for (int64_t D : {32, 64, 80, 96, 128, 256})
    for (int splits : {1, 7}) run_fused_rope_case(8, 2, D, D / 2, 1.0f, {1, 37, 300}, splits, rng, pool, false, c);
  run_fused_rope_case(32, 8, 128, 64, 1.0f, {2048}, 33, rng, pool, false, c);   // llama3-8b decode shape
  run_fused_rope_case(8, 8, 128, 32, 1.1f, {17, 129}, 5, rng, pool, false, c);  // partial rotary, attention factor
  // The unfused chain: rope_kernel writes the newest rows just before attention_decode reads the cache.
  for (int64_t D : {32, 64, 80, 96, 128, 256})
    for (int splits : {1, 7}) run_fused_rope_case(8, 2, D, D / 2, 1.0f, {1, 37, 300}, splits, rng, pool, true, c);
  run_fused_rope_case(32, 8, 128, 64, 1.0f, {2048}, 33, rng, pool, true, c);
  EXPECT_TRUE(counters.guards_intact());
  // Bad arguments: a rotary half beyond head_dim / 2.
  kernels::AttentionArgs bad = small_decode_args();
  bad.rope.k_new = reinterpret_cast<const __half*>(&bad);
  bad.rope.rotary_half = 40;
  float dummy_ws[4];
  EXPECT_THROW(kernels::launch_attention_decode(bad, {1, dummy_ws, c}, nullptr), Error);
}

TEST(AttentionOps, RejectsUnsupportedHeadDim) {
  EXL_REQUIRE_GPU();
  kernels::AttentionArgs a;
  a.num_seqs = 1;
  a.num_heads = 8;
  a.num_kv_heads = 8;
  a.head_dim = 72;
  try {
    kernels::launch_attention_prefill(a, 1, nullptr);
    FAIL() << "head_dim 72 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("32, 64, 80, 96, 128, 256"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace exl
#endif
