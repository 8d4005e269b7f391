# herd-managerd's %post, written out from Fedora's %sysusers_create and
# %systemd_post macros. $1 is 1 on a fresh install and 2 on an upgrade.

# The user and group herd, which the unit runs as.
systemd-sysusers herd-managerd.conf

# Enable the unit on a fresh install only if the distribution's preset
# policy enables it. Fedora's default policy leaves it disabled.
if [ "$1" -eq 1 ]; then
    systemctl --no-reload preset herd-managerd.service >/dev/null 2>&1 || :
fi
