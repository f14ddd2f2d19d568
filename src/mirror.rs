//! The mirror handler: `GET|HEAD /<upstream>/<path>`.
//!
//! Steps, in order:
//! 1. **validate**: refuse absolute-form targets, parse the path into a [`RepoPath`], check the
//!    upstream exists;
//! 2. **cache**: a cached immutable file, or a cached mutable file revalidated within
//!    `db_max_age`, is served from disk (actix-files: Range, conditional requests, sendfile);
//! 3. **join**: a download of this file in flight is joined;
//! 4. **start**: otherwise a download is registered and started (a conditional one for a
//!    cached mutable file);
//! 5. **answer** once upstream has answered: tail the growing file, or serve the (re)validated
//!    file, or 404, or — for a mutable file whose mirrors all fail — the stale copy.
//!
//! A cached file can vanish between the lookup and the open (evicted, cleaned up, quarantined,
//! superseded by a new db): that is a miss, and steps 2–5 run again ([`LOOKUPS`] times at
//! most) — never a 404 for a file the mirror has. `If-Modified-Since` gets a 304 only for the
//! exact `Last-Modified` of the cached file (nginx's default, `if_modified_since exact`): a db
//! that went back to an older, repaired version must reach clients holding the newer, broken one.

use std::fs::Metadata;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix_files::NamedFile;
use actix_web::body::{BodyStream, SizedStream};
use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::ApiError;
use crate::fetch::FetchRequest;
use crate::inflight::{BodyMeta, Download, Joined, Phase, Progress};
use crate::metrics::Outcome;
use crate::path::{FileKind, RepoPath};
use crate::server::AppState;
use crate::tail::Tail;
use tokio::sync::watch;

/// Cached files up to this size are read synchronously on the worker.
const SYNC_READ_LIMIT: u64 = 1 << 20;

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
            state.metrics.request(match e {
                ApiError::NotFound => Outcome::NotFound,
                _ => Outcome::Error,
            });
            Err(e)
        }
    }
}

/// Response header naming how a request was answered (hit, miss, joined, …).
pub const RESULT_HEADER: &str = "x-cache-status";

/// Is `path` a package (or signature) of a mirrored upstream, cached forever once
/// downloaded? Hits on exactly these may be answered by [`crate::fastpath`].
pub fn is_mirrored_package(state: &AppState, path: &RepoPath) -> bool {
    path.kind() == FileKind::Immutable
        && state.repos.get(path.upstream()).is_none()
        && state.pools.get(path.upstream()).is_some()
}

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
        return Ok((serve_local(req, repo, &path)?, Outcome::Hit));
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
    let path = path.clone();
    let final_path = state.store.final_path(&path);
    let db_max_age = state.cfg.db_max_age;

    // 2. cache. A package is opened straight away (one syscall on a hit, the hot path).
    if is_mirrored_package(state, &path) {
        match NamedFile::open(&final_path) {
            Ok(named) if named.metadata().is_file() => {
                state.index.touch(&path.key());
                return Ok(Some((serve_named(req, state, named)?, Outcome::Hit)));
            }
            Ok(_) => return Err(ApiError::NotFound),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ApiError::Internal(format!("cannot open cached file: {e}"))),
        }
    }
    let cached = std::fs::metadata(&final_path).ok();
    if cached.as_ref().is_some_and(Metadata::is_dir) {
        return Err(ApiError::NotFound);
    }
    let cached = cached.filter(Metadata::is_file);
    let fresh = |store: &crate::store::Store| match path.kind() {
        FileKind::Immutable => true,
        FileKind::Mutable => store.is_fresh(&path, db_max_age),
    };
    if cached.is_some() && fresh(&state.store) {
        let Some(resp) = serve_file(req, state, &final_path).await? else {
            return Ok(None);
        };
        state.index.touch(&path.key());
        return Ok(Some((resp, Outcome::Hit)));
    }
    if cached.is_none() && state.store.recently_not_found(&path, db_max_age) {
        return Err(ApiError::NotFound);
    }

    // 3. join, or 4. start
    let if_modified_since = match (path.kind(), &cached) {
        (FileKind::Mutable, Some(m)) => m.modified().ok(),
        _ => None,
    };
    let joined = join_or_start(state, &path, if_modified_since, || {
        // Under the registry lock: a download that just finished has published by now.
        !(final_path.is_file() && fresh(&state.store))
    });
    let Some((download, outcome)) = joined else {
        let resp = serve_file(req, state, &final_path).await?;
        return Ok(resp.map(|r| (r, Outcome::Hit)));
    };

    // 5. answer
    let (progress, rx) = wait_answered(state, &path, &download).await?;
    let answer = match progress.phase {
        Phase::Streaming(meta) => Some((tail_response(req, state, &download, &meta, rx)?, outcome)),
        // Served from the download's own file: the published one, even if it is removed
        // from the cache by now.
        Phase::Done(_) => match download.file().and_then(|f| reopen(&f).ok()) {
            Some(file) => {
                let named = NamedFile::from_file(file, &final_path)
                    .map_err(|e| ApiError::Internal(format!("cannot open downloaded file: {e}")))?;
                Some((serve_named(req, state, named)?, outcome))
            }
            None => serve_file(req, state, &final_path)
                .await?
                .map(|r| (r, outcome)),
        },
        Phase::NotModified => serve_file(req, state, &final_path)
            .await?
            .map(|r| (r, Outcome::Revalidated)),
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
            Some((resp, Outcome::Stale))
        }
        Phase::Connecting => return Err(ApiError::Internal("download not answered".into())),
    };
    Ok(answer)
}

/// Join the download of `path` in flight, or start it (`needed` decides, under the registry
/// lock, whether a download is still needed): the download and how the request counts.
/// `None`: not needed (the file was published meanwhile).
pub fn join_or_start(
    state: &AppState,
    path: &RepoPath,
    if_modified_since: Option<SystemTime>,
    needed: impl FnOnce() -> bool,
) -> Option<(Arc<Download>, Outcome)> {
    match state.registry.join_or_start(path, needed)? {
        Joined::Existing(d) => Some((d, Outcome::Joined)),
        Joined::Started(d, guard) => {
            log::debug!("miss: {path}");
            state.fetcher.start(FetchRequest {
                download: d.clone(),
                guard,
                if_modified_since,
                expected: None,
            });
            Some((d, Outcome::Miss))
        }
    }
}

/// Wait (within [`answer_limit`]) until upstream has answered `download`: its progress then,
/// and a receiver of what follows.
pub async fn wait_answered(
    state: &AppState,
    path: &RepoPath,
    download: &Download,
) -> Result<(Progress, watch::Receiver<Progress>), ApiError> {
    let mut rx = download.subscribe();
    let limit = answer_limit(state, path);
    let progress = match tokio::time::timeout(limit, rx.wait_for(|p| p.answered())).await {
        Ok(Ok(p)) => p.clone(),
        Ok(Err(_)) => return Err(ApiError::Upstream("download task went away".into())),
        Err(_) => return Err(ApiError::UpstreamTimeout),
    };
    Ok((progress, rx))
}

/// How long a client tailing a download waits for its next bytes before giving up.
pub fn tail_stall_limit(state: &AppState) -> Duration {
    state.cfg.upstream_timeout * 4 + Duration::from_secs(30)
}

/// How long a client waits for upstream's first answer: every mirror's head timeout, plus slack.
fn answer_limit(state: &AppState, path: &RepoPath) -> Duration {
    let mirrors = state
        .pools
        .get(path.upstream())
        .map(|p| p.mirrors.len())
        .unwrap_or(1) as u32;
    state.cfg.upstream_timeout * (mirrors + 1) + Duration::from_secs(5)
}

/// Serve a cached file (hit): actix-files handles Range, If-Modified-Since, ETag and HEAD;
/// bodies of large files come from [`crate::filebody`] (big reads, one read ahead). `None`:
/// the file is not there (any more).
async fn serve_file(
    req: &HttpRequest,
    state: &AppState,
    file: &Path,
) -> Result<Option<HttpResponse>, ApiError> {
    // A plain open: the dentry is hot on a hit, a blocking-pool hop would cost more.
    let named = match NamedFile::open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ApiError::Internal(format!("cannot open cached file: {e}"))),
    };
    serve_named(req, state, named).map(Some)
}

/// [`serve_file`] for an already opened file.
fn serve_named(
    req: &HttpRequest,
    state: &AppState,
    named: NamedFile,
) -> Result<HttpResponse, ApiError> {
    let (resp, sent) = respond_with_file(req, named)?;
    state.metrics.bytes_from_cache.inc_by(sent);
    Ok(resp)
}

/// Build the response for an opened file; returns it with the number of body bytes it sends.
fn respond_with_file(req: &HttpRequest, named: NamedFile) -> Result<(HttpResponse, u64), ApiError> {
    let len = named.metadata().len();
    let big = len > SYNC_READ_LIMIT && req.method() == Method::GET;
    let own_body = if big {
        Some(
            named
                .file()
                .try_clone()
                .map_err(|e| ApiError::Internal(format!("cannot reopen cached file: {e}")))?,
        )
    } else {
        None
    };
    let mtime = named.metadata().modified().ok();
    let exact_ims = if_modified_since_is_exact(req, mtime);
    let mut resp = named
        .use_etag(true)
        .use_last_modified(exact_ims)
        .disable_content_disposition()
        // Small files are read on the worker (page cache) instead of a blocking-pool hop.
        .read_mode_threshold(SYNC_READ_LIMIT)
        .set_content_type(mime_octet())
        .into_response(req);
    if let (false, Some(t)) = (exact_ims, mtime) {
        // Not evaluated by actix-files (its comparison is "not later than"), still sent.
        resp.headers_mut().insert(
            header::LAST_MODIFIED,
            header::HeaderValue::from_str(&httpdate::fmt_http_date(t))
                .map_err(|e| ApiError::Internal(e.to_string()))?,
        );
    }
    let range = match resp.status() {
        StatusCode::OK if req.method() == Method::GET => Some((0, len)),
        StatusCode::PARTIAL_CONTENT => resp
            .headers()
            .get(header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::fetch::parse_content_range)
            .map(|(start, end, _)| (start, end + 1 - start)),
        _ => None,
    };
    let sent = range.map(|(_, l)| l).unwrap_or(0);
    match (own_body, range) {
        (Some(file), Some((offset, length))) => {
            let body = SizedStream::new(length, crate::filebody::file_range(file, offset, length));
            Ok((resp.set_body(body).map_into_boxed_body(), sent))
        }
        _ => Ok((resp, sent)),
    }
}

/// Serve a file of a custom repo: `/<repo>/os/<arch>/<file>`.
fn serve_local(
    req: &HttpRequest,
    repo: &crate::localrepo::LocalRepo,
    path: &RepoPath,
) -> Result<HttpResponse, ApiError> {
    let mut parts = path.rel().split('/');
    let (Some("os"), Some(arch), Some(file), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ApiError::NotFound);
    };
    let (file, on_disk) = repo.open_file(arch, file).ok_or(ApiError::NotFound)?;
    let named = NamedFile::from_file(file, on_disk)
        .map_err(|e| ApiError::Internal(format!("cannot open repo file: {e}")))?;
    Ok(respond_with_file(req, named)?.0)
}

/// May actix-files evaluate the request's `If-Modified-Since` against `mtime`? Only when it
/// names exactly that second (or is absent): a client holding a *newer* copy than ours (the
/// mirror went back to an older, repaired db) must get ours, not a 304.
fn if_modified_since_is_exact(req: &HttpRequest, mtime: Option<SystemTime>) -> bool {
    let Some(ims) = req.headers().get(header::IF_MODIFIED_SINCE) else {
        return true;
    };
    let since = ims
        .to_str()
        .ok()
        .and_then(|v| httpdate::parse_http_date(v).ok());
    match (since, mtime) {
        (Some(since), Some(t)) => httpdate::fmt_http_date(since) == httpdate::fmt_http_date(t),
        _ => false,
    }
}

/// A new handle on `file` with its own file offset (a new open file description of the same
/// inode, through `/proc/self/fd`; it works for a file already unlinked). actix-files seeks the
/// handle it reads a small file from, and the download's handles (`try_clone`s of one) share a
/// single offset: clients served at once from those would read at each other's positions.
fn reopen(file: &std::fs::File) -> std::io::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    std::fs::File::open(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

fn mime_octet() -> mime::Mime {
    mime::APPLICATION_OCTET_STREAM
}

/// Answer from a download in flight: 200 (or 206 for a single satisfiable range when the
/// length is known) streaming the growing file.
fn tail_response(
    req: &HttpRequest,
    state: &AppState,
    download: &Arc<Download>,
    meta: &BodyMeta,
    rx: watch::Receiver<Progress>,
) -> Result<HttpResponse, ApiError> {
    let file = download
        .file()
        .ok_or_else(|| ApiError::Internal("download has no partial file".into()))?;
    let mut resp = HttpResponse::Ok();
    resp.insert_header((header::CONTENT_TYPE, "application/octet-stream"));
    if let Some(lm) = meta.last_modified {
        resp.insert_header((header::LAST_MODIFIED, httpdate::fmt_http_date(lm)));
    }
    let (start, end) = match (meta.total, req.headers().get(header::RANGE)) {
        (Some(total), Some(range)) => {
            resp.insert_header((header::ACCEPT_RANGES, "bytes"));
            let ranges = range
                .to_str()
                .ok()
                .map(|r| actix_files::HttpRange::parse(r, total));
            match ranges {
                Some(Ok(r)) if r.len() == 1 => {
                    let (s, l) = (r[0].start, r[0].length);
                    resp.status(StatusCode::PARTIAL_CONTENT);
                    resp.insert_header((
                        header::CONTENT_RANGE,
                        format!("bytes {}-{}/{}", s, s + l - 1, total),
                    ));
                    (s, Some(s + l))
                }
                Some(Err(_)) => {
                    return Ok(HttpResponse::RangeNotSatisfiable()
                        .insert_header((header::CONTENT_RANGE, format!("bytes */{total}")))
                        .finish())
                }
                _ => (0, Some(total)),
            }
        }
        (Some(total), None) => {
            resp.insert_header((header::ACCEPT_RANGES, "bytes"));
            (0, Some(total))
        }
        (None, _) => (0, None),
    };
    if req.method() == Method::HEAD {
        return Ok(match end {
            Some(e) => resp.no_chunking(e - start).finish(),
            None => resp.finish(),
        });
    }
    let stall = tail_stall_limit(state);
    let tail = Tail::new(file, rx, start, end, stall, Some(download.attach()));
    let metrics = state.metrics.clone();
    let stream = futures::StreamExt::inspect(tail.into_stream(), move |chunk| {
        if let Ok(b) = chunk {
            metrics.bytes_from_upstream.inc_by(b.len() as u64);
        }
    });
    Ok(match end {
        Some(e) => resp.body(SizedStream::new(e - start, stream)),
        None => resp.body(BodyStream::new(stream)),
    })
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
