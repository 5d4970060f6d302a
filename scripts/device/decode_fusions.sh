#!/usr/bin/env bash
# Validation and A/B runs of the one-token decode path. Variants are exl bench tuning keys (key=value words, passed
# as --tune key=value; docs/tuning.md). The parts that A/B'd the environment switches of finished experiments (norm
# copies scattered / gathered, the decode fusions, gemv_one's B-operand instance, attention's early loads, cuBLAS
# for one-token fp16 GEMVs: PART=a, b, c, d, f, m) were deleted with the switches; their results are in
# bench/results (2026-11-23f, 2026-11-24b).
# PART=e: tests; the defaults at 128 / 2k / 8k (EXL2, GPTQ), EXL2 with decode_splits=16 and 64.
# PART=g: tests (with the fp16 tiny-llama carried), FP16 at 128 / 2k / 8k.
# PART=h: EXL2 and GPTQ at 2k with gemv_one launch-shape configs (H_CONFIGS / H_GPTQ_CONFIGS: space-separated
#   key=value words or "default"; H_TESTS=0 skips the tests).
# PART=i: tests; the defaults at 128 / 2k / 8k (EXL2, GPTQ); EXL2 at 2k with each kind of launch skipped (timing).
# PART=j: tests; the defaults at 128 / 2k / 8k (EXL2, GPTQ) and both at 2k with J_VARIANT (key=value words).
# PART=k: tests; the defaults at 128 / 2k / 8k (EXL2, GPTQ) and both at 2k with K_VARIANT1 and K_VARIANT2.
# PART=l: bench_linear --fp16-head with each gemv_f16 batch depth; GPTQ at 2k with batches 16 and 4, EXL2 at 2k
#   with 48 attention splits.
# PART=n: A/B at 2k without tests: EXL2 with the defaults and each ';'-separated config of N_VARIANTS (each a list
#   of key=value words), then GPTQ the same way when N_GPTQ=1; every result JSON goes into one file, n_results.jsonl.
#   N_AGAIN=0 skips the closing default run; N_TESTS=1 runs the CUDA op and model tests first.
# PART=s: the marginal cost of each kind of decode launch at 2k (--skip-kernels), EXL2 (and GPTQ with S_GPTQ=1).
# PART defaults to j. At most 8 files under $OUT.
# Usage (device): PART=j J_VARIANT="decode_splits=33" bash scripts/device/decode_fusions.sh .carry/perf
set -uo pipefail
source "$(dirname "$0")/common.sh"
unpack_bins "${1:-.carry/perf}"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
# model exl2|gptq|fp16: a fresh random Llama-3-8B-shaped model in /tmp/m (EXL2: 4.0 bpw, 6-bit head).
model() {
  local spec=$1
  [ "$1" = exl2 ] && spec="exl2 --bpw 4.0 --head-bits 6"
  rm -rf /tmp/m
  $B/exl make-random-model --preset llama3-8b --format $spec --output /tmp/m > /dev/null 2>&1 \
    || echo "make-random-model $1 failed"
}
# bench NAME "CONTEXTS" key=value...: exl bench of /tmp/m at those contexts with those tuning keys.
bench() {
  local name=$1 contexts=$2; shift 2
  echo "-- $name (contexts $contexts) $*"
  $B/exl bench --model /tmp/m --contexts $contexts --prompt-tokens 2048 --repetitions 2 $(tunes "$@") \
    --json-out $OUT/bench_$name.json 2>&1 | tail -6
}
ALL="128 2048 8192"
case "${PART:-j}" in
  e)
    # Final record of the defaults and an A/B of the decode attention split count.
    run_cuda_tests
    model exl2
    bench exl2_final "$ALL"
    for n in 16 64; do bench exl2_splits$n "2048 8192" decode_splits=$n; done
    model gptq
    bench gptq_final "$ALL"
    ;;
  g)
    # FP16: the CUDA model tests (carry testdata/models/tiny-llama/fp16 too) and the bench; FP16 decode keeps the
    # rope kernel and the plain path.
    run_cuda_tests
    model fp16
    bench fp16_final "$ALL"
    ;;
  h)
    # gemv_one launch shapes (2026-11-24): EXL2 and GPTQ at 2k with H_CONFIGS / H_GPTQ_CONFIGS.
    [ "${H_TESTS:-1}" = 1 ] && run_cuda_tests
    model exl2
    for c in ${H_CONFIGS:-default gemv1_slices=12,8,4 gemv1_slices=12,8,6 gemv1_slices=12,8,3}; do
      n=$(echo "$c" | tr -c 'A-Za-z0-9\n' '_' | sed 's/^gemv1_//'); bench exl2_$n 2048 ${c/#default/}
    done
    model gptq
    for c in ${H_GPTQ_CONFIGS:-default}; do
      n=$(echo "$c" | tr -c 'A-Za-z0-9\n' '_' | sed 's/^gemv1_//'); bench gptq_$n 2048 ${c/#default/}
    done
    ;;
  i)
    # The defaults at 128 / 2k / 8k, and the marginal cost of each decode launch in the graph: EXL2 at 2k with one
    # kind of launch left out (exl bench --skip-kernels; timing only).
    run_cuda_tests
    model exl2
    bench exl2_final "$ALL"
    for k in ${I_SKIPS:-attn o gateup down qkv}; do
      echo "-- skip $k"
      $B/exl bench --model /tmp/m --contexts 2048 --prompt-tokens 2048 --repetitions 2 --skip-kernels $k 2>&1 | tail -2
    done
    model gptq
    bench gptq_final "$ALL"
    command -v nsys || ls /usr/local/cuda/bin | grep -i nsys || echo "no nsys"
    ;;
  j)
    # Final record of the defaults (tests; EXL2 and GPTQ at 128 / 2k / 8k) and both at 2k with J_VARIANT.
    run_cuda_tests
    model exl2
    bench exl2_final "$ALL"
    bench exl2_variant 2048 ${J_VARIANT:-gemv1_slices=12,4,3}
    model gptq
    bench gptq_final "$ALL"
    bench gptq_variant 2048 ${J_VARIANT:-gemv1_slices=12,4,3}
    ;;
  k)
    # Tests; the defaults at 128 / 2k / 8k (EXL2, GPTQ) and both at 2k with K_VARIANT1 and K_VARIANT2.
    run_cuda_tests
    model exl2
    bench exl2_final "$ALL"
    bench exl2_v1 2048 ${K_VARIANT1:-decode_splits=24}
    bench exl2_v2 2048 ${K_VARIANT2:-decode_splits=48}
    model gptq
    bench gptq_final "$ALL"
    bench gptq_v1 2048 ${K_VARIANT1:-decode_splits=24}
    bench gptq_v2 2048 ${K_VARIANT2:-decode_splits=48}
    ;;
  l)
    # The fp16 head GEMV alone (bench_linear --fp16-head: gemv_f16 with batch 16 (default), 4 and 8), then GPTQ at
    # 2k with batches 16 and 4 and EXL2 at 2k with the default and 48 attention splits. No tests.
    for b in 16 4 8; do
      echo "-- bench_linear --fp16-head f16_gemv_batch=$b"
      $B/bench_linear --fp16-head --tune f16_gemv_batch=$b 2>&1 | grep -E "device|lm_head"
    done
    model gptq
    bench gptq_default 2048
    bench gptq_b4 2048 f16_gemv_batch=4
    model exl2
    bench exl2_default 2048
    bench exl2_s48 2048 decode_splits=48
    ;;
  n)
    n_bench() {  # n_bench FORMAT NAME key=value...
      local fmt=$1 name=$2; shift 2
      echo "-- ${fmt}_$name $*"
      $B/exl bench --model /tmp/m --contexts 2048 --prompt-tokens 2048 --repetitions 2 $(tunes "$@") \
        --json-out /tmp/n.json 2>&1 | grep -E "^ +2048 "
      python3 -c "import json,sys; d=json.load(open('/tmp/n.json')); d['config']=sys.argv[1]; print(json.dumps(d))" \
        "${fmt} $*" >> $OUT/n_results.jsonl
    }
    n_all() {
      model $1
      n_bench $1 default
      local i=0
      IFS=';' read -ra cfgs <<< "${N_VARIANTS:-}"
      for c in "${cfgs[@]}"; do i=$((i + 1)); n_bench $1 v$i $c; done
      [ "${N_AGAIN:-1}" = 1 ] && n_bench $1 default_again
    }
    [ "${N_TESTS:-0}" = 1 ] && run_cuda_tests
    n_all exl2
    [ "${N_GPTQ:-0}" = 1 ] && n_all gptq
    ;;
  s)
    # Marginal cost of each kind of decode launch at 2k (exl bench --skip-kernels; timing only), no tests: EXL2,
    # then GPTQ with S_GPTQ=1. Compare across machines (H100 / H200) to see which phases scale with bandwidth.
    s_all() {
      model $1
      for k in none ${S_SKIPS:-attn o gateup down qkv head}; do
        echo "-- $1 skip $k"
        $B/exl bench --model /tmp/m --contexts 2048 --prompt-tokens 2048 --repetitions 2 \
          $([ $k = none ] || echo "--skip-kernels $k") 2>&1 | grep -E "^ +2048 "
      done
    }
    s_all exl2
    [ "${S_GPTQ:-0}" = 1 ] && s_all gptq
    ;;
  *) echo "decode_fusions.sh: PART=${PART} is not one of e, g, h, i, j, k, l, n, s" >&2; exit 2 ;;
esac
ls -la $OUT
