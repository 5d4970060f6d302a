#!/usr/bin/env bash
# Configures and builds exl in build/ (Release-ish, warnings as errors). CUDA is used when a toolkit is found;
# EXL_CUDA=OFF forces a CPU-only build, EXL_CUDA_ARCHS="80;86;89;90" builds the release set of GPU targets.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${EXL_BUILD_DIR:-build}"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEXL_WERROR=ON \
  -DEXL_CUDA="${EXL_CUDA:-AUTO}" -DEXL_CUDA_ARCHS="${EXL_CUDA_ARCHS:-90}" >/dev/null
ninja -C "$build" -j"${EXL_JOBS:-$(nproc)}" "$@"
