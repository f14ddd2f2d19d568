//! The cache browser's endpoints (token required): `GET api/cache` (the cached directories per
//! upstream) and `GET api/cache/<upstream>[/<dir>…]` (every cached file at or below a
//! directory, with its hits, last-served time and whether a cached db of its directory lists a
//! newer version). Facts come from the cache index ([`crate::cache::index`]), the parsed cached
//! dbs ([`crate::cache::catalog`]) and the downloads in flight; shapes are docs/admin-api.md's.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::json;
use crate::cache::index::{unix_secs, FileInfo};
use crate::http::error::ApiError;
use crate::repo::db_index::RepoIndex;
use crate::repo::path::{is_repo_db_name, RepoPath};
use crate::repo::vercmp::{parse_pkg_filename, vercmp};
use crate::state::AppState;

/// Rows answered at most by one listing.
const MAX_ROWS: usize = 20_000;

/// `GET api/cache`.
#[derive(Debug, Serialize)]
struct Tree {
    upstreams: Vec<UpstreamTree>,
}

#[derive(Debug, Serialize)]
struct UpstreamTree {
    name: String,
    files: u64,
    bytes: u64,
    /// Sorted by `dir`.
    dirs: Vec<DirSummary>,
}

#[derive(Debug, Default, Serialize)]
struct DirSummary {
    /// Below the upstream, e.g. `core/os/x86_64` (`""` for files at its top).
    dir: String,
    files: u64,
    bytes: u64,
    packages: u64,
    /// Repo db files (and their `.sig`) cached there, sorted.
    dbs: Vec<String>,
}

/// `GET api/cache/<prefix>`.
#[derive(Debug, Serialize)]
struct Listing {
    prefix: String,
    truncated: bool,
    now: u64,
    files: Vec<Row>,
}

/// One cached file (a package's `.sig` folded into its row).
#[derive(Debug, Serialize)]
struct Row {
    path: String,
    dir: String,
    file: String,
    /// `package` | `database` | `signature` | `other`.
    kind: &'static str,
    name: Option<String>,
    version: Option<String>,
    arch: Option<String>,
    size: u64,
    mtime: u64,
    last_served: u64,
    hits: u64,
    sig: bool,
    sig_size: Option<u64>,
    db_version: Option<String>,
    newer_in_db: bool,
    downloading: bool,
}

/// `(upstream, dir, file)` of an index key `upstream/dir…/file`.
fn split_key(key: &str) -> (&str, &str, &str) {
    let (upstream, rel) = key.split_once('/').unwrap_or((key, ""));
    let (dir, file) = rel.rsplit_once('/').unwrap_or(("", rel));
    (upstream, dir, file)
}

/// A repo db, a db's signature, or a db's `.tar.*` form.
fn is_db_file(name: &str) -> bool {
    is_repo_db_name(name.strip_suffix(".sig").unwrap_or(name))
}

/// `GET api/cache`: per configured upstream, its cached directories.
pub(super) async fn tree(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    crate::admin::auth::require(&req)?;
    let mut by_upstream: BTreeMap<String, BTreeMap<String, DirSummary>> = state
        .pools
        .iter()
        .map(|p| (p.upstream.clone(), BTreeMap::new()))
        .collect();
    for (key, info) in state.index.snapshot() {
        let (upstream, dir, file) = split_key(&key);
        let Some(dirs) = by_upstream.get_mut(upstream) else {
            continue;
        };
        let d = dirs.entry(dir.to_string()).or_insert_with(|| DirSummary {
            dir: dir.to_string(),
            ..DirSummary::default()
        });
        d.files += 1;
        d.bytes += info.size;
        if parse_pkg_filename(file).is_some() {
            d.packages += 1;
        } else if is_db_file(file) {
            d.dbs.push(file.to_string());
        }
    }
    let upstreams = by_upstream
        .into_iter()
        .map(|(name, dirs)| {
            let mut dirs: Vec<DirSummary> = dirs.into_values().collect();
            for d in &mut dirs {
                d.dbs.sort();
            }
            UpstreamTree {
                files: dirs.iter().map(|d| d.files).sum(),
                bytes: dirs.iter().map(|d| d.bytes).sum(),
                name,
                dirs,
            }
        })
        .collect();
    Ok(json(&Tree { upstreams }))
}

/// `GET api/cache/<upstream>[/<dir>…]`: every cached file at or below that directory.
/// `404` for an unknown upstream or nothing cached there; `400` for a path
/// [`RepoPath::parse`] refuses.
pub(super) async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    crate::admin::auth::require(&req)?;
    let raw = crate::admin::cache::cache_path(&req);
    let raw = raw.strip_suffix('/').unwrap_or(raw);
    let (upstream, dir) = match raw[1.min(raw.len())..].split_once('/') {
        Some(_) => {
            let p = RepoPath::parse(raw)?;
            (p.upstream().to_string(), p.rel().to_string())
        }
        None => (raw.trim_start_matches('/').to_string(), String::new()),
    };
    if state.pools.get(&upstream).is_none() {
        return Err(ApiError::NotFound);
    }
    let prefix = match dir.is_empty() {
        true => upstream.clone(),
        false => format!("{upstream}/{dir}"),
    };
    let files: Vec<(String, FileInfo)> = state
        .index
        .snapshot()
        .into_iter()
        .filter(|(k, _)| k == &prefix || k.starts_with(&format!("{prefix}/")))
        .collect();
    if files.is_empty() {
        return Err(ApiError::NotFound);
    }
    let downloading: Vec<bool> = files
        .iter()
        .map(|(k, _)| state.registry.contains_key(k))
        .collect();
    // Reading the directories' dbs may parse them (the first time): off the async worker.
    let (catalog, root) = (state.jobs.catalog.clone(), state.store.root().to_path_buf());
    let listing = web::block(move || {
        let dbs = |dir: &Path| catalog.indexes_in(dir);
        rows(files, &downloading, &root, dbs, prefix)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(json(&listing))
}

/// The listing of `files` (index entries below `prefix`; `downloading` in the same order),
/// versions compared with what `dbs(directory)` list.
fn rows(
    mut files: Vec<(String, FileInfo)>,
    downloading: &[bool],
    root: &Path,
    mut dbs: impl FnMut(&Path) -> Vec<Arc<RepoIndex>>,
    prefix: String,
) -> Listing {
    let in_flight: HashMap<String, bool> = files
        .iter()
        .zip(downloading)
        .map(|((k, _), d)| (k.clone(), *d))
        .collect();
    let by_key: HashMap<String, FileInfo> = files.iter().cloned().collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut dir_dbs: HashMap<String, Vec<Arc<RepoIndex>>> = HashMap::new();
    let mut out = Vec::new();
    let mut truncated = false;
    for (key, info) in &files {
        let (_, dir, file) = split_key(key);
        let pkg = parse_pkg_filename(file);
        if let Some(package) = file.strip_suffix(".sig") {
            let key_of_pkg = &key[..key.len() - 4];
            if parse_pkg_filename(package).is_some() && by_key.contains_key(key_of_pkg) {
                continue; // folded into its package's row
            }
        }
        if out.len() == MAX_ROWS {
            truncated = true;
            break;
        }
        let kind = match (&pkg, file) {
            (Some(_), _) => "package",
            (None, f) if is_db_file(f) => "database",
            (None, f) if f.ends_with(".sig") => "signature",
            _ => "other",
        };
        let sig = by_key.get(&format!("{key}.sig")).filter(|_| pkg.is_some());
        let db_version = pkg.as_ref().and_then(|p| {
            let dir_key = &key[..key.len() - file.len() - 1];
            let indexes = dir_dbs
                .entry(dir_key.to_string())
                .or_insert_with(|| dbs(&root.join(dir_key)));
            indexes
                .iter()
                .find_map(|idx| idx.by_name_arch(&p.name, &p.arch))
                .map(|e| e.version.clone())
        });
        let newer_in_db = match (&pkg, &db_version) {
            (Some(p), Some(v)) => vercmp(v, &p.version) == Ordering::Greater,
            _ => false,
        };
        out.push(Row {
            path: key.clone(),
            dir: dir.to_string(),
            file: file.to_string(),
            kind,
            name: pkg.as_ref().map(|p| p.name.clone()),
            version: pkg.as_ref().map(|p| p.version.clone()),
            arch: pkg.as_ref().map(|p| p.arch.clone()),
            size: info.size,
            mtime: info.mtime,
            last_served: info.last_served,
            hits: info.hits,
            sig: sig.is_some(),
            sig_size: sig.map(|s| s.size),
            db_version,
            newer_in_db,
            downloading: in_flight.get(key).copied().unwrap_or(false),
        });
    }
    Listing {
        prefix,
        truncated,
        now: unix_secs(std::time::SystemTime::now()),
        files: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::db::DbEntry;

    fn info(size: u64, hits: u64) -> FileInfo {
        FileInfo {
            size,
            mtime: 1,
            last_served: 2,
            hits,
        }
    }

    fn entry(name: &str, version: &str) -> DbEntry {
        DbEntry {
            name: name.into(),
            version: version.into(),
            arch: "x86_64".into(),
            filename: format!("{name}-{version}-x86_64.pkg.tar.zst"),
            csize: None,
            isize: None,
            sha256: None,
            has_pgpsig: false,
            pgpsig_sha256: None,
        }
    }

    #[test]
    fn rows_fold_signatures_and_compare_with_the_db() {
        let d = "arch/core/os/x86_64";
        let files = vec![
            (
                format!("{d}/zstd-1.5.6-1-x86_64.pkg.tar.zst"),
                info(500, 14),
            ),
            (
                format!("{d}/zstd-1.5.6-1-x86_64.pkg.tar.zst.sig"),
                info(566, 0),
            ),
            (format!("{d}/gone-1-1-any.pkg.tar.zst.sig"), info(10, 0)),
            (format!("{d}/bash-5.2-1-x86_64.pkg.tar.zst"), info(700, 1)),
            (format!("{d}/core.db"), info(100, 812)),
            (format!("{d}/core.db.sig"), info(10, 3)),
            (format!("{d}/lastsync"), info(4, 0)),
        ];
        let downloading = vec![false, false, false, true, false, false, false];
        let db = Arc::new(RepoIndex::from_entries(vec![
            entry("zstd", "1.5.7-2"),
            entry("bash", "5.2-1"),
        ]));
        let mut asked = Vec::new();
        let l = rows(
            files,
            &downloading,
            Path::new("/cache"),
            |dir| {
                asked.push(dir.to_path_buf());
                vec![db.clone()]
            },
            "arch/core".into(),
        );
        assert_eq!(asked, vec![Path::new("/cache/arch/core/os/x86_64")]);
        assert!(!l.truncated);
        let names: Vec<&str> = l.files.iter().map(|r| r.file.as_str()).collect();
        assert_eq!(
            names,
            [
                "bash-5.2-1-x86_64.pkg.tar.zst",
                "core.db",
                "core.db.sig",
                "gone-1-1-any.pkg.tar.zst.sig",
                "lastsync",
                "zstd-1.5.6-1-x86_64.pkg.tar.zst"
            ]
        );
        let kinds: Vec<&str> = l.files.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                "package",
                "database",
                "database",
                "signature",
                "other",
                "package"
            ]
        );
        let zstd = &l.files[5];
        assert_eq!(zstd.dir, "core/os/x86_64");
        assert_eq!(
            (
                zstd.name.as_deref(),
                zstd.version.as_deref(),
                zstd.arch.as_deref()
            ),
            (Some("zstd"), Some("1.5.6-1"), Some("x86_64"))
        );
        assert_eq!((zstd.sig, zstd.sig_size, zstd.hits), (true, Some(566), 14));
        assert_eq!(zstd.db_version.as_deref(), Some("1.5.7-2"));
        assert!(zstd.newer_in_db);
        let bash = &l.files[0];
        assert!(!bash.newer_in_db && !bash.sig && bash.downloading);
        assert_eq!(bash.db_version.as_deref(), Some("5.2-1"));
        assert_eq!(l.files[1].db_version, None);
        assert!(!l.files[1].newer_in_db);
    }

    #[test]
    fn keys_split_into_upstream_dir_and_file() {
        assert_eq!(split_key("a/b/c/f"), ("a", "b/c", "f"));
        assert_eq!(split_key("a/f"), ("a", "", "f"));
        assert!(is_db_file("core.db.sig") && is_db_file("core.files.tar.gz"));
        assert!(!is_db_file("zstd-1-1-any.pkg.tar.zst.sig"));
    }
}
