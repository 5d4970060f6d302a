#include "commands.h"

namespace exl::cli {

// Filled in by the text front end (tokenize, detokenize).
void add_tokenizer_commands(CLI::App& /*app*/) {}

}  // namespace exl::cli
