#!/usr/bin/env bash
# Run the processing stages in order on SLURM, each as N shards; each stage starts when the one before it is done.
#   launchers/slurm-all-stages.sh 20 /data/ukbb [overrides, e.g. hydra.launcher.partition=short exclude_eids_file=w.csv]
# With failures the script stops after that stage (see its manifest; allow_failures=true carries on regardless).
# The zips must be downloaded first (stage=download runs on one machine: UK Biobank allows 10 parallel downloads).
set -euo pipefail
shards=${1:?usage: slurm-all-stages.sh N_SHARDS PATHS_ROOT [overrides...]}
root=${2:?usage: slurm-all-stages.sh N_SHARDS PATHS_ROOT [overrides...]}
shift 2
here="$(dirname "$0")"
for stage in unzip_dxa unzip_mri extract_slices; do
  bash "$here/slurm-shard-sweep.sh" "$stage" "$shards" "$root" "$@"
done
