#!/usr/bin/env bash
# pkgstash vs nginx (caching reverse proxy), side by side, in one command.
#
#   benches/run.sh [--quick] [--only 1,3] [--keep]
#   benches/run.sh --scale [--parts herd,lan] [--scale-factor 0.1] [--fixtures DIR] [--keep]
#
# Builds pkgstash in release mode, starts an nginx upstream (rate-limited server blocks, JSON
# access log), nginx as a caching reverse proxy (the Arch wiki setup) and pkgstash on 127.0.0.1,
# runs the scenarios of benches/bench.py and prints a table; the JSON goes to
# benches/results.json (results-quick.json with --quick, results-partial.json with --only).
# --scale runs benches/scale.py instead: an Arch-sized mirror (benches/archgen.py, generated
# with repo-add once and cached in target/bench-fixtures or --fixtures DIR /
# $PKGSTASH_BENCH_FIXTURES), db-scale figures, the herd measured from outside and the LAN
# upgrade day (JSON: results-scale.json, results-scale-partial.json with --parts or a
# --scale-factor); `scale.py --help` lists its options, which run.sh passes on.
# Needs: cargo, nginx, haproxy (scenario 8: the pool), wrk, python3 (>= 3.11), pacman +
# repo-add, bsdtar, zstd.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"

quick=0
keep=0
only=0
scale=0
partial=0
pass=()
for a in "$@"; do
    case "$a" in
        --quick) quick=1; pass+=("--quick") ;;
        --keep) keep=1 ;;
        --scale) scale=1 ;;
        --only|--only=*) only=1; pass+=("$a") ;;
        --parts|--parts=*|--scale-factor|--scale-factor=*) partial=1; pass+=("$a") ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) pass+=("$a") ;;
    esac
done

missing=()
export PATH="$PATH:/usr/sbin:/sbin"
for t in cargo nginx haproxy wrk pacman repo-add bsdtar zstd head; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
PY=""
for p in python3.11 python3.12 python3.13 python3; do
    if command -v "$p" >/dev/null 2>&1 &&
        "$p" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        PY="$p"; break
    fi
done
[ -n "$PY" ] || missing+=("python3>=3.11")
if [ "${#missing[@]}" -gt 0 ]; then
    echo "benches/run.sh: missing tools: ${missing[*]}" >&2
    echo "  (Debian: apt-get install nginx-light haproxy wrk pacman-package-manager libarchive-tools zstd)" >&2
    exit 2
fi

echo "building pkgstash (release)..." >&2
(cd "$repo" && cargo build --release --quiet --bin pkgstash)

work="$(mktemp -d "${TMPDIR:-/tmp}/pkgstash-bench.XXXXXX")"
: >"$work/pids"
cleanup() {
    # Every process bench.py started (it stops them itself; this is the safety net).
    while read -r pid; do
        [ -n "$pid" ] && kill -TERM -- "-$pid" 2>/dev/null || true
    done <"$work/pids"
    sleep 0.2
    while read -r pid; do
        [ -n "$pid" ] && kill -KILL -- "-$pid" 2>/dev/null || true
    done <"$work/pids"
    if [ "$keep" = 1 ]; then
        echo "work dir kept: $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$scale" = 1 ]; then
    if [ "$partial" = 1 ]; then
        json="$here/results-scale-partial.json"
    else
        json="$here/results-scale.json"
    fi
    "$PY" "$here/scale.py" --repo "$repo" --workdir "$work" --json "$json" "${pass[@]}"
    exit $?
elif [ "$only" = 1 ]; then
    json="$here/results-partial.json"
elif [ "$quick" = 1 ]; then
    json="$here/results-quick.json"
else
    json="$here/results.json"
fi
"$PY" "$here/bench.py" --repo "$repo" --workdir "$work" --json "$json" "${pass[@]}"
