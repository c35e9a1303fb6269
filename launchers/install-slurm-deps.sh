#!/usr/bin/env bash
# Install the Debian packages that launchers/start-local-slurm.sh needs.
#
# Usage (as root, Debian 12 / bookworm):
#   bash launchers/install-slurm-deps.sh
#
# Installs, without recommended packages:
#   slurmctld slurmd slurm-client munge   (the cluster itself)
#   slurmdbd mariadb-server               (accounting, so that `sacct` works; submitit
#                                          reads job states only through sacct)
# Set LOCAL_SLURM_ACCOUNTING=none to skip slurmdbd and mariadb-server.
#
# Idempotent: when every package is already installed it only checks that and
# exits (well under a second, no `apt-get update`).
# Services are not started here; start-local-slurm.sh runs its own private daemons.
set -euo pipefail

packages=(slurmctld slurmd slurm-client munge)
if [[ "${LOCAL_SLURM_ACCOUNTING:-auto}" != none ]]; then
    packages+=(slurmdbd mariadb-server)
fi

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    if [[ "$status" != installed ]]; then
        missing+=("$p")
    fi
done

if ((${#missing[@]} == 0)); then
    echo "install-slurm-deps: already installed: ${packages[*]}"
    exit 0
fi

if ((EUID != 0)); then
    echo "install-slurm-deps: must run as root to install: ${missing[*]}" >&2
    exit 1
fi

echo "install-slurm-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-slurm-deps: done"
