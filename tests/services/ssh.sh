#!/usr/bin/env bash
# An sshd of its own on 127.0.0.1 for the test-suite (idempotent).
#
# Everything lives in $CRYSTINV_SSH_DIR (default /var/tmp/crystinv-ssh): the client key
# pair `id_ed25519` (no passphrase, authorized for root), the server's host key, its
# `sshd_config`, `sshd.pid`, `sshd.log` and `known_hosts`. The server listens on
# 127.0.0.1:$CRYSTINV_SSH_PORT (default 2222); the host key is also added to
# ~/.ssh/known_hosts so that paramiko and asyncssh accept it, and a `Host crystinv-test-ssh`
# alias ($CRYSTINV_SSH_ALIAS) with port, user, key and known_hosts to ~/.ssh/config.
#
# Exit codes: 0 `ssh -i KEY -p PORT root@127.0.0.1 true` works; 1 a step failed (the
# reason is printed); 3 not root (an sshd for root cannot be set up).
set -uo pipefail

DIR=${CRYSTINV_SSH_DIR:-/var/tmp/crystinv-ssh}
PORT=${CRYSTINV_SSH_PORT:-2222}
KEY=$DIR/id_ed25519
say() { echo "ssh.sh: $*"; }
die() { echo "ssh.sh: ERROR: $*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
    say "not root: cannot install openssh-server or authorize a key for root"
    exit 3
fi

if [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null; then
    say "installing openssh-server (apt-get)"
    apt-get update -qq >/dev/null || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/tmp/crystinv-ssh-apt.log 2>&1 \
        || { tail -20 /tmp/crystinv-ssh-apt.log >&2; die "apt-get install openssh-server failed (log: /tmp/crystinv-ssh-apt.log)"; }
fi

mkdir -p "$DIR" /root/.ssh /run/sshd
chmod 0700 "$DIR" /root/.ssh
[ -s "$KEY" ] || ssh-keygen -q -t ed25519 -N '' -C crystinv-test -f "$KEY" || die "ssh-keygen (client key) failed"
[ -s "$DIR/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C crystinv-test-host -f "$DIR/host_ed25519" \
    || die "ssh-keygen (host key) failed"

touch /root/.ssh/authorized_keys
chmod 0600 /root/.ssh/authorized_keys
grep -qF "$(cut -d' ' -f2 "$KEY.pub")" /root/.ssh/authorized_keys || cat "$KEY.pub" >>/root/.ssh/authorized_keys

NEW=$(mktemp)
cat >"$NEW" <<CONF
# written by aiida-crystinv tests/services/ssh.sh
ListenAddress 127.0.0.1
Port $PORT
HostKey $DIR/host_ed25519
PidFile $DIR/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AuthorizedKeysFile .ssh/authorized_keys
StrictModes yes
MaxStartups 50:30:100
MaxSessions 50
LogLevel INFO
Subsystem sftp internal-sftp
CONF
changed=1
if [ -f "$DIR/sshd_config" ] && cmp -s "$NEW" "$DIR/sshd_config"; then changed=0; else install -m 0600 "$NEW" "$DIR/sshd_config"; fi
rm -f "$NEW"
/usr/sbin/sshd -t -f "$DIR/sshd_config" || die "sshd rejects $DIR/sshd_config"

pid=$(cat "$DIR/sshd.pid" 2>/dev/null || true)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    if [ "$changed" -eq 1 ]; then
        say "the configuration changed: restarting sshd (pid $pid)"
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        pid=""
    else
        say "sshd: already running (pid $pid)"
    fi
else
    pid=""
fi
if [ -z "$pid" ]; then
    /usr/sbin/sshd -f "$DIR/sshd_config" -E "$DIR/sshd.log" || die "sshd did not start (see $DIR/sshd.log)"
    for _ in $(seq 50); do [ -s "$DIR/sshd.pid" ] && break; sleep 0.1; done
    say "sshd: started on 127.0.0.1:$PORT (pid $(cat "$DIR/sshd.pid" 2>/dev/null))"
fi

# the host key, as clients see it: [127.0.0.1]:PORT (and localhost)
entry="$(cut -d' ' -f1,2 "$DIR/host_ed25519.pub")"
for known in "$DIR/known_hosts" /root/.ssh/known_hosts; do
    touch "$known"
    for name in "[127.0.0.1]:$PORT" "[localhost]:$PORT"; do
        ssh-keygen -R "$name" -f "$known" >/dev/null 2>&1 || true
        echo "$name $entry" >>"$known"
    done
    rm -f "$known.old"
    chmod 0600 "$known"
done

# a Host alias in ~/.ssh/config: `core.ssh_async` (asyncssh, or the openssh backend) takes
# its connection settings from there only. The block is kept first (ssh takes the first
# value of each option) and replaced on each run.
ALIAS=${CRYSTINV_SSH_ALIAS:-crystinv-test-ssh}
BLOCK="# BEGIN crystinv-test-ssh (tests/services/ssh.sh)
Host $ALIAS
    HostName 127.0.0.1
    Port $PORT
    User root
    IdentityFile $KEY
    IdentitiesOnly yes
    UserKnownHostsFile $DIR/known_hosts
    StrictHostKeyChecking yes
    BatchMode yes
    ConnectTimeout 10
# END crystinv-test-ssh"
printf '%s\n' "$BLOCK" >"$DIR/ssh_config"
touch /root/.ssh/config
OTHER=$(sed '/^# BEGIN crystinv-test-ssh/,/^# END crystinv-test-ssh/d' /root/.ssh/config)
{ printf '%s\n' "$BLOCK"; [ -n "$OTHER" ] && printf '%s\n' "$OTHER"; } >/root/.ssh/config.crystinv-new
if cmp -s /root/.ssh/config.crystinv-new /root/.ssh/config; then rm -f /root/.ssh/config.crystinv-new
else mv /root/.ssh/config.crystinv-new /root/.ssh/config; say "Host $ALIAS written to /root/.ssh/config"; fi
chmod 0600 /root/.ssh/config

for _ in $(seq 30); do
    ssh -i "$KEY" -p "$PORT" -o BatchMode=yes -o UserKnownHostsFile="$DIR/known_hosts" -o StrictHostKeyChecking=yes \
        -o ConnectTimeout=5 root@127.0.0.1 true 2>/dev/null \
        && ssh "$ALIAS" true 2>/dev/null \
        && { say "ssh root@127.0.0.1 -p $PORT works (and ssh $ALIAS); key: $KEY"; exit 0; }
    sleep 0.2
done
ssh -i "$KEY" -p "$PORT" -o BatchMode=yes -o UserKnownHostsFile="$DIR/known_hosts" -o ConnectTimeout=5 root@127.0.0.1 true
ssh "$ALIAS" true
die "ssh -i $KEY -p $PORT root@127.0.0.1 true (or ssh $ALIAS true) does not work (see $DIR/sshd.log)"
