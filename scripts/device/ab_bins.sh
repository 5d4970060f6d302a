#!/usr/bin/env bash
# A/B of two exl builds in one run: DIR/bins.tar.xz holds exl (A) and exl_b (B, the candidate). For each format of
# AB_FORMATS (default "exl2 gptq"): a random Llama-3-8B model (EXL2: 4.0 bpw, 6-bit head), then exl bench at 2k with
# A and B alternating (AB_ROUNDS pairs, default 2), then B under each ';'-separated list of key=value tuning keys
# in AB_B_TUNES (exl bench --tune; docs/tuning.md). Every result goes to $OUT/ab_results.jsonl with its label.
# AB_TESTS=1 runs the CUDA op and model tests first (on the A binaries).
# Usage (device): AB_ROUNDS=2 bash scripts/device/ab_bins.sh .carry/perf
set -uo pipefail
source "$(dirname "$0")/common.sh"
unpack_bins "${1:-.carry/perf}"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
[ -x "$B/exl_b" ] || { echo "ab_bins.sh: $B/exl_b is missing (pack the candidate build as exl_b)" >&2; exit 2; }
[ "${AB_TESTS:-0}" = 1 ] && run_cuda_tests
one() {  # one FORMAT LABEL BINARY key=value...
  local fmt=$1 label=$2 bin=$3; shift 3
  echo "-- $fmt $label $*"
  $B/$bin bench --model /tmp/m --contexts 2048 --prompt-tokens 2048 --repetitions 2 --json-out /tmp/ab.json \
    $(tunes "$@") 2>&1 | grep -E "^ +2048 "
  python3 -c "import json,sys; d=json.load(open('/tmp/ab.json')); d['config']=sys.argv[1]; print(json.dumps(d))" \
    "$fmt $label $*" >> $OUT/ab_results.jsonl
}
for fmt in ${AB_FORMATS:-exl2 gptq}; do
  spec=$fmt; [ $fmt = exl2 ] && spec="exl2 --bpw 4.0 --head-bits 6"
  rm -rf /tmp/m
  $B/exl make-random-model --preset llama3-8b --format $spec --output /tmp/m > /dev/null 2>&1 || echo "make-random-model $fmt failed"
  for r in $(seq 1 ${AB_ROUNDS:-2}); do
    one $fmt A exl
    one $fmt B exl_b
  done
  IFS=';' read -ra tune_lists <<< "${AB_B_TUNES:-}"
  for t in "${tune_lists[@]}"; do [ -n "$t" ] && one $fmt B exl_b $t; done
done
ls -la $OUT
