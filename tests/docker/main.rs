//! The Docker image, for real: README's `docker build` run by a real engine (Debian's
//! `dockerd`, started by the tests with its own data root) on base images made with
//! `debootstrap`, and README's `docker run` serving the real pacman from a real nginx mirror.
//! Also what needs no engine: the Dockerfile and compose file checked and linted.
//!
//! A test target of its own: `cargo test --test docker` runs only these, `cargo test --test it`
//! everything else. Needs root (dockerd, debootstrap) plus the tools of
//! `scripts/install-test-deps.sh`; without them the engine tests are skipped, except in CI
//! (`CI=true`), where that is a failure. The first run makes the base image (~1-2 min) and
//! compiles pkgstash in the builder stage (a release build); later runs reuse both from
//! `target/tmp/docker`.

#[path = "../it/fixture.rs"]
mod fixture;
#[path = "../it/nginx.rs"]
mod nginx;
#[path = "../it/pkgfiles.rs"]
mod pkgfiles;
#[path = "../it/sandbox.rs"]
mod sandbox;
#[path = "../it/support.rs"]
mod support;
#[path = "../it/trixie.rs"]
#[allow(dead_code)] // needed by sandbox.rs; shared with tests/it, where every helper is used
mod trixie;
#[path = "../it/upstream.rs"]
mod upstream;

mod compose;
mod container;
mod engine;
mod image;
mod lint;
mod readme;

use std::path::Path;

/// The repository root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
