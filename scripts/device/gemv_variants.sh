#!/usr/bin/env bash
# A/B of GEMV build variants: per-layer GEMV timings (1 token) and 2k decode (EXL2 4.0 bpw + 6-bit head) for the
# base binaries (bins.tar.xz) and each variant pair exl_<v> / bench_linear_<v> in var.tar.xz.
# Usage (device): bash scripts/device/gemv_variants.sh DIR
set -uo pipefail
B=${1:-.carry/perf}
tar xJf $B/bins.tar.xz -C $B; tar xJf $B/var.tar.xz -C $B
export LD_LIBRARY_PATH=$PWD/$B:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee $OUT/machine.txt
rm -rf /tmp/m; $B/exl make-random-model --preset llama3-8b --format exl2 --bpw 4.0 --head-bits 6 --output /tmp/m > /dev/null 2>&1
for v in base $(ls $B | sed -n 's/^exl_//p'); do
  if [ $v = base ]; then E=$B/exl; L=$B/bench_linear; else E=$B/exl_$v; L=$B/bench_linear_$v; fi
  echo "== $v"
  $L --quick --json $OUT/linear_$v.json 2>&1 | grep -E "^exl2-4.0 .* 1 " | head -8
  $E bench --model /tmp/m --contexts 2048 --prompt-tokens 512 2>&1 | tail -2
done 2>&1 | tee $OUT/variants.txt
