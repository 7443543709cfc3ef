#!/usr/bin/env bash
# A one-node SLURM cluster on this machine for the test-suite (idempotent).
#
# This host (`hostname -s`) is controller and compute node (CPUs from nproc, RealMemory
# from /proc/meminfo minus headroom); munged, slurmctld and slurmd run as root, their
# state, spool, logs and pid files under $CRYSTINV_SLURM_DIR (default /var/tmp/crystinv-slurm).
# The configuration is written to /etc/slurm/slurm.conf, where every process (the AiiDA
# daemon's `sbatch`/`squeue` included) finds it. Daemons of a previous run with the same
# configuration are reused.
#
# Exit codes: 0 the node is idle (ready); 1 a step failed (the reason is printed);
# 3 not root and SLURM is not installed (nothing can be done).
set -uo pipefail

DIR=${CRYSTINV_SLURM_DIR:-/var/tmp/crystinv-slurm}
CONF=/etc/slurm/slurm.conf
MARKER="# written by aiida-crystinv tests/services/slurm.sh"
say() { echo "slurm.sh: $*"; }
die() { echo "slurm.sh: ERROR: $*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sbatch >/dev/null 2>&1; then
        say "not root and sbatch is not installed: cannot install or start SLURM"
        exit 3
    fi
    if sinfo -h -o %T 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'; then
        say "not root; SLURM is already running (sinfo: $(sinfo -h -o %T | head -1))"
        exit 0
    fi
    say "not root and SLURM is not running: cannot start it"
    exit 3
fi

# ---------------------------------------------------------------- packages
if ! command -v sbatch >/dev/null || ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v munged >/dev/null; then
    say "installing slurm-wlm and munge (apt-get)"
    apt-get update -qq >/dev/null || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/tmp/crystinv-slurm-apt.log 2>&1 \
        || { tail -20 /tmp/crystinv-slurm-apt.log >&2; die "apt-get install slurm-wlm munge failed (log: /tmp/crystinv-slurm-apt.log)"; }
fi

# ---------------------------------------------------------------- munge
getent passwd munge >/dev/null || die "the munge user does not exist (is the munge package installed?)"
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    say "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile=/etc/munge/munge.key --force
    else
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    fi
fi
chown munge:munge /etc/munge /etc/munge/munge.key /var/lib/munge /var/log/munge /run/munge
chmod 0700 /etc/munge /var/lib/munge /var/log/munge
chmod 0755 /run/munge
chmod 0400 /etc/munge/munge.key
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "munged: already running"
else
    rm -f /run/munge/munge.socket.2 /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged || die "munged did not start (see /var/log/munge/munged.log)"
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n | unmunge >/dev/null 2>&1 || die "munged does not answer (see /var/log/munge/munged.log)"
    say "munged: started"
fi

# ---------------------------------------------------------------- slurm.conf
HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
HEADROOM=$(( MEM_MB / 10 > 1024 ? MEM_MB / 10 : 1024 ))
REAL_MEM=$(( MEM_MB - HEADROOM ))
[ "$REAL_MEM" -gt 256 ] || REAL_MEM=256
mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log" /etc/slurm
chmod 0755 "$DIR" "$DIR/state" "$DIR/spool" "$DIR/log"

NEW=$(mktemp)
cat >"$NEW" <<CONF
$MARKER
# a one-node cluster: $HOST is controller and compute node
ClusterName=crystinv
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmdParameters=config_overrides
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/slurmd-%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmctldPort=6817
SlurmdPort=6818
# scheduling: jobs share the node by cores and memory
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
# memory: --mem is accepted and a job above it is killed (polled every 2 s)
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=2
JobAcctGatherParams=OverMemoryKill
# time limits end fast: no grace time, a short wait between SIGTERM and SIGKILL
OverTimeLimit=0
KillWait=2
MinJobAge=300
InactiveLimit=0
Waittime=0
# no accounting database
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
NodeName=$HOST CPUs=$CPUS RealMemory=$REAL_MEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF

running() { pgrep -x "$1" >/dev/null 2>&1; }
changed=1
if [ -f "$CONF" ] && cmp -s "$NEW" "$CONF"; then
    changed=0
else
    if [ -f "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
        cp "$CONF" "$CONF.crystinv-backup.$(date +%s)"
        say "saved the previous $CONF (not ours) as $CONF.crystinv-backup.*"
    fi
    install -m 0644 "$NEW" "$CONF"
    say "wrote $CONF ($HOST: CPUs=$CPUS RealMemory=${REAL_MEM}M)"
fi
rm -f "$NEW"

stop_pidfile() {  # stop the daemon whose pid file is ours
    local pidfile=$1 pid
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$pidfile"
}

if [ "$changed" -eq 1 ] && { running slurmctld || running slurmd; }; then
    say "the configuration changed: restarting slurmctld and slurmd"
    stop_pidfile "$DIR/slurmd.pid"
    stop_pidfile "$DIR/slurmctld.pid"
fi

# ---------------------------------------------------------------- daemons
if running slurmctld; then
    say "slurmctld: already running"
else
    slurmctld || die "slurmctld did not start (see $DIR/log/slurmctld.log)"
    say "slurmctld: started"
fi
if running slurmd; then
    say "slurmd: already running"
else
    slurmd || die "slurmd did not start (see $DIR/log/slurmd.log)"
    say "slurmd: started"
fi

# ---------------------------------------------------------------- ready?
state=""
for _ in $(seq 120); do
    state=$(sinfo -h -o %T 2>/dev/null | head -1)
    case "$state" in
        idle|mixed|allocated|completing) break ;;
        down*|drain*) scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
done
case "$state" in
    idle|mixed|allocated|completing) say "node $HOST is $state (partition debug)"; exit 0 ;;
    *) tail -5 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 2>/dev/null
       die "the node is not ready after 60 s (sinfo: '${state:-no answer}')" ;;
esac
