#!/usr/bin/env bash
# Short confirmation run: CUDA op tests, CUDA model tests, 2k decode bench for EXL2 4.0 bpw (+ 6-bit head) and GPTQ.
# Usage (device): bash scripts/device/final_check.sh DIR   (DIR: bins.tar.xz + testdata/, as perf_run.sh)
set -uo pipefail
B=${1:-.carry/perf}
tar xJf $B/bins.tar.xz -C $B
export LD_LIBRARY_PATH=$PWD/$B:${LD_LIBRARY_PATH:-}
export EXL_TESTDATA_DIR=$PWD/$B/testdata
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee $OUT/machine.txt
$B/test_backend_ops 2>&1 | grep -vE "^\[ RUN|^$" > $OUT/backend_ops.log; grep -E "PASSED|FAILED" $OUT/backend_ops.log
$B/test_model --gtest_filter='*Cuda*' 2>&1 | grep -vE "^\[ RUN|^$" > $OUT/test_model_cuda.log; grep -E "PASSED|FAILED" $OUT/test_model_cuda.log
for spec in "exl2 --bpw 4.0 --head-bits 6" "gptq"; do
  rm -rf /tmp/m; set -- $spec
  $B/exl make-random-model --preset llama3-8b --format $spec --output /tmp/m > /dev/null 2>&1
  echo "-- $1"; $B/exl bench --model /tmp/m --contexts 2048 --prompt-tokens 2048 --json-out $OUT/bench_$1.json 2>&1 | tail -4
done
