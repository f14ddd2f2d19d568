//! Packages re-published upstream under the same file name (recompressed, rebuilt with the same
//! version): the new db lists another size and sha256 for a file name pkgstash has cached, and
//! pacman, checking against the new db, would fail on the old copy ("Maximum file size
//! exceeded", "invalid or corrupted package").
//!
//! So before a new db is published ([`before_db_publish`], called by the download that fetched
//! it), every cached package of its directory whose entry changed is checked against the new
//! entry — its size, and its sha256 when the old db listed it with another one — and a copy that
//! does not match is **removed** (with its `.sig`): the next request fetches the new build, and
//! `refresh` reports it ([`Journal`]). Removed, not quarantined: the old copy is not corrupt (it
//! is what the db said when it was fetched), it is superseded; `.quarantine/` is evidence of
//! corruption for the admin to look at, and nothing would ever empty it. A `.sig` that is not
//! the signature the new entry carries (`%PGPSIG%`) goes too.
//!
//! Doing this before the rename, not after, means no client can see the new db and then be
//! served an old build from the cache; a crash in between only costs a re-download.

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::cache::index::CacheIndex;
use crate::cache::store::Store;
use crate::repo::db::DbEntry;
use crate::repo::db_index::RepoIndex;
use crate::repo::path::RepoPath;

/// Keys of packages removed because their db entry changed, since the last [`Journal::drain`]
/// (at most [`JOURNAL_MAX`] kept).
#[derive(Debug, Default)]
pub struct Journal(Mutex<Vec<String>>);

/// Entries a journal keeps between two refreshes.
pub const JOURNAL_MAX: usize = 10_000;

impl Journal {
    pub fn record(&self, keys: &[String]) {
        let mut j = self.0.lock();
        let room = JOURNAL_MAX.saturating_sub(j.len());
        j.extend(keys.iter().take(room).cloned());
    }

    /// Everything recorded so far, sorted; the journal starts empty again.
    pub fn drain(&self) -> Vec<String> {
        let mut out = std::mem::take(&mut *self.0.lock());
        out.sort();
        out.dedup();
        out
    }
}

/// A cached file that no longer matches the db.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superseded {
    pub path: RepoPath,
    pub why: String,
}

/// sha256 of a file, hex.
fn sha256_of(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(h.finalize().into())
}

/// Why the cached package at `file` does not match `new`, or `None` when it does (or cannot
/// be checked). `hash`: compare sha256 too (the old entry listed another one).
fn mismatch(file: &Path, new: &DbEntry, hash: bool) -> Option<String> {
    let len = std::fs::metadata(file).ok().filter(|m| m.is_file())?.len();
    if let Some(size) = new.csize.filter(|&s| s != len) {
        return Some(format!(
            "the db now says {size} bytes, the cached copy has {len}"
        ));
    }
    let want = new.sha256.as_deref().filter(|_| hash)?;
    let got = hex::encode(sha256_of(file).ok()?);
    (!got.eq_ignore_ascii_case(want))
        .then(|| format!("the db now says sha256 {want}, the cached copy has {got}"))
}

/// The cached files of directory `dir` (of the db `db`) that `new` describes differently from
/// `old` (`None`: the previous db is unknown; sizes are compared then, not hashes).
pub fn superseded(
    store: &Store,
    db: &RepoPath,
    old: Option<&RepoIndex>,
    new: &RepoIndex,
) -> Vec<Superseded> {
    let sibling = |name: &str| {
        let rel = match db.dir() {
            "" => name.to_string(),
            dir => format!("{dir}/{name}"),
        };
        // Names come from a db: never trusted to stay inside the cache.
        RepoPath::from_parts(db.upstream(), &rel).ok()
    };
    let mut out = Vec::new();
    for e in new.entries() {
        let before = old.and_then(|o| o.by_filename(&e.filename));
        let same = |b: &DbEntry| b.csize == e.csize && b.sha256 == e.sha256;
        let Some(pkg) = sibling(&e.filename) else {
            continue;
        };
        let why = match before {
            Some(b) if same(b) => None,
            Some(_) => mismatch(&store.final_path(&pkg), e, true),
            None => mismatch(&store.final_path(&pkg), e, false),
        };
        let sig = sibling(&format!("{}.sig", e.filename));
        if let Some(why) = why {
            out.push(Superseded {
                path: pkg,
                why: why.clone(),
            });
            out.extend(
                sig.filter(|s| store.final_path(s).is_file())
                    .map(|s| Superseded {
                        path: s,
                        why: format!("signature of a superseded package ({why})"),
                    }),
            );
            continue;
        }
        // The package stays; its cached `.sig` must be the one the db now carries.
        let sig_changed = before.is_none_or(|b| b.pgpsig_sha256 != e.pgpsig_sha256);
        if let (true, Some(want), Some(sig)) = (sig_changed, e.pgpsig_sha256, sig) {
            let file = store.final_path(&sig);
            if file.is_file() && sha256_of(&file).is_ok_and(|got| got != want) {
                out.push(Superseded {
                    path: sig,
                    why: "the db now carries another signature".into(),
                });
            }
        }
    }
    for (name, reason) in new.malformed() {
        if let Some(pkg) = sibling(name).filter(|p| store.final_path(p).is_file()) {
            out.push(Superseded {
                path: pkg,
                why: format!("its db entry is now malformed ({reason})"),
            });
        }
    }
    out
}

/// The db `db` is about to be replaced by a new one, whose index is `new` (the db was parsed
/// when it was admitted: [`crate::upstream::fetch::admit`]): remove the cached packages it supersedes
/// (see the module docs) — `old` gives the index of the db being replaced — and record them in
/// `journal` for `refresh`.
pub async fn before_db_publish(
    store: &Arc<Store>,
    cache_index: &CacheIndex,
    journal: &Journal,
    db: &RepoPath,
    new: Arc<RepoIndex>,
    old: impl FnOnce() -> Option<Arc<RepoIndex>> + Send + 'static,
) {
    let (store, replaced) = (store.clone(), db.clone());
    let work = move || {
        let stale = superseded(&store, &replaced, old().as_deref(), &new);
        let mut removed = Vec::new();
        for s in stale {
            match store.remove(&s.path) {
                Ok(true) => {
                    log::info!("{}: removed from the cache, {}", s.path, s.why);
                    removed.push(s.path.key());
                }
                Ok(false) => {}
                Err(e) => log::warn!("cannot remove superseded {}: {e}", s.path),
            }
        }
        removed
    };
    let removed = match tokio::task::spawn_blocking(work).await {
        Ok(removed) => removed,
        Err(e) => {
            // A failure, never a silent "nothing superseded": the db is published anyway (it
            // is verified); what this pass did not remove, the next refresh's or cleanup's does.
            log::error!("{db}: removing the packages the new db supersedes did not finish: {e}");
            Vec::new()
        }
    };
    for key in &removed {
        cache_index.remove(key);
    }
    journal.record(&removed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::db::ParsedDb;

    fn entry(name: &str, data: &[u8], sig: Option<&[u8]>) -> DbEntry {
        DbEntry {
            name: name.into(),
            version: "1-1".into(),
            arch: "any".into(),
            filename: format!("{name}-1-1-any.pkg.tar.zst"),
            csize: Some(data.len() as u64),
            isize: None,
            sha256: Some(hex::encode(Sha256::digest(data))),
            has_pgpsig: sig.is_some(),
            pgpsig_sha256: sig.map(|s| Sha256::digest(s).into()),
        }
    }

    #[test]
    fn changed_entries_supersede_cached_copies_that_do_not_match() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let db = RepoPath::parse("/arch/core/os/x86_64/core.db").expect("path");
        let put = |name: &str, data: &[u8]| {
            let p = RepoPath::parse(&format!("/arch/core/os/x86_64/{name}")).expect("path");
            let f = store.final_path(&p);
            std::fs::create_dir_all(f.parent().expect("dir")).expect("mkdir");
            std::fs::write(f, data).expect("write");
        };
        // Cached: same-size rebuild (a), new size (b), unchanged (c), already the new build (d),
        // an unchanged package whose signature changed (e).
        put("a-1-1-any.pkg.tar.zst", b"aaaa");
        put("a-1-1-any.pkg.tar.zst.sig", b"sig-a");
        put("b-1-1-any.pkg.tar.zst", b"bb");
        put("c-1-1-any.pkg.tar.zst", b"cc");
        put("d-1-1-any.pkg.tar.zst", b"d-new");
        put("e-1-1-any.pkg.tar.zst", b"ee");
        put("e-1-1-any.pkg.tar.zst.sig", b"sig-e-old");
        let old = RepoIndex::from_entries(vec![
            entry("a", b"aaaa", Some(b"sig-a")),
            entry("b", b"bb", None),
            entry("c", b"cc", None),
            entry("d", b"d-old", None),
            entry("e", b"ee", Some(b"sig-e-old")),
        ]);
        let new = RepoIndex::from_parsed(ParsedDb {
            entries: vec![
                entry("a", b"AAAA", Some(b"sig-A")),
                entry("b", b"bbbbb", None),
                entry("c", b"cc", None),
                entry("d", b"d-new", None),
                entry("e", b"ee", Some(b"sig-e-new")),
            ],
            malformed: Vec::new(),
        });
        let mut got: Vec<String> = superseded(&store, &db, Some(&old), &new)
            .into_iter()
            .map(|s| s.path.file_name().to_string())
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                "a-1-1-any.pkg.tar.zst",
                "a-1-1-any.pkg.tar.zst.sig",
                "b-1-1-any.pkg.tar.zst",
                "e-1-1-any.pkg.tar.zst.sig",
            ]
        );
        // Without the old db, only sizes can be compared cheaply.
        let got: Vec<String> = superseded(&store, &db, None, &new)
            .into_iter()
            .map(|s| s.path.file_name().to_string())
            .collect();
        assert!(
            got.contains(&"b-1-1-any.pkg.tar.zst".to_string()),
            "{got:?}"
        );
        assert!(
            !got.contains(&"a-1-1-any.pkg.tar.zst".to_string()),
            "{got:?}"
        );
    }

    #[test]
    fn journal_drains() {
        let j = Journal::default();
        j.record(&["b".into(), "a".into(), "b".into()]);
        assert_eq!(j.drain(), vec!["a", "b"]);
        assert!(j.drain().is_empty());
    }
}
