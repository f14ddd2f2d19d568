#!/usr/bin/env bash
# Make a Debian base image without a registry: `debootstrap --variant=minbase SUITE`, tuned the
# way the official `debian:SUITE[-slim]` images are (debuerreotype: apt/dpkg settings for
# containers, no apt lists, no docs/man/locales in the -slim variant), then `docker import`ed
# under TAG, so a Dockerfile's `FROM debian:SUITE-slim` finds it as if it had been pulled.
#
#   tests/docker/debian-image.sh SUITE TAG [MIRROR]     (root; DOCKER_HOST picks the engine)
#
# Unlike the official images, the root file system gets this machine's way to the Debian
# mirrors: its local CA certificates (/usr/local/share/ca-certificates: a build step that
# installs `ca-certificates` then trusts what the host trusts, e.g. a TLS-inspecting egress
# proxy) and its apt `Acquire::` settings (proxy, validity checks).
set -euo pipefail

suite=${1:?usage: debian-image.sh SUITE TAG [MIRROR]}
tag=${2:?usage: debian-image.sh SUITE TAG [MIRROR]}
mirror=${3:-http://deb.debian.org/debian}
export PATH="$PATH:/usr/sbin:/sbin"

work=$(mktemp -d "${TMPDIR:-/tmp}/debian-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"

debootstrap --variant=minbase --components=main "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  echo "debootstrap $suite failed" >&2
  exit 1
}

# --- what debuerreotype does for the official images ------------------------------------
cat >"$rootfs/usr/sbin/policy-rc.d" <<'EOF'
#!/bin/sh
# No services start during image builds.
exit 101
EOF
chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
echo force-unsafe-io >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::GzipIndexes "true";' >"$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes"
echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"

# Sources as in the official image: the suite, its updates and its security updates.
rm -f "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

if [[ $tag == *-slim ]]; then
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# no docs, man pages or translations (as debian:*-slim)
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs"/usr/share/{man,groff,info,lintian,linda}/*
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
fi

# --- this machine's way to the mirrors -----------------------------------------------------
shopt -s nullglob
for crt in /usr/local/share/ca-certificates/*.crt; do
  install -Dm0644 "$crt" "$rootfs/usr/local/share/ca-certificates/$(basename "$crt")"
done
for conf in /etc/apt/apt.conf /etc/apt/apt.conf.d/*; do
  [[ -f $conf && $(basename "$conf") != docker-* ]] || continue
  if grep -qE '^[[:space:]]*Acquire' "$conf"; then
    install -Dm0644 "$conf" "$rootfs/etc/apt/apt.conf.d/$(basename "$conf")"
  fi
done

# --- clean up as the official images are: no apt lists, caches or logs ---------------------
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
  "$rootfs"/var/cache/ldconfig/aux-cache "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* \
  "$rootfs"/tmp/* "$rootfs"/var/tmp/*
: >"$rootfs/etc/hostname"
: >"$rootfs/etc/resolv.conf"

tar --numeric-owner --xattrs -C "$rootfs" -c . |
  docker import --change 'CMD ["bash"]' --message "debootstrap --variant=minbase $suite" - "$tag" >/dev/null
echo "$tag: $(docker image inspect --format '{{.Size}}' "$tag") bytes"
