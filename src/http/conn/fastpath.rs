//! Plain package requests answered with `sendfile(2)`, without actix.
//!
//! The connection front end ([`crate::http::conn`]) offers every request it framed here first.
//! A request is taken when it is plain ([`plain`]): `GET`/`HEAD` over HTTP/1.1 with a head
//! of CRLF lines only, no body, no `Range` or conditional headers, of a package of a mirrored
//! upstream. Then:
//! - a **hit**: the response head, then the body from the page cache to the socket in the
//!   kernel (no copy through user space, unlike actix-files, which reads the file and copies
//!   it again into actix's write buffer);
//! - a **miss**: the download is joined or started exactly as the mirror handler does
//!   ([`crate::http::miss::join_or_start`]); once upstream has answered with a length, a `HEAD` is
//!   answered with it, a `GET` tails the growing partial file with `sendfile`
//!   ([`Tail::next_range`]: same waiting, same last-byte-after-verification rule, same abort
//!   on failure). A herd of clients on one download costs the kernel's page-cache splice per
//!   client, not three copies each.
//!
//! A miss this module cannot answer (length unknown, download already finished, not found)
//! is left to actix ([`serve`] answers `None` having written nothing), so every other
//! behaviour (ranges, 304s, errors) is the mirror handler's. Headers match what the actix path
//! sends (`ETag` and `Last-Modified` as [`crate::http::file_response`] makes them, `Accept-Ranges`,
//! `X-Cache-Status`). Every write gives up after the send timeout without progress.

use std::io;
use std::time::{Duration, SystemTime};

use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::cache::inflight::Phase;
use crate::cache::open_files::OpenFile;
use crate::cache::tail::Tail;
use crate::http::conn::http1::{BodyKind, ConnectionType, Head};
use crate::http::error::ApiError;
use crate::metrics::Outcome;
use crate::repo::path::RepoPath;
use crate::state::AppState;

/// Headers that make a request something other than plain.
const NOT_PLAIN: [&str; 9] = [
    "range",
    "if-modified-since",
    "if-none-match",
    "if-match",
    "if-unmodified-since",
    "if-range",
    "expect",
    "transfer-encoding",
    "upgrade",
];

/// A plain request for a package of a mirrored upstream.
#[derive(Debug)]
pub struct Plain {
    pub path: RepoPath,
    pub key: String,
    pub head_only: bool,
    /// The connection closes after the response (`Connection: close`).
    pub close: bool,
}

/// How a request taken here ended.
#[derive(Debug)]
pub struct Served {
    pub status: u16,
    /// Body bytes handed to the kernel.
    pub sent: u64,
    pub outcome: Outcome,
    /// Why the response was cut short (the connection must close), if it was.
    pub error: Option<io::Error>,
}

/// The request, if it is a plain `GET`/`HEAD` of a package of a mirrored upstream.
pub fn plain(head: &Head, state: &AppState) -> Option<Plain> {
    let head_only = match head.method.as_str() {
        "GET" => false,
        "HEAD" => true,
        _ => return None,
    };
    if head.minor_version != 1
        || !head.crlf
        || head.body != BodyKind::None
        || head.connection == ConnectionType::Upgrade
        || NOT_PLAIN.iter().any(|n| head.has(n))
    {
        return None;
    }
    let target = head.target.as_str();
    if !target.starts_with('/') || target.contains('?') || target.starts_with("/_pkgstash") {
        return None;
    }
    let path = RepoPath::parse(target).ok()?;
    if !crate::http::miss::is_mirrored_package(state, &path) {
        return None;
    }
    Some(Plain {
        key: path.key(),
        path,
        head_only,
        close: !head.keep_alive(),
    })
}

/// Answer `plain` on `sock`, or `None` (nothing written) when actix should.
pub async fn serve(sock: &TcpStream, state: &AppState, plain: &Plain) -> Option<Served> {
    let file = state.store.final_path(&plain.path);
    let limit = state.cfg.send_timeout;
    if let Some(open) = state.open_files.get(&plain.key, &file) {
        let mut sent = 0;
        let error = send_hit(sock, state, plain, &open, &mut sent).await.err();
        state.index.served(&plain.key, !plain.head_only);
        return Some(Served {
            status: 200,
            sent,
            outcome: Outcome::Hit,
            error,
        });
    }
    // Not cached (not a directory either, which is actix's 404): a miss. (A stat on the async
    // worker, as intended: the dentry is hot, a blocking-pool hop would cost more.)
    if std::fs::symlink_metadata(&file).is_ok() {
        return None;
    }
    serve_miss(sock, state, plain, limit).await
}

/// A `200 OK` head: what [`crate::http::file_response`] sends for a cached file (`etag` given), or
/// what the mirror handler sends for a download in flight.
fn ok_head(
    len: u64,
    last_modified: Option<SystemTime>,
    etag: Option<&str>,
    outcome: Outcome,
    close: bool,
) -> String {
    let mut head = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {len}\r\ncontent-type: application/octet-stream\r\n"
    );
    if let Some(lm) = last_modified {
        head.push_str(&format!(
            "last-modified: {}\r\n",
            httpdate::fmt_http_date(lm)
        ));
    }
    if let Some(tag) = etag {
        head.push_str(&format!("etag: {tag}\r\n"));
    }
    head.push_str(&format!(
        "accept-ranges: bytes\r\nx-cache-status: {}\r\ndate: {}\r\n{}\r\n",
        outcome.as_str(),
        httpdate::fmt_http_date(SystemTime::now()),
        if close { "connection: close\r\n" } else { "" }
    ));
    head
}

/// Wait for the socket with the send timeout.
async fn writable<T>(
    limit: Duration,
    io: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    match tokio::time::timeout(limit, io).await {
        Ok(r) => r,
        Err(_) => Err(crate::http::conn::handoff::send_timeout_error(limit)),
    }
}

/// Write `head` with `MSG_MORE` when a body follows: head and body leave in one segment
/// (one wake-up of the client instead of two).
async fn send_head(sock: &TcpStream, head: &[u8], more: bool, limit: Duration) -> io::Result<()> {
    let flags = if more {
        rustix::net::SendFlags::MORE | rustix::net::SendFlags::NOSIGNAL
    } else {
        rustix::net::SendFlags::NOSIGNAL
    };
    let mut rest = head;
    while !rest.is_empty() {
        let n = writable(
            limit,
            sock.async_io(Interest::WRITABLE, || {
                rustix::net::send(sock, rest, flags).map_err(io::Error::from)
            }),
        )
        .await?;
        rest = &rest[n..];
    }
    Ok(())
}

/// Write all of `bytes`, each write within the send timeout `limit`.
pub async fn write_all(sock: &TcpStream, bytes: &[u8], limit: Duration) -> io::Result<()> {
    send_head(sock, bytes, false, limit).await
}

/// `sendfile` bytes `[offset, offset + len)` of `file`; answers how many went (at least one).
async fn send_file_range(
    sock: &TcpStream,
    file: &std::fs::File,
    offset: u64,
    len: u64,
    limit: Duration,
) -> io::Result<u64> {
    let mut off = offset;
    let want = len.min(1 << 30) as usize;
    let sent = writable(
        limit,
        sock.async_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(sock, file, Some(&mut off), want).map_err(io::Error::from)
        }),
    )
    .await?;
    if sent == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "file shorter than expected while being sent",
        ));
    }
    Ok(sent as u64)
}

/// Write the head, then the file with `sendfile`, counting body bytes in `sent` (and in the
/// metrics as they go).
async fn send_hit(
    sock: &TcpStream,
    state: &AppState,
    plain: &Plain,
    open: &OpenFile,
    sent: &mut u64,
) -> io::Result<()> {
    let limit = state.cfg.send_timeout;
    let meta = &open.meta;
    let len = meta.len();
    let head = ok_head(
        len,
        meta.modified().ok(),
        Some(&crate::http::file_response::etag(meta)),
        Outcome::Hit,
        plain.close,
    );
    send_head(sock, head.as_bytes(), !plain.head_only && len > 0, limit).await?;
    if plain.head_only {
        return Ok(());
    }
    while *sent < len {
        let n = send_file_range(sock, &open.file, *sent, len - *sent, limit).await?;
        state.metrics.served_from_cache(n);
        *sent += n;
    }
    Ok(())
}

/// A package that is not cached: join its download or start it, like the mirror handler, and
/// once upstream has answered with a length, answer a `HEAD` with it, or tail the growing file
/// with `sendfile` for a `GET` (no copy through user space, however many clients share the
/// download). Anything else (a body of unknown length, a download that just finished or was
/// not found) goes to actix, which joins or answers it the same way.
async fn serve_miss(
    sock: &TcpStream,
    state: &AppState,
    plain: &Plain,
    limit: Duration,
) -> Option<Served> {
    let path = &plain.path;
    if state.store.recently_not_found(path, state.cfg.db_max_age) {
        return None;
    }
    let final_path = state.store.final_path(path);
    let (download, outcome) =
        crate::http::miss::join_or_start(state, path, None, || !final_path.is_file())?;
    let (progress, rx) = match crate::http::miss::wait_answered(state, path, &download).await {
        Ok(answer) => answer,
        Err(e) => return Some(send_error(sock, e, plain.close, limit).await),
    };
    let meta = match progress.phase {
        Phase::Streaming(meta) => meta,
        // The mirror handler's mapping: 502 (mirrors), 507/500 (the cache's own trouble).
        Phase::Failed(reason) => {
            let e = ApiError::from(&reason);
            return Some(send_error(sock, e, plain.close, limit).await);
        }
        _ => return None,
    };
    let total = meta.total?;
    let file = if plain.head_only {
        None
    } else {
        Some(download.file()?)
    };
    let mut served = Served {
        status: 200,
        sent: 0,
        outcome,
        error: None,
    };
    // Not corked (MSG_MORE): the first body bytes may still be on their way from upstream,
    // and the head is what tells a waiting client (and pacman's timer) that they come.
    let head = ok_head(total, meta.last_modified, None, outcome, plain.close);
    if let Err(e) = send_head(sock, head.as_bytes(), false, limit).await {
        served.error = Some(e);
        return Some(served);
    }
    let Some(file) = file else {
        return Some(served); // a HEAD
    };
    if !download.count_served() {
        state.index.served(&plain.key, true);
    }
    let stall = crate::http::miss::tail_stall_limit(state);
    let mut tail = Tail::new(file, rx, 0, Some(total), stall, Some(download.attach()));
    loop {
        let range = match tail.next_range().await {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => {
                served.error = Some(e);
                break;
            }
        };
        match send_file_range(sock, tail.file(), range.0, range.1, limit).await {
            Ok(n) => {
                tail.consumed(n);
                state.metrics.served_from_download(n);
                served.sent += n;
            }
            Err(e) => {
                served.error = Some(e);
                break;
            }
        }
    }
    Some(served)
}

/// Answer with the mirror handler's error response for `e` (nothing was sent yet).
async fn send_error(sock: &TcpStream, e: ApiError, close: bool, limit: Duration) -> Served {
    use actix_web::ResponseError as _;
    let outcome = e.outcome();
    let resp = e.error_response();
    let status = resp.status();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    for (name, value) in resp.headers() {
        head.push_str(&format!(
            "{name}: {}\r\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    let body = actix_web::body::to_bytes(resp.into_body())
        .await
        .unwrap_or_default();
    head.push_str(&format!(
        "content-length: {}\r\ndate: {}\r\n{}\r\n",
        body.len(),
        httpdate::fmt_http_date(SystemTime::now()),
        if close { "connection: close\r\n" } else { "" }
    ));
    head.push_str(&String::from_utf8_lossy(&body));
    let error = send_head(sock, head.as_bytes(), false, limit).await.err();
    Served {
        status: status.as_u16(),
        sent: if error.is_some() {
            0
        } else {
            body.len() as u64
        },
        outcome,
        error,
    }
}
