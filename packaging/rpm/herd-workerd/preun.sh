# herd-workerd's %preun, written out from Fedora's %systemd_preun macro.
# $1 is 0 on erase and 1 on an upgrade.

# On erase, disable and stop the unit, which ends every command it runs.
# An upgrade leaves it running.
if [ "$1" -eq 0 ]; then
    systemctl --no-reload disable --now herd-workerd.service >/dev/null 2>&1 || :
fi
