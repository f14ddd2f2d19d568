//! What a complete body must be before it may be published at its final path, beyond the
//! length and sha256 checks against the repo db (in the fetch task):
//! - never empty when it is a package, a signature or a repo db (none of them can be
//!   0 bytes), nor when its length was never declared (a body that simply stopped);
//! - a repo db (`*.db`, `*.files`, and their `.tar.*` names) must parse with pkgstash's own
//!   bounded parser ([`crate::repo::db`], within [`DB_LIMITS`]): a db it cannot read would
//!   silently turn off verification of that repo's packages, and would then be kept as the
//!   cached copy. Malformed entries do not refuse a db: only their packages are refused
//!   ([`crate::repo::db_index`]).
//!
//! [`check_content`] is the hook for further content checks of a finished body; it runs off the
//! event loop, before the rename.

use std::fs::File;
use std::io::{Seek, SeekFrom};

use crate::repo::db::{DbLimits, RepoDbError, DB_LIMITS};
use crate::repo::db_index::RepoIndex;
use crate::repo::path::{FileKind, RepoPath};

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
    crate::repo::path::is_repo_db_name(name)
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

/// Blocking: does the complete file `file` hold what `path` names? Repo dbs must parse within
/// [`DB_LIMITS`] (the bounds every db from a mirror is read with: one that pkgstash could not
/// read later must not be published now). `Ok(Some(index))`: the parsed db, for a db the
/// catalog reads (`*.db`), so that it is not parsed again.
pub fn check_content(path: &RepoPath, file: &File) -> Result<Option<RepoIndex>, Refusal> {
    check_content_within(path, file, &DB_LIMITS)
}

/// [`check_content`] with other limits.
pub fn check_content_within(
    path: &RepoPath,
    file: &File,
    limits: &DbLimits,
) -> Result<Option<RepoIndex>, Refusal> {
    let name = path.file_name();
    if !is_repo_db(name) {
        return Ok(None);
    }
    let mut reader = file.try_clone()?;
    reader.seek(SeekFrom::Start(0))?;
    match crate::repo::db::parse_db_limited(reader, limits) {
        Ok(parsed) => {
            Ok(crate::cache::catalog::is_db_name(name).then(|| RepoIndex::from_parsed(parsed)))
        }
        Err(RepoDbError::Io(e)) => Err(Refusal::Io(e)),
        Err(e) => Err(Refusal::Content(format!(
            "served an unreadable repo db: {e}"
        ))),
    }
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

    /// A gzip'd tar of `desc` members.
    fn db_file(descs: &[(&str, String)]) -> File {
        let mut b = tar::Builder::new(Vec::new());
        for (member, body) in descs {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, member, body.as_bytes())
                .expect("append");
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&b.into_inner().expect("tar")).expect("gz");
        let mut f = tempfile::tempfile().expect("tmp");
        f.write_all(&gz.finish().expect("gz")).expect("write");
        f
    }

    fn desc(name: &str, csize: &str) -> String {
        format!(
            "%FILENAME%\n{name}-1-1-any.pkg.tar.zst\n\n%NAME%\n{name}\n\n%VERSION%\n1-1\n\n%CSIZE%\n{csize}\n\n%SHA256SUM%\n{}\n",
            "ab".repeat(32)
        )
    }

    #[test]
    fn dbs_are_admitted_by_the_bounded_parser_the_catalog_uses() {
        let db = db_file(&[
            ("a-1-1/desc", desc("a", "10")),
            ("b-1-1/desc", desc("b", "99999999999999999999999")),
            ("c-1-1/desc", desc("c", "30")),
        ]);
        // A malformed entry refuses its package, not the db; the index comes along for `.db`.
        let index = check_content(&p("core.db"), &db)
            .expect("admitted")
            .expect("an index for the catalog");
        assert_eq!(index.entries().len(), 2);
        assert_eq!(index.malformed().count(), 1);
        assert!(check_content(&p("core.files"), &db)
            .expect("admitted")
            .is_none());
        // Over the bounds every db is read with: refused, as the mirror's fault.
        let tight = DbLimits {
            max_entries: 2,
            ..DB_LIMITS
        };
        assert!(matches!(
            check_content_within(&p("core.db"), &db, &tight),
            Err(Refusal::Content(why)) if why.contains("too large")
        ));
    }
}
