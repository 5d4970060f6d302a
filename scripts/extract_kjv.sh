#!/usr/bin/env bash
# extract_kjv.sh - dump the public-domain King James Bible as plain text.
#
# Source: Debian's `bible-kjv` (the `bible` program) and `bible-kjv-text`
# (its compressed data file /usr/lib/bible.data).  Install them with
#     apt-get install bible-kjv
#
# Output format (plain ASCII, ~4.3 MB):
#   * one verse per line, with the "Book C:V " reference removed;
#   * an empty line before every new chapter (except the first).
# This text is the training corpus of the demo model (models/demo/, see
# docs/demo-model.md and scripts/make_demo_model.py).
#
# Usage:
#     scripts/extract_kjv.sh [OUTPUT]        # default: .carry/demo/kjv.txt
set -euo pipefail

out="${1:-.carry/demo/kjv.txt}"
command -v bible >/dev/null || { echo "error: 'bible' not found (apt-get install bible-kjv)" >&2; exit 1; }
mkdir -p "$(dirname "$out")"

# `bible -f` switches pretty-printing off: every verse comes out on one line,
# prefixed by its reference, e.g. "Ge1:1 In the beginning God created ...".
# Gen1:1-Rev22:21 is the whole text.  Run from an empty directory because
# `bible` looks for data files in the current directory first.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && bible -f Gen1:1-Rev22:21) > "$tmp/raw.txt"

awk '
{
    ref = $1                      # e.g. "1Chr12:3"
    chap = ref; sub(/:[0-9]+$/, "", chap)
    if (NR > 1 && chap != prev) print ""
    prev = chap
    sub(/^[^ ]+ /, "")            # drop the reference
    print
}' "$tmp/raw.txt" > "$out"

verses=$(grep -c . "$out")
if [ "$verses" -ne 31102 ]; then
    echo "error: expected 31102 verses, got $verses" >&2
    exit 1
fi
echo "wrote $out: $verses verses, $(wc -c < "$out") bytes, sha256 $(sha256sum "$out" | cut -d" " -f1)"
