#include <cstdio>
#include <exception>

#include "commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"exl: inference engine for EXL2, GPTQ and FP16 language models"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for all subcommands");
  exl::cli::add_model_commands(app);
  exl::cli::add_perplexity_command(app);
  exl::cli::add_generate_command(app);
  exl::cli::add_random_model_command(app);
  exl::cli::add_bench_command(app);
  exl::cli::add_tokenizer_commands(app);
  exl::cli::add_chat_commands(app);
  exl::cli::add_chat_session_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {  // a command's chosen exit status (its message is already printed)
    return e.get_exit_code();
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : exl::cli::kExitUsage;
  } catch (const exl::Error& e) {
    std::fprintf(stderr, "exl: error (%s): %s\n", std::string(exl::error_kind_name(e.kind())).c_str(), e.what());
    return exl::cli::kExitError;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "exl: internal error: %s\n", e.what());
    return exl::cli::kExitError;
  }
  return 0;
}
