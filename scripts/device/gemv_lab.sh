#!/usr/bin/env bash
# Runs the standalone GEMV lab (bench/gemv_lab.cu) on the device. DIR holds the gemv_lab binary built on the dev
# box: nvcc -O3 -std=c++17 -arch=sm_90 bench/gemv_lab.cu -o DIR/gemv_lab
# (or through CMake, where the target exists only when asked for: configure with -DEXL_LAB=ON, then ninja gemv_lab)
# Usage (device): bash scripts/device/gemv_lab.sh DIR [args to gemv_lab]
set -uo pipefail
D=${1:-.carry/lab}; shift || true
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
"$D/gemv_lab" "$@" 2>&1 | tee "$OUT/gemv_lab.txt"
