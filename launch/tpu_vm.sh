#!/usr/bin/env bash
# Train kdjax on a Cloud TPU VM (single host, or every worker of a pod slice).
#
#   TPU_NAME=kd-v5e ZONE=us-west4-a launch/tpu_vm.sh all --config configs/fsdd.py --workdir '~/workdirs/fsdd'
#
# Commands (the first argument; default "all"):
#   create   create the TPU VM unless it exists (reused otherwise)
#   sync     put the code on every worker (CODE=copy: this checkout's files via scp;
#            CODE=git: clone/fetch REPO_URL at REPO_REF)
#   install  make a venv on every worker with the project requirements and jax[tpu]
#   run      python -m kdjax.main --distributed ARGS on all workers (--worker=all)
#   all      create + sync + install + run (each step is safe to repeat; a rerun resumes
#            training from the checkpoints in the workdir)
#   ssh      open a shell on worker 0 (or WORKER=<i>)
#   delete   delete the TPU VM
# Everything after the command is passed to `python -m kdjax.main`.
#
# Environment:
#   TPU_NAME          (required) TPU VM name
#   ZONE              (required) e.g. us-central2-b (v4), us-west4-a / us-east1-d (v5e)
#   PROJECT           GCP project (default: gcloud's configured project)
#   ACCELERATOR_TYPE  default v5litepod-8 (one host, 8 chips); v4-8, v4-32 (4 hosts), ...
#   RUNTIME_VERSION   TPU software version (default v2-alpha-tpuv5-lite for v5e; use
#                     tpu-ubuntu2204-base for v4, v2-alpha-tpuv6e for v6e)
#   SPOT=1            create a Spot VM (cheaper, preemptible: SIGTERM saves a checkpoint and
#                     the same `all` command resumes)
#   CODE              copy (default) or git; REPO_URL, REPO_REF (default main) for git
#   REMOTE_DIR        code folder on the workers (default kdjax, relative to $HOME)
#   JAX_VERSION       jax[tpu] version (default 0.10.2, the version in requirements.txt)
#   DATA_DIR          KDJAX_DATA_DIR on the workers (default: unset, so datasets go to
#                     ~/kdjax_data; FSDD downloads itself there on first use)
# The workdir must be on storage every worker sees when the slice has several hosts (e.g. a
# gcsfuse-mounted bucket or Filestore): orbax checkpoints are written collectively by all
# workers. On a single-host VM (v5litepod-8, v4-8) a local path is fine.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
: "${TPU_NAME:?set TPU_NAME (the TPU VM name)}"
: "${ZONE:?set ZONE (e.g. us-west4-a)}"
ACCELERATOR_TYPE="${ACCELERATOR_TYPE:-v5litepod-8}"
RUNTIME_VERSION="${RUNTIME_VERSION:-v2-alpha-tpuv5-lite}"
CODE="${CODE:-copy}"
REPO_REF="${REPO_REF:-main}"
REMOTE_DIR="${REMOTE_DIR:-kdjax}"
JAX_VERSION="${JAX_VERSION:-0.10.2}"

cmd="${1:-all}"
if [[ $# -gt 0 ]]; then shift; fi

gc=(gcloud compute tpus tpu-vm)
where=(--zone "$ZONE")
if [[ -n "${PROJECT:-}" ]]; then where+=(--project "$PROJECT"); fi

# Runs a shell command on every worker, in parallel, streaming their output.
on_all() { "${gc[@]}" ssh "$TPU_NAME" "${where[@]}" --worker=all --command "$1"; }

do_create() {
  if "${gc[@]}" describe "$TPU_NAME" "${where[@]}" --format='value(state)' >/dev/null 2>&1; then
    echo "tpu_vm.sh: reusing TPU VM $TPU_NAME ($ZONE)"
    return
  fi
  local extra=()
  if [[ "${SPOT:-0}" == "1" ]]; then extra+=(--spot); fi
  "${gc[@]}" create "$TPU_NAME" "${where[@]}" --accelerator-type "$ACCELERATOR_TYPE" \
    --version "$RUNTIME_VERSION" ${extra[@]+"${extra[@]}"}
}

do_sync() {
  local q_dir
  q_dir="$(printf '%q' "$REMOTE_DIR")"
  if [[ "$CODE" == "git" ]]; then
    : "${REPO_URL:?CODE=git needs REPO_URL}"
    on_all "set -e; if [ -d $q_dir/.git ]; then git -C $q_dir fetch -q origin; else git clone -q $(printf '%q' "$REPO_URL") $q_dir; fi; git -C $q_dir checkout -q $(printf '%q' "$REPO_REF"); git -C $q_dir pull -q --ff-only || true"
  else
    local tmp tgz
    tmp="$(mktemp -d)"
    tgz="$tmp/kdjax-code.tgz"
    # Tracked and new (not ignored) files of this checkout: no venv, workdirs or data.
    (cd "$ROOT" && git ls-files -co --exclude-standard -z | tar -czf "$tgz" --null -T -)
    "${gc[@]}" scp "$tgz" "$TPU_NAME:kdjax-code.tgz" "${where[@]}" --worker=all
    rm -rf "$tmp"
    on_all "set -e; mkdir -p $q_dir && tar -xzf kdjax-code.tgz -C $q_dir && rm kdjax-code.tgz"
  fi
}

do_install() {
  local q_dir
  q_dir="$(printf '%q' "$REMOTE_DIR")"
  on_all "set -e; cd $q_dir; [ -x .venv/bin/python ] || python3 -m venv .venv; .venv/bin/pip install -q -U pip; .venv/bin/pip install -q -r requirements.txt; .venv/bin/pip install -q 'jax[tpu]==$JAX_VERSION'; .venv/bin/python -c 'import jax, libtpu; print(\"jax\", jax.__version__)'"
}

do_run() {
  if [[ $# -eq 0 ]]; then
    echo "tpu_vm.sh run: pass the kdjax.main arguments (--config ... --workdir ...)" >&2
    exit 2
  fi
  local q_dir q_args env_prefix=""
  q_dir="$(printf '%q' "$REMOTE_DIR")"
  # Quote every argument for the remote shell, except that a leading ~ in a value stays
  # expandable there (so --workdir '~/workdirs/x' means the workers' home).
  q_args=""
  for a in "$@"; do
    # shellcheck disable=SC2088  # the literal "~/" prefix is what is tested
    if [[ "$a" == "~/"* ]]; then q_args+=" ~/$(printf '%q' "${a#\~/}")"; else q_args+=" $(printf '%q' "$a")"; fi
  done
  if [[ -n "${DATA_DIR:-}" ]]; then env_prefix="KDJAX_DATA_DIR=$(printf '%q' "$DATA_DIR") "; fi
  # --distributed: jax.distributed.initialize() finds the slice's workers itself.
  on_all "cd $q_dir && ${env_prefix}.venv/bin/python -m kdjax.main --distributed$q_args"
}

case "$cmd" in
  create) do_create ;;
  sync) do_sync ;;
  install) do_install ;;
  run) do_run "$@" ;;
  all)
    do_create
    do_sync
    do_install
    do_run "$@"
    ;;
  ssh) "${gc[@]}" ssh "$TPU_NAME" "${where[@]}" --worker="${WORKER:-0}" ;;
  delete) "${gc[@]}" delete "$TPU_NAME" "${where[@]}" --quiet ;;
  *)
    echo "tpu_vm.sh: unknown command '$cmd' (create|sync|install|run|all|ssh|delete)" >&2
    exit 2
    ;;
esac
