#!/usr/bin/env bash
# Runs inside the booted Debian 12 VM (systemd, pure cgroup v2) with herd's
# packages in /mnt/share/v1 (0.1.0) and /mnt/share/v2 (0.1.1). Follows the
# README's install section, then checks the units, the sandbox, stop and
# restart, upgrade and purge. Prints one line per check and exits non-zero
# at the first failure, after printing the daemons' journals.
set -uo pipefail
export SYSTEMD_PAGER= LC_ALL=C.UTF-8

step=0
pass() { step=$((step + 1)); echo "ok $step - $*"; }
fail() {
  echo "not ok $((step + 1)) - $*"
  echo "--- journal of herd-managerd and herd-workerd:"
  journalctl --no-pager -n 80 -u herd-managerd -u herd-workerd
  exit 1
}
check() { # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
# Runs the CLI as alice, a member of the herd group, as an operator would.
as_alice() { runuser -u alice -- herd "$@"; }
json_field() { # json_field ID FIELD: a top-level or metrics field of `herd status`
  as_alice status "$1" -o json | jq -r --arg f "$2" '.[$f] // .metrics[$f] // empty'
}
wait_for() { # wait_for SECONDS COMMAND...: polls until the command succeeds
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}
state_is() { [[ $(json_field "$1" state) == "$2" ]]; }
unit_cgroup() { echo "/sys/fs/cgroup$(systemctl show -P ControlGroup herd-workerd)"; }

# README: install the packages with apt and start the units.
check "apt installs the packages" apt-get install -y -q /mnt/share/v1/*.deb
verify=$(systemd-analyze verify /usr/lib/systemd/system/herd-managerd.service \
  /usr/lib/systemd/system/herd-workerd.service 2>&1)
check "systemd-analyze verify prints nothing" test -z "$verify"
[[ -z $verify ]] || echo "$verify"
check "the units start" systemctl start herd-managerd herd-workerd
check "herd-managerd is active" test "$(systemctl is-active herd-managerd)" = active
check "herd-workerd is active" test "$(systemctl is-active herd-workerd)" = active
check "the herd group exists" getent group herd
useradd --create-home alice
check "alice joins the herd group" usermod --append --groups herd alice
check "herd workers lists the host" wait_for 30 sh -c 'runuser -u alice -- herd workers | grep -q READY'
host=$(hostname)
check "the worker is named after the host" sh -c "runuser -u alice -- herd workers | grep -q '$host'"
check "herd run prints hi" test "$(as_alice run -- echo hi)" = hi

# The sandbox on pure cgroup v2, under the worker unit's delegated subtree.
as_alice run --id oom --memory 64M -- tail /dev/zero
check "tail /dev/zero under --memory 64M ends OOM_KILLED" test "$(json_field oom reason)" = OOM_KILLED
peak=$(json_field oom memory_peak_bytes)
check "peak memory is reported ($peak bytes)" test "${peak:-0}" -gt $((32 << 20))

# perl keeps going when fork fails, where sh would exit.
as_alice run -d --id pids --pids 32 -- perl -e \
  'for (1 .. 100) { my $pid = fork; if (defined $pid && $pid == 0) { sleep 60; exit } } sleep 60' \
  >/dev/null
check "the pids command runs" wait_for 20 state_is pids RUNNING
sleep 3
pids_cgroup=$(unit_cgroup)/herd/pids
check "the command's cgroup is under the worker unit ($pids_cgroup)" test -d "$pids_cgroup"
check "--pids 32 holds ($(cat "$pids_cgroup/pids.current") in the cgroup)" \
  test "$(cat "$pids_cgroup/pids.current")" -le 32
check "the pids limit was hit" test "$(awk '$1 == "max" { print $2 }' "$pids_cgroup/pids.events")" -ge 1
as_alice kill --grace 1s pids >/dev/null
check "terminate ends the tree" wait_for 20 state_is pids ABORTED
check "the command's cgroup is removed" wait_for 10 test ! -d "$pids_cgroup"
check "no process of the tree is left" sh -c '! pgrep -x -u herd-run sleep'

check "journalctl finds a process by PROCESS_ID" \
  sh -c 'journalctl -u herd-workerd PROCESS_ID=pids | grep -q "sandbox started"'
check "commands cannot run as the manager's user" sh -c '! runuser -u alice -- herd run --user herd -- true'
check "the worker's spool is root's alone" test "$(stat -c %U:%a /var/lib/herd-workerd)" = root:700

# Stop and restart.
as_alice run -d --id long -- sh -c 'sleep 300 & sleep 300' >/dev/null
check "the long command runs" wait_for 20 state_is long RUNNING
check "systemctl stop herd-workerd" systemctl stop herd-workerd
check "no process of any command is left" sh -c '! pgrep -u herd-run'
check "no cgroup of any command is left" sh -c "! ls -d $(unit_cgroup)/herd/*/ 2>/dev/null"
records=$(herd ps -a -q | sort)
check "systemctl restart herd-managerd" systemctl restart herd-managerd
check "herd-managerd is active again" test "$(systemctl is-active herd-managerd)" = active
check "every record is kept" test "$(herd ps -a -q | sort)" = "$records"
check "herd-workerd starts again" systemctl start herd-workerd

# Upgrade to 0.1.1 with an edited config: state and config stay, and the
# worker keeps running.
echo 'queue_timeout = "45s"' >>/etc/herd/managerd.toml
worker_pid=$(systemctl show -P MainPID herd-workerd)
check "apt upgrades to 0.1.1" apt-get install -y -q /mnt/share/v2/*.deb
check "the packages are 0.1.1" sh -c "dpkg-query -W -f '\${Version}\n' herd herd-managerd herd-workerd | grep -c '^0.1.1' | grep -qx 3"
check "the edited config is kept" grep -q 'queue_timeout = "45s"' /etc/herd/managerd.toml
check "herd-managerd is active after the upgrade" wait_for 20 test "$(systemctl is-active herd-managerd)" = active
check "the worker was not restarted" test "$(systemctl show -P MainPID herd-workerd)" = "$worker_pid"
check "the records are kept" wait_for 20 sh -c "test \"\$(herd ps -a -q | sort)\" = \"$records\""

# Purge removes state and config.
check "apt purges the packages" apt-get purge -y -q herd herd-managerd herd-workerd
check "the state is gone" test ! -e /var/lib/herd -a ! -e /var/lib/herd-workerd
check "the config is gone" test ! -e /etc/herd
check "no unit is left running" sh -c '! systemctl is-active -q herd-managerd herd-workerd'
echo "all $step checks passed"
