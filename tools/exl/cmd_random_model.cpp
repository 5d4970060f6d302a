// exl make-random-model: random weights in real shapes, for benchmarks only.
#include <memory>

#include "commands.h"
#include "core/error.h"
#include "model/random_model.h"
#include "progress.h"

namespace exl::cli {

void add_random_model_command(CLI::App& app) {
  struct Options {
    model::RandomModelOptions model;
    std::string format = "exl2";
    std::string output;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("make-random-model",
                                 "Write a model with random (never zero) weights in real shapes, for benchmarks");
  cmd->add_option("--preset", o->model.preset, "llama3-8b, llama2-7b, llama3-70b, llama3.2-1b or tiny")
      ->capture_default_str();
  cmd->add_option("--format", o->format, "exl2, gptq or fp16")->capture_default_str();
  cmd->add_option("--bpw", o->model.bpw, "EXL2 bits per weight of the decoder layers")->capture_default_str();
  cmd->add_option("--head-bits", o->model.head_bits, "EXL2 head bits (2-8)")->capture_default_str();
  cmd->add_option("--group-size", o->model.gptq_group_size, "GPTQ group size")->capture_default_str();
  cmd->add_option("--seed", o->model.seed, "Random seed")->capture_default_str();
  cmd->add_option("--output", o->output, "Output directory")->required();
  cmd->callback([o] {
    if (o->format == "exl2") {
      o->model.format = model::RandomFormat::kExl2;
    } else if (o->format == "gptq") {
      o->model.format = model::RandomFormat::kGptq;
    } else if (o->format == "fp16") {
      o->model.format = model::RandomFormat::kFp16;
    } else {
      fail(ErrorKind::kInvalidArgument, "--format: expected exl2, gptq or fp16, found '{}'", o->format);
    }
    EXL_CHECK(o->model.head_bits == 2 || o->model.head_bits == 3 || o->model.head_bits == 4 ||
                  o->model.head_bits == 5 || o->model.head_bits == 6 || o->model.head_bits == 8,
              kInvalidArgument, "--head-bits: expected 2, 3, 4, 5, 6 or 8, found {}", o->model.head_bits);
    model::write_random_model(o->output, o->model, print_progress);
  });
}

}  // namespace exl::cli
