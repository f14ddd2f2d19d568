#!/usr/bin/env bash
# The whole test suite: unit tests, HTTP integration tests, the real-pacman end-to-end suite,
# packaging and browser tests. Installs missing test tools first (Debian/Ubuntu, as root or
# with passwordless sudo). Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/sbin:$HOME/.local/bin"
./scripts/install-test-deps.sh
# --no-fail-fast: every test target runs and reports, even after a failing one.
exec cargo test --all-targets --no-fail-fast "$@"
