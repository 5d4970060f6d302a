// exl tokenize / exl detokenize: JSON lines in, JSON lines out.
#include <nlohmann/json.hpp>

#include <iostream>
#include <memory>
#include <string>

#include "commands.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace exl::cli {

namespace {

struct TokenizeOptions {
  std::string model_dir;
  bool add_special_tokens = false;
  bool skip_special_tokens = false;
};

void run_tokenize(const TokenizeOptions& opt) {
  auto tok = tokenizer::Tokenizer::from_dir(opt.model_dir);
  auto add = opt.add_special_tokens ? tokenizer::AddSpecialTokens::kYes : tokenizer::AddSpecialTokens::kNo;
  std::string line;
  size_t line_no = 0;
  std::string out;
  while (std::getline(std::cin, line)) {
    ++line_no;
    if (line.empty() || line == "\r") continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_string()) {
      fail(ErrorKind::kInvalidArgument, "stdin line {}: expected a JSON string", line_no);
    }
    std::vector<int32_t> ids = tok.encode(j.get_ref<const std::string&>(), add);
    out.clear();
    out.push_back('[');
    for (size_t k = 0; k < ids.size(); ++k) {
      if (k > 0) out.push_back(',');
      out += std::to_string(ids[k]);
    }
    out += "]\n";
    std::cout << out;
  }
  std::cout.flush();
}

void run_detokenize(const TokenizeOptions& opt) {
  auto tok = tokenizer::Tokenizer::from_dir(opt.model_dir);
  auto skip = opt.skip_special_tokens ? tokenizer::SkipSpecialTokens::kYes : tokenizer::SkipSpecialTokens::kNo;
  std::string line;
  size_t line_no = 0;
  std::vector<int32_t> ids;
  while (std::getline(std::cin, line)) {
    ++line_no;
    if (line.empty() || line == "\r") continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_array()) {
      fail(ErrorKind::kInvalidArgument, "stdin line {}: expected a JSON array of token ids", line_no);
    }
    ids.clear();
    for (const auto& v : j) {
      if (!v.is_number_integer() || v.get<int64_t>() < INT32_MIN || v.get<int64_t>() > INT32_MAX) {
        fail(ErrorKind::kInvalidArgument, "stdin line {}: expected integer token ids, found {}", line_no, v.dump());
      }
      ids.push_back(static_cast<int32_t>(v.get<int64_t>()));
    }
    nlohmann::json text = tok.decode(ids, skip);
    std::cout << text.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  }
  std::cout.flush();
}

}  // namespace

void add_tokenizer_commands(CLI::App& app) {
  auto opt = std::make_shared<TokenizeOptions>();

  CLI::App* tokenize = app.add_subcommand(
      "tokenize", "Encode text: one JSON string per stdin line in, one JSON array of token ids per line out");
  tokenize->add_option("--model", opt->model_dir, "Model directory holding tokenizer.json")->required();
  tokenize->add_flag("--add-special-tokens", opt->add_special_tokens,
                     "Add the post-processor's special tokens (e.g. BOS), like add_special_tokens=True");
  tokenize->callback([opt] { run_tokenize(*opt); });

  CLI::App* detokenize = app.add_subcommand(
      "detokenize", "Decode ids: one JSON array of token ids per stdin line in, one JSON string per line out");
  detokenize->add_option("--model", opt->model_dir, "Model directory holding tokenizer.json")->required();
  detokenize->add_flag("--skip-special-tokens", opt->skip_special_tokens,
                       "Leave special tokens out of the text, like skip_special_tokens=True");
  detokenize->callback([opt] { run_detokenize(*opt); });
}

}  // namespace exl::cli
