# Shared setup of the device scripts (sourced, not run). DIR holds bins.tar.xz (stripped binaries plus
# libutf8proc.so.2) and, for the model tests, testdata/.
# unpack_bins DIR: unpacks the binaries into DIR and sets B, LD_LIBRARY_PATH and EXL_TESTDATA_DIR.
unpack_bins() {
  B=$1
  [ -f "$B/bins.tar.xz" ] && tar xJf "$B/bins.tar.xz" -C "$B"   # binaries travel compressed (carry limit)
  export LD_LIBRARY_PATH=$PWD/$B:${LD_LIBRARY_PATH:-}
  export EXL_TESTDATA_DIR=$PWD/$B/testdata
}
# run_cuda_tests: the CUDA op tests and the CUDA model tests; full logs to $OUT/backend_ops.log and
# $OUT/test_model_cuda.log, the summary lines to stdout.
run_cuda_tests() {
  echo "== backend_ops"
  "$B/test_backend_ops" 2>&1 | grep -vE "^\[ RUN|^$" > "$OUT/backend_ops.log"
  grep -E "PASSED|FAILED|Failure|tests ran|rel" "$OUT/backend_ops.log" | head -30
  echo "== model (CUDA)"
  "$B/test_model" --gtest_filter='*Cuda*' 2>&1 | grep -vE "^\[ RUN|^$" > "$OUT/test_model_cuda.log"
  grep -E "OK|PASSED|FAILED|Failure" "$OUT/test_model_cuda.log" | head -20
}
