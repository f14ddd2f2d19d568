//! Helpers shared by the packaging tests: the repository's files (`packaging/…`), the cargo
//! target dir, reading files. (Running a command that must succeed: [`crate::support::must`].)
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::bin;

/// The repository root (the crate's manifest dir).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `packaging/<rel>`.
pub fn pkg_file(rel: &str) -> PathBuf {
    repo().join("packaging").join(rel)
}

/// A file's text; panics naming the file.
pub fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A file's bytes; panics naming the file.
pub fn read_bytes(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// This process's effective uid (from /proc).
pub fn euid() -> u32 {
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .expect("effective uid")
}

/// The cargo target dir of this build (`.../target`), from the binary's path: where the
/// packaging tests keep what they reuse between runs (never committed).
pub fn target_dir() -> PathBuf {
    Path::new(bin())
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// `key = value` of a PKGBUILD's simple scalar assignment (`pkgver=0.1.0`).
pub fn pkgbuild_var(pkgbuild: &str, key: &str) -> String {
    pkgbuild
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(|v| v.trim().trim_matches(['\'', '"']).to_string())
        .unwrap_or_else(|| panic!("PKGBUILD has no {key}="))
}

/// Seconds since the epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}
