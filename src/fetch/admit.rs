//! What a complete body must be before it may be published at its final path, beyond the
//! length and sha256 checks against the repo db (in the fetch task):
//! - never empty when it is a package, a signature or a repo db (none of them can be
//!   0 bytes), nor when its length was never declared (a body that simply stopped);
//! - a repo db (`*.db`, `*.files`, and their `.tar.*` names) must parse with pkgstash's own
//!   parser ([`crate::repodb`]): a db it cannot read would silently turn off verification of
//!   that repo's packages, and would then be kept as the cached copy.
//!
//! [`check_content`] is the hook for further content checks of a finished body; it runs off the
//! event loop, before the rename.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::PathBuf;
use std::time::SystemTime;

use crate::path::{FileKind, RepoPath};
use crate::store::Store;

/// Why a finished body is not published.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The mirror's body is not what the file must be (the mirror's fault).
    #[error("{0}")]
    Content(String),
    /// Our own copy could not be read back (the cache's fault).
    #[error("cannot read the downloaded file back: {0}")]
    Io(#[from] std::io::Error),
}

/// Is `name` a repo database (`core.db`, `core.files`, `core.db.tar.gz`, …), not a signature?
pub fn is_repo_db(name: &str) -> bool {
    if name.ends_with(".sig") {
        return false;
    }
    let stem = match name.find(".tar.") {
        Some(pos) if !name[pos + 5..].contains('.') => &name[..pos],
        _ => name,
    };
    (stem.ends_with(".db") && stem.len() > 3) || (stem.ends_with(".files") && stem.len() > 6)
}

/// Can `path` never be an empty file (a package, a signature, a repo db)?
pub fn never_empty(path: &RepoPath) -> bool {
    let name = path.file_name();
    path.kind() == FileKind::Immutable || name.ends_with(".sig") || is_repo_db(name)
}

/// May a body of `len` bytes be `path`? `declared`: upstream declared that length
/// (`Content-Length` or `Content-Range`), so 0 means an empty file, not a body that stopped.
pub fn check_length(path: &RepoPath, len: u64, declared: bool) -> Result<(), String> {
    if len > 0 {
        return Ok(());
    }
    if never_empty(path) {
        Err(format!(
            "served 0 bytes for {}, which cannot be empty",
            path.file_name()
        ))
    } else if !declared {
        Err("served 0 bytes without declaring a length".into())
    } else {
        Ok(())
    }
}

/// Blocking: does the complete file `file` hold what `path` names? Repo dbs must parse.
pub fn check_content(path: &RepoPath, file: &File) -> Result<(), Refusal> {
    if !is_repo_db(path.file_name()) {
        return Ok(());
    }
    let mut reader = file.try_clone()?;
    reader.seek(SeekFrom::Start(0))?;
    match crate::repodb::parse_db(reader) {
        Ok(_) => Ok(()),
        Err(crate::repodb::RepoDbError::Io(e)) => Err(Refusal::Io(e)),
        Err(e) => Err(Refusal::Content(format!(
            "served an unreadable repo db: {e}"
        ))),
    }
}

/// Why a finished body was not published.
#[derive(Debug)]
pub enum NotPublished {
    /// Its content is not what `path` must be (the mirror's fault).
    Content(String),
    /// A local I/O error while doing the named step (the cache's fault).
    Storage(&'static str, std::io::Error),
}

/// Blocking: check the finished `file`'s content ([`check_content`]), then publish it at
/// `path` in `store` (fsync, rename). A refused file is deleted.
pub fn check_and_publish(
    store: &Store,
    file: tempfile::NamedTempFile,
    path: &RepoPath,
    mtime: Option<SystemTime>,
) -> Result<PathBuf, NotPublished> {
    match check_content(path, file.as_file()) {
        Ok(()) => {}
        Err(Refusal::Content(why)) => return Err(NotPublished::Content(why)),
        Err(Refusal::Io(e)) => return Err(NotPublished::Storage("read downloaded file", e)),
    }
    store
        .publish(file, path, mtime)
        .map_err(|e| NotPublished::Storage("publish into the cache", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn p(rel: &str) -> RepoPath {
        RepoPath::parse(&format!("/arch/core/os/x86_64/{rel}")).expect("path")
    }

    #[test]
    fn repo_db_names() {
        for db in [
            "core.db",
            "core.files",
            "core.db.tar.gz",
            "core.files.tar.zst",
        ] {
            assert!(is_repo_db(db), "{db}");
        }
        for other in [
            "core.db.sig",
            "core.files.sig",
            ".db",
            "lastsync",
            "a.pkg.tar.zst",
            "x.tar.gz",
        ] {
            assert!(!is_repo_db(other), "{other}");
        }
    }

    #[test]
    fn empty_bodies() {
        assert!(check_length(&p("a-1-1-any.pkg.tar.zst"), 0, true).is_err());
        assert!(check_length(&p("a-1-1-any.pkg.tar.zst.sig"), 0, true).is_err());
        assert!(check_length(&p("core.db"), 0, true).is_err());
        assert!(check_length(&p("core.db.sig"), 0, true).is_err());
        assert!(check_length(&p("core.files"), 0, true).is_err());
        // Another file may be empty, if upstream says so.
        assert!(check_length(&p("lastsync"), 0, true).is_ok());
        assert!(check_length(&p("lastsync"), 0, false).is_err());
        assert!(check_length(&p("core.db"), 1, false).is_ok());
    }

    #[test]
    fn dbs_must_parse() {
        let mut garbage = tempfile::tempfile().expect("tmp");
        garbage.write_all(b"<html>not a db</html>").expect("write");
        assert!(matches!(
            check_content(&p("core.db"), &garbage),
            Err(Refusal::Content(_))
        ));
        // Other files are not parsed.
        assert!(check_content(&p("lastsync"), &garbage).is_ok());
        // An empty repo (an empty tar, gzip-compressed) is a valid db.
        let mut empty = tempfile::tempfile().expect("tmp");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&[0u8; 1024]).expect("gz");
        empty.write_all(&gz.finish().expect("gz")).expect("write");
        assert!(check_content(&p("core.db"), &empty).is_ok());
    }
}
