# herd-managerd's %preun, written out from Fedora's %systemd_preun macro.
# $1 is 0 on erase and 1 on an upgrade.

# On erase, disable and stop the unit. An upgrade restarts it in %postun.
if [ "$1" -eq 0 ]; then
    systemctl --no-reload disable --now herd-managerd.service >/dev/null 2>&1 || :
fi
