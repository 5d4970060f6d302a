#!/usr/bin/env bash
# README command 1: install, build, and run the demo model (on the GPU if there is one, else on the CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh exl
./build/tools/exl/exl inspect --model models/demo | head -6
./build/tools/exl/exl generate --model models/demo --prompt "${EXL_DEMO_PROMPT:-And God said,}" --max-tokens 64 \
  --backend auto
