#!/bin/bash
# usage: run_iusp.sh DATA STEPS
cd /work/wt-iusp
. /work/venv/bin/activate
export PYTHONPATH=/work/wt-iusp JAX_PLATFORMS=cpu JAX_COMPILATION_CACHE_DIR=/tmp/iusp_jaxcache_$1 \
  JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0
echo "start $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
python -m kdjax.main --config "configs/iusp.py:variant=local,data=$1,steps=$2" --workdir workdirs/iusp_$1
echo "end $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) rc $?"
