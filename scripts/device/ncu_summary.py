#!/usr/bin/env python3
"""Per-kernel totals of the last N kernel launches in an `ncu --csv --metrics gpu__time_duration.sum` log.
Usage: ncu_summary.py LOG.csv N   (N = launches of one decode step as profiled; kernels grouped by name and grid)."""
import collections
import csv
import sys

rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 14 and r[0].isdigit()]
last = rows[-int(sys.argv[2]):]
agg = collections.OrderedDict()
total = 0.0
for r in last:
    key = (r[4][:70], r[8])
    t = float(r[14].replace(",", "")) / 1000.0
    a = agg.setdefault(key, [0, 0.0])
    a[0] += 1
    a[1] += t
    total += t
for (name, grid), (count, t) in sorted(agg.items(), key=lambda x: -x[1][1]):
    print(f"{t:9.1f} us {count:4d}x {t / count:7.2f} us  {name} grid {grid}")
print(f"total {total:.1f} us over {len(last)} launches")
