//! Plain package requests served with `sendfile(2)`, before actix sees the connection.
//!
//! Every accepted connection starts here. While its requests are plain — `GET`/`HEAD` of a
//! package of a mirrored upstream, HTTP/1.1, no `Range`, no conditional headers — they are
//! answered here:
//! - a **hit**: the response head, then the body from the page cache to the socket in the
//!   kernel (no copy through user space, unlike actix-files, which reads the file and copies
//!   it again into actix's write buffer);
//! - a **miss** (`GET`): the download is joined or started exactly as the mirror handler does
//!   ([`crate::mirror::join_or_start`]), and once upstream has answered with a length, the
//!   growing partial file is tailed with `sendfile` ([`Tail::next_range`]: same waiting, same
//!   last-byte-after-verification rule, same abort on failure). A herd of clients on one
//!   download then costs the kernel's page-cache splice per client, not three copies each.
//!
//! At the first request that is anything else — or a miss this module cannot answer (length
//! unknown, download already finished, not found) — the connection, with the bytes already
//! read, is handed to actix-http for the rest of its life, so every other behaviour (ranges,
//! 304s, errors, admin API) is the normal handler's.
//!
//! Headers match what the actix path sends (`ETag` and `Last-Modified` of actix-files,
//! `Accept-Ranges`, `X-Cache-Status`), and requests are counted, logged and touched in the
//! cache index the same way.

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::error::ApiError;
use crate::inflight::Phase;
use crate::metrics::Outcome;
use crate::open_files::OpenFile;
use crate::path::RepoPath;
use crate::server::{AppState, ACCESS_LOG_TARGET};
use crate::tail::Tail;

/// An idle keep-alive connection is closed after this long (actix's default too).
const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// A request head larger than this goes to actix (which answers 431 when it is too large).
const MAX_HEAD: usize = 16 * 1024;
/// Headers that make a request something other than a plain hit.
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

/// A connection whose first bytes were already read: they are read again first.
pub struct Prefixed {
    prefix: Bytes,
    inner: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A plain request for a package of a mirrored upstream.
struct Plain {
    path: RepoPath,
    key: String,
    head_only: bool,
    close: bool,
    /// `METHOD PATH` for the access log.
    line: String,
}

/// What to do with a connection's next request.
enum Next {
    /// Cached: sent from this open file.
    Hit(Box<Plain>, Arc<OpenFile>, usize),
    /// Not cached (a `GET`): joined or started here, tailed with `sendfile`.
    Miss(Box<Plain>, usize),
    HandOff,
    Closed,
}

/// How a request this module took on ended.
enum Served {
    /// Answered: status, body bytes, result; the connection may go on.
    Done(u16, u64, Outcome),
    /// Nothing was written: actix answers it (with the bytes still in the buffer).
    HandOff,
}

/// Serve `stream`: plain hits and misses here, anything else (from the first other request
/// on) by `handoff`.
pub async fn serve_connection<F, Fut>(mut stream: TcpStream, state: &AppState, handoff: F)
where
    F: FnOnce(Prefixed, Option<SocketAddr>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok();
    let mut buf = BytesMut::with_capacity(4096);
    // Serve here until a request is for actix (the loop ends), or the connection ends.
    loop {
        let started = Instant::now();
        let (plain, result) = match next_request(&mut stream, &mut buf, state).await {
            Next::Closed => return,
            Next::HandOff => break,
            Next::Hit(plain, open, head_len) => {
                let r = send_hit(&mut stream, &plain, &open).await.map(|sent| {
                    state.metrics.bytes_from_cache.inc_by(sent);
                    state.index.touch(&plain.key);
                    Served::Done(200, sent, Outcome::Hit)
                });
                buf.advance(head_len);
                (plain, r)
            }
            Next::Miss(plain, head_len) => {
                let r = serve_miss(&mut stream, state, &plain).await;
                if !matches!(r, Ok(Served::HandOff)) {
                    buf.advance(head_len);
                }
                (plain, r)
            }
        };
        match result {
            Ok(Served::Done(status, sent, outcome)) => {
                state.metrics.request(outcome);
                log::info!(
                    target: ACCESS_LOG_TARGET,
                    "{} \"{} HTTP/1.1\" {status} {sent} {:.6}ms {}",
                    peer.map(|p| p.ip().to_string()).unwrap_or_else(|| "-".into()),
                    plain.line,
                    started.elapsed().as_secs_f64() * 1000.0,
                    outcome.as_str()
                );
            }
            Ok(Served::HandOff) => break,
            Err(e) => {
                // A body cut short: closing the connection is how the client learns it.
                log::debug!("{}: connection closed: {e}", plain.line);
                return;
            }
        }
        if plain.close {
            let _ = stream.shutdown().await;
            return;
        }
    }
    let io = Prefixed {
        prefix: buf.freeze(),
        inner: stream,
    };
    handoff(io, peer).await;
}

/// Read the next request head and decide: a hit or miss served here, or hand off to actix.
async fn next_request(stream: &mut TcpStream, buf: &mut BytesMut, state: &AppState) -> Next {
    loop {
        if let Some(end) = head_end(buf) {
            let Some(plain) = plain_request(&buf[..end], state) else {
                return Next::HandOff;
            };
            let file = state.store.final_path(&plain.path);
            if let Some(open) = state.open_files.get(&plain.key, &file) {
                return Next::Hit(Box::new(plain), open, end);
            }
            // Not cached (not a directory either, which is actix's 404): a miss.
            if !plain.head_only && std::fs::symlink_metadata(&file).is_err() {
                return Next::Miss(Box::new(plain), end);
            }
            return Next::HandOff;
        }
        if buf.len() > MAX_HEAD {
            return Next::HandOff;
        }
        let read = if buf.is_empty() {
            match tokio::time::timeout(KEEP_ALIVE, stream.read_buf(buf)).await {
                Ok(r) => r,
                // Idle keep-alive connection: close it.
                Err(_) => return Next::Closed,
            }
        } else {
            // A head in progress: actix applies its own request timeout from here.
            match tokio::time::timeout(Duration::from_millis(200), stream.read_buf(buf)).await {
                Ok(r) => r,
                Err(_) => return Next::HandOff,
            }
        };
        match read {
            Ok(0) if buf.is_empty() => return Next::Closed,
            Ok(0) => return Next::HandOff,
            Ok(_) => {}
            Err(_) => return Next::Closed,
        }
    }
}

/// Offset just past the `\r\n\r\n` ending the request head, if it is complete.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// The request head, if it is a plain `GET`/`HEAD` of a package of a mirrored upstream.
fn plain_request(head: &[u8], state: &AppState) -> Option<Plain> {
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(head), Ok(httparse::Status::Complete(_))) {
        return None;
    }
    let method = req.method?;
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return None,
    };
    if req.version != Some(1) {
        return None;
    }
    let target = req.path?;
    if !target.starts_with('/') || target.contains('?') || target.starts_with("/_pkgstash") {
        return None;
    }
    let mut close = false;
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        if NOT_PLAIN.contains(&name.as_str()) {
            return None;
        }
        if name == "content-length" && h.value != b"0" {
            return None;
        }
        if name == "connection" && h.value.eq_ignore_ascii_case(b"close") {
            close = true;
        }
    }
    let path = RepoPath::parse(target).ok()?;
    if !crate::mirror::is_mirrored_package(state, &path) {
        return None;
    }
    Some(Plain {
        key: path.key(),
        path,
        head_only,
        close,
        line: format!("{method} {target}"),
    })
}

/// The `ETag` actix-files gives this file (its format is private there: a test below compares
/// the two, so a change in actix-files cannot go unnoticed).
fn etag(meta: &std::fs::Metadata) -> String {
    let since = meta
        .modified()
        .unwrap_or(UNIX_EPOCH)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "\"{:x}:{:x}:{:x}:{:x}\"",
        meta.ino(),
        meta.len(),
        since.as_secs(),
        since.subsec_nanos()
    )
}

/// A `200 OK` head: what actix-files sends for a cached file (`etag` given), or what the
/// mirror handler sends for a download in flight.
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

/// Write `head` with `MSG_MORE` when a body follows: head and body leave in one segment
/// (one wake-up of the client instead of two).
async fn send_head(stream: &TcpStream, head: &[u8], more: bool) -> io::Result<()> {
    let flags = if more {
        rustix::net::SendFlags::MORE | rustix::net::SendFlags::NOSIGNAL
    } else {
        rustix::net::SendFlags::NOSIGNAL
    };
    let mut rest = head;
    while !rest.is_empty() {
        let n = stream
            .async_io(Interest::WRITABLE, || {
                rustix::net::send(stream, rest, flags).map_err(io::Error::from)
            })
            .await?;
        rest = &rest[n..];
    }
    Ok(())
}

/// `sendfile` bytes `[offset, offset + len)` of `file`; answers how many went (at least one).
async fn send_file_range(
    stream: &TcpStream,
    file: &std::fs::File,
    offset: u64,
    len: u64,
) -> io::Result<u64> {
    let mut off = offset;
    let want = len.min(1 << 30) as usize;
    let sent = stream
        .async_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(stream, file, Some(&mut off), want).map_err(io::Error::from)
        })
        .await?;
    if sent == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "file shorter than expected while being sent",
        ));
    }
    Ok(sent as u64)
}

/// Write the head, then the file with `sendfile`. Returns the body bytes sent.
async fn send_hit(stream: &mut TcpStream, plain: &Plain, open: &OpenFile) -> io::Result<u64> {
    let meta = &open.meta;
    let len = meta.len();
    let head = ok_head(
        len,
        meta.modified().ok(),
        Some(&etag(meta)),
        Outcome::Hit,
        plain.close,
    );
    send_head(stream, head.as_bytes(), !plain.head_only && len > 0).await?;
    if plain.head_only {
        return Ok(0);
    }
    let mut offset = 0u64;
    while offset < len {
        offset += send_file_range(stream, &open.file, offset, len - offset).await?;
    }
    Ok(len)
}

/// A `GET` of a package that is not cached: join its download or start it, like the mirror
/// handler, and once upstream has answered with a length, tail the growing file with
/// `sendfile` (no copy through user space, however many clients share the download).
/// Anything else (a body of unknown length, a download that just finished or was not found)
/// goes to actix, which joins or answers it the same way.
async fn serve_miss(stream: &mut TcpStream, state: &AppState, plain: &Plain) -> io::Result<Served> {
    let path = &plain.path;
    if state.store.recently_not_found(path, state.cfg.db_max_age) {
        return Ok(Served::HandOff);
    }
    let final_path = state.store.final_path(path);
    let Some((download, outcome)) =
        crate::mirror::join_or_start(state, path, None, || !final_path.is_file())
    else {
        return Ok(Served::HandOff);
    };
    let (progress, rx) = match crate::mirror::wait_answered(state, path, &download).await {
        Ok(answer) => answer,
        Err(e) => return send_error(stream, e, plain.close).await,
    };
    let meta = match progress.phase {
        Phase::Streaming(meta) => meta,
        Phase::Failed(reason) => {
            return send_error(stream, ApiError::from(&reason), plain.close).await
        }
        _ => return Ok(Served::HandOff),
    };
    let (Some(total), Some(file)) = (meta.total, download.file()) else {
        return Ok(Served::HandOff);
    };
    // Not corked (MSG_MORE): the first body bytes may still be on their way from upstream,
    // and the head is what tells a waiting client (and pacman's timer) that they come.
    let head = ok_head(total, meta.last_modified, None, outcome, plain.close);
    send_head(stream, head.as_bytes(), false).await?;
    let stall = crate::mirror::tail_stall_limit(state);
    let mut tail = Tail::new(file, rx, 0, Some(total), stall, Some(download.attach()));
    let mut sent = 0u64;
    while let Some((offset, len)) = tail.next_range().await? {
        let n = send_file_range(stream, tail.file(), offset, len).await?;
        tail.consumed(n);
        state.metrics.bytes_from_upstream.inc_by(n);
        sent += n;
    }
    Ok(Served::Done(200, sent, outcome))
}

/// Answer with the mirror handler's error response for `e` (nothing was sent yet).
async fn send_error(stream: &mut TcpStream, e: ApiError, close: bool) -> io::Result<Served> {
    use actix_web::ResponseError as _;
    let outcome = match e {
        ApiError::NotFound => Outcome::NotFound,
        _ => Outcome::Error,
    };
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
    send_head(stream, head.as_bytes(), true).await?;
    stream.write_all(&body).await?;
    Ok(Served::Done(status.as_u16(), body.len() as u64, outcome))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_end_is_found() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nrest"), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[actix_web::test]
    async fn etag_and_last_modified_match_actix_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.pkg.tar.zst");
        std::fs::write(&p, vec![7u8; 1000]).expect("write");
        let named = actix_files::NamedFile::open(&p).expect("open");
        let req = actix_web::test::TestRequest::get().to_http_request();
        let resp = named
            .use_etag(true)
            .use_last_modified(true)
            .into_response(&req);
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        let meta = std::fs::metadata(&p).expect("meta");
        assert_eq!(header("etag"), Some(etag(&meta)));
        assert_eq!(
            header("last-modified"),
            Some(httpdate::fmt_http_date(meta.modified().expect("mtime")))
        );
    }

    #[tokio::test]
    async fn prefixed_reads_the_prefix_first() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.expect("connect");
            c.write_all(b" world").await.expect("write");
        });
        let (inner, _) = listener.accept().await.expect("accept");
        client.await.expect("client");
        let mut io = Prefixed {
            prefix: Bytes::from_static(b"hello"),
            inner,
        };
        let mut out = Vec::new();
        io.read_to_end(&mut out).await.expect("read");
        assert_eq!(out, b"hello world");
    }
}
