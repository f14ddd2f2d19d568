//! The catalog of cached repo databases: `<dir>/<repo>.db` files parsed into
//! [`RepoIndex`]es, cached in memory and re-parsed when the file's mtime or size changes.
//!
//! It answers "what does the db say this package must be" (verification before publish, the
//! `verify` command) and "what is the current version of name+arch" (prefetch, cleanup).
//! Parsing is blocking work: callers run it off the async workers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;

use crate::fetch::Expected;
use crate::path::{classify, FileKind};
use crate::repodb::{self, DbEntry, RepoIndex};

/// A parsed db and the (mtime, size) of the file it was parsed from.
type Parsed = (SystemTime, u64, Arc<RepoIndex>);

/// A directory's db files and when they were listed.
type DbList = (std::time::Instant, Arc<Vec<PathBuf>>);

/// A directory listing of db files is trusted this long (a db published through pkgstash
/// invalidates it at once: [`Catalog::db_published`]).
const DB_LIST_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Parsed databases by file path.
#[derive(Debug, Default)]
pub struct Catalog {
    parsed: Mutex<HashMap<PathBuf, Parsed>>,
    /// Db files of a directory: a directory of 15,000 packages is not listed on every miss.
    db_files: Mutex<HashMap<PathBuf, DbList>>,
}

/// Is `name` a repo database file (`core.db`, not `.sig`, not `.files`, not `.db.tar.*`)?
pub fn is_db_name(name: &str) -> bool {
    name.ends_with(".db") && name.len() > 3
}

/// Is `name` a package archive (not its signature)?
pub fn is_package_name(name: &str) -> bool {
    !name.ends_with(".sig") && classify(name) == FileKind::Immutable
}

impl Catalog {
    /// The parsed index of the db file at `db`, (re)parsed if it changed.
    pub fn index(&self, db: &Path) -> Option<Arc<RepoIndex>> {
        let meta = std::fs::metadata(db).ok()?;
        let mtime = meta.modified().ok()?;
        let len = meta.len();
        if let Some((t, l, idx)) = self.parsed.lock().get(db) {
            if *t == mtime && *l == len {
                return Some(idx.clone());
            }
        }
        match repodb::parse_db_file(db) {
            Ok(entries) => {
                let idx = Arc::new(RepoIndex::from_entries(entries));
                self.parsed
                    .lock()
                    .insert(db.to_path_buf(), (mtime, len, idx.clone()));
                Some(idx)
            }
            Err(e) => {
                log::warn!("cannot parse repo db {}: {e}", db.display());
                None
            }
        }
    }

    /// The db files (`*.db`) of directory `dir`, sorted.
    fn dbs_in(&self, dir: &Path) -> Arc<Vec<PathBuf>> {
        if let Some((listed, list)) = self.db_files.lock().get(dir) {
            if listed.elapsed() < DB_LIST_TTL {
                return list.clone();
            }
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Arc::new(Vec::new());
        };
        let mut dbs: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_name().to_str().is_some_and(is_db_name))
            .map(|e| e.path())
            .collect();
        dbs.sort();
        let dbs = Arc::new(dbs);
        self.db_files
            .lock()
            .insert(dir.to_path_buf(), (std::time::Instant::now(), dbs.clone()));
        dbs
    }

    /// A db file was published at `db`: list its directory again next time.
    pub fn db_published(&self, db: &Path) {
        if let Some(dir) = db.parent() {
            self.db_files.lock().remove(dir);
        }
    }

    /// Every parsed db in directory `dir`.
    pub fn indexes_in(&self, dir: &Path) -> Vec<Arc<RepoIndex>> {
        self.dbs_in(dir)
            .iter()
            .filter_map(|db| self.index(db))
            .collect()
    }

    /// The db entry listing package file `file_name` in directory `dir`. The Arch layout
    /// (`<repo>/os/<arch>/<repo>.db`) is tried first, without listing the directory.
    pub fn entry_for(&self, dir: &Path, file_name: &str) -> Option<DbEntry> {
        let guess = dir
            .parent()
            .and_then(Path::parent)
            .and_then(Path::file_name)
            .and_then(|repo| repo.to_str())
            .map(|repo| dir.join(format!("{repo}.db")));
        if let Some(idx) = guess.as_deref().and_then(|db| self.index(db)) {
            if let Some(e) = idx.by_filename(file_name) {
                return Some(e.clone());
            }
        }
        self.indexes_in(dir)
            .iter()
            .find_map(|idx| idx.by_filename(file_name).cloned())
    }

    /// Size and sha256 a package must have, when a cached db of its directory lists it.
    pub fn expected(&self, dir: &Path, file_name: &str) -> Option<Expected> {
        if !is_package_name(file_name) {
            return None;
        }
        let e = self.entry_for(dir, file_name)?;
        Some(Expected {
            size: e.csize?,
            sha256: e.sha256?,
        })
    }
}
