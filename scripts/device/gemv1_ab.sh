#!/usr/bin/env bash
# A/B of the one-token GEMV (gemv_one, default) against gemv_quant (EXL_GEMV1=0) in one run: CUDA op tests, CUDA
# model tests, per-layer timings (bench_linear) and 2k-context decode (exl bench, EXL2 4.0 bpw + 6-bit head, GPTQ)
# with both, plus an ncu per-kernel summary of one EXL2 decode step. At most 8 files under $OUT.
# Env: EXL_GEMV1 values to compare in GEMV1_LINEAR / GEMV1_DECODE (default "1 0"; " " skips), GEMV1_NCU=0 skips ncu,
# GEMV1_NCU_MODE = the EXL_GEMV1 value of the ncu run (default 1); NCU_LAUNCHES = launches per token (default 197).
# AB_VAR names another environment variable to compare instead of EXL_GEMV1 (e.g. AB_VAR=EXL_FRAG).
# Usage (device): bash scripts/device/gemv1_ab.sh DIR   (DIR as for gemv_iter.sh)
set -uo pipefail
source "$(dirname "$0")/common.sh"
unpack_bins "${1:-.carry/perf}"
V=${AB_VAR:-EXL_GEMV1}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
run_cuda_tests
for g in ${GEMV1_LINEAR:-1 0}; do
  echo "== bench_linear $V=$g"
  env $V=$g $B/bench_linear --quick --json $OUT/bench_linear_${V}_$g.json 2>&1 | tail -45
done
echo "== decode bench"
for spec in "exl2 --bpw 4.0 --head-bits 6" "gptq"; do
  rm -rf /tmp/m; set -- $spec
  $B/exl make-random-model --preset llama3-8b --format $spec --output /tmp/m > /dev/null 2>&1 || echo "make-random-model $1 failed"
  for g in ${GEMV1_DECODE:-1 0}; do
    echo "-- $1 $V=$g"
    env $V=$g $B/exl bench --model /tmp/m --contexts 2048 --prompt-tokens 2048 --json-out $OUT/bench_$1_${V}_$g.json 2>&1 | tail -5
  done
  if [ "$1" = exl2 ] && [ "${GEMV1_NCU:-1}" = 1 ]; then
    ncu_step ${NCU_LAUNCHES:-197} /tmp/ncu_summary.txt $V=${GEMV1_NCU_MODE:-1}
  fi
done
ls -la $OUT
