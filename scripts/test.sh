#!/usr/bin/env bash
# The whole test suite: unit tests, HTTP integration tests, the real-pacman suite.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --all-targets "$@"
