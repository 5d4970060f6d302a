#!/usr/bin/env bash
# Warp-state (stall reason), scheduler, memory and occupancy sections of ncu for the four decode GEMV launches of
# one layer (q/k/v, o, gate/up, down) of an EXL2 4.0 bpw llama3-8b decode step (gemv_one on the fused one-token
# path; the gemv_quant side of the 2026-11-23c comparison went with EXL_GEMV1). Extra words are exl bench --tune
# key=value settings. Usage (device): bash scripts/device/ncu_stalls.sh DIR [key=value...]  (DIR as for gemv_iter.sh)
set -uo pipefail
source "$(dirname "$0")/common.sh"
unpack_bins "${1:-.carry/perf}"; shift || true
NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
rm -rf /tmp/m
$B/exl make-random-model --preset llama3-8b --format exl2 --bpw 4.0 --head-bits 6 --output /tmp/m > /dev/null 2>&1
# Skip the prefill and the first decode steps' launches; profile 4 GEMV launches of one decode step.
timeout 240 $NCU --clock-control none --section WarpStateStats --section SchedulerStats \
  --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats --section SpeedOfLight --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio" \
  -k "regex:gemv_(one|quant)_kernel" --launch-skip 400 --launch-count 4 \
  $B/exl bench --model /tmp/m --contexts 128 --prompt-tokens 128 --decode-tokens 4 --repetitions 1 $(tunes "$@") \
  > $OUT/ncu_stalls.txt 2>&1
grep -E "gemv_|Duration|DRAM Throughput|Memory Throughput|Issue Slots Busy|No Eligible|Stall|Warp Cycles Per Issued|Achieved Occupancy|Registers Per|Active Warps Per|Eligible Warps|Issued Warp|stalled" $OUT/ncu_stalls.txt | head -120
ls -la $OUT
