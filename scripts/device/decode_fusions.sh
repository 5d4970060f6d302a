#!/usr/bin/env bash
# Validation and A/B of the opt-in decode fusions (EXL_FUSE_NORM=1: RMSNorm inside the GEMVs; EXL_FUSE_ROPE=1:
# RoPE + new-token KV write inside attention_decode), written while no GPU was available (2026-11-23e).
# PART=a (default): CUDA op tests, CUDA model tests (including the greedy test with both fusions), then exl bench at
#   2k context on the EXL2 4.0 bpw llama3-8b shape with: the norm's fragment copies scattered (EXL_NORM_GATHER=0)
#   or gathered (the default), and with the fusions: norm, rope, both.
# PART=b: GPTQ scattered / gathered / both fusions, an ncu per-kernel summary of one EXL2 decode step with both, and bench_linear
#   --quick (one-token rows also on the fragment-ordered path, "+frag").
# PART=d: the defaults chosen after PART=a (op and model tests, GPTQ and EXL2 decode, A/B without the fusions and
#   with EXL_GEMV1_B_ALL_LANES=1, ncu summary of the default step).
# PART=e: op and model tests, the defaults at 128 / 2k / 8k (EXL2, GPTQ), EXL2 with EXL_DECODE_SPLITS=16 and 64.
# PART=f: op and model tests; the defaults at 128 / 2k / 8k (EXL2, GPTQ) and against EXL_ATTN_EARLY=0.
# PART=g: op and model tests (with the fp16 tiny-llama carried), FP16 at 128 / 2k / 8k and against EXL_ATTN_EARLY=0.
# PART=c: gemv_one's B-operand variant (EXL_GEMV1_B_ALL_LANES=0/1): bench_linear --quick and EXL2 decode with each.
# At most 8 files under $OUT. Usage (device): PART=a bash scripts/device/decode_fusions.sh .carry/perf
set -uo pipefail
source "$(dirname "$0")/common.sh"
unpack_bins "${1:-.carry/perf}"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
bench() {  # bench NAME VAR=VALUE...: exl bench at 2k context with those environment variables
  local name=$1; shift
  echo "-- $name $*"
  env "$@" $B/exl bench --model /tmp/m --contexts 2048 --prompt-tokens 2048 \
    --repetitions 2 --json-out $OUT/bench_$name.json 2>&1 | tail -4
}
if [ "${PART:-a}" = g ]; then
  # FP16: the CUDA model tests (carry testdata/models/tiny-llama/fp16 too) and exl bench at 128 / 2k / 8k; FP16 decode
  # keeps the rope kernel but runs attention_decode's early loads.
  run_cuda_tests
  $B/exl make-random-model --preset llama3-8b --format fp16 --output /tmp/m > /dev/null 2>&1 || echo "make-random-model fp16 failed"
  echo "-- fp16 default, 128/2k/8k"
  $B/exl bench --model /tmp/m --repetitions 2 --json-out $OUT/bench_fp16_final.json 2>&1 | tail -6
  echo "-- fp16 EXL_ATTN_EARLY=0"
  EXL_ATTN_EARLY=0 $B/exl bench --model /tmp/m --contexts 2048 --repetitions 2 \
    --json-out $OUT/bench_fp16_noearly.json 2>&1 | tail -3
elif [ "${PART:-a}" = f ]; then
  # attention_decode's loads before the PDL wait (default) against EXL_ATTN_EARLY=0, and the final record.
  run_cuda_tests
  $B/exl make-random-model --preset llama3-8b --format exl2 --bpw 4.0 --head-bits 6 --output /tmp/m > /dev/null 2>&1
  echo "-- exl2 default, 128/2k/8k"
  $B/exl bench --model /tmp/m --repetitions 2 --json-out $OUT/bench_exl2_final.json 2>&1 | tail -6
  echo "-- exl2 EXL_ATTN_EARLY=0"
  EXL_ATTN_EARLY=0 $B/exl bench --model /tmp/m --contexts 2048 8192 --repetitions 2 \
    --json-out $OUT/bench_exl2_noearly.json 2>&1 | tail -4
  rm -rf /tmp/m
  $B/exl make-random-model --preset llama3-8b --format gptq --output /tmp/m > /dev/null 2>&1 || echo "make-random-model gptq failed"
  echo "-- gptq default, 128/2k/8k"
  $B/exl bench --model /tmp/m --repetitions 2 --json-out $OUT/bench_gptq_final.json 2>&1 | tail -6
  echo "-- gptq EXL_ATTN_EARLY=0"
  EXL_ATTN_EARLY=0 $B/exl bench --model /tmp/m --contexts 2048 --repetitions 2 \
    --json-out $OUT/bench_gptq_noearly.json 2>&1 | tail -3
elif [ "${PART:-a}" = e ]; then
  # Final record of the defaults (decode at 128 / 2k / 8k) and an A/B of the decode attention split count.
  run_cuda_tests
  $B/exl make-random-model --preset llama3-8b --format exl2 --bpw 4.0 --head-bits 6 --output /tmp/m > /dev/null 2>&1
  echo "-- exl2 default, 128/2k/8k"
  $B/exl bench --model /tmp/m --repetitions 2 --json-out $OUT/bench_exl2_final.json 2>&1 | tail -6
  for n in 16 64; do
    echo "-- exl2 EXL_DECODE_SPLITS=$n"
    EXL_DECODE_SPLITS=$n $B/exl bench --model /tmp/m --contexts 2048 8192 --repetitions 2 \
      --json-out $OUT/bench_exl2_splits$n.json 2>&1 | tail -4
  done
  rm -rf /tmp/m
  $B/exl make-random-model --preset llama3-8b --format gptq --output /tmp/m > /dev/null 2>&1 || echo "make-random-model gptq failed"
  echo "-- gptq default, 128/2k/8k"
  $B/exl bench --model /tmp/m --repetitions 2 --json-out $OUT/bench_gptq_final.json 2>&1 | tail -6
elif [ "${PART:-a}" = d ]; then
  # The defaults after run 1 of 2026-11-23f (gathered norm copies, fused norm and RoPE), each model also without the
  # fusions and with gemv_one's B-in-all-lanes instance; then the ncu summary of the default EXL2 step (197 launches).
  run_cuda_tests
  $B/exl make-random-model --preset llama3-8b --format gptq --output /tmp/m > /dev/null 2>&1 || echo "make-random-model gptq failed"
  bench gptq_default EXL_NORM_GATHER=1
  bench gptq_nofuse EXL_FUSE_NORM=0 EXL_FUSE_ROPE=0
  bench gptq_ball EXL_GEMV1_B_ALL_LANES=1
  rm -rf /tmp/m
  $B/exl make-random-model --preset llama3-8b --format exl2 --bpw 4.0 --head-bits 6 --output /tmp/m > /dev/null 2>&1
  bench exl2_default EXL_NORM_GATHER=1
  bench exl2_ball EXL_GEMV1_B_ALL_LANES=1
  ncu_step 197 $OUT/ncu_summary.txt
elif [ "${PART:-a}" = c ]; then
  $B/exl make-random-model --preset llama3-8b --format exl2 --bpw 4.0 --head-bits 6 --output /tmp/m > /dev/null 2>&1
  for b in 0 1; do
    echo "== EXL_GEMV1_B_ALL_LANES=$b"
    EXL_GEMV1_B_ALL_LANES=$b timeout 200 $B/bench_linear --quick --json $OUT/bench_linear_ball_$b.json 2>&1 | grep -E "frag|device"
    EXL_GEMV1_B_ALL_LANES=$b $B/exl bench --model /tmp/m --contexts 2048 --prompt-tokens 2048 --repetitions 2 \
      --json-out $OUT/bench_exl2_ball_$b.json 2>&1 | tail -3
  done
elif [ "${PART:-a}" = a ]; then
  run_cuda_tests
  $B/exl make-random-model --preset llama3-8b --format exl2 --bpw 4.0 --head-bits 6 --output /tmp/m > /dev/null 2>&1 \
    || echo "make-random-model exl2 failed"
  bench exl2_scatter EXL_NORM_GATHER=0
  bench exl2_gather EXL_NORM_GATHER=1
  bench exl2_norm EXL_FUSE_NORM=1
  bench exl2_rope EXL_FUSE_ROPE=1
  bench exl2_both EXL_FUSE_NORM=1 EXL_FUSE_ROPE=1
else
  $B/exl make-random-model --preset llama3-8b --format gptq --output /tmp/m > /dev/null 2>&1 || echo "make-random-model gptq failed"
  bench gptq_scatter EXL_NORM_GATHER=0
  bench gptq_gather EXL_NORM_GATHER=1
  bench gptq_both EXL_FUSE_NORM=1 EXL_FUSE_ROPE=1
  rm -rf /tmp/m
  $B/exl make-random-model --preset llama3-8b --format exl2 --bpw 4.0 --head-bits 6 --output /tmp/m > /dev/null 2>&1
  # 197 launches per token with both fusions (292 - 63 norms - 32 ropes); NCU_ENV / NCU_LAUNCHES pick another setup
  ncu_step ${NCU_LAUNCHES:-197} $OUT/ncu_summary.txt ${NCU_ENV:-EXL_FUSE_NORM=1 EXL_FUSE_ROPE=1}
  timeout 200 $B/bench_linear --quick --json $OUT/bench_linear.json 2>&1 | tail -30
fi
ls -la $OUT
