#include "commands.h"
#include "core/error.h"
#include "core/json_util.h"
#include "tokenizer/tokenizer.h"

namespace exl::cli {

model::TokenRows tokenize_text_rows(const std::string& model_dir, const std::string& text_file, int64_t length,
                                    int64_t offset_tokens, int64_t max_rows) {
  const std::string text = read_text_file(text_file);
  const auto tok = tokenizer::Tokenizer::from_dir(model_dir);
  const std::vector<int32_t> ids = tok.encode(text, tokenizer::AddSpecialTokens::kNo);
  EXL_CHECK(offset_tokens >= 0 && offset_tokens < static_cast<int64_t>(ids.size()), kInvalidArgument,
            "--offset-tokens {} is outside the {} tokens of {}", offset_tokens, ids.size(), text_file);
  model::TokenRows rows =
      model::split_rows(std::vector<int32_t>(ids.begin() + offset_tokens, ids.end()), length);
  if (max_rows > 0 && static_cast<int64_t>(rows.size()) > max_rows) rows.resize(static_cast<size_t>(max_rows));
  EXL_CHECK(!rows.empty(), kInvalidArgument, "{}: {} tokens, fewer than one row of --length {}", text_file,
            ids.size(), length);
  return rows;
}

}  // namespace exl::cli
