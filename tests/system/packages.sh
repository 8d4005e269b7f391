#!/usr/bin/env bash
# System test of the packages: builds the .deb and .rpm files (0.1.0, and
# 0.1.1 for the upgrade), checks the .rpm contents, then boots a clean
# Debian 12 with systemd and pure cgroup v2 under QEMU (sysboot) and runs
# tests/system/guest.sh in it. Run as root from the repository:
#
#   tests/system/packages.sh
#
# HERD_SYSBOOT names the sysboot scripts (default ../shared/tools/sysboot
# beside the repository, else /work/shared/tools/sysboot); HERD_SYSBOOT_WORK
# the folder of the VM image, built once and reused (default
# /var/tmp/herd-sysboot).
set -euo pipefail
cd "$(dirname "$0")/../.."

# The sysboot scripts sit beside the repository in ../shared, or at the
# development machines' fixed path.
sysboot=${HERD_SYSBOOT:-}
if [[ -z $sysboot ]]; then
  for candidate in ../shared/tools/sysboot /work/shared/tools/sysboot; do
    if [[ -x $candidate/vm-run.sh ]]; then
      sysboot=$(cd "$candidate" && pwd)
      break
    fi
  done
fi
work=${HERD_SYSBOOT_WORK:-/var/tmp/herd-sysboot}
# Packages the guest needs beyond the image's base: man pages for
# `systemd-analyze verify` to check Documentation=, and jq to read JSON.
guest_packages=man-db,jq

if [[ ! -x ${sysboot:-/nonexistent}/vm-run.sh ]]; then
  echo "system test: no sysboot scripts in ${sysboot:-../shared/tools/sysboot}; set HERD_SYSBOOT" >&2
  exit 1
fi
for tool in qemu-system-x86_64 debootstrap mkfs.ext4 python3 rpm; do
  if ! command -v "$tool" >/dev/null; then
    echo "system test: $tool is missing; run apt-get install --no-install-recommends" \
      "qemu-system-x86 debootstrap e2fsprogs python3 rpm binutils dpkg-dev" >&2
    exit 1
  fi
done

echo "==> building the packages"
HERD_VERSION=0.1.0 packaging/build.sh
HERD_VERSION=0.1.1 packaging/build.sh

echo "==> checking the .rpm files"
for package in herd herd-managerd herd-workerd; do
  rpm_file=$(ls dist/"$package"-0.1.0-*.rpm)
  listing=$(rpm -qlp "$rpm_file")
  binary=/usr/bin/$package
  expected=("$binary")
  if [[ $package == herd ]]; then
    expected+=(/usr/share/man/man1/herd.1.gz)
  else
    expected+=("/usr/lib/systemd/system/$package.service"
      "/etc/herd/${package#herd-}.toml" "/usr/share/man/man8/$package.8.gz")
  fi
  for file in "${expected[@]}"; do
    if ! grep -qx "$file" <<<"$listing"; then
      echo "system test: $rpm_file does not list $file:" >&2
      echo "$listing" >&2
      exit 1
    fi
  done
  echo "ok - $rpm_file lists ${expected[*]}"
done

if [[ ! -f $work/vm.img || $(cat "$work/herd-image" 2>/dev/null) != "$guest_packages" ]]; then
  echo "==> building the VM image in $work (about two minutes)"
  W=$work "$sysboot/build-image.sh" "$guest_packages"
  echo "$guest_packages" >"$work/herd-image"
fi

share=$(mktemp -d "$work/share.XXXXXX")
trap 'rm -rf "$share"' EXIT
mkdir "$share/v1" "$share/v2"
cp dist/*_0.1.0-*_amd64.deb "$share/v1/"
cp dist/*_0.1.1-*_amd64.deb "$share/v2/"
cp tests/system/guest.sh "$share/"

echo "==> booting Debian 12 and running tests/system/guest.sh"
W=$work SHARE=$share CMD_TIMEOUT=1500 "$sysboot/vm-run.sh" 'bash /mnt/share/guest.sh'
