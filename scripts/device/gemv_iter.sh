#!/usr/bin/env bash
# Quick GPU iteration on the quantized GEMV: op tests, CUDA model tests, per-layer GEMV timings, 2k decode bench
# (EXL2 4.0 bpw + 6-bit head, GPTQ 4-bit; EXL2 also with 3 and 1 GEMV blocks per SM), and the SASS of the 1-token
# GEMV kernels. At most 8 files under $OUT.
# Usage (device): bash scripts/device/gemv_iter.sh DIR
# DIR holds bins.tar.xz (stripped test_backend_ops, test_model, exl, bench_linear, libutf8proc.so.2) and testdata/.
set -uo pipefail
source "$(dirname "$0")/common.sh"
unpack_bins "${1:-.carry/perf}"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee $OUT/machine.txt
run_cuda_tests
echo "== bench_linear"
$B/bench_linear --quick --json $OUT/bench_linear.json 2>&1 | tail -40
echo "== decode bench"
CTX="--contexts 2048 --prompt-tokens 2048"
for spec in "exl2 --bpw 4.0 --head-bits 6" "gptq"; do
  rm -rf /tmp/m; set -- $spec
  $B/exl make-random-model --preset llama3-8b --format $spec --output /tmp/m > /dev/null 2>&1 || echo "make-random-model $1 failed"
  echo "-- $1"; $B/exl bench --model /tmp/m $CTX --json-out $OUT/bench_$1.json 2>&1 | tail -6
  if [ "$1" = exl2 ]; then
    for bps in 3 1; do
      echo "-- exl2, gemv_blocks_per_sm=$bps"
      $B/exl bench --model /tmp/m --contexts 2048 --prompt-tokens 512 --tune gemv_blocks_per_sm=$bps 2>&1 | tail -2
    done
    ncu_step 165 $OUT/ncu_summary.txt
  fi
done
CUOBJ=$(command -v cuobjdump || echo /usr/local/cuda/bin/cuobjdump)
$CUOBJ -sass $B/bench_linear 2>/dev/null | awk '/Function : .*gemv_quant_kernelILi1ELb/{p=1} /Function : /&&!/gemv_quant_kernelILi1ELb/{p=0} p' \
  | xz -9 > $OUT/gemv_sass.txt.xz
ls -la $OUT
