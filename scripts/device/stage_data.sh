#!/usr/bin/env bash
# Stages test data on the GPU machine across calls when one call cannot carry it all (64 MiB per call): copies
# DIR/testdata/* into /tmp/exl_testdata (merged with what earlier calls on the same, still-warm machine staged) and
# lists what is there. A later call on that machine runs the tests with EXL_TESTDATA_DIR=/tmp/exl_testdata; if the
# machine was released in between, the data-dependent tests skip, and the logs' skipped counts show it.
# Usage (device): bash scripts/device/stage_data.sh .carry/td1
set -euo pipefail
mkdir -p /tmp/exl_testdata
cp -r "$1"/testdata/. /tmp/exl_testdata/
du -sh /tmp/exl_testdata/* /tmp/exl_testdata/models/* 2>/dev/null
