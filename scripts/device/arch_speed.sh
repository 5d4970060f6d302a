#!/usr/bin/env bash
# Issue 19's speed acceptance in one run (device): for each preset of ARCH_PRESETS (default
# "qwen2.5-7b:4.0 gemma2-9b:4.0"), a random EXL2 model (6-bit head) and `exl bench` at 2k context with 2048-token
# prefill; each result (with the bandwidth ceiling of the same run) appended to $OUT/arch_speed.jsonl. The Llama-3-8B
# A/B against the previous main is ab_bins.sh (bins.tar.xz with exl = baseline, exl_b = candidate). For MoE presets
# (mixtral-8x7b:3.0, qwen3-30b-a3b:4.0) exl bench's ceiling counts the top_k experts' bytes of each layer (the weights
# actually read per token). EXL_BIN names the binary of DIR to run (default exl; exl_b in an A/B carry).
# Usage (device): ARCH_PRESETS="qwen2.5-7b:4.0" EXL_BIN=exl_b bash scripts/device/arch_speed.sh .carry/perf
set -uo pipefail
source "$(dirname "$0")/common.sh"
unpack_bins "${1:-.carry/perf}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
for item in ${ARCH_PRESETS:-qwen2.5-7b:4.0 gemma2-9b:4.0}; do
  preset=${item%%:*}; bpw=${item##*:}
  rm -rf /tmp/m
  if ! $B/${EXL_BIN:-exl} make-random-model --preset $preset --format exl2 --bpw $bpw --head-bits 6 --output /tmp/m > /tmp/mk.log 2>&1; then
    echo "make-random-model $preset failed: $(tail -1 /tmp/mk.log)"; continue
  fi
  echo "-- $preset $bpw bpw"
  $B/${EXL_BIN:-exl} bench --model /tmp/m --contexts 2048 --prompt-tokens 2048 --repetitions 2 --json-out /tmp/b.json 2>&1 | tail -4
  python3 -c "import json,sys; d=json.load(open('/tmp/b.json')); d['config']=sys.argv[1]; print(json.dumps(d))" \
    "$preset exl2 $bpw" >> $OUT/arch_speed.jsonl
done
ls -la $OUT
