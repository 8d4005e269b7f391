# herd-workerd's %post, written out from Fedora's %sysusers_create,
# %tmpfiles_create and %systemd_post macros. $1 is 1 on a fresh install and
# 2 on an upgrade.

# The group herd and the user herd-run that commands run as by default.
systemd-sysusers herd-workerd.conf

# /run/herd, the folder of the worker's socket.
systemd-tmpfiles --create herd-workerd.conf >/dev/null 2>&1 || :

# Enable the unit on a fresh install only if the distribution's preset
# policy enables it. Fedora's default policy leaves it disabled.
if [ "$1" -eq 1 ]; then
    systemctl --no-reload preset herd-workerd.service >/dev/null 2>&1 || :
fi
