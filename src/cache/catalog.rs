//! The catalog of cached repo databases: `<dir>/<repo>.db` files parsed into
//! [`RepoIndex`]es, cached in memory and re-parsed when the file's mtime or size changes.
//!
//! It answers "what does the db say this package must be" (verification before publish, the
//! `verify` command) and "what is the current version of name+arch" (prefetch, cleanup).
//! Parsing is blocking work: callers run it off the async workers. What is already in memory
//! can be asked without parsing ([`Catalog::verification_if_parsed`]: a download starts at
//! once and asks the blocking way beside its upstream request only when that says "not
//! parsed"), and every cached db is read at start-up, off the request path ([`Catalog::warm`]).
//!
//! A db that cannot be read (broken, hostile, over [`crate::repo::db::DB_LIMITS`]) is remembered
//! like a parsed one, per mtime and size: it is parsed once per version, not on every package
//! miss, and one thread parses while others wanting the same db wait for its result.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;

use crate::repo::db::{self, DbEntry};
use crate::repo::db_index::{Listing, RepoIndex};
use crate::repo::path::{classify, FileKind};

/// A db file read: its index, or why it cannot be read.
pub(crate) type DbRead = Result<Arc<RepoIndex>, Arc<str>>;

/// What was read from a db file, and the (mtime, size) of the file it was read from.
type Parsed = (SystemTime, u64, DbRead);

/// A directory's db files and when they were listed.
type DbList = (std::time::Instant, Arc<Vec<PathBuf>>);

/// A directory listing of db files is trusted this long (a db published through pkgstash
/// invalidates it at once: [`Catalog::db_published`]).
const DB_LIST_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Parsed databases by file path.
#[derive(Debug, Default)]
pub struct Catalog {
    parsed: Mutex<HashMap<PathBuf, Parsed>>,
    /// One parse per db path at a time.
    parsing: Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>,
    /// Db files of a directory: a directory of 15,000 packages is not listed on every miss.
    db_files: Mutex<HashMap<PathBuf, DbList>>,
    /// Parses done (successful or not), for status and tests.
    parses: AtomicU64,
}

/// What the repo db says a package must be: its `%CSIZE%` and `%SHA256SUM%`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Bytes.
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
}

/// What the cached dbs of a directory say a package file must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verification {
    /// Listed with a size and sha256.
    Known(Expected),
    /// Listed by an entry that cannot be read (the reason): the package must not be served
    /// unverified as if no db listed it.
    Malformed(String),
    /// Not listed (or listed without size and sha256): nothing to verify against.
    Unknown,
}

/// Is `name` a repo database file (`core.db`, not `.sig`, not `.files`, not `.db.tar.*`)?
pub(crate) fn is_db_name(name: &str) -> bool {
    name.ends_with(".db") && name.len() > 3
}

/// Is `name` a package archive (not its signature)?
pub(crate) fn is_package_name(name: &str) -> bool {
    !name.ends_with(".sig") && classify(name) == FileKind::Immutable
}

/// (mtime, size) of an open file.
fn identity(f: &File) -> Option<(SystemTime, u64)> {
    let meta = f.metadata().ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl Catalog {
    /// Parses done so far.
    #[cfg(test)]
    pub(crate) fn parses(&self) -> u64 {
        self.parses.load(Ordering::Relaxed)
    }

    fn cached(&self, db: &Path, mtime: SystemTime, len: u64) -> Option<DbRead> {
        match self.parsed.lock().get(db) {
            Some((t, l, read)) if *t == mtime && *l == len => Some(read.clone()),
            _ => None,
        }
    }

    /// The db file at `db` read (parsed, or the reason it cannot be), from memory when the
    /// file did not change. `None` when there is no such file.
    pub(crate) fn read(&self, db: &Path) -> Option<DbRead> {
        // The parse reads this open file, so what is remembered is what has this identity.
        let file = File::open(db).ok()?;
        let (mtime, len) = identity(&file)?;
        if let Some(read) = self.cached(db, mtime, len) {
            return Some(read);
        }
        let lock = self
            .parsing
            .lock()
            .entry(db.to_path_buf())
            .or_default()
            .clone();
        let _one_parse = lock.lock();
        if let Some(read) = self.cached(db, mtime, len) {
            return Some(read);
        }
        self.parses.fetch_add(1, Ordering::Relaxed);
        let read: DbRead = match db::parse_db(file) {
            Ok(parsed) => {
                let index = RepoIndex::from_parsed(parsed);
                if let Some((what, reason)) = index.malformed().next() {
                    log::warn!(
                        "repo db {}: {} malformed entr(y/ies), their packages are refused (first: {what}: {reason})",
                        db.display(),
                        index.malformed().count()
                    );
                }
                Ok(Arc::new(index))
            }
            Err(e) => {
                log::warn!(
                    "cannot read repo db {}: {e}; its packages are not verified",
                    db.display()
                );
                Err(Arc::from(e.to_string().as_str()))
            }
        };
        self.parsed
            .lock()
            .insert(db.to_path_buf(), (mtime, len, read.clone()));
        Some(read)
    }

    /// The parsed index of the db file at `db`, (re)parsed if it changed; `None` when there is
    /// no such file or it cannot be read.
    pub(crate) fn index(&self, db: &Path) -> Option<Arc<RepoIndex>> {
        self.read(db)?.ok()
    }

    /// Is there a file at `db` that cannot be read as a repo db?
    pub(crate) fn is_unreadable(&self, db: &Path) -> bool {
        matches!(self.read(db), Some(Err(_)))
    }

    /// `index` was parsed from the file now published at `db`: remember it without parsing
    /// the file again.
    pub(crate) fn remember(&self, db: &Path, index: Arc<RepoIndex>) {
        let Some((mtime, len)) = File::open(db).ok().as_ref().and_then(identity) else {
            return;
        };
        self.parsed
            .lock()
            .insert(db.to_path_buf(), (mtime, len, Ok(index)));
    }

    /// The db files (`*.db`) of directory `dir`, sorted: listed again when the listing is
    /// older than [`DB_LIST_TTL`]. Blocking (reads the directory).
    fn dbs_in(&self, dir: &Path) -> Arc<Vec<PathBuf>> {
        match self.db_files.lock().get(dir) {
            Some((listed, list)) if listed.elapsed() < DB_LIST_TTL => return list.clone(),
            _ => {}
        }
        self.list(dir)
    }

    /// List the db files of `dir` now and remember them. Blocking.
    fn list(&self, dir: &Path) -> Arc<Vec<PathBuf>> {
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

    /// A db file was published at `db`: its directory is listed again now, so that lookups
    /// from memory ([`Catalog::verification_if_parsed`]) see it. Blocking (reads the
    /// directory): call it off the event loop.
    pub(crate) fn db_published(&self, db: &Path) {
        if let Some(dir) = db.parent() {
            self.list(dir);
        }
    }

    /// Every parsed db in directory `dir`.
    pub(crate) fn indexes_in(&self, dir: &Path) -> Vec<Arc<RepoIndex>> {
        self.dbs_in(dir)
            .iter()
            .filter_map(|db| self.index(db))
            .collect()
    }

    /// The first answer `f` gives for a readable db of directory `dir`, the Arch layout's
    /// (`<repo>/os/<arch>/<repo>.db`) first: it usually answers, without listing the directory.
    fn find_in<T>(&self, dir: &Path, f: impl FnMut(&RepoIndex) -> Option<T>) -> Option<T> {
        let parse = |db: &Path| Some(self.index(db));
        let list = |dir: &Path| Some(self.dbs_in(dir));
        self.find_in_with(dir, parse, list, f).flatten()
    }

    /// [`Catalog::find_in`] with the ways to get a db's index and a directory's dbs: `None`
    /// from either means "cannot tell now" and is the answer (`Some(None)`: no db answers).
    fn find_in_with<T>(
        &self,
        dir: &Path,
        mut index: impl FnMut(&Path) -> Option<Option<Arc<RepoIndex>>>,
        list: impl FnOnce(&Path) -> Option<Arc<Vec<PathBuf>>>,
        mut f: impl FnMut(&RepoIndex) -> Option<T>,
    ) -> Option<Option<T>> {
        let guess = dir
            .parent()
            .and_then(Path::parent)
            .and_then(Path::file_name)
            .and_then(|repo| repo.to_str())
            .map(|repo| dir.join(format!("{repo}.db")));
        if let Some(db) = guess.as_deref() {
            if let Some(t) = index(db)?.and_then(|idx| f(&idx)) {
                return Some(Some(t));
            }
        }
        for db in list(dir)?
            .iter()
            .filter(|db| Some(db.as_path()) != guess.as_deref())
        {
            if let Some(t) = index(db)?.and_then(|idx| f(&idx)) {
                return Some(Some(t));
            }
        }
        Some(None)
    }

    /// The index of the db file at `db` if what is in memory is its current version (one
    /// `stat`, no parse): `Some(None)` when there is no such file or it cannot be read, `None`
    /// when it is not parsed in this version.
    fn index_if_parsed(&self, db: &Path) -> Option<Option<Arc<RepoIndex>>> {
        let Ok(meta) = std::fs::metadata(db) else {
            return Some(None);
        };
        let mtime = meta.modified().ok()?;
        self.cached(db, mtime, meta.len()).map(Result::ok)
    }

    /// The db files of `dir` as last listed, however long ago (`None`: never listed). Every
    /// db published through the catalog is in it ([`Catalog::db_published`]); one put there
    /// behind pkgstash's back is seen by the next blocking lookup after [`DB_LIST_TTL`] — and
    /// every download ends with such a lookup before it is published.
    fn dbs_if_listed(&self, dir: &Path) -> Option<Arc<Vec<PathBuf>>> {
        self.db_files.lock().get(dir).map(|(_, list)| list.clone())
    }

    /// The db entry listing package file `file_name` in directory `dir`.
    pub(crate) fn entry_for(&self, dir: &Path, file_name: &str) -> Option<DbEntry> {
        self.find_in(dir, |idx| idx.by_filename(file_name).cloned())
    }

    /// What package file `file_name` in directory `dir` must be, by the cached dbs there: a
    /// readable entry wins over a malformed one in another db. Blocking: it may parse dbs
    /// (one parse per db version; callers wanting the same db wait for it).
    pub(crate) fn verification(&self, dir: &Path, file_name: &str) -> Verification {
        let parse = |db: &Path| Some(self.index(db));
        let list = |dir: &Path| Some(self.dbs_in(dir));
        self.verification_with(dir, file_name, parse, list)
            .unwrap_or(Verification::Unknown)
    }

    /// What [`Catalog::verification`] answers, when the dbs it needs are in memory in their
    /// current version (a `stat` per db, no parse, no directory listing): `None` when only
    /// [`Catalog::verification`] can tell.
    pub(crate) fn verification_if_parsed(
        &self,
        dir: &Path,
        file_name: &str,
    ) -> Option<Verification> {
        let parsed = |db: &Path| self.index_if_parsed(db);
        let listed = |dir: &Path| self.dbs_if_listed(dir);
        self.verification_with(dir, file_name, parsed, listed)
    }

    fn verification_with(
        &self,
        dir: &Path,
        file_name: &str,
        index: impl FnMut(&Path) -> Option<Option<Arc<RepoIndex>>>,
        list: impl FnOnce(&Path) -> Option<Arc<Vec<PathBuf>>>,
    ) -> Option<Verification> {
        if !is_package_name(file_name) {
            return Some(Verification::Unknown);
        }
        let mut malformed = None;
        let listed = self.find_in_with(dir, index, list, |idx| match idx.listing(file_name) {
            Listing::Entry(e) => Some(match (e.csize, &e.sha256) {
                (Some(size), Some(sha256)) => Verification::Known(Expected {
                    size,
                    sha256: sha256.clone(),
                }),
                _ => Verification::Unknown,
            }),
            Listing::Malformed(reason) => {
                malformed.get_or_insert_with(|| reason.to_string());
                None
            }
            Listing::Unlisted => None,
        })?;
        Some(
            listed
                .or(malformed.map(Verification::Malformed))
                .unwrap_or(Verification::Unknown),
        )
    }

    /// Read every db file of `dbs` now, and list their directories (blocking), so that no
    /// request waits for a parse later: at start-up, off the request path. Returns how many
    /// could be read.
    pub fn warm(&self, dbs: &[PathBuf]) -> usize {
        let dirs: std::collections::BTreeSet<&Path> =
            dbs.iter().filter_map(|db| db.parent()).collect();
        for dir in dirs {
            self.list(dir);
        }
        dbs.iter()
            .filter(|db| matches!(self.read(db), Some(Ok(_))))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(members: &[(&str, String)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, body) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, body.as_bytes())
                .expect("append");
        }
        b.into_inner().expect("tar")
    }

    fn desc(name: &str, csize: &str) -> String {
        format!(
            "%FILENAME%\n{name}-1-1-any.pkg.tar.zst\n\n%NAME%\n{name}\n\n%VERSION%\n1-1\n\n%CSIZE%\n{csize}\n\n%SHA256SUM%\n{}\n",
            "ab".repeat(32)
        )
    }

    #[test]
    fn failed_parses_are_remembered_and_entries_fail_closed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("core/os/x86_64");
        std::fs::create_dir_all(&repo).expect("mkdir");
        let db = repo.join("core.db");
        std::fs::write(&db, b"<html>not a db</html>").expect("write");
        let catalog = Catalog::default();
        for _ in 0..5 {
            assert!(catalog.is_unreadable(&db));
            assert_eq!(
                catalog.verification(&repo, "a-1-1-any.pkg.tar.zst"),
                Verification::Unknown
            );
        }
        assert_eq!(
            catalog.parses(),
            1,
            "an unreadable db is parsed once per version"
        );

        let tar = tar_with(&[
            ("good-1-1/desc", desc("good", "10")),
            ("bad-1-1/desc", desc("bad", "99999999999999999999999")),
        ]);
        std::fs::write(&db, tar).expect("write");
        assert!(!catalog.is_unreadable(&db));
        assert!(matches!(
            catalog.verification(&repo, "good-1-1-any.pkg.tar.zst"),
            Verification::Known(Expected { size: 10, .. })
        ));
        assert!(matches!(
            catalog.verification(&repo, "bad-1-1-any.pkg.tar.zst"),
            Verification::Malformed(r) if r.contains("CSIZE")
        ));
        assert_eq!(
            catalog.verification(&repo, "other-1-1-any.pkg.tar.zst"),
            Verification::Unknown
        );
        assert_eq!(catalog.parses(), 2);
    }

    #[test]
    fn a_published_db_answers_from_memory_malformed_entries_included() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("core/os/x86_64");
        std::fs::create_dir_all(&repo).expect("mkdir");
        let db = repo.join("core.db");
        let tar = tar_with(&[
            ("good-1-1/desc", desc("good", "10")),
            ("bad-1-1/desc", desc("bad", "99999999999999999999999")),
        ]);
        std::fs::write(&db, tar).expect("write");
        let catalog = Catalog::default();
        let (good, bad) = ("good-1-1-any.pkg.tar.zst", "bad-1-1-any.pkg.tar.zst");
        assert_eq!(catalog.verification_if_parsed(&repo, good), None);
        // What publishing a db does: its index remembered, its directory listed.
        let index = catalog.index(&db).expect("parsed");
        catalog.remember(&db, index);
        catalog.db_published(&db);
        assert!(matches!(
            catalog.verification_if_parsed(&repo, good),
            Some(Verification::Known(Expected { size: 10, .. }))
        ));
        // A malformed entry in the `<repo>.db` needs the other dbs of the directory (a readable
        // entry there would win): the listing made at publish answers.
        assert!(matches!(
            catalog.verification_if_parsed(&repo, bad),
            Some(Verification::Malformed(r)) if r.contains("CSIZE")
        ));
        assert_eq!(
            catalog.verification_if_parsed(&repo, "other-1-1-any.pkg.tar.zst"),
            Some(Verification::Unknown)
        );
        // Not a package: nothing to look up.
        assert_eq!(
            catalog.verification_if_parsed(&repo, "core.db.sig"),
            Some(Verification::Unknown)
        );
        // Another db put beside it, not parsed yet: only the blocking lookup can tell.
        std::fs::write(repo.join("extra.db"), tar_with(&[])).expect("write");
        catalog.db_published(&repo.join("extra.db"));
        assert_eq!(catalog.verification_if_parsed(&repo, bad), None);
        assert_eq!(catalog.parses(), 1);
    }

    #[test]
    fn concurrent_readers_share_one_parse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("core.db");
        let members: Vec<(String, String)> = (0..3000)
            .map(|i| (format!("p{i}-1-1/desc"), desc(&format!("p{i}"), "1")))
            .collect();
        let refs: Vec<(&str, String)> = members
            .iter()
            .map(|(a, b)| (a.as_str(), b.clone()))
            .collect();
        std::fs::write(&db, tar_with(&refs)).expect("write");
        let catalog = Arc::new(Catalog::default());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (c, db) = (catalog.clone(), db.clone());
                std::thread::spawn(move || c.index(&db).map(|i| i.entries().len()))
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().expect("thread"), Some(3000));
        }
        assert_eq!(catalog.parses(), 1);
    }
}
