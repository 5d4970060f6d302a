// The CUDA backend's tunable launch knobs as one options struct (CudaRunnerOptions::tuning, exl bench --tune
// key=value), every default in kernels/tuning.h; docs/tuning.md lists the keys, their ranges and the benchmarks
// that chose the defaults.
#pragma once

#include <string>
#include <string_view>

#include "kernels/tuning.h"

namespace exl::cuda {

using CudaTuning = kernels::Tuning;

// The keys, comma-separated, in a fixed order (for help and error texts).
std::string tuning_keys();

// Sets the field named by "key=value". An unknown key or a value that is not of the key's form (integers; for
// gemv1_slices three or four comma-separated integers) is an exl::Error (kInvalidArgument) that lists the keys.
// Ranges are left to validate_tuning.
void set_tuning(CudaTuning& tuning, std::string_view assignment);

// Throws exl::Error (kInvalidArgument) naming the key, its range and the value for the first field out of range.
// The runner calls it once, when it is created.
void validate_tuning(const CudaTuning& tuning);

// "key=value" for every field that differs from the default, space-separated (empty: all defaults).
std::string tuning_changes(const CudaTuning& tuning);

}  // namespace exl::cuda
