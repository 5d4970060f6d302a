#!/usr/bin/env bash
# README command 2 (and CI): install, build, and run every test: the full suite (CPU; GPU tests skip without a
# GPU), the parser/loader, generator and sampler tests again under AddressSanitizer + UBSan, and a bounded libFuzzer
# run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ ! -d ../shared/testdata ]; then
  echo "test: ../shared/testdata not found; tests that need it will skip" >&2
fi

echo "== build (warnings as errors)"
bash scripts/build.sh
echo "== tests"
ctest --test-dir build --output-on-failure -j"$(nproc)"

echo "== parser, loader, generator and sampler tests under ASan + UBSan"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DEXL_WERROR=ON -DEXL_CUDA=OFF -DEXL_SANITIZE=ON \
  -DCMAKE_CXX_FLAGS="-O1" >/dev/null
asan_tests=(test_io test_quant test_tokenizer test_chat test_generator test_sampling)
targets=()
for t in "${asan_tests[@]}"; do
  if ninja -C build-asan -t targets all | grep -q "^$t:"; then targets+=("$t"); fi
done
ninja -C build-asan -j"$(nproc)" "${targets[@]}"
for t in "${targets[@]}"; do
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 "./build-asan/tests/$t" --gtest_brief=1
done

echo "== fuzzing (bounded)"
FUZZ_SECONDS="${FUZZ_SECONDS:-30}" bash scripts/fuzz.sh
echo "== all tests passed"
