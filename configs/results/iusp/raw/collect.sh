#!/bin/bash
# Copies the IUSP workdirs' small files (result.json, metrics.jsonl, logits_test.npz, summary.json,
# the launch logs) into configs/results/iusp/raw/, without checkpoints or TensorBoard files.
cd "$(dirname "$0")/../../../.."
for d in iusp_esc10_mix iusp_sc_mix; do
  [ -d workdirs/$d ] || continue
  (cd workdirs && find $d \( -name result.json -o -name metrics.jsonl -o -name logits_test.npz -o -name summary.json \) \
     -print0 | xargs -0 -I{} cp --parents {} ../configs/results/iusp/raw/)
  [ -f workdirs/$d.log ] && cp workdirs/$d.log configs/results/iusp/raw/
done
