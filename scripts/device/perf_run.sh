#!/usr/bin/env bash
# GPU run after a performance change: CUDA op tests, CUDA model tests, decode/prefill bench (EXL2, GPTQ, FP16), and
# an ncu per-kernel breakdown of one EXL2 decode step. At most 8 files under $OUT.
# Usage (device): bash scripts/device/perf_run.sh DIR
# DIR holds bins.tar.xz (stripped test_backend_ops, test_model, exl, libutf8proc.so.2) and testdata/ (tiny-llama).
set -uo pipefail
B=${1:-.carry/perf}
[ -f $B/bins.tar.xz ] && tar xJf $B/bins.tar.xz -C $B   # binaries travel compressed (carry limit)
export LD_LIBRARY_PATH=$PWD/$B:${LD_LIBRARY_PATH:-}
export EXL_TESTDATA_DIR=$PWD/$B/testdata
NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee $OUT/machine.txt
echo "== backend_ops"
$B/test_backend_ops 2>&1 | grep -vE "^\[ RUN|^$" > $OUT/backend_ops.log; grep -E "PASSED|FAILED|Failure|tests ran" $OUT/backend_ops.log | head -20
echo "== model (CUDA)"
$B/test_model --gtest_filter='*Cuda*' 2>&1 | grep -vE "^\[ RUN|^$" > $OUT/test_model_cuda.log; grep -E "OK|PASSED|FAILED|Failure" $OUT/test_model_cuda.log | head -20
echo "== bench"
for spec in "exl2 --bpw 4.0 --head-bits 6" "gptq" "fp16"; do
  rm -rf /tmp/m; set -- $spec
  $B/exl make-random-model --preset llama3-8b --format $spec --output /tmp/m > /dev/null 2>&1 || echo "make-random-model $1 failed"
  echo "-- $1"; $B/exl bench --model /tmp/m --json-out $OUT/bench_$1.json 2>&1 | tail -6
  if [ "$1" = exl2 ]; then
    timeout 200 $NCU --clock-control none --cache-control none --metrics gpu__time_duration.sum --csv --print-units base \
      -k 'regex:gemv|attention_decode|rms_norm|rope|sample|embedding|silu' \
      $B/exl bench --model /tmp/m --contexts 2048 --prompt-tokens 2048 --decode-tokens 2 --repetitions 1 > /tmp/ncu.csv 2>/tmp/ncu.err
    tail -1 /tmp/ncu.err
    python3 scripts/device/ncu_summary.py /tmp/ncu.csv ${STEP_LAUNCHES:-292} > $OUT/ncu_summary.txt; cat $OUT/ncu_summary.txt
  fi
done
