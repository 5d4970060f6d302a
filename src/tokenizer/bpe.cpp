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

// Tables stay at most 3/4 full (linear probing is still short there) to keep them small: memory first touched is a
// large part of the load time.
void Vocab::reserve(size_t n) {
  size_t cap = 16;
  while (cap * 3 < n * 4) cap <<= 1;
  if (cap <= slots_.size()) return;
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(cap, Slot{0, 0, 0, -1});
  mask_ = cap - 1;
  for (const Slot& s : old) {
    if (s.id < 0) continue;
    size_t i = s.hash & mask_;
    while (slots_[i].id >= 0) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

void Vocab::grow() { reserve(std::max<size_t>(count_ + 1, 8) * 2); }

void Vocab::insert_or_assign(std::string_view token, int32_t id) {
  if ((count_ + 1) * 4 > slots_.size() * 3) grow();
  auto h = static_cast<uint32_t>(StringHash{}(token));
  size_t i = h & mask_;
  while (slots_[i].id >= 0) {
    const Slot& s = slots_[i];
    if (s.hash == h && std::string_view(arena_).substr(s.offset, s.len) == token) {
      slots_[i].id = id;
      max_id_ = std::max(max_id_, id);
      return;
    }
    i = (i + 1) & mask_;
  }
  slots_[i] = Slot{h, static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(token.size()), id};
  arena_.append(token);
  ++count_;
  max_id_ = std::max(max_id_, id);
}

int32_t Vocab::find(std::string_view token) const {
  if (slots_.empty()) return -1;
  auto h = static_cast<uint32_t>(StringHash{}(token));
  for (size_t i = h & mask_;; i = (i + 1) & mask_) {
    const Slot& s = slots_[i];
    if (s.id < 0) return -1;
    if (s.hash == h && s.len == token.size() && std::string_view(arena_).substr(s.offset, s.len) == token) return s.id;
  }
}

void BpeModel::MergeMap::reserve(size_t n) {
  size_t cap = 16;
  while (cap * 3 < n * 4) cap <<= 1;
  mask_ = cap - 1;
  slots_.assign(cap, Slot{kEmpty, MergeValue{0, 0}});
}

void BpeModel::MergeMap::insert_or_assign(uint64_t key, MergeValue value) {
  for (size_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
    if (slots_[i].key == kEmpty || slots_[i].key == key) {
      slots_[i] = Slot{key, value};
      return;
    }
  }
}

const BpeModel::MergeValue* BpeModel::MergeMap::find(uint64_t key) const {
  if (slots_.empty()) return nullptr;
  for (size_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
    if (slots_[i].key == key) return &slots_[i].value;
    if (slots_[i].key == kEmpty) return nullptr;
  }
}

void BpeModel::add_merge(int32_t rank, int32_t left, int32_t right, std::string& joined) {
  const std::string& a = id_to_token_[static_cast<size_t>(left)];
  const std::string& b = id_to_token_[static_cast<size_t>(right)];
  const std::string& prefix = options_.continuing_subword_prefix;
  joined = a;
  if (!prefix.empty() && b.compare(0, prefix.size(), prefix) == 0) {
    joined.append(b, prefix.size(), std::string::npos);
  } else {
    joined += b;
  }
  int32_t merged = vocab_.find(joined);
  if (merged < 0) {
    config_fail(ErrorKind::kCorruptFile, index_path("model.merges", static_cast<size_t>(rank)),
                fmt::format("merge \"{} {}\" produces \"{}\" that is not in model.vocab", a, b, joined));
  }
  merges_.insert_or_assign(pair_key(left, right), MergeValue{rank, merged});
}

BpeModel::BpeModel(Vocab vocab, const MergeList& merges, BpeOptions options)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  id_to_token_.resize(static_cast<size_t>(vocab_.max_id() + 1));
  has_token_.assign(id_to_token_.size(), false);
  bool metaspace_inside = false;
  constexpr std::string_view kMetaspace = "\xE2\x96\x81";
  vocab_.for_each([&](std::string_view token, int32_t id) {
    id_to_token_[static_cast<size_t>(id)] = std::string(token);
    has_token_[static_cast<size_t>(id)] = true;
    // "▁" after a character other than "▁" (e.g. "a▁b"); runs of "▁" at the start are fine.
    for (size_t pos = token.find(kMetaspace, 1); pos != std::string_view::npos && !metaspace_inside;
         pos = token.find(kMetaspace, pos + 1)) {
      if (pos < kMetaspace.size() || token.substr(pos - kMetaspace.size(), kMetaspace.size()) != kMetaspace) {
        metaspace_inside = true;
      }
    }
  });
  split_at_metaspace_ = !metaspace_inside;

  std::string joined;
  if (!merges.strings.empty()) {
    size_t n = merges.strings.size() / 2;
    merges_.reserve(n);
    for (size_t r = 0; r < n; ++r) {
      const std::string& left = merges.strings[2 * r];
      const std::string& right = merges.strings[2 * r + 1];
      int32_t l = vocab_.find(left), rt = vocab_.find(right);
      if (l < 0 || rt < 0) {
        config_fail(ErrorKind::kCorruptFile, index_path("model.merges", r),
                    fmt::format("merge \"{} {}\" uses token \"{}\" that is not in model.vocab", left, right,
                                l < 0 ? left : right));
      }
      add_merge(static_cast<int32_t>(r), l, rt, joined);
    }
  } else {
    size_t n = merges.ids.size() / 2;
    merges_.reserve(n);
    for (size_t r = 0; r < n; ++r) add_merge(static_cast<int32_t>(r), merges.ids[2 * r], merges.ids[2 * r + 1], joined);
  }

  if (options_.unk_token) {
    int32_t id = vocab_.find(*options_.unk_token);
    if (id >= 0) unk_id_ = id;
  }
  for (int b = 0; b < 256; ++b) byte_ids_[b] = vocab_.find(fmt::format("<0x{:02X}>", b));
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  int32_t id = vocab_.find(token);
  if (id < 0) return std::nullopt;
  return id;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() || !has_token_[static_cast<size_t>(id)]) return nullptr;
  return &id_to_token_[static_cast<size_t>(id)];
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
    int32_t id = vocab_.find(key);
    if (id >= 0) {
      if (has_unk) {
        add(*unk_id_, unk_len);
        has_unk = false;
      }
      add(id, len);
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
    int32_t id = vocab_.find(piece);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  if (!split_at_metaspace_ || piece.size() <= kCacheMaxWordBytes) {
    tokenize_word(piece, out);
    return;
  }
  constexpr std::string_view kMetaspace = "\xE2\x96\x81";
  size_t start = 0;
  size_t pos = piece.find(kMetaspace, 1);
  while (pos != std::string_view::npos) {
    bool after_metaspace = pos >= kMetaspace.size() && piece.substr(pos - kMetaspace.size(), kMetaspace.size()) == kMetaspace;
    if (!after_metaspace && pos > start) {
      tokenize_word(piece.substr(start, pos - start), out);
      start = pos;
    }
    pos = piece.find(kMetaspace, pos + kMetaspace.size());
  }
  tokenize_word(piece.substr(start), out);
}

void BpeModel::tokenize_word(std::string_view piece, std::vector<int32_t>& out) const {
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
