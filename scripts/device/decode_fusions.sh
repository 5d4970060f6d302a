#!/usr/bin/env bash
# Validation and A/B runs of the one-token decode path (2026-11-23e/f): the norm's gathered fragment copies
# (EXL_NORM_GATHER), the decode fusions (EXL_FUSE_NORM: RMSNorm inside the GEMVs; EXL_FUSE_ROPE: RoPE + new-token KV
# write inside attention_decode), attention's early loads (EXL_ATTN_EARLY) and gemv_one's B-operand instance.
# PART=a (default): CUDA op and model tests, then EXL2 at 2k with the norm copies scattered / gathered and with the
#   fusions: norm, rope, both.
# PART=b: GPTQ scattered / gathered / both fusions, an ncu per-kernel summary of one EXL2 decode step with both
#   (NCU_ENV, NCU_LAUNCHES), and bench_linear --quick (one-token rows also on the fragment-ordered path, "+frag").
# PART=c: EXL_GEMV1_B_ALL_LANES=0/1: bench_linear --quick and EXL2 decode with each.
# PART=d: tests; GPTQ and EXL2 with the defaults, without the fusions and with EXL_GEMV1_B_ALL_LANES=1; the ncu
#   summary of the default step.
# PART=e: tests; the defaults at 128 / 2k / 8k (EXL2, GPTQ), EXL2 with EXL_DECODE_SPLITS=16 and 64.
# PART=f: tests; the defaults at 128 / 2k / 8k (EXL2, GPTQ) and against EXL_ATTN_EARLY=0.
# PART=g: tests (with the fp16 tiny-llama carried), FP16 at 128 / 2k / 8k and against EXL_ATTN_EARLY=0.
# PART=j: tests; the defaults at 128 / 2k / 8k (EXL2, GPTQ) and both at 2k with J_VARIANT.
# PART=m: FP16 defaults at 128 / 2k / 8k and with cuBLAS for one token (EXL_F16_GEMV=0) at 2k. No tests.
# PART=l: bench_linear --fp16-head with gemv_f16 batch variants and cuBLAS; GPTQ / EXL2 at 2k with variants.
# PART=k: tests; the defaults at 128 / 2k / 8k (EXL2, GPTQ) and both at 2k with K_VARIANT1 and K_VARIANT2.
# PART=i: tests; the defaults at 128 / 2k / 8k (EXL2, GPTQ); EXL2 at 2k with each kind of launch skipped (timing).
# PART=n: A/B at 2k without tests: EXL2 with the defaults and each ';'-separated config of N_VARIANTS (each a list
#   of VAR=VALUE), then GPTQ the same way when N_GPTQ=1; every result JSON goes into one file, n_results.jsonl.
#   N_AGAIN=0 skips the closing default run; N_TESTS=1 runs the CUDA op and model tests first; N_TEST_ENV (with
#   N_TEST_FILTER) runs the op tests under that environment.
# PART=s: the marginal cost of each kind of decode launch at 2k (--skip-kernels), EXL2 (and GPTQ with S_GPTQ=1).
# PART=h: tests (also with 12-warp blocks); EXL2 and GPTQ at 2k with gemv_one launch-shape / L1-prefetch configs.
# At most 8 files under $OUT. Usage (device): PART=a bash scripts/device/decode_fusions.sh .carry/perf
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
# bench NAME "CONTEXTS" VAR=VALUE...: exl bench of /tmp/m at those contexts with those environment variables.
bench() {
  local name=$1 contexts=$2; shift 2
  echo "-- $name (contexts $contexts) $*"
  env "$@" $B/exl bench --model /tmp/m --contexts $contexts --prompt-tokens 2048 --repetitions 2 \
    --json-out $OUT/bench_$name.json 2>&1 | tail -6
}
ALL="128 2048 8192"
case "${PART:-a}" in
  a)
    run_cuda_tests
    model exl2
    bench exl2_scatter 2048 EXL_NORM_GATHER=0
    bench exl2_gather 2048 EXL_NORM_GATHER=1
    bench exl2_norm 2048 EXL_FUSE_NORM=1
    bench exl2_rope 2048 EXL_FUSE_ROPE=1
    bench exl2_both 2048 EXL_FUSE_NORM=1 EXL_FUSE_ROPE=1
    ;;
  b)
    model gptq
    bench gptq_scatter 2048 EXL_NORM_GATHER=0
    bench gptq_gather 2048 EXL_NORM_GATHER=1
    bench gptq_both 2048 EXL_FUSE_NORM=1 EXL_FUSE_ROPE=1
    model exl2
    # 197 launches per token with both fusions (292 - 63 norms - 32 ropes); NCU_ENV / NCU_LAUNCHES pick another setup
    ncu_step ${NCU_LAUNCHES:-197} $OUT/ncu_summary.txt ${NCU_ENV:-EXL_FUSE_NORM=1 EXL_FUSE_ROPE=1}
    timeout 200 $B/bench_linear --quick --json $OUT/bench_linear.json 2>&1 | tail -30
    ;;
  c)
    model exl2
    for b in 0 1; do
      echo "== EXL_GEMV1_B_ALL_LANES=$b"
      EXL_GEMV1_B_ALL_LANES=$b timeout 200 $B/bench_linear --quick --json $OUT/bench_linear_ball_$b.json 2>&1 \
        | grep -E "frag|device"
      bench exl2_ball_$b 2048 EXL_GEMV1_B_ALL_LANES=$b
    done
    ;;
  d)
    # The defaults after run 1 of 2026-11-23f (gathered norm copies, fused norm and RoPE), each model also without
    # the fusions and with gemv_one's B-in-all-lanes instance; then the ncu summary of the default EXL2 step.
    run_cuda_tests
    model gptq
    bench gptq_default 2048 EXL_NORM_GATHER=1
    bench gptq_nofuse 2048 EXL_FUSE_NORM=0 EXL_FUSE_ROPE=0
    bench gptq_ball 2048 EXL_GEMV1_B_ALL_LANES=1
    model exl2
    bench exl2_default 2048 EXL_NORM_GATHER=1
    bench exl2_ball 2048 EXL_GEMV1_B_ALL_LANES=1
    ncu_step 197 $OUT/ncu_summary.txt
    ;;
  e)
    # Final record of the defaults and an A/B of the decode attention split count.
    run_cuda_tests
    model exl2
    bench exl2_final "$ALL" EXL_NORM_GATHER=1
    for n in 16 64; do bench exl2_splits$n "2048 8192" EXL_DECODE_SPLITS=$n; done
    model gptq
    bench gptq_final "$ALL" EXL_NORM_GATHER=1
    ;;
  f)
    # attention_decode's loads before the PDL wait (default) against EXL_ATTN_EARLY=0, and the final record.
    run_cuda_tests
    model exl2
    bench exl2_final "$ALL" EXL_ATTN_EARLY=1
    bench exl2_noearly "2048 8192" EXL_ATTN_EARLY=0
    model gptq
    bench gptq_final "$ALL" EXL_ATTN_EARLY=1
    bench gptq_noearly 2048 EXL_ATTN_EARLY=0
    ;;
  g)
    # FP16: the CUDA model tests (carry testdata/models/tiny-llama/fp16 too) and the bench; FP16 decode keeps the
    # rope kernel but runs attention_decode's early loads.
    run_cuda_tests
    model fp16
    bench fp16_final "$ALL" EXL_ATTN_EARLY=1
    bench fp16_noearly 2048 EXL_ATTN_EARLY=0
    ;;
  h)
    # gemv_one launch shapes and L1 prefetch (2026-11-24): tests with the defaults and with 12-warp blocks
    # (EXL_GEMV1_SLICES="one-wave single, other, pair"), then EXL2 and GPTQ at 2k with H_CONFIGS.
    if [ "${H_TESTS:-1}" = 1 ]; then
      run_cuda_tests
      echo "== tests with EXL_GEMV1_SLICES=${H_TEST_SLICES:-12,8,6}"
      EXL_GEMV1_SLICES=${H_TEST_SLICES:-12,8,6} "$B/test_backend_ops" 2>&1 | grep -E "PASSED|FAILED|Failure" | head -10
      EXL_GEMV1_SLICES=${H_TEST_SLICES:-12,8,6} "$B/test_model" --gtest_filter='*Cuda*' 2>&1 | grep -E "PASSED|FAILED|Failure" | head -10
    fi
    model exl2
    for c in ${H_CONFIGS:-default EXL_GEMV1_L1=0 EXL_GEMV1_SLICES=12,8,4 EXL_GEMV1_SLICES=12,8,6 EXL_GEMV1_SLICES=12,8,3}; do
      n=$(echo "$c" | tr -c 'A-Za-z0-9\n' '_' | sed 's/EXL_GEMV1_//'); bench exl2_$n 2048 ${c/#default/EXL_DEFAULTS=1}
    done
    model gptq
    for c in ${H_GPTQ_CONFIGS:-default}; do
      n=$(echo "$c" | tr -c 'A-Za-z0-9\n' '_' | sed 's/EXL_GEMV1_//'); bench gptq_$n 2048 ${c/#default/EXL_DEFAULTS=1}
    done
    ;;
  i)
    # The new defaults (pair slices 3) at 128 / 2k / 8k, and the marginal cost of each decode launch in the graph:
    # EXL2 at 2k with one kind of launch left out (exl bench --skip-kernels; timing only).
    run_cuda_tests
    model exl2
    bench exl2_final "$ALL" EXL_DEFAULTS=1
    for k in ${I_SKIPS:-combine attn o gateup down qkv}; do
      echo "-- skip $k"
      $B/exl bench --model /tmp/m --contexts 2048 --prompt-tokens 2048 --repetitions 2 --skip-kernels $k 2>&1 | tail -2
    done
    model gptq
    bench gptq_final "$ALL" EXL_DEFAULTS=1
    command -v nsys || ls /usr/local/cuda/bin | grep -i nsys || echo "no nsys"
    ;;
  j)
    # Final record of the defaults (tests; EXL2 and GPTQ at 128 / 2k / 8k) and both at 2k with J_VARIANT.
    # (Run 5 of 2026-11-24 ran an earlier PART=j: the fused attention combine, since reverted.)
    run_cuda_tests
    model exl2
    bench exl2_final "$ALL" EXL_DEFAULTS=1
    bench exl2_variant 2048 ${J_VARIANT:-EXL_GEMV1_SLICES=12,4,3}
    model gptq
    bench gptq_final "$ALL" EXL_DEFAULTS=1
    bench gptq_variant 2048 ${J_VARIANT:-EXL_GEMV1_SLICES=12,4,3}
    ;;
  k)
    # Tests; the defaults at 128 / 2k / 8k (EXL2, GPTQ) and both at 2k with K_VARIANT1 and K_VARIANT2.
    run_cuda_tests
    model exl2
    bench exl2_final "$ALL" EXL_DEFAULTS=1
    bench exl2_v1 2048 ${K_VARIANT1:-EXL_DECODE_SPLITS=24}
    bench exl2_v2 2048 ${K_VARIANT2:-EXL_DECODE_SPLITS=48}
    model gptq
    bench gptq_final "$ALL" EXL_DEFAULTS=1
    bench gptq_v1 2048 ${K_VARIANT1:-EXL_DECODE_SPLITS=24}
    bench gptq_v2 2048 ${K_VARIANT2:-EXL_DECODE_SPLITS=48}
    ;;
  l)
    # The fp16 head GEMV alone (bench_linear --fp16-head: gemv_f16 batch 8 / cuBLAS / batch 4 / batch 16), then
    # GPTQ at 2k with each batch and EXL2 at 2k with 33 (default) and 48 attention splits. No tests.
    for v in EXL_DEFAULTS=1 EXL_F16_GEMV=0 EXL_F16_GEMV_BATCH=4 EXL_F16_GEMV_BATCH=16; do
      echo "-- bench_linear --fp16-head $v"
      env $v $B/bench_linear --fp16-head 2>&1 | grep -E "device|lm_head"
    done
    model gptq
    bench gptq_default 2048 EXL_DEFAULTS=1
    bench gptq_b16 2048 EXL_F16_GEMV_BATCH=16
    bench gptq_b4 2048 EXL_F16_GEMV_BATCH=4
    model exl2
    bench exl2_default 2048 EXL_DEFAULTS=1
    bench exl2_s48 2048 EXL_DECODE_SPLITS=48
    ;;
  m)
    # FP16 with the one-token gemv_f16 (2026-11-24b): defaults at 128 / 2k / 8k and cuBLAS (EXL_F16_GEMV=0) at 2k.
    model fp16
    bench fp16_final "$ALL" EXL_DEFAULTS=1
    bench fp16_cublas 2048 EXL_F16_GEMV=0
    ;;
  n)
    n_bench() {  # n_bench FORMAT NAME VAR=VALUE...
      local fmt=$1 name=$2; shift 2
      echo "-- ${fmt}_$name $*"
      env "$@" $B/exl bench --model /tmp/m --contexts 2048 --prompt-tokens 2048 --repetitions 2 \
        --json-out /tmp/n.json 2>&1 | grep -E "^ +2048 "
      python3 -c "import json,sys; d=json.load(open('/tmp/n.json')); d['config']=sys.argv[1]; print(json.dumps(d))" \
        "${fmt} $*" >> $OUT/n_results.jsonl
    }
    n_all() {
      model $1
      n_bench $1 default EXL_DEFAULTS=1
      local i=0
      IFS=';' read -ra cfgs <<< "${N_VARIANTS:-EXL_DEFAULTS=1}"
      for c in "${cfgs[@]}"; do i=$((i + 1)); n_bench $1 v$i $c; done
      [ "${N_AGAIN:-1}" = 1 ] && n_bench $1 default_again EXL_DEFAULTS=1
    }
    [ "${N_TESTS:-0}" = 1 ] && run_cuda_tests
    if [ -n "${N_TEST_ENV:-}" ]; then  # the op tests under that environment first (summary lines only)
      env $N_TEST_ENV "$B/test_backend_ops" --gtest_filter="${N_TEST_FILTER:-*}" 2>&1 | grep -E "PASSED|FAILED|tests ran"
    fi
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
  *) echo "decode_fusions.sh: PART=${PART} is not one of a-n, s" >&2; exit 2 ;;
esac
ls -la $OUT
