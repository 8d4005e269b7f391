# herd-workerd's %postun, written out from Fedora's %systemd_postun macro,
# which, unlike %systemd_postun_with_restart, never restarts the unit: a
# restart ends every command the worker runs, so the new version takes over
# at the next `systemctl restart herd-workerd` or reboot. $1 is 0 on erase
# and 1 on an upgrade.

if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi

# An erase keeps the worker's state in /var/lib/herd-workerd, as Fedora
# packages keep their data; rpm saves an edited workerd.toml as
# workerd.toml.rpmsave.
