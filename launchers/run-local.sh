#!/usr/bin/env bash
# Run the whole chain on this machine: unzip_dxa, unzip_mri, extract_slices, collect, report.
#   launchers/run-local.sh /data/ukbb [more overrides, e.g. n_jobs=8 writer=pickle exclude_eids_file=w.csv]
# Expects the raw zips in /data/ukbb/raw/dxas and /data/ukbb/raw/mris (see `stage=download`). Relative paths are the
# caller's (run from anywhere). Failed inputs do not stop the chain (their reasons are in the manifests and the
# report); the script then exits 1. Any other error stops it with that stage's exit code (see the README's exit codes).
# Each stage skips what is done, so re-running after an interruption finishes only what is missing.
set -uo pipefail
root=${1:?usage: run-local.sh PATHS_ROOT [overrides...]}
shift
root="$(realpath -m -- "$root")"
source "$(dirname "${BASH_SOURCE[0]}")/chain.sh"
for stage in unzip_dxa unzip_mri extract_slices collect; do
  run_stage stage="$stage" paths.root="$root" "$@"
done
run_stage stage=report paths.root="$root" "$@"
exit "$failed_inputs"
