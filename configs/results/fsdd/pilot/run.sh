#!/bin/bash
. /work/main/.venv/bin/activate
export JAX_PLATFORMS=cpu KDJAX_DATA_DIR=/work/shared/data PYTHONPATH=/tmp/pilot:/tmp/base
cd /tmp/pilot
for cfgname in W8:400 W4:400 W16:400 W8:800 W4:800; do
  size=${cfgname%%:*}; steps=${cfgname##*:}
  wd=/tmp/pilot/runs/${size}_s${steps}
  mkdir -p $wd; ln -sfn /tmp/fsdd_main/teacher $wd/teacher
  echo "=== $size $steps $(date -u +%T)"
  /usr/bin/time -f "wall %e s" python -m kdjax.main --config /tmp/pilot/pilot_cfg.py:size=$size,steps=$steps --workdir $wd 2>&1 | grep -v "step/s\|it/s" | tail -8
done
echo ALLDONE
