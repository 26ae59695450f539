#!/bin/bash
# IUSP round-2 teachers to a validation plateau (issue #25): ceiling 4000 steps, validation and
# checkpoint every 100, early stopping after 8 validations without a micro-AUPRC improvement.
# usage (repository root, venv active): [WORK=dir] bash configs/results/iusp/round2/teachers/run.sh
cd "$(dirname "$0")/../../../../.."  # the repository root (the runs: a worktree of commit 2629c4c)
export JAX_PLATFORMS=cpu
for d in esc10_mix sc_mix; do
  echo "== $(date -u +%FT%TZ) start $d load $(cut -d' ' -f1-3 /proc/loadavg)"
  python -m kdjax.main --config "configs/iusp.py:variant=local,data=$d,stage=teacher,teacher_steps=4000,teacher_eval_every=100,patience=8" --workdir "${WORK:-workdirs/iusp2}/$d"
  echo "== $(date -u +%FT%TZ) end $d rc=$? load $(cut -d' ' -f1-3 /proc/loadavg)"
done
