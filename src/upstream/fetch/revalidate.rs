//! Revalidating a cached mutable file: the conditional request (the mirror's own validators
//! of the cached copy, or none when that copy is a db pkgstash cannot read) and the date a new
//! version is served with.

use std::fs::Metadata;
use std::time::{Duration, SystemTime};

use super::FetchContext;
use crate::cache::catalog::Catalog;
use crate::cache::store::Store;
use crate::cache::validators::Validators;
use crate::repo::path::RepoPath;

/// The conditional request for revalidating the cached copy of `path`: the mirror's
/// validators of it. `None` (an unconditional GET) when they are unknown, or when the copy is
/// a repo db pkgstash cannot read: the mirror may offer a readable one, and a 304 must not keep
/// the broken one. (A db is admitted only if it parses ([`super::admit`]), so such a copy comes
/// from elsewhere: an older pkgstash, damage on disk.)
pub(crate) async fn conditional_for(ctx: &FetchContext, path: &RepoPath) -> Option<Validators> {
    let (store, catalog, asked) = (ctx.store.clone(), ctx.catalog.clone(), path.clone());
    tokio::task::spawn_blocking(move || conditional_of(&store, &catalog, &asked))
        .await
        .unwrap_or_else(|e| {
            log::error!("{path}: reading the cached copy's validators did not finish: {e}");
            None
        })
}

/// Blocking [`conditional_for`]. (`.files` dbs are not parsed for this: pkgstash never reads
/// them.)
fn conditional_of(store: &Store, catalog: &Catalog, path: &RepoPath) -> Option<Validators> {
    let validators = store.validators(path)?;
    let name = path.file_name();
    let is_db = crate::cache::catalog::is_db_name(name) || name.contains(".db.tar");
    if is_db && catalog.is_unreadable(&store.final_path(path)) {
        log::warn!("{path}: the cached copy cannot be read; fetching it unconditionally");
        return None;
    }
    Some(validators)
}

/// Whole seconds since the Unix epoch (HTTP dates have no finer resolution).
fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The `Last-Modified` clients get for a new version (`lm` from the mirror, `total` bytes) of
/// a mutable file whose cached copy is `cached`: the mirror's, unless that is not later than
/// the cached copy's — a mirror that went back to an older, repaired file. Then one second
/// after the cached copy's: pacman (libcurl's `CURLOPT_TIMECONDITION`) ignores a 200 whose
/// `Last-Modified` is not later than its `If-Modified-Since`, so a changed file must look newer
/// to reach it. The same date and size are taken as the same file.
pub fn served_last_modified(
    lm: Option<SystemTime>,
    total: Option<u64>,
    cached: Option<&Metadata>,
) -> Option<SystemTime> {
    let (Some(lm), Some(cached)) = (lm, cached) else {
        return lm;
    };
    let Ok(cached_lm) = cached.modified() else {
        return Some(lm);
    };
    let older = secs(lm) < secs(cached_lm);
    let same_date_other_size = secs(lm) == secs(cached_lm) && total != Some(cached.len());
    if older || same_date_other_size {
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs(cached_lm) + 1))
    } else {
        Some(lm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_cached_db_is_asked_for_unconditionally() {
        use std::io::Write;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let catalog = Catalog::default();
        let v = Validators {
            etag: Some("\"1\"".into()),
            last_modified: None,
        };
        let publish = |p: &RepoPath, body: &[u8]| {
            let mut part = store.new_partial().expect("partial");
            part.write_all(body).expect("write");
            store.publish(part, p, None, Some(&v)).expect("publish");
        };
        let db = RepoPath::parse("/arch/core/os/x86_64/core.db").expect("path");
        publish(&db, b"<html>oops</html>");
        assert_eq!(conditional_of(&store, &catalog, &db), None);
        // Another file is not read: its validators are used.
        let other = RepoPath::parse("/arch/core/os/x86_64/lastsync").expect("path");
        publish(&other, b"<html>oops</html>");
        assert_eq!(conditional_of(&store, &catalog, &other), Some(v.clone()));
        // A readable db (an empty repo) is revalidated with its validators.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&[0u8; 1024]).expect("gz");
        publish(&db, &gz.finish().expect("gz"));
        assert_eq!(conditional_of(&store, &catalog, &db), Some(v.clone()));
    }

    #[test]
    fn a_new_version_is_never_dated_before_the_cached_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("core.db");
        std::fs::write(&f, b"12345").expect("write");
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .and_then(|h| h.set_modified(at(1000)))
            .expect("mtime");
        let meta = std::fs::metadata(&f).expect("meta");
        let m = Some(&meta);
        assert_eq!(
            served_last_modified(Some(at(2000)), Some(9), m),
            Some(at(2000))
        );
        assert_eq!(
            served_last_modified(Some(at(10)), Some(9), m),
            Some(at(1001))
        );
        assert_eq!(
            served_last_modified(Some(at(1000)), Some(9), m),
            Some(at(1001))
        );
        assert_eq!(
            served_last_modified(Some(at(1000)), Some(5), m),
            Some(at(1000))
        );
        assert_eq!(served_last_modified(Some(at(10)), None, None), Some(at(10)));
        assert_eq!(served_last_modified(None, Some(9), m), None);
    }
}
