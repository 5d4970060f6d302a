#!/usr/bin/env bash
# CUDA model tests and an ncu per-kernel breakdown of one EXL2 4.0 bpw Llama-3-8B-shape decode step.
# Usage (device): bash scripts/device/model_and_profile.sh DIR   (DIR as for perf_run.sh)
set -uo pipefail
B=${1:-.carry/perf}
[ -f $B/bins.tar.xz ] && tar xJf $B/bins.tar.xz -C $B
export LD_LIBRARY_PATH=$PWD/$B:${LD_LIBRARY_PATH:-}
export EXL_TESTDATA_DIR=$PWD/$B/testdata
NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
$B/test_model --gtest_filter='*Cuda*' 2>&1 | grep -vE "^\[ RUN|^$" > $OUT/test_model_cuda.log; grep -E "PASSED|FAILED|Failure|SKIPPED|tests ran" $OUT/test_model_cuda.log | head -30
$B/exl make-random-model --preset llama3-8b --format exl2 --bpw 4.0 --head-bits 6 --output /tmp/m > /dev/null 2>&1
timeout 300 $NCU --clock-control none --cache-control none --metrics gpu__time_duration.sum --csv --print-units base \
  -k 'regex:gemv|attention_decode|rms_norm|rope|sample|embedding|silu' \
  $B/exl bench --model /tmp/m --contexts 2048 --prompt-tokens 2048 --decode-tokens 2 --repetitions 1 > $OUT/ncu_decode.csv 2>$OUT/ncu_decode.err
tail -2 $OUT/ncu_decode.err
python3 scripts/device/ncu_summary.py $OUT/ncu_decode.csv ${STEP_LAUNCHES:-292} | tee $OUT/ncu_summary.txt
