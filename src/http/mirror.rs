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
//! 5. **answer** once upstream has answered: tail the growing file (the same range and
//!    conditional rules; a `Range` on a body whose length nobody knows waits for it), or serve
//!    the (re)validated file, or 404, or — for a mutable file whose mirrors all fail — the
//!    stale copy.
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
use std::time::{Duration, SystemTime};

use actix_web::body::SizedStream;
use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt as _;

use crate::cache::inflight::{BodyMeta, ClientGuard, Download, Phase, Progress};
use crate::cache::tail::Tail;
use crate::http::error::ApiError;
use crate::http::file_response::CONTENT_TYPE;
use crate::http::ranges::{Answer, BodyStream, ByteRange, Multipart, Representation};
use crate::metrics::Outcome;
use crate::repo::path::{FileKind, RepoPath};
use crate::state::AppState;
use crate::upstream::fetch::Role;
use tokio::sync::watch;

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
/// downloaded? Hits on exactly these may be answered by [`crate::http::conn::fastpath`].
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
        match open_file(&final_path) {
            Ok((file, meta)) if meta.is_file() => {
                state.index.touch(&path.key());
                return Ok(Some((serve_opened(req, state, file, &meta)?, Outcome::Hit)));
            }
            Ok(_) => return Err(ApiError::NotFound),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ApiError::Internal(format!("cannot open cached file: {e}"))),
        }
    }
    // Stats and opens on the async worker, as intended: the dentry is hot on a hit, a
    // blocking-pool hop would cost more than the syscall.
    let cached = std::fs::metadata(&final_path).ok();
    if cached.as_ref().is_some_and(Metadata::is_dir) {
        return Err(ApiError::NotFound);
    }
    let cached = cached.filter(Metadata::is_file);
    let fresh = |store: &crate::cache::store::Store| match path.kind() {
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
    answer(req, state, &path, &download, outcome).await
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
    let answer = match progress.phase {
        Phase::Streaming(meta) => Some((tail_response(req, state, download, &meta, rx)?, outcome)),
        // Served from the download's own file: the published one, even if it is removed
        // from the cache by now.
        Phase::Done(_) => match download.file().and_then(|f| reopen(&f).ok()) {
            Some(file) => {
                let meta = file
                    .metadata()
                    .map_err(|e| ApiError::Internal(format!("cannot stat downloaded file: {e}")))?;
                Some((serve_opened(req, state, file, &meta)?, outcome))
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
    let (download, role) = state
        .fetcher
        .join_or_start(path, if_modified_since, None, needed)?;
    let outcome = match role {
        Role::Joined => Outcome::Joined,
        Role::Started => Outcome::Miss,
    };
    Some((download, outcome))
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
    state.metrics.bytes_from_cache.inc_by(sent);
    Ok(resp)
}

/// Serve a file of a custom repo: `/<repo>/os/<arch>/<file>`.
fn serve_local(
    req: &HttpRequest,
    repo: &crate::custom_repo::LocalRepo,
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

/// The download's progress once its length is known: `progress` itself unless it streams a
/// body whose length nobody knows yet (no length upstream, no repo db entry), else the first
/// later progress that knows it or ends the download (for a `GET` with a `Range`).
async fn length_known(
    state: &AppState,
    mut progress: Progress,
    rx: &mut watch::Receiver<Progress>,
) -> Result<Progress, ApiError> {
    let stall = tail_stall_limit(state);
    loop {
        match &progress.phase {
            Phase::Connecting => {}
            Phase::Streaming(meta) if meta.total.is_none() => {}
            _ => return Ok(progress),
        }
        match tokio::time::timeout(stall, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(ApiError::Upstream("download task went away".into())),
            Err(_) => return Err(ApiError::UpstreamTimeout),
        }
        progress = rx.borrow_and_update().clone();
    }
}

/// Where bodies from a download in flight come from.
#[derive(Clone)]
struct TailSource {
    file: Arc<File>,
    rx: watch::Receiver<Progress>,
    stall: Duration,
    metrics: Arc<crate::metrics::Metrics>,
}

impl TailSource {
    /// Bytes `[start, end)` (`end`: `None` = until the download is done), counted as sent
    /// from upstream; `client` keeps the download's client count while the body lives.
    fn body(&self, start: u64, end: Option<u64>, client: Option<ClientGuard>) -> BodyStream {
        let tail = Tail::new(
            self.file.clone(),
            self.rx.clone(),
            start,
            end,
            self.stall,
            client,
        );
        let metrics = self.metrics.clone();
        Box::pin(tail.into_stream().inspect(move |chunk| {
            if let Ok(b) = chunk {
                metrics.bytes_from_upstream.inc_by(b.len() as u64);
            }
        }))
    }
}

/// Answer from a download of unknown length (no `Content-Length` upstream, no repo db entry):
/// 200 with the body as it comes (or 304/412). A `Range` never gets here ([`length_known`]).
fn unknown_length(
    req: &HttpRequest,
    mut resp: actix_web::HttpResponseBuilder,
    rep: &Representation,
    src: &TailSource,
    download: &Arc<Download>,
) -> HttpResponse {
    match crate::http::ranges::preconditions(req, rep) {
        Some(Answer::NotModified) => return HttpResponse::NotModified().finish(),
        Some(_) => return HttpResponse::PreconditionFailed().finish(),
        None => {}
    }
    resp.insert_header((header::CONTENT_TYPE, CONTENT_TYPE));
    let body = if req.method() == Method::HEAD {
        Box::pin(futures::stream::empty())
    } else {
        src.body(0, None, Some(download.attach()))
    };
    resp.body(actix_web::body::BodyStream::new(body))
}

/// Answer from a download in flight, streaming the growing file: 200, or 206 (one range, or
/// `multipart/byteranges`), 304/412/416 — the rules of a cached file
/// ([`crate::http::ranges::evaluate`]), with upstream's `Last-Modified` as the only validator. A
/// `HEAD` gets the headers a `GET` would.
fn tail_response(
    req: &HttpRequest,
    state: &AppState,
    download: &Arc<Download>,
    meta: &BodyMeta,
    rx: watch::Receiver<Progress>,
) -> Result<HttpResponse, ApiError> {
    let src = TailSource {
        file: download
            .file()
            .ok_or_else(|| ApiError::Internal("download has no partial file".into()))?,
        rx,
        stall: tail_stall_limit(state),
        metrics: state.metrics.clone(),
    };
    let head = req.method() == Method::HEAD;
    let mut resp = HttpResponse::Ok();
    if let Some(lm) = meta.last_modified {
        resp.insert_header((header::LAST_MODIFIED, httpdate::fmt_http_date(lm)));
    }
    let rep = Representation {
        len: meta.total.unwrap_or(0),
        etag: None,
        last_modified: meta.last_modified,
    };
    let Some(total) = meta.total else {
        return Ok(unknown_length(req, resp, &rep, &src, download));
    };
    resp.insert_header((header::ACCEPT_RANGES, "bytes"));
    let (range, status) = match crate::http::ranges::evaluate(req, &rep) {
        Answer::NotModified => return Ok(resp.status(StatusCode::NOT_MODIFIED).finish()),
        Answer::PreconditionFailed => {
            return Ok(resp.status(StatusCode::PRECONDITION_FAILED).finish())
        }
        Answer::Unsatisfiable => {
            return Ok(resp
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .insert_header((header::CONTENT_RANGE, format!("bytes */{total}")))
                .finish())
        }
        Answer::Full => (
            ByteRange {
                start: 0,
                len: total,
            },
            StatusCode::OK,
        ),
        Answer::Partial(ranges) if ranges.len() == 1 => {
            resp.insert_header((header::CONTENT_RANGE, ranges[0].content_range(total)));
            (ranges[0], StatusCode::PARTIAL_CONTENT)
        }
        Answer::Partial(ranges) => {
            let m = Multipart::new(&ranges, total, CONTENT_TYPE);
            resp.status(StatusCode::PARTIAL_CONTENT)
                .insert_header((header::CONTENT_TYPE, m.content_type()));
            let size = m.body_len();
            // One client for the whole body, held by the closure that makes its parts.
            let client = download.attach();
            let body = m.body(move |r| {
                let _held = &client;
                src.body(r.start, Some(r.start + r.len), None)
            });
            return Ok(resp.body(SizedStream::new(size, body)));
        }
    };
    resp.status(status)
        .insert_header((header::CONTENT_TYPE, CONTENT_TYPE));
    let body = if head {
        Box::pin(futures::stream::empty())
    } else {
        src.body(
            range.start,
            Some(range.start + range.len),
            Some(download.attach()),
        )
    };
    Ok(resp.body(SizedStream::new(range.len, body)))
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
