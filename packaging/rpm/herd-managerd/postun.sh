# herd-managerd's %postun, written out from Fedora's
# %systemd_postun_with_restart macro. $1 is 0 on erase and 1 on an upgrade.

if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi

if [ "$1" -ge 1 ]; then
    # An upgrade: restart the manager if it runs, so the new version serves.
    systemctl try-restart herd-managerd.service >/dev/null 2>&1 || :
fi
# An erase keeps the state in /var/lib/herd, as Fedora packages keep their
# data; delete it by hand to start afresh. rpm saves an edited
# managerd.toml as managerd.toml.rpmsave.
