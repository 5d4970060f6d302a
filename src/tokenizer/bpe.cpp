#include "tokenizer/bpe.h"

#include <algorithm>

#include "tokenizer/unicode.h"

namespace exl::tokenizer::detail {

namespace {

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

size_t mix(uint64_t key) {
  key ^= key >> 33;
  key *= 0xff51afd7ed558ccdULL;
  key ^= key >> 33;
  return static_cast<size_t>(key);
}

}  // namespace

void BpeModel::MergeMap::reserve(size_t n) {
  size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  mask_ = cap - 1;
  keys_.assign(cap, kEmpty);
  values_.assign(cap, MergeValue{0, 0});
}

void BpeModel::MergeMap::insert_or_assign(uint64_t key, MergeValue value) {
  for (size_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
    if (keys_[i] == kEmpty || keys_[i] == key) {
      keys_[i] = key;
      values_[i] = value;
      return;
    }
  }
}

const BpeModel::MergeValue* BpeModel::MergeMap::find(uint64_t key) const {
  if (keys_.empty()) return nullptr;
  for (size_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
    if (keys_[i] == key) return &values_[i];
    if (keys_[i] == kEmpty) return nullptr;
  }
}

BpeModel::BpeModel(VocabMap vocab, const std::vector<std::string>& merges, BpeOptions options)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  int32_t max_id = -1;
  for (const auto& [token, id] : vocab_) max_id = std::max(max_id, id);
  id_to_token_.assign(static_cast<size_t>(max_id + 1), nullptr);
  for (const auto& [token, id] : vocab_) id_to_token_[static_cast<size_t>(id)] = &token;

  size_t num_merges = merges.size() / 2;
  merges_.reserve(num_merges);
  const std::string& prefix = options_.continuing_subword_prefix;
  std::string joined;
  for (size_t r = 0; r < num_merges; ++r) {
    const std::string& left = merges[2 * r];
    const std::string& right = merges[2 * r + 1];
    auto left_it = vocab_.find(left);
    auto right_it = vocab_.find(right);
    if (left_it == vocab_.end() || right_it == vocab_.end()) {
      config_fail(ErrorKind::kCorruptFile, "model.merges",
                  fmt::format("merge \"{} {}\" uses token \"{}\" that is not in model.vocab", left, right,
                              left_it == vocab_.end() ? left : right));
    }
    joined = left;
    if (!prefix.empty() && right.compare(0, prefix.size(), prefix) == 0) {
      joined.append(right, prefix.size(), std::string::npos);
    } else {
      joined += right;
    }
    auto joined_it = vocab_.find(joined);
    if (joined_it == vocab_.end()) {
      config_fail(ErrorKind::kCorruptFile, "model.merges",
                  fmt::format("merge \"{} {}\" produces \"{}\" that is not in model.vocab", left, right, joined));
    }
    merges_.insert_or_assign(pair_key(left_it->second, right_it->second),
                             MergeValue{static_cast<int32_t>(r), joined_it->second});
  }

  if (options_.unk_token) {
    auto it = vocab_.find(*options_.unk_token);
    if (it != vocab_.end()) unk_id_ = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    auto it = vocab_.find(fmt::format("<0x{:02X}>", b));
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size()) return nullptr;
  return id_to_token_[static_cast<size_t>(id)];
}

// One symbol per character (with prefix/suffix where configured); characters outside the vocabulary become byte
// tokens (byte_fallback) or the unknown token (fused with a preceding unknown when fuse_unk), else are dropped.
void BpeModel::build_symbols(std::string_view word, std::vector<Symbol>& symbols) const {
  symbols.clear();
  bool has_unk = false;  // an unknown-token symbol waits to be added (so that it can absorb more characters)
  uint32_t unk_len = 0;
  auto add = [&](int32_t id, uint32_t len) {
    auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, index - 1, -1, len});
    if (index > 0) symbols[static_cast<size_t>(index - 1)].next = index;
  };
  std::string buffer;
  size_t i = 0;
  while (i < word.size()) {
    size_t start = i;
    i += std::min(utf8_length(static_cast<unsigned char>(word[i])), word.size() - i);
    bool is_first = start == 0, is_last = i >= word.size();
    std::string_view ch = word.substr(start, i - start);
    std::string_view key = ch;
    if ((!is_first && !options_.continuing_subword_prefix.empty()) ||
        (is_last && !options_.end_of_word_suffix.empty())) {
      buffer.clear();
      if (!is_first) buffer += options_.continuing_subword_prefix;
      buffer += ch;
      if (is_last) buffer += options_.end_of_word_suffix;
      key = buffer;
    }
    auto len = static_cast<uint32_t>(ch.size());
    auto it = vocab_.find(key);
    if (it != vocab_.end()) {
      if (has_unk) {
        add(*unk_id_, unk_len);
        has_unk = false;
      }
      add(it->second, len);
      continue;
    }
    if (options_.byte_fallback) {
      bool all = true;
      for (char b : key) all = all && byte_ids_[static_cast<unsigned char>(b)] >= 0;
      if (all) {
        for (char b : key) add(byte_ids_[static_cast<unsigned char>(b)], 1);
        continue;
      }
    }
    if (unk_id_) {
      if (has_unk && options_.fuse_unk) {
        unk_len += len;
      } else {
        if (has_unk) add(*unk_id_, unk_len);
        has_unk = true;
        unk_len = len;
      }
    }
  }
  if (has_unk) add(*unk_id_, unk_len);
}

void BpeModel::merge_symbols(std::vector<Symbol>& symbols) const {
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
  };
  // Lowest rank first, then leftmost.
  auto later = [](const Candidate& a, const Candidate& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  std::vector<Candidate> heap;
  heap.reserve(symbols.size() * 2);
  auto push_pair = [&](int32_t pos) {
    int32_t next = symbols[static_cast<size_t>(pos)].next;
    if (next < 0) return;
    const MergeValue* m =
        merges_.find(pair_key(symbols[static_cast<size_t>(pos)].id, symbols[static_cast<size_t>(next)].id));
    if (m == nullptr) return;
    heap.push_back({m->rank, pos, m->new_id});
    std::push_heap(heap.begin(), heap.end(), later);
  };
  for (size_t k = 0; k + 1 < symbols.size(); ++k) push_pair(static_cast<int32_t>(k));
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    Candidate top = heap.back();
    heap.pop_back();
    Symbol& left = symbols[static_cast<size_t>(top.pos)];
    if (left.len == 0 || left.next < 0) continue;
    Symbol& right = symbols[static_cast<size_t>(left.next)];
    const MergeValue* m = merges_.find(pair_key(left.id, right.id));
    if (m == nullptr || m->new_id != top.new_id) continue;
    left.id = top.new_id;
    left.len += right.len;
    left.next = right.next;
    right.len = 0;
    if (left.next >= 0) symbols[static_cast<size_t>(left.next)].prev = top.pos;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(top.pos);
  }
}

void BpeModel::tokenize(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  if (options_.ignore_merges) {
    auto it = vocab_.find(piece);
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  bool cacheable = piece.size() <= kCacheMaxWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(piece);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  thread_local std::vector<Symbol> symbols;
  build_symbols(piece, symbols);
  merge_symbols(symbols);
  size_t first = out.size();
  for (int32_t k = symbols.empty() ? -1 : 0; k >= 0; k = symbols[static_cast<size_t>(k)].next) {
    out.push_back(symbols[static_cast<size_t>(k)].id);
  }
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() < kCacheCapacity) {
      cache_.emplace(std::string(piece), std::vector<int32_t>(out.begin() + static_cast<ptrdiff_t>(first), out.end()));
    }
  }
}

}  // namespace exl::tokenizer::detail
