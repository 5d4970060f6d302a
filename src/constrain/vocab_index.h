// The vocabulary as a byte trie in preorder: node i has a byte and a depth, its subtree is [i, end[i]), and the
// parent's position is always the nearest earlier node one level up, so the mask walk keeps one position per depth
// and skips a whole subtree the moment its first byte is refused.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "constrain/constrain.h"

namespace exl::constrain::detail {

struct VocabIndex {
  std::vector<std::string> bytes;
  std::vector<TokenKind> kinds;
  std::vector<int32_t> eos;

  std::vector<uint8_t> node_byte;
  std::vector<uint32_t> node_depth;  // 1 for children of the (implicit) root
  std::vector<uint32_t> node_end;    // one past the node's subtree
  // Text tokens sorted by bytes, which is the trie's preorder: the tokens ending at node i are
  // sorted[node_first[i], node_first[i + 1]) (node_first has one extra entry at the end).
  std::vector<int32_t> sorted;
  std::vector<uint32_t> node_first;
  size_t max_length = 0;
};

}  // namespace exl::constrain::detail
