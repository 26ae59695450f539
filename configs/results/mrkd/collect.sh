#!/bin/bash
# Copies the finished runs' result.json + logits_test.npz, the summaries and the logs from the
# workdirs into configs/results/mrkd/, then rebuilds tables.md/json from the copies.
# usage (repo root): bash configs/results/mrkd/collect.sh esc10 sc12 ...
set -e
out=configs/results/mrkd
args=()
for d in "$@"; do
  w=workdirs/mrkd_$d
  for r in $w/*/*/result.json; do
    run=$(dirname $r); rel=${run#$w/}
    [ -f $run/logits_test.npz ] || continue
    mkdir -p $out/raw/$d/$rel
    cp $run/result.json $run/logits_test.npz $out/raw/$d/$rel/
  done
  [ -f $w/summary.json ] && cp $w/summary.json $out/summary_$d.json
  [ -f workdirs/mrkd_$d.log ] && cp workdirs/mrkd_$d.log $out/run_$d.log
  [ -f workdirs/chain_$d.log ] && cp workdirs/chain_$d.log $out/chain_$d.log
  args+=("$d=$out/raw/$d")
done
python -m configs.results.mrkd.make_table "${args[@]}" --out $out
