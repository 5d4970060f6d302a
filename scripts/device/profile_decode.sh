#!/usr/bin/env bash
# Profile one batch-1 decode step of a random Llama-3-8B-shaped EXL2 4.0 bpw model on the GPU machine.
# Usage (device): bash scripts/device/profile_decode.sh DIR   (DIR holds a stripped `exl`)
set -uo pipefail
B=${1:-.carry/prof}
export LD_LIBRARY_PATH=$PWD/$B:${LD_LIBRARY_PATH:-}
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1 || echo /usr/local/cuda/bin/ncu)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee $OUT/machine.txt
$B/exl make-random-model --preset llama3-8b --format exl2 --bpw 4.0 --head-bits 6 --output /tmp/m 2>&1 | tail -1
$B/exl bench --model /tmp/m --contexts 128 2048 --prompt-tokens 2048 --decode-tokens 128 --repetitions 3 2>&1 | tail -8 | tee $OUT/bench.txt
echo "ncu: $NCU"
$NCU --clock-control none --cache-control none --metrics gpu__time_duration.sum --csv --print-units base \
  $B/exl bench --model /tmp/m --contexts 2048 --prompt-tokens 16 --decode-tokens 2 --repetitions 1 > $OUT/ncu_decode.csv 2>$OUT/ncu_decode.err
tail -3 $OUT/ncu_decode.err
$NCU --clock-control none --set full -k regex:gemv_quant --launch-skip 1300 --launch-count 8 \
  $B/exl bench --model /tmp/m --contexts 2048 --prompt-tokens 16 --decode-tokens 2 --repetitions 1 > $OUT/ncu_gemv.txt 2>&1
tail -5 $OUT/ncu_gemv.txt
