#!/usr/bin/env bash
# Final integration run on the GPU machine (carried with .carry/final).
set -uo pipefail
B=.carry/final
export LD_LIBRARY_PATH=$PWD/$B:${LD_LIBRARY_PATH:-}
export EXL_TESTDATA_DIR=$PWD/$B/testdata
T=$EXL_TESTDATA_DIR/models/tiny-llama
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee $OUT/machine.txt
echo "== CUDA model tests (tiny-llama 2.5/4.0 bpw carried)"
$B/test_model --gtest_filter='*Cuda*' 2>&1 | grep -vE "^\[ RUN|^$" | tee $OUT/test_model_cuda.log | tail -25
echo "== exl on the GPU"
$B/exl generate --model models/demo --prompt "And God said," --max-tokens 48 --backend cuda 2>&1 | tee $OUT/generate.log
$B/exl perplexity --model $T/exl2-4.0bpw --text-file $T/eval_text.txt --length 256 --offset-tokens 8000 --max-rows 16 --backend cuda --json 2>&1 | tee $OUT/ppl.log
$B/exl perplexity --model $T/exl2-2.5bpw --text-file $T/eval_text.txt --length 256 --offset-tokens 8000 --max-rows 16 --backend cuda --json 2>&1 | tee -a $OUT/ppl.log
$B/exl perplexity --model $T/exl2-4.0bpw --text-file $T/eval_text.txt --length 2048 --backend cuda --json 2>&1 | tee -a $OUT/ppl.log
echo "== bench"
for spec in "exl2 --bpw 4.0 --head-bits 6" "gptq" "fp16"; do
  rm -rf /tmp/m; set -- $spec
  /usr/bin/time -f "make-random-model %es" $B/exl make-random-model --preset llama3-8b --format $spec --output /tmp/m 2>&1 | tail -1
  $B/exl bench --model /tmp/m --json-out $OUT/bench_$1.json 2>&1 | tail -20 | tee $OUT/bench_$1.txt
done
