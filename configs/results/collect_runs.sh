#!/usr/bin/env bash
# Copies what a results table needs from a staged workdir into <dest> (no checkpoints, no
# cached arrays, no TensorBoard files): every run's result.json and metrics.jsonl, and summary.json.
# Usage (repo root): bash configs/results/collect_runs.sh workdirs/east_birdnet configs/results/east/raw/birdnet
set -euo pipefail
src=$1
mkdir -p "$2"
dst=$(cd "$2" && pwd)
cd "$src"
find . \( -name result.json -o -name metrics.jsonl -o -name summary.json \) -not -path "*/ckpt/*" \
  | while read -r f; do mkdir -p "$dst/$(dirname "$f")"; cp "$f" "$dst/$f"; done
echo "copied $(find "$dst" -type f | wc -l) files to $dst"
