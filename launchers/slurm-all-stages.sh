#!/usr/bin/env bash
# Run the whole chain on SLURM: unzip_dxa, unzip_mri, extract_slices and collect, each as N shards (each stage starts
# when the one before it is done), then the report on this machine.
#   launchers/slurm-all-stages.sh 20 /data/ukbb [overrides, e.g. hydra.launcher.partition=short exclude_eids_file=w.csv]
# Relative paths are the caller's. Failed inputs do not stop the chain (the script then exits 1); any other error
# stops it with that stage's exit code. The zips must be downloaded first (stage=download runs on one machine:
# UK Biobank allows 10 parallel downloads).
set -uo pipefail
shards=${1:?usage: slurm-all-stages.sh N_SHARDS PATHS_ROOT [overrides...]}
root=${2:?usage: slurm-all-stages.sh N_SHARDS PATHS_ROOT [overrides...]}
shift 2
root="$(realpath -m -- "$root")"
source "$(dirname "${BASH_SOURCE[0]}")/chain.sh"
for stage in unzip_dxa unzip_mri extract_slices collect; do
  run_stage -m stage="$stage" paths.root="$root" shard.count="$shards" "shard.index=range($shards)" \
    hydra/launcher=slurm "$@"
done
launcher_free=()
for arg in "$@"; do [[ "$arg" == hydra.launcher.* || "$arg" == +hydra.launcher.* ]] || launcher_free+=("$arg"); done
run_stage stage=report paths.root="$root" "${launcher_free[@]}"
exit "$failed_inputs"
