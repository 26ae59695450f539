#!/bin/bash
# usage: [EXTRA=k=v,...] chain.sh <data> <arg name> <values...>: runs configs/mrkd.py:data=<data>,<arg>=<v>[,EXTRA] for each v in turn
cd "$(dirname "$0")/../../.."  # the repository root (run with the venv active)
export PYTHONPATH=$PWD JAX_PLATFORMS=cpu
d=$1; key=$2; shift 2
for v in "$@"; do
  echo "== $(date -u +%FT%TZ) start data=$d,$key=$v load $(cut -d' ' -f1-3 /proc/loadavg)"
  /usr/bin/time -v python -m kdjax.main --config configs/mrkd.py:data=$d,$key=$v${EXTRA:+,$EXTRA} --workdir workdirs/mrkd_$d >> workdirs/mrkd_$d.log 2>&1
  echo "== $(date -u +%FT%TZ) end data=$d,$key=$v rc=$? load $(cut -d' ' -f1-3 /proc/loadavg)"
done
