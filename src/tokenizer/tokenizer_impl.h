// The state behind exl::tokenizer::Tokenizer (shared by tokenizer.cpp, config.cpp and stream_decoder.cpp).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/components.h"

namespace exl::tokenizer::detail {

// Special tokens and chat template from tokenizer_config.json / generation_config.json / config.json.
struct SpecialConfig {
  std::optional<std::string> bos_token, eos_token, unk_token, pad_token;
  std::optional<int32_t> bos_id, pad_id, unk_id;
  std::vector<int32_t> eos_ids;
  std::optional<bool> add_bos_token;
  std::string chat_template;
};

struct TokenizerImpl {
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<Model> model;
  std::unique_ptr<PostProcessor> post_processor;
  std::unique_ptr<Decoder> decoder;

  std::vector<AddedToken> added_tokens;
  std::vector<int32_t> added_index;  // by id: index into added_tokens, or -1
  AddedTokenMatcher raw_matcher;         // tokens with normalized == false, matched on the input text
  AddedTokenMatcher normalized_matcher;  // tokens with normalized == true, matched on normalized text
  int32_t vocab_size = 0;
  std::optional<std::string> model_unk_token;  // model.unk_token
  SpecialConfig config;

  const AddedToken* added_token(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= added_index.size() || added_index[static_cast<size_t>(id)] < 0) {
      return nullptr;
    }
    return &added_tokens[static_cast<size_t>(added_index[static_cast<size_t>(id)])];
  }
  // The token string an id decodes from, or null (skipped special token / no token has the id).
  // Throws kInvalidArgument for ids outside [0, vocab_size).
  const std::string* decode_token(int32_t id, SkipSpecialTokens skip) const;
  std::string decode(std::span<const int32_t> ids, SkipSpecialTokens skip) const;
  std::optional<int32_t> token_to_id(std::string_view token) const;
};

// Reads the three optional configuration files (texts may be empty) into `impl.config`.
void load_special_config(TokenizerImpl& impl, std::string_view tokenizer_config_json,
                         std::string_view generation_config_json, std::string_view model_config_json);

}  // namespace exl::tokenizer::detail
