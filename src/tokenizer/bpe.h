// The BPE model: vocabulary, ranked merges, byte fallback, unknown-token handling and a word cache.
#pragma once

#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/components.h"

namespace exl::tokenizer::detail {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// token → id as one open-addressing table over a string arena: a lookup touches one slot and one arena range,
// and building it allocates almost nothing (this is most of the load time of a 150k vocabulary).
class Vocab {
 public:
  void reserve(size_t n);
  void insert_or_assign(std::string_view token, int32_t id);
  int32_t find(std::string_view token) const;  // -1 if absent
  size_t size() const { return count_; }
  int32_t max_id() const { return max_id_; }
  template <typename F>
  void for_each(F&& fn) const {  // fn(token, id)
    for (const Slot& s : slots_) {
      if (s.id >= 0) fn(std::string_view(arena_).substr(s.offset, s.len), s.id);
    }
  }

 private:
  struct Slot {
    uint32_t hash;
    uint32_t offset;
    uint32_t len;
    int32_t id;  // -1: empty
  };
  void grow();

  std::string arena_;
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t count_ = 0;
  int32_t max_id_ = -1;
};

struct BpeOptions {
  std::optional<std::string> unk_token;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
};

// Merges in rank order, either as flattened id pairs (left0, right0, left1, ...) or, when the file lists merges
// before the vocabulary, as flattened token strings.
struct MergeList {
  std::vector<int32_t> ids;
  std::vector<std::string> strings;
};

class BpeModel final : public Model {
 public:
  BpeModel(Vocab vocab, const MergeList& merges, BpeOptions options);

  void tokenize(std::string_view piece, std::vector<int32_t>& out) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  const std::string* id_to_token(int32_t id) const override;
  int32_t size() const override { return static_cast<int32_t>(id_to_token_.size()); }

 private:
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    uint32_t len;
  };
  struct MergeValue {
    int32_t rank;
    int32_t new_id;
  };
  // Open-addressing map from (left id, right id) to the merge.
  class MergeMap {
   public:
    void reserve(size_t n);
    void insert_or_assign(uint64_t key, MergeValue value);
    const MergeValue* find(uint64_t key) const;

   private:
    static constexpr uint64_t kEmpty = ~0ULL;
    struct Slot {
      uint64_t key;
      MergeValue value;
    };
    size_t mask_ = 0;
    std::vector<Slot> slots_;
  };

  void build_symbols(std::string_view word, std::vector<Symbol>& symbols) const;
  void merge_symbols(std::vector<Symbol>& symbols) const;
  void tokenize_word(std::string_view word, std::vector<int32_t>& out) const;
  void add_merge(int32_t rank, int32_t left, int32_t right, std::string& joined);

  Vocab vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_token_;
  // Set when no token has U+2581 right after another character: pieces can then be cut before every such "▁"
  // without changing the result (no merge can join across the cut), which keeps SentencePiece-style input (one
  // piece for the whole text) fast and cacheable.
  bool split_at_metaspace_ = false;
  MergeMap merges_;
  BpeOptions options_;
  std::optional<int32_t> unk_id_;
  int32_t byte_ids_[256];

  static constexpr size_t kCacheCapacity = 200000;
  static constexpr size_t kCacheMaxWordBytes = 256;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace exl::tokenizer::detail
