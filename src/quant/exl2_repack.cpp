#include "quant/exl2_repack.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "core/fp16.h"
#include "core/thread_pool.h"

namespace exl::quant {
namespace {

// Vector chunks of a tile's `bits` words per lane (largest first, so loads are 16 bytes where possible); must
// match load_tile in kernels/quant_tile_decode.cuh.
int chunk_width(int bits, int word, int& first_word) {
  const int first = bits == 3 || bits == 2 ? 2 : 4;
  if (bits != 2 && bits != 3 && bits != 4 && bits != 5 && bits != 6 && bits != 8)
    fail(ErrorKind::kInternal, "tiled layout: bit width {} has no chunk plan", bits);
  if (word < first) {
    first_word = 0;
    return first;
  }
  first_word = first;
  return bits - first;
}

// Index, from the tile's first word, of lane `lane`'s word `word` of a tile.
int64_t word_index(int bits, int lane, int word) {
  int o = 0;
  const int v = chunk_width(bits, word, o);
  return 32 * o + lane * v + (word - o);
}

struct ClassRows {
  int bits;
  int64_t stored_begin;  // first stored row of the class
  int64_t rows;
  int64_t last_group;
};

// Lays out classes, perm, chunk groups and the tile words. code(stored_row, col) gives the code of a real row.
template <typename CodeFn>
void build_tiles(TiledQuantMatrix& t, const std::vector<ClassRows>& classes, const std::vector<int32_t>& stored_perm,
                 const std::vector<int32_t>& stored_group, ThreadPool* pool, CodeFn&& code) {
  int64_t padded = 0, lane_words = 0;
  for (const ClassRows& c : classes) {
    TileClass tc;
    tc.bits = c.bits;
    tc.tile_begin = static_cast<int32_t>(padded / kTileRows);
    padded += (c.rows + kTileRows - 1) / kTileRows * kTileRows;
    tc.tile_end = static_cast<int32_t>(padded / kTileRows);
    tc.word_offset = static_cast<int32_t>(lane_words);
    lane_words += static_cast<int64_t>(tc.tile_end - tc.tile_begin) * c.bits;
    t.classes.push_back(tc);
  }
  t.padded_rows = padded;
  t.lane_words = lane_words;
  t.perm.assign(static_cast<size_t>(padded), -1);
  t.chunk_group.assign(static_cast<size_t>(padded / kChunkRows), 0);
  std::vector<int64_t> padded_to_stored(static_cast<size_t>(padded), -1);
  for (size_t ci = 0; ci < classes.size(); ++ci) {
    const ClassRows& c = classes[ci];
    const int64_t p0 = int64_t{t.classes[ci].tile_begin} * kTileRows;
    const int64_t p1 = int64_t{t.classes[ci].tile_end} * kTileRows;
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t i = p - p0;
      if (i < c.rows) {
        padded_to_stored[p] = c.stored_begin + i;
        t.perm[p] = stored_perm[c.stored_begin + i];
      }
      if (p % kChunkRows == 0) {
        t.chunk_group[p / kChunkRows] =
            i < c.rows ? stored_group[c.stored_begin + i] : static_cast<int32_t>(c.last_group);
      }
    }
  }
  const int64_t strips = t.width / kStripCols;
  t.tiles.assign(static_cast<size_t>(strips * 32 * lane_words), 0u);
  // Strips own disjoint words: any split of them over threads writes the same result.
  auto lay_out = [&](int64_t strip_begin, int64_t strip_end) {
    for (int64_t strip = strip_begin; strip < strip_end; ++strip) {
      for (const TileClass& tc : t.classes) {
        const int b = tc.bits;
        for (int32_t tile = tc.tile_begin; tile < tc.tile_end; ++tile) {
          uint32_t* sw = t.tiles.data() + tile_first_word(tc, tile, strip, lane_words);
          for (int lane = 0; lane < 32; ++lane) {
            const int g = lane / 4, tq = lane % 4;
            uint64_t lo[2] = {0, 0}, hi[2] = {0, 0};
            for (int j = 0; j < 16; ++j) {
              const int s = j / 4, r = j % 4;
              const int64_t col = strip * kStripCols + g + 8 * (r & 1);
              const int64_t row = int64_t{tile} * kTileRows + 16 * s + 2 * tq + 8 * (r >> 1);
              uint32_t v[2];
              for (int h = 0; h < 2; ++h) {
                const int64_t st = padded_to_stored[row + h];
                v[h] = st < 0 ? 0u : code(st, col);
              }
              const int p = j * b;
              for (int h = 0; h < 2; ++h) {
                uint64_t* stream = h == 0 ? lo : hi;
                stream[p / 64] |= uint64_t{v[h]} << (p % 64);
                if (p % 64 + b > 64) stream[p / 64 + 1] |= uint64_t{v[h]} >> (64 - p % 64);
              }
            }
            for (int i = 0; i < b; ++i) {
              const uint32_t lh = static_cast<uint32_t>(lo[(16 * i) / 64] >> ((16 * i) % 64)) & 0xFFFFu;
              const uint32_t hh = static_cast<uint32_t>(hi[(16 * i) / 64] >> ((16 * i) % 64)) & 0xFFFFu;
              sw[word_index(b, lane, i)] = lh | (hh << 16);
            }
          }
        }
      }
    }
  };
  if (pool != nullptr && pool->size() > 1)
    pool->parallel_for(strips, lay_out, 8);
  else
    lay_out(0, strips);
}

uint16_t half_bits_of(float v) { return float_to_half(v); }

}  // namespace

size_t TiledQuantMatrix::device_bytes() const {
  return tiles.size() * 4 + perm.size() * 4 + chunk_group.size() * 4 + exl2_scale.size() * 4 +
         group_info.size() * 4 + gptq_scale.size() * 2 + gptq_zero.size() + bias.size() * 2;
}

TiledQuantMatrix tile_exl2(const Exl2Weight& w, ThreadPool* pool) {
  TiledQuantMatrix t;
  t.in_features = w.in_features;
  t.out_features = w.out_features;
  t.width = w.padded_out;
  t.num_groups = w.num_groups();
  t.scale_kind = TileScaleKind::kExl2;
  const int64_t K = w.in_features, W = w.padded_out;
  std::vector<int32_t> stored_group(static_cast<size_t>(K));
  std::vector<ClassRows> classes;
  for (int64_t g = 0; g < w.num_groups(); ++g) {
    const Exl2Group& grp = w.groups[g];
    EXL_CHECK(grp.rows % kChunkRows == 0, kUnsupported,
              "{}: group {} has {} rows ({}-bit); the CUDA kernels need groups of a multiple of 32 rows", w.key, g,
              grp.rows, grp.bits);
    for (int64_t r = 0; r < grp.rows; ++r) stored_group[grp.row_start + r] = static_cast<int32_t>(g);
    if (classes.empty() || classes.back().bits != grp.bits) classes.push_back({grp.bits, grp.row_start, 0, g});
    classes.back().rows += grp.rows;
    classes.back().last_group = g;
  }
  EXL_CHECK(static_cast<int>(classes.size()) <= kMaxTileClasses, kUnsupported,
            "{}: {} bit-width runs; the CUDA kernels need the groups in descending bit order (at most {} runs)", w.key,
            classes.size(), kMaxTileClasses);
  t.exl2_scale = w.q_scale;
  for (int64_t g = 0; g < w.num_groups(); ++g) {
    const float m = round_to_half(half_to_float(w.q_scale_max[g]) * (1.0f / 256.0f));
    const uint32_t zero = half_bits_of(1024.0f + static_cast<float>(1 << (w.groups[g].bits - 1)));
    t.group_info.push_back(float_to_half(m) | (zero << 16));
  }
  // Row of stored row i within its group, for the bitstream lookup.
  build_tiles(t, classes, w.q_perm, stored_group, pool, [&](int64_t st, int64_t col) -> uint32_t {
    const Exl2Group& grp = w.groups[stored_group[st]];
    const int b = grp.bits;
    const int64_t bitpos = (st - grp.row_start) * b;
    const int64_t j = grp.packed_start + bitpos / 32;
    const int off = static_cast<int>(bitpos % 32);
    uint32_t v = w.q_weight[j * W + col] >> off;
    if (off + b > 32) v |= w.q_weight[(j + 1) * W + col] << (32 - off);
    return v & ((1u << b) - 1u);
  });
  t.bias = w.bias;
  return t;
}

TiledQuantMatrix tile_gptq(const GptqWeight& w, ThreadPool* pool) {
  TiledQuantMatrix t;
  const int64_t K = w.in_features, N = w.out_features, G = w.num_groups;
  t.in_features = K;
  t.out_features = N;
  t.width = (N + 31) / 32 * 32;
  t.num_groups = G;
  t.scale_kind = TileScaleKind::kGptq;
  const int64_t W = t.width;
  // Rows sorted (stably) by group: each group becomes a contiguous run, as ExLlamaV2's make_sequential does.
  std::vector<int32_t> perm(static_cast<size_t>(K));
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int32_t a, int32_t b) { return w.g_idx[a] < w.g_idx[b]; });
  std::vector<int32_t> stored_group(static_cast<size_t>(K));
  std::vector<int64_t> group_rows(static_cast<size_t>(G), 0);
  for (int64_t i = 0; i < K; ++i) {
    stored_group[i] = w.g_idx[perm[i]];
    ++group_rows[stored_group[i]];
  }
  for (int64_t g = 0; g < G; ++g) {
    EXL_CHECK(group_rows[g] % kChunkRows == 0, kUnsupported,
              "{}: GPTQ group {} has {} rows; the CUDA kernels need groups of a multiple of 32 rows", w.key, g,
              group_rows[g]);
  }
  std::vector<ClassRows> classes = {{4, 0, K, G - 1}};
  t.gptq_scale.assign(static_cast<size_t>(G * W), 0);
  t.gptq_zero.assign(static_cast<size_t>(G * W), 0);
  t.group_info.assign(static_cast<size_t>(G), 0);
  for (int64_t g = 0; g < G; ++g) {
    for (int64_t n = 0; n < N; ++n) {
      const int z = w.zero(g, n);
      EXL_CHECK(z >= 0 && z <= 255, kUnsupported, "{}: GPTQ zero point {} of group {} column {} is out of range",
                w.key, z, g, n);
      t.gptq_zero[g * W + n] = static_cast<uint8_t>(z);
      t.gptq_scale[g * W + n] = w.scales[g * N + n];
    }
  }
  build_tiles(t, classes, perm, stored_group, pool, [&](int64_t st, int64_t col) -> uint32_t {
    if (col >= N) return 0u;
    const int64_t k = perm[st];
    return (w.qweight[(k / 8) * N + col] >> (4 * (k % 8))) & 15u;
  });
  t.bias = w.bias;
  if (!t.bias.empty()) t.bias.resize(static_cast<size_t>(W), 0);
  return t;
}

std::vector<uint16_t> dequantize_tiled(const TiledQuantMatrix& t) {
  const int64_t K = t.in_features, W = t.width;
  std::vector<uint16_t> out(static_cast<size_t>(K * W), 0);
  for (int64_t strip = 0; strip < W / kStripCols; ++strip) {
    for (const TileClass& tc : t.classes) {
      const int b = tc.bits;
      const uint32_t mask = (1u << b) - 1u, mask2 = mask | (mask << 16);
      for (int32_t tile = tc.tile_begin; tile < tc.tile_end; ++tile) {
        const uint32_t* sw = t.tiles.data() + tile_first_word(tc, tile, strip, t.lane_words);
        for (int lane = 0; lane < 32; ++lane) {
          std::vector<uint32_t> words(static_cast<size_t>(b));
          for (int i = 0; i < b; ++i) words[i] = sw[word_index(b, lane, i)];
          for (int j = 0; j < 16; ++j) {
            // Same shifts and masks as the kernel's pair extraction.
            const int p = j * b, h = p / 16, off = p % 16;
            uint32_t pair;
            if (off + b <= 16) {
              pair = (words[h] >> off) & mask2;
            } else {
              const uint32_t lowsel = (1u << (16 - off)) - 1u;
              const uint32_t sel = ~(lowsel | (lowsel << 16));
              pair = (((words[h] >> off) & ~sel) | ((words[h + 1] << (16 - off)) & sel)) & mask2;
            }
            const int s = j / 4, r = j % 4, g = lane / 4, tq = lane % 4;
            const int64_t col = strip * kStripCols + g + 8 * (r & 1);
            const int64_t row = int64_t{tile} * kTileRows + 16 * s + 2 * tq + 8 * (r >> 1);
            const int32_t grp = t.chunk_group[row / kChunkRows];
            float scale, zero;
            if (t.scale_kind == TileScaleKind::kExl2) {
              const uint32_t sc = (t.exl2_scale[grp * (W / 8) + col / 8] >> (4 * (col % 8))) & 15u;
              const float m = half_to_float(static_cast<uint16_t>(t.group_info[grp] & 0xFFFFu));
              scale = round_to_half(static_cast<float>((sc + 1) * (sc + 1)) * m);
              zero = half_to_float(static_cast<uint16_t>(t.group_info[grp] >> 16)) - 1024.0f;
            } else {
              scale = half_to_float(t.gptq_scale[grp * W + col]);
              zero = static_cast<float>(t.gptq_zero[grp * W + col]);
            }
            for (int e = 0; e < 2; ++e) {
              const int32_t orig = t.perm[row + e];
              if (orig < 0) continue;
              const uint32_t q = (pair >> (16 * e)) & 0xFFFFu;
              out[orig * W + col] = float_to_half((static_cast<float>(q) - zero) * scale);
            }
          }
        }
      }
    }
  }
  return out;
}

}  // namespace exl::quant
