# Shared setup of the device scripts (sourced, not run). DIR holds bins.tar.xz (stripped binaries plus
# libutf8proc.so.2) and, for the model tests, testdata/.
# unpack_bins DIR: unpacks the binaries into DIR and sets B, LD_LIBRARY_PATH, EXL_SOURCE_DIR and EXL_TESTDATA_DIR
# (DIR/testdata unless already set: data staged by an earlier call on the same machine, stage_data.sh).
unpack_bins() {
  B=$1
  [ -f "$B/bins.tar.xz" ] && tar xJf "$B/bins.tar.xz" -C "$B"   # binaries travel compressed (carry limit)
  export LD_LIBRARY_PATH=$PWD/$B:${LD_LIBRARY_PATH:-}
  export EXL_TESTDATA_DIR=${EXL_TESTDATA_DIR:-$PWD/$B/testdata}
  export EXL_SOURCE_DIR=$PWD   # the in-tree fixtures (tests/fixtures) of this copy of the checkout
}
# run_cuda_tests: the CUDA op tests and the CUDA model tests; full logs to $OUT/backend_ops.log and
# $OUT/test_model_cuda.log, the summary lines to stdout.
run_cuda_tests() {
  echo "== backend_ops"
  "$B/test_backend_ops" 2>&1 | grep -vE "^\[ RUN|^$" > "$OUT/backend_ops.log"
  grep -E "PASSED|FAILED|Failure|tests ran|rel" "$OUT/backend_ops.log" | head -30
  echo "== model (CUDA)"
  "$B/test_model" --gtest_filter='*Cuda*' 2>&1 | grep -vE "^\[ RUN|^$" > "$OUT/test_model_cuda.log"
  grep -E "OK|PASSED|FAILED|Failure" "$OUT/test_model_cuda.log" | head -20
}
# tunes key=value...: the words as exl bench options (--tune key=value each; docs/tuning.md).
tunes() { local kv; for kv in "$@"; do printf -- '--tune %s ' "$kv"; done; }
# ncu_step LAUNCHES SUMMARY [key=value...]: ncu per-kernel times of one decode step of the model in /tmp/m (2k
# context; kernels serialized, clocks and caches left alone) with those tuning keys, summarized per kernel and grid
# over LAUNCHES launches per token into SUMMARY (also printed).
ncu_step() {
  local launches=$1 summary=$2; shift 2
  local ncu; ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
  timeout 150 "$ncu" --clock-control none --cache-control none --metrics gpu__time_duration.sum --csv \
    --print-units base -k 'regex:gemv|attention_decode|rms_norm|rope|sample|embedding|silu' \
    "$B/exl" bench --model /tmp/m --contexts 2048 --prompt-tokens 2048 --decode-tokens 2 --repetitions 1 \
    $(tunes "$@") > /tmp/ncu.csv 2> /tmp/ncu.err
  tail -1 /tmp/ncu.err
  python3 scripts/device/ncu_summary.py /tmp/ncu.csv "$launches" > "$summary"
  cat "$summary"
}
