#!/usr/bin/env bash
# ncu --set full on the decode GEMVs (gate/up grouped, down with SwiGLU, o_proj) of one EXL2 4.0 bpw decode step.
set -uo pipefail
B=${1:-.carry/perf}
[ -f $B/bins.tar.xz ] && [ ! -x $B/exl ] && tar xJf $B/bins.tar.xz -C $B
export LD_LIBRARY_PATH=$PWD/$B:${LD_LIBRARY_PATH:-}
NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
[ -d /tmp/m ] || $B/exl make-random-model --preset llama3-8b --format exl2 --bpw 4.0 --head-bits 6 --output /tmp/m > /dev/null 2>&1
# decode GEMVs are the only gemv launches after the 2048-token prefills (GEMM path); skip into the second layer.
timeout 400 $NCU --clock-control none --set full -k regex:gemv_quant --launch-skip 5 --launch-count 4 \
  $B/exl bench --model /tmp/m --contexts 128 --prompt-tokens 2048 --decode-tokens 2 --repetitions 1 > $OUT/ncu_gemv_full.txt 2>&1
grep -E "gemv_quant_kernel|Duration|DRAM Throughput|Memory Throughput|Achieved Occupancy|Registers Per|Warp Cycles Per Issued|Issue Slots Busy|No Eligible|Stall|L2 Hit|Theoretical Occupancy|Block Limit" $OUT/ncu_gemv_full.txt | head -80
