//! `pkgstash verify`: check every cached package against the cached repo db of its directory
//! (size, then sha256), move mismatches to `<cache_dir>/.quarantine/` (same relative path), and
//! report ok / mismatch / unknown (no cached db lists the file — e.g. an older version).
//!
//! Works on the cache directory directly (no server needed); a running server simply treats a
//! quarantined file as not cached and fetches it again.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::cache::catalog::{is_package_name, Catalog};
use crate::cache::index::CacheIndex;

/// Directory (below the cache root) receiving files that failed verification.
pub const QUARANTINE_DIR: &str = ".quarantine";

/// Verdict on one cached package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Mismatch,
    Unknown,
}

/// One line of the verify report.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    /// `upstream/rel`
    pub path: String,
    pub verdict: Verdict,
    pub detail: String,
}

/// Bytes read at a time while hashing.
const READ_BUF: usize = 256 * 1024;

/// sha256 (lowercase hex) of the file at `path`, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    sha256_file_with(path, &mut vec![0u8; READ_BUF])
}

/// [`sha256_file`] reading through `buf` (any length > 0): one buffer for every file of a
/// run — a fresh zeroed 1 MiB buffer per file cost more than hashing the typical package.
fn sha256_file_with(path: &Path, buf: &mut [u8]) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    loop {
        let n = f.read(buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Check every cached package under `root`; with `quarantine`, move mismatches away.
pub fn verify_cache(root: &Path, quarantine: bool) -> Vec<Checked> {
    let index = CacheIndex::scan(root);
    let catalog = Catalog::default();
    let mut files = index.snapshot();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::new();
    let mut buf = vec![0u8; READ_BUF];
    for (key, info) in files {
        let Some((dir, name)) = key.rsplit_once('/') else {
            continue;
        };
        if !is_package_name(name) {
            continue;
        }
        let file = root.join(&key);
        let Some(entry) = catalog.entry_for(&root.join(dir), name) else {
            out.push(Checked {
                path: key,
                verdict: Verdict::Unknown,
                detail: "no cached db lists it".into(),
            });
            continue;
        };
        let problem = match (entry.csize, entry.sha256.as_deref()) {
            (Some(size), _) if size != info.size => {
                Some(format!("size {} but the db says {size}", info.size))
            }
            (_, Some(want)) => match sha256_file_with(&file, &mut buf) {
                Ok(got) if got.eq_ignore_ascii_case(want) => None,
                Ok(got) => Some(format!("sha256 {got} but the db says {want}")),
                Err(e) => Some(format!("cannot read: {e}")),
            },
            (_, None) => None,
        };
        match problem {
            None => out.push(Checked {
                path: key,
                verdict: Verdict::Ok,
                detail: String::new(),
            }),
            Some(mut detail) => {
                if quarantine {
                    match move_to_quarantine(root, &key) {
                        Ok(dest) => detail.push_str(&format!("; moved to {}", dest.display())),
                        // Removed meanwhile (evicted, cleaned up): nothing left to quarantine.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            detail.push_str("; already gone from the cache")
                        }
                        Err(e) => detail.push_str(&format!("; cannot quarantine: {e}")),
                    }
                }
                out.push(Checked {
                    path: key,
                    verdict: Verdict::Mismatch,
                    detail,
                });
            }
        }
    }
    out
}

fn move_to_quarantine(root: &Path, key: &str) -> std::io::Result<PathBuf> {
    let dest = root.join(QUARANTINE_DIR).join(key);
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::rename(root.join(key), &dest)?;
    Ok(dest)
}

/// Print the report (a table, or JSON lines with `json`); returns the number of mismatches.
pub fn print_report(rows: &[Checked], json: bool) -> usize {
    let mismatches = rows
        .iter()
        .filter(|r| r.verdict == Verdict::Mismatch)
        .count();
    if json {
        println!("{}", serde_json::to_string_pretty(rows).unwrap_or_default());
        return mismatches;
    }
    let width = rows.iter().map(|r| r.path.len()).max().unwrap_or(4).max(4);
    println!("{:<8}  {:<width$}  DETAIL", "RESULT", "FILE");
    for r in rows {
        let v = match r.verdict {
            Verdict::Ok => "ok",
            Verdict::Mismatch => "MISMATCH",
            Verdict::Unknown => "unknown",
        };
        println!("{v:<8}  {:<width$}  {}", r.path, r.detail);
    }
    let count = |v: Verdict| rows.iter().filter(|r| r.verdict == v).count();
    println!(
        "\n{} ok, {} mismatch, {} unknown (not listed by any cached db)",
        count(Verdict::Ok),
        mismatches,
        count(Verdict::Unknown)
    );
    mismatches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_buffer_hashes_file_after_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (long, short) = (dir.path().join("long"), dir.path().join("short"));
        std::fs::write(&long, b"0123456789".repeat(1000)).expect("write");
        std::fs::write(&short, b"abc").expect("write");
        // A buffer smaller than the files, and the long file's bytes left in it.
        let mut buf = vec![0u8; 7];
        let digest = |bytes: &[u8]| hex::encode(Sha256::digest(bytes));
        assert_eq!(
            sha256_file_with(&long, &mut buf).expect("long"),
            digest(&b"0123456789".repeat(1000))
        );
        assert_eq!(
            sha256_file_with(&short, &mut buf).expect("short"),
            digest(b"abc")
        );
        assert_eq!(sha256_file(&short).expect("short"), digest(b"abc"));
        assert!(sha256_file_with(&dir.path().join("none"), &mut buf).is_err());
    }
}
