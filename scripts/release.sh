#!/usr/bin/env bash
# Make a pkgstash release's source tarball and point the AUR package at it.
#
#   scripts/release.sh VERSION [OUTDIR]
#
# 1. Checks that the tag vVERSION exists and that Cargo.toml at that tag says VERSION.
# 2. Writes OUTDIR/pkgstash-VERSION.tar.gz (default OUTDIR: target/release-dist) with
#    `git archive` of the tag, every file under the top directory `pkgstash-VERSION/`.
# 3. Updates packaging/arch/PKGBUILD in the working tree: pkgver=VERSION, pkgrel=1 (kept when
#    pkgver is already VERSION: a packaging-only rebuild bumps pkgrel by hand), and
#    sha256sums to the tarball's sha256; then packaging/arch/.SRCINFO with
#    `makepkg --printsrcinfo` (the AUR reads it).
#
# The tarball is the release: upload it, byte for byte, to the URL the script prints, which
# is the PKGBUILD's `source`. That URL comes from the PKGBUILD's `url=` (the project's home,
# set in that one place) and the release-asset scheme `$url/releases/download/vVERSION/
# pkgstash-VERSION.tar.gz`. A forge's on-the-fly archive of the tag (`/archive/...`) is not
# used: its bytes are not ours to pin, so its checksum could change under the AUR package.
#
# A maintainer's release, from a clean main:
#   git tag -a v0.2.0 -m 'pkgstash 0.2.0'      # Cargo.toml already says 0.2.0
#   scripts/release.sh 0.2.0                   # tarball + PKGBUILD/.SRCINFO
#   git commit -m 'packaging: v0.2.0 checksums' packaging/arch
#   git push origin main v0.2.0                # then upload the tarball as the release asset
#   # and copy PKGBUILD, .SRCINFO, pkgstash.install to the AUR repo and push there
#
# makepkg refuses to run as root: as root the script runs `makepkg --printsrcinfo` as an
# unprivileged user (uid 1000 in a user namespace, else `nobody`).
set -euo pipefail

usage() {
  echo "usage: $0 VERSION [OUTDIR]   (tag vVERSION must exist)" >&2
  exit 2
}
[ $# -ge 1 ] && [ $# -le 2 ] || usage
version=$1
case $version in
  v*) echo "VERSION is without the leading v: ${version#v}" >&2; exit 2 ;;
  *[!0-9A-Za-z.+_]* | "") echo "invalid VERSION: $version (pkgver allows letters, digits, . + _)" >&2; exit 2 ;;
esac
tag="v$version"
repo=$(git rev-parse --show-toplevel)
cd "$repo"
outdir=${2:-target/release-dist}
pkgbuild=packaging/arch/PKGBUILD

git rev-parse -q --verify "refs/tags/$tag^{commit}" >/dev/null \
  || { echo "no tag $tag: create it first (git tag -a $tag -m 'pkgstash $version')" >&2; exit 1; }
cargo_version=$(git show "$tag:Cargo.toml" | sed -n 's/^version = "\(.*\)"$/\1/p' | head -n1)
[ "$cargo_version" = "$version" ] \
  || { echo "Cargo.toml at $tag says version \"$cargo_version\", not \"$version\"" >&2; exit 1; }

mkdir -p "$outdir"
tarball="$outdir/pkgstash-$version.tar.gz"
git archive --format=tar.gz --prefix="pkgstash-$version/" -o "$tarball" "$tag"
sum=$(sha256sum "$tarball" | cut -d' ' -f1)

old_pkgver=$(sed -n 's/^pkgver=//p' "$pkgbuild")
tmp=$(mktemp "$pkgbuild.XXXXXX")
trap 'rm -f "$tmp"' EXIT
sed -e "s/^pkgver=.*/pkgver=$version/" \
  -e "s/^sha256sums=.*/sha256sums=('$sum')/" "$pkgbuild" >"$tmp"
if [ "$old_pkgver" != "$version" ]; then
  sed -i 's/^pkgrel=.*/pkgrel=1/' "$tmp"
fi
grep -qx "sha256sums=('$sum')" "$tmp" \
  || { echo "$pkgbuild: no single-line sha256sums=(...) to update" >&2; exit 1; }
cat "$tmp" >"$pkgbuild"

# makepkg --printsrcinfo, as an unprivileged user when we are root.
printsrcinfo() {
  if [ "$(id -u)" != 0 ]; then
    makepkg --printsrcinfo
  elif unshare --user --map-user=1000 --map-group=1000 -- true 2>/dev/null; then
    unshare --user --map-user=1000 --map-group=1000 -- makepkg --printsrcinfo
  else
    setpriv --reuid=nobody --regid=nogroup --clear-groups -- makepkg --printsrcinfo
  fi
}
(cd packaging/arch && printsrcinfo) >"$tmp"
cat "$tmp" >packaging/arch/.SRCINFO

url=$(sed -n 's/^\tsource = //p' packaging/arch/.SRCINFO)
echo "release tarball: $tarball"
echo "sha256:          $sum"
echo "upload it to:    ${url#*::}"
echo "updated:         $pkgbuild packaging/arch/.SRCINFO (commit them)"
