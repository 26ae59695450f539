#!/usr/bin/env bash
# Copies what the results table needs from a Temporal KD workdir into raw/<name>/ (no
# checkpoints, no cached arrays): every run's result.json and metrics.jsonl, summary.json.
# Usage: bash configs/results/temporal_kd/collect.sh workdirs/temporal_kd_sc2 sc2
set -euo pipefail
src=$1; name=$2
dst=$(cd "$(dirname "$0")" && pwd)/raw/$name
mkdir -p "$dst"
cd "$src"
find . \( -name result.json -o -name metrics.jsonl -o -name summary.json \) -not -path "*/ckpt/*" \
  | while read -r f; do mkdir -p "$dst/$(dirname "$f")"; cp "$f" "$dst/$f"; done
echo "copied $(find "$dst" -type f | wc -l) files to $dst"
