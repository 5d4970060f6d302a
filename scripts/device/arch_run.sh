#!/usr/bin/env bash
# Issue 19 device run: (1) the transformers fixtures of every architecture (scripts/arch_fixtures), packed into
# $OUT/arch.tgz.* (15 MB parts); (2) the CUDA op and model tests on the carried binaries and test data.
# Usage (device): bash scripts/device/arch_run.sh .carry/perf
set -uo pipefail
source "$(dirname "$0")/common.sh"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import transformers, torch; print('transformers', transformers.__version__, 'torch', torch.__version__)"
echo "== fixtures"
(cd scripts/arch_fixtures && PYTHONUNBUFFERED=1 timeout 200 python3 make_arch_fixtures.py --out /tmp/arch --device cpu \
  > $OUT/fixtures.log 2>&1; echo "fixtures rc=$?" >> $OUT/fixtures.log)
tail -45 $OUT/fixtures.log
cp /tmp/arch/errors.log $OUT/ 2>/dev/null
(cd /tmp && tar czf /tmp/arch.tgz arch && split -b 15m /tmp/arch.tgz $OUT/arch.tgz.)
if [ -f "${1:-.carry/perf}/bins.tar.xz" ]; then
  unpack_bins "${1:-.carry/perf}"
  run_cuda_tests
  grep -cE "^\[  SKIPPED" $OUT/test_model_cuda.log $OUT/backend_ops.log
fi
ls -la $OUT
