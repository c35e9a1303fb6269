# Shared by run-local.sh and slurm-all-stages.sh (sourced, not run): the pipeline command and the exit-code rule.
# The command is this checkout's main.py, or $UKBB_PIPELINE (e.g. UKBB_PIPELINE=ukbb-pipeline for the installed one).
# Paths are resolved against the caller's folder: the scripts never change folder.
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
read -r -a pipeline <<< "${UKBB_PIPELINE:-python $repo/main.py}"
failed_inputs=0

# run_stage ARGS...: run one stage (or sweep); carry on past failed inputs (exit 1), stop on anything else.
run_stage() {
  local code=0
  "${pipeline[@]}" "$@" || code=$?
  if [ "$code" -eq 1 ]; then
    failed_inputs=1
    echo "$(basename "$0"): some inputs failed in: $* (reasons in the manifests); carrying on" >&2
  elif [ "$code" -ne 0 ]; then
    echo "$(basename "$0"): stopped: exit $code from: $*" >&2
    exit "$code"
  fi
}
