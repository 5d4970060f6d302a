#include "commands.h"

namespace exl::cli {

// Filled in by the chat template engine (chat-template).
void add_chat_commands(CLI::App& /*app*/) {}

}  // namespace exl::cli
