#!/usr/bin/env bash
# Copies what the results table needs from a Temporal KD workdir into raw/<name>/ (see ../collect_runs.sh).
# Usage: bash configs/results/temporal_kd/collect.sh workdirs/temporal_kd_sc2 sc2
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/../collect_runs.sh" "$1" "$here/raw/$2"
