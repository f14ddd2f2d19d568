//! The mirror handler: `GET|HEAD /<upstream>/<path>`.
//!
//! Steps, in order:
//! 1. **validate**: refuse absolute-form targets, parse the path into a [`RepoPath`], check the
//!    upstream exists;
//! 2. **cache**: a cached immutable file, or a cached mutable file revalidated within
//!    `db_max_age`, is served from disk ([`crate::http::file_response`]: ranges and conditional
//!    requests per RFC 9110);
//! 3. **join**: a download of this file in flight is joined;
//! 4. **start**: otherwise a download is registered and started (a conditional one for a
//!    cached mutable file);
//! 5. **answer** once upstream has answered: tail the growing file
//!    ([`crate::http::in_flight`]: the same range and conditional rules; a `Range` on a body
//!    whose length nobody knows waits for it), or serve the (re)validated file, or 404, or —
//!    for a mutable file whose mirrors all fail — the stale copy.
//!
//! Steps 3–5 share their rules with the fast path ([`crate::http::miss`]).
//!
//! A cached file can vanish between the lookup and the open (evicted, cleaned up, quarantined,
//! superseded by a new db): that is a miss, and steps 2–5 run again ([`LOOKUPS`] times at
//! most) — never a 404 for a file the mirror has. `If-Modified-Since` gets a 304 only for the
//! exact `Last-Modified` of the file ([`crate::http::ranges::preconditions`]; nginx's default,
//! `if_modified_since exact`): a db that went back to an older, repaired version must reach
//! clients holding the newer, broken one.

use std::fs::{File, Metadata};
use std::path::Path;
use std::sync::Arc;

use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::cache::inflight::{Download, Phase};
use crate::http::error::ApiError;
use crate::http::in_flight::{length_known, tail_response};
use crate::http::miss::{is_mirrored_package, join_or_start, wait_answered};
use crate::metrics::Outcome;
use crate::repo::path::{FileKind, RepoPath};
use crate::state::AppState;

/// How often a request looks a file up again after it vanished from the cache under it.
const LOOKUPS: usize = 5;

/// The handler for every path that is not `/_pkgstash/…`.
pub async fn handle(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    match serve(&req, &state).await {
        Ok((mut resp, outcome)) => {
            state.metrics.request(outcome);
            // For the access log and for curious sysadmins (`curl -I`).
            resp.headers_mut().insert(
                header::HeaderName::from_static(RESULT_HEADER),
                header::HeaderValue::from_static(outcome.as_str()),
            );
            Ok(resp)
        }
        Err(e) => {
            state.metrics.request(e.outcome());
            Err(e)
        }
    }
}

/// Response header naming how a request was answered (hit, miss, joined, …).
pub const RESULT_HEADER: &str = "x-cache-status";

async fn serve(req: &HttpRequest, state: &AppState) -> Result<(HttpResponse, Outcome), ApiError> {
    // 1. validate
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(ApiError::MethodNotAllowed);
    }
    // SECURITY: an absolute-form target ("GET http://elsewhere/…") is refused: pkgstash is a
    // mirror, not a proxy, and only ever requests its configured mirrors.
    if req.uri().scheme().is_some() || req.uri().authority().is_some() {
        return Err(ApiError::BadRequest("absolute-form request target".into()));
    }
    let path = RepoPath::parse(req.uri().path())?;
    if let Some(repo) = state.repos.get(path.upstream()) {
        return Ok((serve_custom_repo(req, repo, &path)?, Outcome::Hit));
    }
    if state.pools.get(path.upstream()).is_none() {
        return Err(ApiError::NotFound);
    }
    for _ in 0..LOOKUPS {
        if let Some(answer) = lookup_and_answer(req, state, &path).await? {
            return Ok(answer);
        }
    }
    Err(ApiError::Upstream(format!(
        "{path} was removed from the cache {LOOKUPS} times while being served"
    )))
}

/// Steps 2–5 for `path`; `None` when the cached file vanished before it could be opened.
async fn lookup_and_answer(
    req: &HttpRequest,
    state: &AppState,
    path: &RepoPath,
) -> Result<Option<(HttpResponse, Outcome)>, ApiError> {
    let final_path = state.store.final_path(path);
    match lookup(req, state, path, &final_path).await? {
        Lookup::Hit(resp) => Ok(Some((resp, Outcome::Hit))),
        Lookup::Vanished => Ok(None),
        Lookup::Miss(cached) => miss(req, state, path, &final_path, cached).await,
    }
}

/// What the cache has for a request (step 2).
enum Lookup {
    /// Answered from the cache.
    Hit(HttpResponse),
    /// The cached file vanished between the lookup and the open: look again.
    Vanished,
    /// Not answerable from the cache: upstream is asked; the metadata of a cached copy to
    /// revalidate, if there is one.
    Miss(Option<Metadata>),
}

/// Step 2: answer from the cache file `final_path` when it holds `path` fresh ([`fresh`]).
/// `Err`: 404 for a directory, or for a file upstream recently did not have.
async fn lookup(
    req: &HttpRequest,
    state: &AppState,
    path: &RepoPath,
    final_path: &Path,
) -> Result<Lookup, ApiError> {
    // A package is opened straight away (one syscall on a hit, the hot path).
    if is_mirrored_package(state, path) {
        match open_file(final_path) {
            Ok((file, meta)) if meta.is_file() => {
                state.index.served(&path.key(), req.method() == Method::GET);
                return Ok(Lookup::Hit(serve_opened(req, state, file, &meta)?));
            }
            Ok(_) => return Err(ApiError::NotFound),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ApiError::Internal(format!("cannot open cached file: {e}"))),
        }
    }
    // Stats and opens on the async worker, as intended: the dentry is hot on a hit, a
    // blocking-pool hop would cost more than the syscall.
    let cached = std::fs::metadata(final_path).ok();
    if cached.as_ref().is_some_and(Metadata::is_dir) {
        return Err(ApiError::NotFound);
    }
    let cached = cached.filter(Metadata::is_file);
    if cached.is_some() && fresh(state, path) {
        let Some(resp) = serve_file(req, state, final_path).await? else {
            return Ok(Lookup::Vanished);
        };
        state.index.served(&path.key(), req.method() == Method::GET);
        return Ok(Lookup::Hit(resp));
    }
    if cached.is_none() && state.store.recently_not_found(path, state.cfg.db_max_age) {
        return Err(ApiError::NotFound);
    }
    Ok(Lookup::Miss(cached))
}

/// Is a cached copy of `path` served without asking upstream: a package always, a mutable
/// file when revalidated within `db_max_age`.
fn fresh(state: &AppState, path: &RepoPath) -> bool {
    match path.kind() {
        FileKind::Immutable => true,
        FileKind::Mutable => state.store.is_fresh(path, state.cfg.db_max_age),
    }
}

/// Steps 3–5 for a miss: join the download in flight or start one (a conditional one when
/// `cached` is a mutable file's stale copy), then answer from it; `None` when the file it
/// published or revalidated vanished before it could be opened.
async fn miss(
    req: &HttpRequest,
    state: &AppState,
    path: &RepoPath,
    final_path: &Path,
    cached: Option<Metadata>,
) -> Result<Option<(HttpResponse, Outcome)>, ApiError> {
    let if_modified_since = match (path.kind(), &cached) {
        (FileKind::Mutable, Some(m)) => m.modified().ok(),
        _ => None,
    };
    let joined = join_or_start(state, path, if_modified_since, || {
        // Under the registry lock: a download that just finished has published by now.
        !(final_path.is_file() && fresh(state, path))
    });
    let Some((download, outcome)) = joined else {
        let resp = serve_file(req, state, final_path).await?;
        return Ok(resp.map(|r| {
            state.index.served(&path.key(), req.method() == Method::GET);
            (r, Outcome::Hit)
        }));
    };
    answer(req, state, path, &download, outcome).await
}

/// Step 5: answer from `download` (joined or started) once upstream has answered; `None` when
/// the file it published or revalidated vanished before it could be opened.
async fn answer(
    req: &HttpRequest,
    state: &AppState,
    path: &RepoPath,
    download: &Arc<Download>,
    outcome: Outcome,
) -> Result<Option<(HttpResponse, Outcome)>, ApiError> {
    let final_path = state.store.final_path(path);
    let (mut progress, mut rx) = wait_answered(state, path, download).await?;
    if wants_range(req) {
        // A Range on a body of unknown length: 206 needs the length, so wait for it (a 200
        // would make pacman and curl give up resuming).
        progress = length_known(state, progress, &mut rx).await?;
    }
    // A GET answered with this file counts as one of its hits: through the download while it
    // grows (the index takes the count when it publishes), through the index after.
    let get = req.method() == Method::GET;
    let served = || state.index.served(&path.key(), get);
    let answer = match progress.phase {
        Phase::Streaming(meta) => {
            let resp = tail_response(req, state, download, &meta, rx)?;
            if get && !download.count_served() {
                served();
            }
            Some((resp, outcome))
        }
        // Served from the download's own file: the published one, even if it is removed
        // from the cache by now.
        Phase::Done(_) => match download.file().and_then(|f| reopen(&f).ok()) {
            Some(file) => {
                served();
                let meta = file
                    .metadata()
                    .map_err(|e| ApiError::Internal(format!("cannot stat downloaded file: {e}")))?;
                Some((serve_opened(req, state, file, &meta)?, outcome))
            }
            None => serve_file(req, state, &final_path).await?.map(|r| {
                served();
                (r, outcome)
            }),
        },
        Phase::NotModified => serve_file(req, state, &final_path).await?.map(|r| {
            served();
            (r, Outcome::Revalidated)
        }),
        Phase::NotFound => return Err(ApiError::NotFound),
        Phase::Failed(reason) => {
            let stale = match path.kind() == FileKind::Mutable && final_path.is_file() {
                true => serve_file(req, state, &final_path).await?,
                false => None,
            };
            let Some(resp) = stale else {
                return Err(ApiError::from(&reason));
            };
            log::warn!("serving stale {path}: its download failed ({reason})");
            served();
            Some((resp, Outcome::Stale))
        }
        Phase::Connecting => return Err(ApiError::Internal("download not answered".into())),
    };
    Ok(answer)
}

/// Open `path` and stat the open file.
fn open_file(path: &Path) -> std::io::Result<(File, Metadata)> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    Ok((file, meta))
}

/// Serve a cached file (hit): validators, preconditions and ranges by
/// [`crate::http::file_response`]. `None`: the file is not there (any more).
async fn serve_file(
    req: &HttpRequest,
    state: &AppState,
    file: &Path,
) -> Result<Option<HttpResponse>, ApiError> {
    // A plain open: the dentry is hot on a hit, a blocking-pool hop would cost more.
    match open_file(file) {
        Ok((f, meta)) if meta.is_file() => serve_opened(req, state, f, &meta).map(Some),
        Ok(_) => Err(ApiError::NotFound),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ApiError::Internal(format!("cannot open cached file: {e}"))),
    }
}

/// A new handle on `file` with its own file offset (a new open file description of the same
/// inode, through `/proc/self/fd`; it works for a file already unlinked). The download's
/// handles are `try_clone`s of one and share a single offset: a finished download is served
/// from a handle of its own, so no reader of its body depends on where another one is
/// ([`crate::http::file_response`] reads at explicit positions; this keeps it so for any reader).
fn reopen(file: &File) -> std::io::Result<File> {
    use std::os::fd::AsRawFd;
    File::open(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// [`serve_file`] for an already opened file.
fn serve_opened(
    req: &HttpRequest,
    state: &AppState,
    file: File,
    meta: &Metadata,
) -> Result<HttpResponse, ApiError> {
    let (resp, sent) = crate::http::file_response::respond(req, file, meta)?;
    state.metrics.served_from_cache(sent);
    Ok(resp)
}

/// Serve a file of a custom repo: `/<repo>/os/<arch>/<file>`.
fn serve_custom_repo(
    req: &HttpRequest,
    repo: &crate::custom_repo::CustomRepo,
    path: &RepoPath,
) -> Result<HttpResponse, ApiError> {
    let mut parts = path.rel().split('/');
    let (Some("os"), Some(arch), Some(file), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ApiError::NotFound);
    };
    let (file, _) = repo.open_file(arch, file).ok_or(ApiError::NotFound)?;
    let meta = file
        .metadata()
        .map_err(|e| ApiError::Internal(format!("cannot stat repo file: {e}")))?;
    Ok(crate::http::file_response::respond(req, file, &meta)?.0)
}

/// Is `req` a `GET` with a `Range`?
fn wants_range(req: &HttpRequest) -> bool {
    req.method() == Method::GET && req.headers().contains_key(header::RANGE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom, Write};

    #[test]
    fn a_reopened_download_file_has_its_own_offset() {
        let mut tmp = tempfile::NamedTempFile::new().expect("tmp");
        tmp.write_all(b"0123456789").expect("write");
        let (file, path) = tmp.into_parts();
        drop(path); // unlinked, like a published file evicted since
        let read_from_start = |f: &mut std::fs::File| {
            let mut buf = [0u8; 3];
            f.read_exact(&mut buf).expect("read");
            buf
        };
        // What a `try_clone` gives: one offset for both handles.
        let mut clone = file.try_clone().expect("clone");
        clone.seek(SeekFrom::Start(0)).expect("seek");
        let mut other = file.try_clone().expect("clone");
        other.seek(SeekFrom::Start(7)).expect("seek");
        assert_eq!(&read_from_start(&mut clone), b"789");
        // Reopened handles are independent.
        let mut a = reopen(&file).expect("reopen");
        let mut b = reopen(&file).expect("reopen");
        b.seek(SeekFrom::Start(7)).expect("seek");
        assert_eq!(&read_from_start(&mut a), b"012");
        assert_eq!(&read_from_start(&mut b), b"789");
    }
}
