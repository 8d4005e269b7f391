#!/usr/bin/env bash
# Builds herd's three packages, herd-managerd, herd-workerd and herd (the
# CLI), as .deb and .rpm files in dist/:
#
#   packaging/build.sh                      # the workspace's version
#   HERD_VERSION=0.1.1 packaging/build.sh   # another package version
#
# HERD_VERSION changes the packages' version only: the binaries still print
# the workspace's version. Packages of other versions in dist/ are kept, so
# two runs can prepare an upgrade test. Installs the pinned cargo-deb and
# cargo-generate-rpm with `cargo install --locked` when they are missing or
# at another version. Needs strip (binutils) and dpkg-shlibdeps (dpkg-dev).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo_deb_version=3.8.0
cargo_generate_rpm_version=0.21.1
dist=dist
# Where cargo puts the binaries. Both packagers read target/release/ in the
# Cargo.toml metadata as this folder.
release=${CARGO_TARGET_DIR:-target}/release
# Man pages, completions and, for the .rpm files, stripped binaries.
assets=$release/packaging

workspace_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
version=${HERD_VERSION:-$workspace_version}
# Both formats accept these characters. rpm rejects "-" in a version, and
# dpkg reads it as the start of the revision.
if [[ ! $version =~ ^[0-9][0-9A-Za-z.+~]*$ ]]; then
  echo "build: invalid HERD_VERSION ${version:-(empty)}: use digits, letters, '.', '+' and '~', as in 0.1.1" >&2
  exit 1
fi

# Installs crate $2 at version $3 unless `cargo $1 --version` reports it.
ensure_tool() {
  local installed
  installed=$(cargo "$1" --version 2>/dev/null || true)
  if [[ $installed != "$2 $3" ]]; then
    echo "==> installing $2 $3 (once; several minutes)"
    cargo install --locked "$2" --version "$3"
  fi
}
ensure_tool deb cargo-deb "$cargo_deb_version"
ensure_tool generate-rpm cargo-generate-rpm "$cargo_generate_rpm_version"
for tool in strip gzip dpkg-shlibdeps; do
  if ! command -v "$tool" >/dev/null; then
    echo "build: $tool is missing; run apt-get install binutils gzip dpkg-dev" >&2
    exit 1
  fi
done

echo "==> building the release binaries"
cargo build --release --locked -p herd-managerd -p herd-workerd -p herd-cli -p herd-xtask

echo "==> checking the default config files"
"$release/herd-xtask" check-config packaging/config

echo "==> generating man pages and completions in $assets"
"$release/herd-xtask" assets "$assets"
gzip -9 --no-name --force "$assets"/man/*

# cargo-deb strips the binaries itself (--strip); cargo-generate-rpm
# packages them as they are, so it gets copies stripped the same way.
mkdir -p "$assets/bin"
for binary in herd-managerd herd-workerd herd; do
  if [[ $release/$binary -nt $assets/bin/$binary ]]; then
    strip --strip-unneeded --remove-section=.comment --remove-section=.note \
      -o "$assets/bin/$binary" "$release/$binary"
  fi
done

# cargo-generate-rpm reads a script setting that names no existing file as
# the script itself, so a moved script would be packaged as its path.
for script in $(sed -n 's/^[a-z_]*_script = "\(.*\)"$/\1/p' managerd/Cargo.toml workerd/Cargo.toml); do
  if [[ ! -f $script ]]; then
    echo "build: the RPM scriptlet $script named in a Cargo.toml is missing" >&2
    exit 1
  fi
done

mkdir -p "$dist"
deb_version=()
rpm_version=()
if [[ $version != "$workspace_version" ]]; then
  deb_version=(--deb-version "$version-1")
  rpm_version=(--set-metadata "version = \"$version\"")
fi
for crate in managerd workerd cli; do
  echo "==> packaging $crate"
  cargo deb --package "herd-$crate" --no-build --strip --output "$dist/" "${deb_version[@]}"
  # The builtin requirement finder (ldd) gives the same result with or
  # without rpm's own tools on the build machine.
  cargo generate-rpm --package "$crate" --auto-req builtin --output "$dist/" "${rpm_version[@]}"
done

echo "==> packages of version $version in $dist/"
ls -l "$dist"/*_"$version"-1_*.deb "$dist"/*-"$version"-1.*.rpm
