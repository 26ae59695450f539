#!/usr/bin/env bash
# Run kdjax on this machine's CPU: one process (default), one process with N
# simulated devices, or N processes on localhost talking over gloo (what a
# multi-host run does, in miniature; tests/test_distributed.py checks it).
#
#   launch/local.sh --config configs/fsdd.py:stage=kd,seeds=1 --workdir workdirs/fsdd
#   DEVICES=4 launch/local.sh --config ... --workdir ...           # 1 process, 4 CPU devices
#   NPROC=2 DEVICES=2 launch/local.sh --config ... --workdir ...   # 2 processes x 2 devices
#
# Environment (all optional):
#   PYTHON   interpreter (default: .venv/bin/python if present, else python3)
#   DEVICES  simulated CPU devices per process (XLA_FLAGS=--xla_force_host_platform_device_count)
#   NPROC    number of processes (default 1); > 1 starts them all here with gloo collectives
#   PORT     coordinator port on 127.0.0.1 for NPROC > 1 (default: a free one)
# Everything after the variables is passed to `python -m kdjax.main` unchanged.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
NPROC="${NPROC:-1}"
export JAX_PLATFORMS=cpu
if [[ -n "${DEVICES:-}" ]]; then
  export XLA_FLAGS="--xla_force_host_platform_device_count=${DEVICES} ${XLA_FLAGS:-}"
fi

if [[ "$NPROC" -le 1 ]]; then
  exec "$PYTHON" -m kdjax.main "$@"
fi

PORT="${PORT:-$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
# The coordinator service listens on loopback only (jax's default is every interface).
export JAX_COORDINATOR_BIND_ADDRESS="127.0.0.1:${PORT}"
pids=()
# shellcheck disable=SC2317  # called by the trap
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup INT TERM
for ((i = 0; i < NPROC; i++)); do
  "$PYTHON" -m kdjax.main "$@" --coordinator_address "127.0.0.1:${PORT}" \
    --num_processes "$NPROC" --process_id "$i" --cpu_collectives gloo &
  pids+=("$!")
done
status=0
for p in "${pids[@]}"; do
  wait "$p" || status=$?
done
exit "$status"
