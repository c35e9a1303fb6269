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
# exits (well under a second, no `apt-get update`). Otherwise apt-get update and
# install (about 13 s on a 2-vCPU Debian 12 VM, ~32 MB of .debs, ~210 MB installed).
# The system services are not started (a temporary /usr/sbin/policy-rc.d, unless the
# host has one); start-local-slurm.sh runs its own private daemons.
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

# Keep apt from starting the system munge/mariadb/slurm services (start-local-slurm.sh
# runs private daemons; a system slurmctld/slurmd would only hold ports 6817/6818).
# Only when the host has no policy-rc.d of its own; ours is removed afterwards.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# temporary, from install-slurm-deps.sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi

# A few tries: mirrors in CI are sometimes briefly unreachable.
retry() {
    local i
    for i in 1 2 3; do
        "$@" && return 0
        echo "install-slurm-deps: '$*' failed (try $i of 3)" >&2
        sleep $((i * 5))
    done
    return 1
}
retry apt-get -o DPkg::Lock::Timeout=600 update -qq
retry apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
echo "install-slurm-deps: done"
