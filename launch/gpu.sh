#!/usr/bin/env bash
# Run kdjax on NVIDIA GPUs: one host with all its GPUs, or several hosts.
#
# One host, N GPUs (one process drives every visible GPU; the batch is split over them):
#   launch/gpu.sh --config configs/fsdd.py --workdir /data/workdirs/fsdd
#   CUDA_VISIBLE_DEVICES=0,1 launch/gpu.sh --config ... --workdir ...
#
# Several hosts, one process per host (run the same command on every host):
#   COORDINATOR=host0:12355 NUM_PROCESSES=2 PROCESS_ID=0 launch/gpu.sh --config ... --workdir ...
#   COORDINATOR=host0:12355 NUM_PROCESSES=2 PROCESS_ID=1 launch/gpu.sh --config ... --workdir ...
#
# SLURM (values come from SLURM's variables; one task per node drives all its GPUs,
# or one task per GPU with --ntasks-per-node=<GPUs>, each task then pinned to one GPU):
#   srun --nodes=2 --ntasks-per-node=1 --gpus-per-node=8 launch/gpu.sh --config ... --workdir ...
#
# Environment (all optional):
#   PYTHON          interpreter (default: .venv/bin/python if present, else python3)
#   INSTALL=1       first `pip install` the CUDA jax wheel and the project's requirements
#   JAX_VERSION     jax version to install (default 0.10.2); JAX_CUDA_EXTRA (default cuda13,
#                   or cuda12 for older drivers)
#   COORDINATOR     host:port of process 0 (multi-host); NUM_PROCESSES, PROCESS_ID
#   LOCAL_DEVICE_IDS  comma-separated GPU ids this process uses (default: all visible)
#   PORT            coordinator port under SLURM (default 12355)
# Mixed precision (bf16 compute, f32 params/optimiser state) is a config override, e.g.
#   --config.stages.kd.compute_dtype=bfloat16 (see launch/README.md).
# The workdir must be on storage every host sees (shared filesystem): checkpoints are
# written collectively by all processes; logs and results by process 0.
# Everything after the variables is passed to `python -m kdjax.main` unchanged.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

if [[ "${INSTALL:-0}" == "1" ]]; then
  "$PYTHON" -m pip install -q "jax[${JAX_CUDA_EXTRA:-cuda13}]==${JAX_VERSION:-0.10.2}"
  if [[ -f requirements.txt ]]; then "$PYTHON" -m pip install -q -r requirements.txt; fi
fi

COORDINATOR="${COORDINATOR:-}"
NUM_PROCESSES="${NUM_PROCESSES:-}"
PROCESS_ID="${PROCESS_ID:-}"
LOCAL_DEVICE_IDS="${LOCAL_DEVICE_IDS:-}"
if [[ -z "$NUM_PROCESSES" && -n "${SLURM_NTASKS:-}" && "${SLURM_NTASKS}" -gt 1 ]]; then
  NUM_PROCESSES="$SLURM_NTASKS"
  PROCESS_ID="$SLURM_PROCID"
  if [[ -z "$COORDINATOR" ]]; then
    head_node="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
    COORDINATOR="${head_node}:${PORT:-12355}"
  fi
  # Several tasks on one node: each drives one GPU (its local rank).
  if [[ -z "$LOCAL_DEVICE_IDS" && "${SLURM_NTASKS_PER_NODE:-1}" != "1" ]]; then
    LOCAL_DEVICE_IDS="${SLURM_LOCALID}"
  fi
fi

dist=()
if [[ -n "$NUM_PROCESSES" && "$NUM_PROCESSES" -gt 1 ]]; then
  if [[ -z "$COORDINATOR" || -z "$PROCESS_ID" ]]; then
    echo "gpu.sh: NUM_PROCESSES=$NUM_PROCESSES needs COORDINATOR=host:port and PROCESS_ID" >&2
    exit 2
  fi
  dist=(--coordinator_address "$COORDINATOR" --num_processes "$NUM_PROCESSES" --process_id "$PROCESS_ID")
fi
if [[ -n "$LOCAL_DEVICE_IDS" ]]; then
  dist+=(--local_device_ids "$LOCAL_DEVICE_IDS")
fi

exec "$PYTHON" -m kdjax.main "$@" ${dist[@]+"${dist[@]}"}
