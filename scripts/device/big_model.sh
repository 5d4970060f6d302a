#!/usr/bin/env bash
# Llama-3-70B shape at 2.5 bpw (EXL2, issue 4's "report llama3-70b at 2.5 bpw on an H200"): make-random-model on
# the device's disk (about 22 GB), then exl bench at 128 / 2k context with one repetition. Run on kind nvidia-h200
# (the H100's 80 GB also holds it). Usage (device): bash scripts/device/big_model.sh .carry/perf
set -uo pipefail
source "$(dirname "$0")/common.sh"
unpack_bins "${1:-.carry/perf}"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
df -h /tmp | tail -1
rm -rf /tmp/m
/usr/bin/time -f "make-random-model %es" $B/exl make-random-model --preset llama3-70b --format exl2 --bpw 2.5 \
  --output /tmp/m 2>&1 | tail -2
du -sh /tmp/m
$B/exl inspect --model /tmp/m 2>&1 | head -12
# BIG_TESTS=1: the CUDA op and model tests first (the binaries of this carry).
[ "${BIG_TESTS:-0}" = 1 ] && run_cuda_tests
/usr/bin/time -f "exl bench (load, prefill, decode) %es, %MKB max RSS" \
  $B/exl bench --model /tmp/m --contexts 128 2048 --prompt-tokens 2048 --repetitions 1 \
  --json-out $OUT/bench_llama3_70b_2p5.json 2>&1 | tail -7
rm -rf /tmp/m
