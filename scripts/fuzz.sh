#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.cpp) with clang, ASan and UBSan in build-fuzz/ and runs each for a
# bounded time, seeded from ../shared/testdata/tokenizer-vectors. Exits non-zero if any fuzzer finds a crash.
#   FUZZ_SECONDS=60 scripts/fuzz.sh            # seconds per fuzzer (default 60)
#   scripts/fuzz.sh fuzz_tokenizer             # only the named fuzzers
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build="$root/build-fuzz"
seconds="${FUZZ_SECONDS:-60}"
testdata="$root/../shared/testdata"

CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DEXL_FUZZ=ON -DEXL_CUDA=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link,address,undefined" \
  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined" >/dev/null

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(ninja -C "$build" -t targets all | sed -n 's/^\(fuzz_[a-z_]*\): phony$/\1/p' | sort -u)
fi
if [ "${#targets[@]}" -eq 0 ]; then
  echo "fuzz.sh: no fuzz targets configured" >&2
  exit 1
fi
ninja -C "$build" -j"${FUZZ_JOBS:-2}" "${targets[@]}"

# Seeds: every tokenizer vector input, once per text mode (first byte 0 = byte-level, 1 = SentencePiece-style).
seeds="$build/seeds"
rm -rf "$seeds"
mkdir -p "$seeds"
if [ -d "$testdata/tokenizer-vectors/llama.cpp" ]; then
  python3 - "$testdata/tokenizer-vectors/llama.cpp" "$seeds" <<'PY'
import pathlib, sys
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
n = 0
for inp in sorted(src.rglob("*.inp")):
    for text in inp.read_bytes().split(b"\n__ggml_vocab_test__\n"):
        for mode in (b"\x00", b"\x01"):
            (dst / f"seed{n:05d}").write_bytes(mode + text)
            n += 1
PY
fi
# Model-file seeds (fuzz_model_files): the safetensors headers (first 64 KiB, mode byte 0) and the config.json files
# (mode byte 1) of the test models.
if [ -d "$testdata/models" ]; then
  python3 - "$testdata/models" "$seeds" <<'PY'
import pathlib, sys
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for n, f in enumerate(sorted(src.rglob("*.safetensors"))):
    (dst / f"model{n:03d}").write_bytes(b"\x00" + f.open("rb").read(65536))
for n, f in enumerate(sorted(src.rglob("config.json"))):
    (dst / f"config{n:03d}").write_bytes(b"\x01" + f.read_bytes())
PY
fi

status=0
for target in "${targets[@]}"; do
  corpus="$build/corpus/$target"
  mkdir -p "$corpus"
  echo "== $target (${seconds}s)"
  if ! "$build/tests/fuzz/$target" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 \
      -artifact_prefix="$build/$target-" "$corpus" "$seeds" 2>"$build/$target.log"; then
    echo "fuzz.sh: $target found a crash; see $build/$target.log and $build/$target-*" >&2
    tail -40 "$build/$target.log" >&2
    status=1
  else
    tail -2 "$build/$target.log"
  fi
done
exit $status
