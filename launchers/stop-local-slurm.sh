#!/usr/bin/env bash
# Stop the single-node SLURM cluster started by launchers/start-local-slurm.sh.
#
# Usage (as root):
#   bash launchers/stop-local-slurm.sh [--purge] [DIR]
#
# DIR is the last argument, else $LOCAL_SLURM_DIR, else /tmp/local-slurm.
# Cancels the jobs, then stops the daemons (slurmctld; slurmd and slurmdbd; mariadbd
# and munged) using only the pids in DIR/run/*.pid, and only when the process is the
# expected binary *and* has DIR in its command line or environment. Sends SIGTERM,
# waits up to LOCAL_SLURM_STOP_TIMEOUT seconds (20; 3 with --purge), then SIGKILL.
# Job steps left behind (slurmstepd with DIR in its environment, and their
# descendants) are killed too. Idempotent: a stopped cluster or a missing DIR is
# not an error.
#
# --purge  also delete DIR afterwards, but only if it has the .local-slurm marker
#          that start-local-slurm.sh writes. The next start begins from scratch
#          (job ids restart at 1: do not reuse submitit folders across a purge).
set -euo pipefail

log() { printf 'stop-local-slurm: %s\n' "$*" >&2; }
die() { printf 'stop-local-slurm: error: %s\n' "$*" >&2; exit 1; }

PURGE=0
DIR=
for arg in "$@"; do
    case $arg in
    --purge) PURGE=1 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    -*) die "unknown option $arg (usage: stop-local-slurm.sh [--purge] [DIR])" ;;
    *) DIR=$arg ;;
    esac
done
DIR=${DIR:-${LOCAL_SLURM_DIR:-/tmp/local-slurm}}
# With --purge the state is thrown away, so a graceful shutdown buys nothing.
STOP_TIMEOUT=${LOCAL_SLURM_STOP_TIMEOUT:-$((PURGE ? 3 : 20))}

if [[ ! -e "$DIR" ]]; then
    log "$DIR does not exist; nothing to stop"
    exit 0
fi
[[ -d "$DIR" ]] || die "$DIR is not a directory"
DIR=$(cd "$DIR" && pwd -P)
[[ -e "$DIR/.local-slurm" ]] || die "$DIR has no .local-slurm marker; it is not a local-slurm directory, refusing to touch it"
[[ "$DIR" != / ]] || die "refusing to use /"

t_start=$(date +%s.%N)
export SLURM_CONF=$DIR/etc/slurm.conf

# pid_of NAME: pid from DIR/run/NAME.pid if alive, the expected binary (NAME or
# NAME-wlm, Debian's alternative), with DIR in its cmdline or environ. Same check as
# in start-local-slurm.sh.
pid_of() {
    local name=$1 pidfile=$DIR/run/$1.pid pid
    [[ -r "$pidfile" ]] || return 1
    pid=$(tr -dc '0-9' <"$pidfile")
    [[ -n "$pid" ]] || return 1
    is_ours "$pid" "$name" || return 1
    echo "$pid"
}

# is_ours PID NAME: PID is alive (not a zombie), runs NAME[-wlm] and mentions DIR.
is_ours() {
    local pid=$1 name=$2 exe
    [[ -d /proc/$pid ]] || return 1
    alive "$pid" || return 1
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
    exe=${exe% (deleted)}
    exe=${exe##*/}
    [[ "$exe" == "$name" || "$exe" == "$name-wlm" ]] || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -F "$DIR/" >/dev/null \
        || tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -xF -e "LOCAL_SLURM_DIR=$DIR" \
            -e "SLURM_CONF=$DIR/etc/slurm.conf" >/dev/null
}

# alive PID: exists and is not a zombie.
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ "${stat%% *}" != Z ]]
}

# terminate NAME...: SIGTERM the verified daemons, wait, then SIGKILL.
terminate() {
    local name pid pids=() names=()
    for name in "$@"; do
        if pid=$(pid_of "$name"); then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
            names+=("$name")
        fi
        rm -f "$DIR/run/$name.pid"
    done
    ((${#pids[@]})) || return 0
    log "stopping ${names[*]} (pids ${pids[*]})"
    local end=$(($(date +%s) + STOP_TIMEOUT)) left t0=$SECONDS
    while :; do
        left=()
        for pid in "${pids[@]}"; do
            if alive "$pid"; then left+=("$pid"); fi
        done
        if ((${#left[@]} == 0)); then
            ((SECONDS - t0 < 2)) || log "${names[*]} took $((SECONDS - t0)) s to stop"
            return 0
        fi
        if (($(date +%s) >= end)); then
            log "still running after ${STOP_TIMEOUT}s, sending SIGKILL to ${left[*]}"
            kill -KILL "${left[@]}" 2>/dev/null || true
            sleep 0.2
            return 0
        fi
        sleep 0.1
    done
}

# descendants PID: all processes below PID (children first found by parent pid).
descendants() {
    local parent=$1 p stat ppid
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        stat=${stat##*) }
        ppid=$(awk '{ print $2 }' <<<"$stat")
        if [[ "$ppid" == "$parent" ]]; then
            echo "$p"
            descendants "$p"
        fi
    done
}

# 1. Jobs: cancel them while slurmctld still runs. Without --purge, give them a few
#    seconds to end, so that the next start does not find them still completing.
if pid_of slurmctld >/dev/null; then
    jobs=$(timeout 10 squeue -h -o '%A' 2>/dev/null | sort -u | tr '\n' ' ' || true)
    if [[ -n "${jobs// /}" ]]; then
        log "cancelling jobs: $jobs"
        # shellcheck disable=SC2086  # word splitting of the job id list is intended
        timeout 10 scancel $jobs 2>/dev/null || true
        if ((!PURGE)); then
            end=$(($(date +%s) + 10))
            while [[ -n "$(timeout 5 squeue -h -o '%A' 2>/dev/null || true)" ]] \
                && (($(date +%s) < end)); do
                sleep 0.2
            done
        fi
    fi
fi

# 2. slurmctld first: stopped together with slurmd it waits ~5 s for a "hung
#    communication" with the gone slurmd. Then slurmd and slurmdbd, then the job
#    steps they left behind, then the services they used.
terminate slurmctld
terminate slurmd slurmdbd

stray=()
for p in /proc/[0-9]*; do
    p=${p#/proc/}
    if is_ours "$p" slurmstepd 2>/dev/null; then
        mapfile -t kids < <(descendants "$p")
        stray+=("$p" "${kids[@]}")
    fi
done
if ((${#stray[@]})); then
    log "killing leftover job steps and their processes: ${stray[*]}"
    kill -KILL "${stray[@]}" 2>/dev/null || true
fi

terminate mariadbd munged

t_end=$(date +%s.%N)
log "stopped the cluster in $DIR in $(awk -v a="$t_start" -v b="$t_end" 'BEGIN { printf "%.1f", b - a }') s"

if ((PURGE)); then
    [[ -e "$DIR/.local-slurm" ]] || die "$DIR lost its .local-slurm marker; not deleting it"
    rm -rf -- "$DIR"
    log "deleted $DIR"
fi
