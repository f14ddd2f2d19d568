#!/usr/bin/env bash
# Build pkgstash (release) and run it with the sample config.
# The cache goes to ./cache and the server listens on 0.0.0.0:7878 unless overridden
# (PKGSTASH__CACHE_DIR=..., PKGSTASH__LISTEN=...). Extra arguments go to `pkgstash serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PKGSTASH__CACHE_DIR="${PKGSTASH__CACHE_DIR:-$PWD/cache}"
export RUST_LOG="${RUST_LOG:-info}"
cargo build --release --locked
exec ./target/release/pkgstash serve -c config/pkgstash.toml "$@"
