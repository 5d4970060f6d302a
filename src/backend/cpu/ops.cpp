#include "backend/cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"

namespace exl::cpu {

void embedding(const float* table, int64_t vocab_size, int64_t hidden_size, std::span<const int32_t> ids,
               float* out) {
  for (size_t t = 0; t < ids.size(); ++t) {
    EXL_CHECK(ids[t] >= 0 && ids[t] < vocab_size, kInvalidArgument,
              "embedding: token id {} at position {} is out of range (vocab_size {})", ids[t], t, vocab_size);
    std::memcpy(out + t * hidden_size, table + ids[t] * hidden_size, sizeof(float) * hidden_size);
  }
}

void rms_norm(const float* x, const float* weight, float* out, int64_t num_tokens, int64_t hidden_size, float eps) {
  for (int64_t t = 0; t < num_tokens; ++t) {
    const float* row = x + t * hidden_size;
    double sum = 0.0;
    for (int64_t i = 0; i < hidden_size; ++i) sum += static_cast<double>(row[i]) * row[i];
    const float inv = 1.0f / std::sqrt(static_cast<float>(sum / hidden_size) + eps);
    for (int64_t i = 0; i < hidden_size; ++i) out[t * hidden_size + i] = row[i] * inv * weight[i];
  }
}

namespace {

// Four dot products of one activation row with four weight rows; eight partial sums each so the compiler
// can vectorize without reassociation flags.
void dot4(const float* x, const float* w0, const float* w1, const float* w2, const float* w3, int64_t k, float* r) {
  float a0[8] = {}, a1[8] = {}, a2[8] = {}, a3[8] = {};
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    for (int j = 0; j < 8; ++j) {
      const float xv = x[i + j];
      a0[j] += xv * w0[i + j];
      a1[j] += xv * w1[i + j];
      a2[j] += xv * w2[i + j];
      a3[j] += xv * w3[i + j];
    }
  }
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (int j = 0; j < 8; ++j) {
    s0 += a0[j];
    s1 += a1[j];
    s2 += a2[j];
    s3 += a3[j];
  }
  for (; i < k; ++i) {
    s0 += x[i] * w0[i];
    s1 += x[i] * w1[i];
    s2 += x[i] * w2[i];
    s3 += x[i] * w3[i];
  }
  r[0] = s0;
  r[1] = s1;
  r[2] = s2;
  r[3] = s3;
}

}  // namespace

void linear(ThreadPool& pool, const float* x, const float* w, const float* bias, float* y, int64_t num_tokens,
            int64_t in_features, int64_t out_features) {
  const int64_t K = in_features, N = out_features;
  constexpr int64_t kBlockN = 64;
  const int64_t num_blocks = (N + kBlockN - 1) / kBlockN;
  pool.parallel_for(num_blocks, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n0 = b * kBlockN, n1 = std::min(N, n0 + kBlockN);
      for (int64_t m = 0; m < num_tokens; ++m) {
        const float* xr = x + m * K;
        int64_t n = n0;
        for (; n + 4 <= n1; n += 4) {
          float r[4];
          dot4(xr, w + n * K, w + (n + 1) * K, w + (n + 2) * K, w + (n + 3) * K, K, r);
          for (int j = 0; j < 4; ++j) y[m * N + n + j] = r[j] + (bias ? bias[n + j] : 0.0f);
        }
        for (; n < n1; ++n) {
          float r[4];
          dot4(xr, w + n * K, w + n * K, w + n * K, w + n * K, K, r);
          y[m * N + n] = r[0] + (bias ? bias[n] : 0.0f);
        }
      }
    }
  });
}

void silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void norm(const NormParams& p, const float* x, float* out, int64_t rows, int64_t size) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * size;
    float* o = out + r * size;
    const float* w = p.weight ? p.weight + (r % p.weight_rows) * size : nullptr;
    double mean = 0.0;
    if (p.kind == NormKind::kLayer) {
      for (int64_t i = 0; i < size; ++i) mean += row[i];
      mean /= static_cast<double>(size);
    }
    double sum = 0.0;
    for (int64_t i = 0; i < size; ++i) {
      const double d = row[i] - mean;
      sum += d * d;
    }
    const float inv = 1.0f / std::sqrt(static_cast<float>(sum / static_cast<double>(size)) + p.eps);
    for (int64_t i = 0; i < size; ++i) {
      float v = (row[i] - static_cast<float>(mean)) * inv;
      if (w) v *= w[i];
      if (p.bias) v += p.bias[i];
      o[i] = v;
    }
  }
}

float activation(ActKind kind, float x) {
  switch (kind) {
    case ActKind::kSilu: return x / (1.0f + std::exp(-x));
    case ActKind::kGeluTanh: {
      const float c = 0.7978845608028654f;  // sqrt(2 / pi)
      return 0.5f * x * (1.0f + std::tanh(c * (x + 0.044715f * x * x * x)));
    }
    case ActKind::kGelu: return 0.5f * x * (1.0f + std::erf(x * 0.7071067811865476f));
  }
  return x;
}

void act_mul(ActKind kind, const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = activation(kind, gate[i]) * up[i];
}

void act_inplace(ActKind kind, float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = activation(kind, x[i]);
}

void softcap_inplace(float* x, int64_t n, float cap) {
  for (int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] / cap);
}

void clamp_inplace(float* x, int64_t n, float limit) {
  for (int64_t i = 0; i < n; ++i) x[i] = std::clamp(x[i], -limit, limit);
}

void scale_inplace(float* x, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

void add_scaled_inplace(float* x, const float* y, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) x[i] += s * y[i];
}

namespace {

// Indices of the k largest values, largest first (ties: lower index first, as torch.topk on CPU in practice).
std::vector<int32_t> top_k_indices(const std::vector<float>& v, int64_t k) {
  std::vector<int32_t> idx(v.size());
  for (size_t i = 0; i < v.size(); ++i) idx[i] = static_cast<int32_t>(i);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
    return v[a] > v[b] || (v[a] == v[b] && a < b);
  });
  idx.resize(static_cast<size_t>(k));
  return idx;
}

void softmax_inplace(std::vector<float>& v) {
  float mx = -INFINITY;
  for (float x : v) mx = std::max(mx, x);
  double sum = 0.0;
  for (float& x : v) {
    x = std::isinf(x) && x < 0 ? 0.0f : std::exp(x - mx);
    sum += x;
  }
  for (float& x : v) x = static_cast<float>(x / sum);
}

}  // namespace

void route(const RouteParams& p, const float* logits, int32_t* ids, float* weights) {
  const int64_t E = p.num_experts, k = p.top_k;
  EXL_CHECK(k >= 1 && k <= E, kInvalidArgument, "route: top_k {} must be in [1, num_experts {}]", k, E);
  std::vector<float> v(logits, logits + E);
  switch (p.kind) {
    case RouterKind::kSoftmaxTopK: {
      softmax_inplace(v);
      const std::vector<int32_t> top = top_k_indices(v, k);
      double norm = 0.0;
      for (int64_t i = 0; i < k; ++i) norm += std::pow(static_cast<double>(v[top[i]]), p.renormalize_p);
      norm = std::pow(norm, 1.0 / p.renormalize_p);
      for (int64_t i = 0; i < k; ++i) {
        ids[i] = top[i];
        weights[i] = p.renormalize ? static_cast<float>(v[top[i]] / norm) : v[top[i]];
      }
      break;
    }
    case RouterKind::kTopKSoftmax: {
      const std::vector<int32_t> top = top_k_indices(v, k);
      std::vector<float> sel(static_cast<size_t>(k));
      for (int64_t i = 0; i < k; ++i) sel[i] = v[top[i]];
      softmax_inplace(sel);
      for (int64_t i = 0; i < k; ++i) {
        ids[i] = top[i];
        weights[i] = sel[i];
      }
      break;
    }
    case RouterKind::kSparseMixer: {
      // Inference form of Phi-3.5-MoE's sparsemixer: per round, the best remaining expert; its weight is its softmax
      // probability over the experts whose logit is within a relative 2 * jitter_eps of it (the others masked).
      std::vector<float> remaining = v;
      for (int64_t r = 0; r < k; ++r) {
        int32_t best = 0;
        for (int32_t e = 1; e < E; ++e)
          if (remaining[e] > remaining[best]) best = e;
        const float threshold = remaining[best];
        std::vector<float> masked = remaining;
        for (int64_t e = 0; e < E; ++e) {
          const float factor = std::max(std::abs(v[e]), threshold);
          if ((threshold - v[e]) / factor > 2.0f * p.jitter_eps) masked[e] = -INFINITY;
        }
        softmax_inplace(masked);
        ids[r] = best;
        weights[r] = masked[best];
        remaining[best] = -INFINITY;
      }
      break;
    }
  }
}

void add_inplace(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

void rope(float* x, std::span<const int32_t> positions, int64_t num_heads, int64_t head_dim,
          std::span<const float> inv_freq, float attention_factor, bool interleaved) {
  const int64_t half = static_cast<int64_t>(inv_freq.size());
  EXL_CHECK(2 * half <= head_dim, kInvalidArgument, "rope: {} frequencies do not fit head_dim {}", half, head_dim);
  std::vector<float> cos_t(half), sin_t(half);
  for (size_t t = 0; t < positions.size(); ++t) {
    for (int64_t i = 0; i < half; ++i) {
      const float angle = static_cast<float>(positions[t]) * inv_freq[i];
      cos_t[i] = std::cos(angle) * attention_factor;
      sin_t[i] = std::sin(angle) * attention_factor;
    }
    for (int64_t h = 0; h < num_heads; ++h) {
      float* v = x + (static_cast<int64_t>(t) * num_heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const int64_t ia = interleaved ? 2 * i : i, ib = interleaved ? 2 * i + 1 : i + half;
        const float a = v[ia], b = v[ib];
        v[ia] = a * cos_t[i] - b * sin_t[i];
        v[ib] = b * cos_t[i] + a * sin_t[i];
      }
    }
  }
}

namespace {

int64_t slot_of(const PagedKv& cache, const AttentionBatch& batch, int64_t s, int64_t pos) {
  const int64_t page_index = pos / cache.page_size;
  EXL_CHECK(page_index < batch.max_pages_per_seq, kInvalidArgument,
            "attention: position {} of sequence {} needs page {} but the block table has {} pages per sequence", pos,
            s, page_index, batch.max_pages_per_seq);
  const int32_t page = batch.block_table[s * batch.max_pages_per_seq + page_index];
  EXL_CHECK(page >= 0 && page < cache.num_pages, kInvalidArgument,
            "attention: block table entry {} of sequence {} is page {}, outside the pool of {} pages", page_index, s,
            page, cache.num_pages);
  return static_cast<int64_t>(page) * cache.page_size + pos % cache.page_size;
}

}  // namespace

void write_kv(const PagedKv& cache, const AttentionBatch& batch, const float* k, const float* v) {
  const int64_t row = cache.num_kv_heads * cache.head_dim;
  for (int64_t s = 0; s < batch.num_seqs; ++s) {
    const int64_t q0 = batch.query_start[s], q1 = batch.query_start[s + 1];
    const int64_t first_pos = batch.context_len[s] - (q1 - q0);
    EXL_CHECK(first_pos >= 0, kInvalidArgument, "write_kv: sequence {} has {} new tokens but context length {}", s,
              q1 - q0, batch.context_len[s]);
    for (int64_t t = q0; t < q1; ++t) {
      const int64_t slot = slot_of(cache, batch, s, first_pos + (t - q0));
      std::memcpy(cache.k_pages + slot * row, k + t * row, sizeof(float) * row);
      std::memcpy(cache.v_pages + slot * row, v + t * row, sizeof(float) * row);
    }
  }
}

void attention(ThreadPool& pool, const AttentionParams& p, const AttentionBatch& batch, const PagedKv& cache,
               const float* q, float* out) {
  EXL_CHECK(p.num_kv_heads > 0 && p.num_heads % p.num_kv_heads == 0, kInvalidArgument,
            "attention: num_heads {} is not a multiple of num_kv_heads {}", p.num_heads, p.num_kv_heads);
  const int64_t group = p.num_heads / p.num_kv_heads;
  const int64_t D = p.head_dim;
  const int64_t kv_row = p.num_kv_heads * D;
  // Work items: (token, head) pairs across all sequences.
  std::vector<int64_t> token_seq;
  for (int64_t s = 0; s < batch.num_seqs; ++s)
    for (int64_t t = batch.query_start[s]; t < batch.query_start[s + 1]; ++t) token_seq.push_back(s);
  const int64_t num_tokens = static_cast<int64_t>(token_seq.size());
  pool.parallel_for(num_tokens * p.num_heads, [&](int64_t i0, int64_t i1) {
    std::vector<float> scores;
    std::vector<float> acc(static_cast<size_t>(D));
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t t = i / p.num_heads, h = i % p.num_heads, kvh = h / group;
      const int64_t s = token_seq[t];
      const int64_t n_new = batch.query_start[s + 1] - batch.query_start[s];
      const int64_t pos = batch.context_len[s] - n_new + (t - batch.query_start[s]);
      const int64_t first = p.sliding_window > 0 ? std::max<int64_t>(0, pos - p.sliding_window + 1) : 0;
      const float* qv = q + (t * p.num_heads + h) * D;
      scores.assign(static_cast<size_t>(pos - first + 1), 0.0f);
      float max_score = -INFINITY;
      for (int64_t j = first; j <= pos; ++j) {
        const float* kv = cache.k_pages + slot_of(cache, batch, s, j) * kv_row + kvh * D;
        float dot = 0.0f;
        for (int64_t d = 0; d < D; ++d) dot += qv[d] * kv[d];
        scores[j - first] = p.softcap > 0 ? p.softcap * std::tanh(dot * p.scale / p.softcap) : dot * p.scale;
        max_score = std::max(max_score, scores[j - first]);
      }
      double denom = 0.0;
      for (float& sc : scores) {
        sc = std::exp(sc - max_score);
        denom += sc;
      }
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t j = first; j <= pos; ++j) {
        const float* vv = cache.v_pages + slot_of(cache, batch, s, j) * kv_row + kvh * D;
        const float w = scores[j - first];
        for (int64_t d = 0; d < D; ++d) acc[d] += w * vv[d];
      }
      float* o = out + (t * p.num_heads + h) * D;
      for (int64_t d = 0; d < D; ++d) o[d] = static_cast<float>(acc[d] / denom);
    }
  });
}

}  // namespace exl::cpu
