#include "commands.h"

namespace exl::cli {

void add_model_commands(CLI::App& /*app*/) {}

}  // namespace exl::cli
