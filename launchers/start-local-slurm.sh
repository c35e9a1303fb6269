#!/usr/bin/env bash
# Start a real single-node SLURM cluster on loopback, for tests and local runs.
#
# Usage (as root; packages from launchers/install-slurm-deps.sh):
#   bash launchers/start-local-slurm.sh [DIR]
#   source DIR/env.sh            # or: eval "$(bash launchers/start-local-slurm.sh [DIR])"
#   srun hostname; sbatch ...; python main.py -m ... hydra/launcher=slurm
#   bash launchers/stop-local-slurm.sh [--purge] [DIR]
#
# DIR is $1, else $LOCAL_SLURM_DIR, else /tmp/local-slurm. Every file (config, state,
# logs, sockets, pid files, MariaDB data) lives under DIR, which is marked by a
# DIR/.local-slurm file. Daemons: munged, [mariadbd + slurmdbd], slurmctld, slurmd,
# all listening on the loopback address only. Clients need SLURM_CONF=DIR/etc/slurm.conf
# (DIR/env.sh exports it); progress goes to stderr, and on success stdout gets the
# lines of DIR/env.sh, so that `eval "$(...)"` works.
#
# Idempotent: starts only the daemons that are not running yet. Exits 0 only when
# `sinfo` shows the node usable (idle/mixed/allocated), non-zero with the tail of the
# failing daemon's log otherwise (stopping what it started). Refuses to run unless the
# host name resolves to 127.0.0.1 (the daemons bind that address only).
#
# Knobs (environment variables):
#   LOCAL_SLURM_DIR         state directory (when no DIR argument is given)
#   LOCAL_SLURM_ACCOUNTING  auto (default: slurmdbd when installed) | slurmdbd | none.
#                           Without slurmdbd `sacct` fails, so submitit cannot see job
#                           states: a job killed without a result (scancel, time limit)
#                           makes job.result() wait forever.
#   LOCAL_SLURM_CTLD_PORT   slurmctld port (6817)
#   LOCAL_SLURM_SLURMD_PORT slurmd port (6818)
#   LOCAL_SLURM_DBD_PORT    slurmdbd port (6819)
#   LOCAL_SLURM_CPUS        CPUs the node advertises (default: the machine's, from
#                           `slurmd -C`); more than the machine has = more concurrent jobs
#   LOCAL_SLURM_MEM_MB      RealMemory of the node in MB (default: from `slurmd -C`)
#   LOCAL_SLURM_PARTITION   partition name (debug)
#   LOCAL_SLURM_TIMEOUT     seconds to wait for the whole start (60)
# Two clusters can run side by side with different DIR and ports.
set -euo pipefail

T0=$EPOCHREALTIME
log() { printf 'start-local-slurm: [%4.1fs] %s\n' "$(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')" "$*" >&2; }
die() { printf 'start-local-slurm: error: %s\n' "$*" >&2; exit 1; }

case ${1:-} in
-h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
-*) die "unknown option $1 (usage: start-local-slurm.sh [DIR])" ;;
esac
(($# <= 1)) || die "too many arguments (usage: start-local-slurm.sh [DIR])"
DIR=${1:-${LOCAL_SLURM_DIR:-/tmp/local-slurm}}
ACCOUNTING=${LOCAL_SLURM_ACCOUNTING:-auto}
CTLD_PORT=${LOCAL_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${LOCAL_SLURM_SLURMD_PORT:-6818}
DBD_PORT=${LOCAL_SLURM_DBD_PORT:-6819}
PARTITION=${LOCAL_SLURM_PARTITION:-debug}
TIMEOUT=${LOCAL_SLURM_TIMEOUT:-60}
CLUSTER=local
DAEMON_PATH=/usr/sbin:/usr/bin:/sbin:/bin

for knob in CTLD_PORT SLURMD_PORT DBD_PORT TIMEOUT; do
    [[ "${!knob}" =~ ^[1-9][0-9]*$ ]] || die "LOCAL_SLURM_$knob must be a positive integer (got '${!knob}')"
done
deadline=$(($(date +%s) + TIMEOUT))

# ---------------------------------------------------------------- preconditions
((EUID == 0)) || die "must run as root (slurmd has to start jobs as the submitting user)"
for bin in munged munge slurmctld slurmd sinfo scontrol; do
    command -v "$bin" >/dev/null || die "'$bin' not found; run: sudo bash launchers/install-slurm-deps.sh"
done
case $ACCOUNTING in
auto)
    if command -v slurmdbd >/dev/null && command -v sacctmgr >/dev/null \
        && command -v mariadbd >/dev/null && command -v mariadb-install-db >/dev/null \
        && command -v mariadb-admin >/dev/null; then
        ACCOUNTING=slurmdbd
    else
        ACCOUNTING=none
    fi
    ;;
slurmdbd)
    for bin in slurmdbd mariadbd mariadb-install-db mariadb-admin sacctmgr; do
        command -v "$bin" >/dev/null || die "'$bin' not found (LOCAL_SLURM_ACCOUNTING=slurmdbd); run: sudo bash launchers/install-slurm-deps.sh"
    done
    ;;
none) ;;
*) die "LOCAL_SLURM_ACCOUNTING must be auto, slurmdbd or none (got '$ACCOUNTING')" ;;
esac

# The daemons bind the address that the host name resolves to (NoInAddrAny), so it
# has to be a loopback address, or the cluster would listen on the network. It has to
# be 127.0.0.1 itself: srun listens on that address too, but slurmd connects back to
# the source address of srun's connection, which on lo is 127.0.0.1 (with Debian's
# usual 127.0.1.1, srun times out "waiting for task launch").
HOST=$(hostname -s)
ADDR=$(getent ahostsv4 "$(hostname)" 2>/dev/null | awk 'NR == 1 { print $1 }')
[[ -n "$ADDR" ]] || die "host name '$(hostname)' does not resolve; add '127.0.0.1 $(hostname)' to /etc/hosts"
[[ "$ADDR" == 127.* ]] || die "host name '$(hostname)' resolves to $ADDR, not to 127.0.0.1; the daemons would listen on the network. Run on a host whose name resolves to 127.0.0.1 (a line '127.0.0.1 $(hostname)' in /etc/hosts, before any other line for it)"
[[ "$ADDR" == 127.0.0.1 ]] || die "host name '$(hostname)' resolves to $ADDR, not to 127.0.0.1; srun would time out (slurmd answers to 127.0.0.1, the source address on lo). Put '127.0.0.1 $(hostname)' in /etc/hosts, before any other line for it"

# DIR: create, or reuse only if it is ours (marker) or empty.
if [[ -e "$DIR" && ! -e "$DIR/.local-slurm" ]]; then
    [[ -d "$DIR" ]] || die "$DIR exists and is not a directory"
    [[ -z "$(ls -A "$DIR")" ]] || die "$DIR is not empty and has no .local-slurm marker; refusing to use it"
fi
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd -P)
# Unix socket paths are limited to 107 bytes; slurmstepd's are the longest.
((${#DIR} <= 60)) || die "DIR path is too long (${#DIR} > 60 characters) for the unix sockets under it: $DIR"
touch "$DIR/.local-slurm"
mkdir -p "$DIR"/{etc,run/daemon,log,spool/ctld,spool/d}
# munge dir: readable by all (jobs of any user need the socket); the key is mode 400.
install -d -m 755 "$DIR/munge"

SLURM_CONF=$DIR/etc/slurm.conf
MUNGE_SOCKET=$DIR/munge/munge.socket
MYSQL_SOCKET=$DIR/mysql/mysqld.sock
export SLURM_CONF

# ---------------------------------------------------------------- helpers
# pid_of NAME: print the pid from DIR/run/NAME.pid if that process is alive, is the
# expected binary (NAME or NAME-wlm, Debian's alternative) and has DIR in its
# command line or environment. The same check is in stop-local-slurm.sh.
pid_of() {
    local name=$1 pidfile=$DIR/run/$1.pid pid exe
    [[ -r "$pidfile" ]] || return 1
    pid=$(tr -dc '0-9' <"$pidfile")
    [[ -n "$pid" && -d /proc/$pid ]] || return 1
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
    exe=${exe% (deleted)}
    exe=${exe##*/}
    [[ "$exe" == "$name" || "$exe" == "$name-wlm" ]] || return 1
    if tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -F "$DIR/" >/dev/null \
        || tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -xF "LOCAL_SLURM_DIR=$DIR" >/dev/null; then
        echo "$pid"
        return 0
    fi
    return 1
}

running() { pid_of "$1" >/dev/null; }

# launched_alive NAME: the process recorded in DIR/run/NAME.pid exists and is not a
# zombie. Used while waiting for a daemon just launched: for a few milliseconds it is
# still `env` or `setsid` before it execs the daemon, so pid_of would not match yet.
launched_alive() {
    local pid stat
    pid=$(tr -dc '0-9' <"$DIR/run/$1.pid" 2>/dev/null) || return 1
    [[ -n "$pid" ]] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ "${stat%% *}" != Z ]]
}

check_deadline() {
    (($(date +%s) < deadline)) || die "timed out after ${TIMEOUT}s ($1); logs are in $DIR/log"
}

show_log() {
    local f
    for f in "$@"; do
        [[ -s "$f" ]] || continue
        printf -- '--- tail of %s\n' "$f" >&2
        tail -n 20 "$f" >&2
    done
}

# port_busy PORT: true when something accepts connections on ADDR:PORT.
port_busy() {
    # shellcheck disable=SC2016  # $0/$1 are expanded by the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$ADDR" "$1" 2>/dev/null
}

# On failure (or SIGINT/SIGTERM) stop the daemons that this run started, so that a
# failed start leaves nothing behind; daemons that were already running stay.
LAUNCHED=()
LAUNCHED_NAMES=()
cleanup_on_failure() {
    local rc=$? pid i end
    ((rc != 0 && ${#LAUNCHED[@]})) || return 0
    log "start failed; stopping what this run started: ${LAUNCHED_NAMES[*]}"
    kill -TERM "${LAUNCHED[@]}" 2>/dev/null || true
    end=$((SECONDS + 5))
    for pid in "${LAUNCHED[@]}"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < end)); do sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    for i in "${LAUNCHED_NAMES[@]}"; do rm -f "$DIR/run/$i.pid"; done
    return 0
}
trap cleanup_on_failure EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# launch NAME ARGS...: start a daemon in the foreground mode, detached (own session,
# clean environment, stdio to DIR/log/NAME.out), and record its pid in DIR/run/NAME.pid.
# The daemons' own pid files go to DIR/run/daemon/: a daemon rewriting the file we
# read would race with the checks.
launch() {
    local name=$1
    shift
    rm -f "$DIR/run/$name.pid"
    env -i PATH="$DAEMON_PATH" LANG=C HOME="$DIR" LOCAL_SLURM_DIR="$DIR" SLURM_CONF="$SLURM_CONF" \
        MYSQL_UNIX_PORT="$MYSQL_SOCKET" \
        setsid "$@" </dev/null >>"$DIR/log/$name.out" 2>&1 &
    echo $! >"$DIR/run/$name.pid"
    LAUNCHED+=("$!")
    LAUNCHED_NAMES+=("$name")
    log "started $name (pid $!)"
}

# wait_for NAME WHAT CMD...: poll CMD until it succeeds; fail early if NAME died.
wait_for() {
    local name=$1 what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        if ! launched_alive "$name"; then
            show_log "$DIR/log/$name.out" "$DIR/log/$name.log"
            die "$name exited during startup ($what)"
        fi
        check_deadline "waiting for $what"
        sleep 0.1
    done
}

# write_conf FILE MODE: replace FILE with stdin when the content differs. Refuses to
# change the configuration under running slurm daemons.
write_conf() {
    local file=$1 mode=$2 tmp
    tmp=$(mktemp "$file.XXXXXX")
    cat >"$tmp"
    chmod "$mode" "$tmp"
    if [[ -f "$file" ]] && cmp -s "$tmp" "$file"; then
        rm -f "$tmp"
        return 0
    fi
    if [[ -f "$file" ]]; then
        local d
        for d in slurmctld slurmd slurmdbd; do
            if running "$d"; then
                rm -f "$tmp"
                die "the cluster in $DIR runs with a different ${file##*/} (other knobs?); stop it first: bash launchers/stop-local-slurm.sh $DIR"
            fi
        done
    fi
    mv -f "$tmp" "$file"
}

# ---------------------------------------------------------------- configuration
# Node line from `slurmd -C`, with optional CPU/memory overrides (config_overrides
# lets slurmd register with more than the hardware has).
node_line=$(slurmd -C)
node_line=${node_line%%$'\n'*}
[[ "$node_line" == NodeName=* ]] || die "unexpected output of slurmd -C: $node_line"
node_name=$(sed -E 's/^NodeName=([^ ]+).*/\1/' <<<"$node_line")
real_mem=$(sed -nE 's/.*RealMemory=([0-9]+).*/\1/p' <<<"$node_line")
if [[ -n "${LOCAL_SLURM_CPUS:-}" ]]; then
    [[ "$LOCAL_SLURM_CPUS" =~ ^[1-9][0-9]*$ ]] || die "LOCAL_SLURM_CPUS must be a positive integer"
    hw="CPUs=$LOCAL_SLURM_CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$LOCAL_SLURM_CPUS ThreadsPerCore=1"
else
    hw=$(sed -E 's/^NodeName=[^ ]+ //; s/ ?RealMemory=[0-9]+//' <<<"$node_line")
fi
mem=${LOCAL_SLURM_MEM_MB:-$real_mem}
[[ "$mem" =~ ^[1-9][0-9]*$ ]] || die "LOCAL_SLURM_MEM_MB must be a positive integer"

if [[ $ACCOUNTING == slurmdbd ]]; then
    accounting_lines="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$ADDR
AccountingStoragePort=$DBD_PORT
# AuthInfo does not cover the link to slurmdbd: name the munge socket here too.
AccountingStoragePass=$MUNGE_SOCKET"
else
    accounting_lines="AccountingStorageType=accounting_storage/none"
fi

write_conf "$SLURM_CONF" 644 <<EOF
# Written by launchers/start-local-slurm.sh; regenerated at every start.
ClusterName=$CLUSTER
SlurmctldHost=$HOST($ADDR)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
# Bind the address the host name resolves to (loopback), never 0.0.0.0.
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire is also how long a requeued job waits before it may start again.
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=10
StateSaveLocation=$DIR/spool/ctld
SlurmdSpoolDir=$DIR/spool/d
SlurmctldPidFile=$DIR/run/daemon/slurmctld.pid
SlurmdPidFile=$DIR/run/daemon/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# No cgroups (none here without systemd): processes are tracked by their parent chain.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=5
# CR_CPU: memory is not a consumable, so jobs without --mem do not take the whole node.
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# Reject impossible requests at submit time instead of pending forever.
EnforcePartLimits=ALL
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=2,bf_interval=2
$accounting_lines
JobCompType=jobcomp/none
NodeName=$node_name NodeAddr=$ADDR $hw RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$node_name Default=YES MaxTime=INFINITE State=UP
EOF

if [[ $ACCOUNTING == slurmdbd ]]; then
    # slurmdbd 22.05 has no -f: it reads slurmdbd.conf beside $SLURM_CONF (mode 600).
    # It reaches MariaDB through MYSQL_UNIX_PORT (set by launch) as root via unix_socket.
    write_conf "$DIR/etc/slurmdbd.conf" 600 <<EOF
# Written by launchers/start-local-slurm.sh; regenerated at every start.
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=$HOST
DbdAddr=$ADDR
# Without NoInAddrAny slurmdbd binds 0.0.0.0 (DbdAddr only tells others where it is).
CommunicationParameters=NoInAddrAny
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$DIR/run/daemon/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
EOF
fi

cat >"$DIR/env.sh" <<EOF
# Source this to use the local SLURM cluster in $DIR.
export SLURM_CONF=$SLURM_CONF
export LOCAL_SLURM_DIR=$DIR
EOF

# Ports of the daemons that are not running yet must be free (before starting anything).
check_port() {
    local name=$1 port=$2 knob=$3
    if ! running "$name" && port_busy "$port"; then
        die "port $ADDR:$port is in use (a system $name, or another local cluster?); set $knob"
    fi
}
[[ $ACCOUNTING != slurmdbd ]] || check_port slurmdbd "$DBD_PORT" LOCAL_SLURM_DBD_PORT
check_port slurmctld "$CTLD_PORT" LOCAL_SLURM_CTLD_PORT
check_port slurmd "$SLURMD_PORT" LOCAL_SLURM_SLURMD_PORT

# ---------------------------------------------------------------- munged
if ! running munged; then
    if [[ ! -s "$DIR/munge/munge.key" ]]; then
        (umask 077 && head -c 1024 /dev/urandom >"$DIR/munge/munge.key")
    fi
    chmod 400 "$DIR/munge/munge.key"
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    launch munged munged --foreground --force --socket="$MUNGE_SOCKET" \
        --key-file="$DIR/munge/munge.key" --pid-file="$DIR/run/daemon/munged.pid" \
        --seed-file="$DIR/munge/munged.seed" --log-file="$DIR/log/munged.log"
fi
munge_ok() { munge -n -S "$MUNGE_SOCKET" | unmunge -S "$MUNGE_SOCKET"; }
wait_for munged "munged to answer" munge_ok

# ---------------------------------------------------------------- mariadbd + slurmdbd
if [[ $ACCOUNTING == slurmdbd ]]; then
    # A small redo log: the default 96 MB file makes up most of the disk use and of the
    # time of mariadb-install-db.
    MARIADB_OPTS=(--innodb-log-file-size=16M --innodb-buffer-pool-size=64M --skip-log-bin)
    if ! running mariadbd; then
        if [[ ! -d "$DIR/mysql/data/mysql" ]]; then
            rm -rf "$DIR/mysql"
            mkdir -p "$DIR/mysql/data"
            log "initialising MariaDB in $DIR/mysql/data"
            mariadb-install-db --no-defaults --datadir="$DIR/mysql/data" --user=root \
                --auth-root-authentication-method=socket --skip-test-db "${MARIADB_OPTS[@]}" \
                >"$DIR/log/mariadb-install-db.log" 2>&1 \
                || { show_log "$DIR/log/mariadb-install-db.log"; die "mariadb-install-db failed"; }
        fi
        rm -f "$MYSQL_SOCKET"
        launch mariadbd mariadbd --no-defaults --user=root --datadir="$DIR/mysql/data" \
            --socket="$MYSQL_SOCKET" --skip-networking --pid-file="$DIR/run/daemon/mariadbd.pid" \
            --log-error="$DIR/log/mariadbd.log" "${MARIADB_OPTS[@]}" \
            --innodb-flush-log-at-trx-commit=0 --max-connections=50
    fi
    wait_for mariadbd "MariaDB to answer" \
        mariadb-admin --no-defaults --socket="$MYSQL_SOCKET" --user=root ping

    if ! running slurmdbd; then
        launch slurmdbd slurmdbd -D
    fi
    dbd_ok() { timeout 10 sacctmgr -n -P show cluster format=cluster; }
    wait_for slurmdbd "slurmdbd to answer" dbd_ok
    if ! timeout 10 sacctmgr -n -P show cluster format=cluster | grep -x "$CLUSTER" >/dev/null; then
        timeout 20 sacctmgr -i add cluster "$CLUSTER" >&2 || die "sacctmgr add cluster $CLUSTER failed"
    fi
fi

# ---------------------------------------------------------------- slurmctld + slurmd
if ! running slurmctld; then
    launch slurmctld slurmctld -D -f "$SLURM_CONF"
fi
ctld_ok() { timeout 10 scontrol ping | grep 'is UP' >/dev/null; }
wait_for slurmctld "slurmctld to answer" ctld_ok

if ! running slurmd; then
    launch slurmd slurmd -D -f "$SLURM_CONF"
fi

# The node is usable when its state is idle/mixed/allocated/completing, without a
# flag such as * (not responding), drain or down.
node_state() { timeout 10 sinfo -h -N -n "$node_name" -p "$PARTITION" -o '%T' 2>/dev/null | head -n 1; }
resumed=0
while :; do
    state=$(node_state || true)
    case $state in
    idle | mixed | allocated | completing) break ;;
    drained | draining | drain* | down)
        if ((resumed == 0)); then
            log "node $node_name is $state; resuming it"
            timeout 10 scontrol update nodename="$node_name" state=resume >&2 || true
            resumed=1
        fi
        ;;
    esac
    if ! launched_alive slurmd || ! launched_alive slurmctld; then
        show_log "$DIR/log/slurmd.out" "$DIR/log/slurmd.log" "$DIR/log/slurmctld.log"
        die "a slurm daemon exited during startup"
    fi
    if (($(date +%s) >= deadline)); then
        show_log "$DIR/log/slurmd.log" "$DIR/log/slurmctld.log"
        die "timed out after ${TIMEOUT}s waiting for node $node_name (state: '${state:-?}')"
    fi
    sleep 0.1
done


log "cluster '$CLUSTER' up in $DIR: node $node_name ($state), partition $PARTITION, accounting $ACCOUNTING"
log "use it with: source $DIR/env.sh"
grep '^export' "$DIR/env.sh"
