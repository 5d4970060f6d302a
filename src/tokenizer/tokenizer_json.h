// Reads tokenizer.json in one SAX pass: model.vocab and model.merges go straight into their final containers (a DOM
// of a 150k-entry vocabulary would cost most of the load time); everything else becomes a small JSON document.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/bpe.h"
#include "tokenizer/components.h"

namespace exl::tokenizer::detail {

struct TokenizerJsonDoc {
  Json root;                         // the document without model.vocab (when an object) and model.merges
  Vocab vocab;                       // model.vocab when it is an object of token → id
  bool has_vocab = false;
  MergeList merges;                  // model.merges in rank order
  bool has_merges = false;
  size_t skipped_merges = 0;         // "a b c" strings with more than one space: ambiguous, never applicable
};

TokenizerJsonDoc parse_tokenizer_json(std::string_view text);

}  // namespace exl::tokenizer::detail
