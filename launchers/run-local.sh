#!/usr/bin/env bash
# Run the processing stages in order on this machine: unzip_dxa, unzip_mri, extract_slices.
#   launchers/run-local.sh /data/ukbb [more overrides, e.g. n_jobs=8 writer=pickle exclude_eids_file=w.csv]
# Expects the raw zips in /data/ukbb/raw/dxas and /data/ukbb/raw/mris (see `stage=download`).
# Each stage skips what is done, so re-running after an interruption finishes only what is missing.
set -euo pipefail
root=${1:?usage: run-local.sh PATHS_ROOT [overrides...]}
shift
cd "$(dirname "$0")/.."
for stage in unzip_dxa unzip_mri extract_slices; do
  python main.py stage="$stage" paths.root="$root" "$@"
done
