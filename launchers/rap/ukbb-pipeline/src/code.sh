#!/bin/bash
# One job of a ukbb-pipeline sweep on the Research Analysis Platform (see docs/how-to/platform.md).
# Inputs arrive as shell variables: overrides (a bash array), folder, inputs (array), wheelhouse, version.
# The job reads the project through its mount, writes on local disk, uploads what it writes into "$folder"
# (also when some subjects failed), and ends with the stage's exit status.

main() {
    set -o pipefail
    if [ -n "${wheelhouse:-}" ]; then  # no internet needed: the package and its dependencies as wheels
        dx download "$wheelhouse" -o wheelhouse.tar --no-progress
        mkdir -p wheelhouse && tar -xf wheelhouse.tar -C wheelhouse
        python3 -m venv --system-site-packages "$HOME/venv"
        "$HOME/venv/bin/python" -m pip install --quiet --no-index --find-links wheelhouse "ukbb-pipeline==${version}"
        export PATH="$HOME/venv/bin:$PATH"
    fi
    local input_args=()
    for input in "${inputs[@]}"; do input_args+=(--input "$input"); done
    python3 -m ukbb_pipeline.rap.job --folder "$folder" "${input_args[@]}" -- "${overrides[@]}"
}
