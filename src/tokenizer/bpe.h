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
using VocabMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct BpeOptions {
  std::optional<std::string> unk_token;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
};

// merges: flattened pairs (left0, right0, left1, right1, ...) in rank order.
class BpeModel final : public Model {
 public:
  BpeModel(VocabMap vocab, const std::vector<std::string>& merges, BpeOptions options);

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
    size_t mask_ = 0;
    std::vector<uint64_t> keys_;
    std::vector<MergeValue> values_;
  };

  void build_symbols(std::string_view word, std::vector<Symbol>& symbols) const;
  void merge_symbols(std::vector<Symbol>& symbols) const;

  VocabMap vocab_;
  std::vector<const std::string*> id_to_token_;
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
