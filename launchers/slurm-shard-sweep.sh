#!/usr/bin/env bash
# Run one stage as N shards on SLURM, one array task per shard, joblib inside each task.
#   launchers/slurm-shard-sweep.sh unzip_mri 20 /data/ukbb [overrides, e.g. hydra.launcher.partition=short]
# Blocks until every shard has finished (hydra-submitit waits); run it under tmux or nohup on a login node.
# Relative paths are the caller's. Exit 1: some inputs failed (see the manifests); other codes: the README's.
# A shard that times out is requeued (hydra.launcher.max_num_timeout) and finishes only what is missing;
# re-running this line after a failure does the same. Each shard's log: <sweep dir>/.submitit/<job>_<task>/.
set -uo pipefail
stage=${1:?usage: slurm-shard-sweep.sh STAGE N_SHARDS PATHS_ROOT [overrides...]}
shards=${2:?usage: slurm-shard-sweep.sh STAGE N_SHARDS PATHS_ROOT [overrides...]}
root=${3:?usage: slurm-shard-sweep.sh STAGE N_SHARDS PATHS_ROOT [overrides...]}
shift 3
root="$(realpath -m -- "$root")"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
read -r -a pipeline <<< "${UKBB_PIPELINE:-python $repo/main.py}"
exec "${pipeline[@]}" -m stage="$stage" paths.root="$root" shard.count="$shards" "shard.index=range($shards)" \
  hydra/launcher=slurm "$@"
