#!/bin/bash
# Runs herd on a pure cgroup v2 host under systemd: a manager, and a worker
# in a Delegate=yes unit, then commands with every limit. Meant for the
# sysboot VM (a booted Debian 12); the binaries are read from /mnt/share:
#   cp target/debug/herd* /var/tmp/sysboot/share/ && cp tests/system/v2-check.sh /var/tmp/sysboot/share/
#   W=/var/tmp/sysboot ../shared/tools/sysboot/vm-run.sh 'bash /mnt/share/v2-check.sh'
# It prints what it sees for a person to read; it asserts nothing yet.
set -u
S=/mnt/share
mkdir -p /run/herdv2
cd /tmp
echo "== cgroup: $(stat -fc %T /sys/fs/cgroup) controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
systemd-run --unit herd-v2-manager $S/herd-managerd --listen unix:///run/herdv2/m.sock --worker-lease 3s
sleep 1
systemd-run --unit herd-v2-worker -p Delegate=yes $S/herd-workerd --manager unix:///run/herdv2/m.sock --listen unix:///run/herdv2/w.sock --id vm
sleep 2
export HERD_ADDR=unix:///run/herdv2/m.sock
H=$S/herd
$H workers
echo "== hello"; $H run -- sh -c 'echo hello; id -u; ls /sys/class/net'
echo "== oom"; $H run --id oom --memory 64M -- sh -c 'tail /dev/zero'; echo "exit $?"; $H status oom -o json | grep -E '"(state|reason|signal|oom_kills|memory_peak_bytes)"'
echo "== pids"; $H run --id pids --pids 32 -- sh -c 'for i in $(seq 100); do sleep 5 & done 2>/dev/null; cat /sys/fs/cgroup/pids.max 2>/dev/null; echo done'; echo "exit $?"
echo "== cpu"; $H run --id cpu --cpus 0.25 -- sh -c "timeout 2 sh -c 'while :; do :; done'; exit 0"; $H status cpu -o json | grep cpu_usage_usec
echo "== peak"; $H run --id peak --memory 256M -- dd if=/dev/zero of=/dev/null bs=100M count=1 2>/dev/null; $H status peak -o json | grep -E 'memory_peak|cpu_usage'
echo "== tree kill"; ID=$($H run -d -- sh -c 'trap "" TERM; setsid sleep 1001 & sleep 1000'); sleep 1
echo "worker cgroup: $(systemctl show -p ControlGroup --value herd-v2-worker)"
find /sys/fs/cgroup$(systemctl show -p ControlGroup --value herd-v2-worker) -maxdepth 2 -type d
$H kill --grace 1s $ID; sleep 2; $H status $ID | grep -E 'state|signal'
pgrep -a sleep || echo "no sleep left"
echo "== timeout"; $H run --id to --timeout 1s -- sleep 100; $H status to | grep reason
echo "== io"; $H run --id io --io-read-bps 1m -- sh -c 'cat /sys/fs/cgroup/io.max 2>/dev/null; echo ok'; $H status io | grep -E 'state|error'
echo "== after"; find /sys/fs/cgroup$(systemctl show -p ControlGroup --value herd-v2-worker) -maxdepth 2 -type d
systemctl stop herd-v2-worker herd-v2-manager
journalctl -u herd-v2-worker --no-pager | tail -5
