//! Cache hits served with `sendfile(2)`, before actix sees the connection.
//!
//! Every accepted connection starts here. While its requests are plain hits — `GET`/`HEAD`
//! of a cached package of an upstream, HTTP/1.1, no `Range`, no conditional headers — they
//! are answered here: the response head is written, then the body goes from the page cache
//! to the socket in the kernel (no copy through user space, unlike actix-files, which reads
//! the file and then copies it again into actix's write buffer). At the first request that is
//! anything else, the connection — with the bytes already read — is handed to actix-http for
//! the rest of its life, so every other behaviour (misses, ranges, 304s, errors, admin API)
//! is the normal handler's.
//!
//! Headers match what the actix-files path sends (`ETag`, `Last-Modified`, `Accept-Ranges`,
//! `X-Cache-Status`), and hits are counted, logged and touched in the cache index the same way.

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::metrics::Outcome;
use crate::path::RepoPath;
use crate::server::{AppState, ACCESS_LOG_TARGET};

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

/// A plain hit, ready to send.
struct Hit {
    open: std::sync::Arc<crate::open_files::OpenFile>,
    key: String,
    head_only: bool,
    close: bool,
    /// `METHOD PATH` for the access log.
    line: String,
}

/// What to do with a connection's next request.
enum Next {
    Hit(Box<Hit>, usize),
    HandOff,
    Closed,
}

/// Serve `stream`: hits here, everything else (from the first non-hit on) by `handoff`.
pub async fn serve_connection<F, Fut>(mut stream: TcpStream, state: &AppState, handoff: F)
where
    F: FnOnce(Prefixed, Option<SocketAddr>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok();
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        match next_request(&mut stream, &mut buf, state).await {
            Next::Closed => return,
            Next::HandOff => {
                let io = Prefixed {
                    prefix: buf.freeze(),
                    inner: stream,
                };
                handoff(io, peer).await;
                return;
            }
            Next::Hit(hit, head_len) => {
                buf.advance(head_len);
                let started = Instant::now();
                let close = hit.close;
                match send_hit(&mut stream, &hit).await {
                    Ok(sent) => {
                        state.metrics.request(Outcome::Hit);
                        state.metrics.bytes_from_cache.inc_by(sent);
                        state.index.touch(&hit.key);
                        log::info!(
                            target: ACCESS_LOG_TARGET,
                            "{} \"{} HTTP/1.1\" 200 {} {:.6}ms hit",
                            peer.map(|p| p.ip().to_string()).unwrap_or_else(|| "-".into()),
                            hit.line,
                            sent,
                            started.elapsed().as_secs_f64() * 1000.0
                        );
                    }
                    Err(e) => {
                        log::debug!("hit {}: client went away: {e}", hit.line);
                        return;
                    }
                }
                if close {
                    let _ = stream.shutdown().await;
                    return;
                }
            }
        }
    }
}

/// Read the next request head and decide: a hit served here, or hand off to actix.
async fn next_request(stream: &mut TcpStream, buf: &mut BytesMut, state: &AppState) -> Next {
    loop {
        if let Some(end) = head_end(buf) {
            return match plain_hit(&buf[..end], state) {
                Some(hit) => Next::Hit(Box::new(hit), end),
                None => Next::HandOff,
            };
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

/// The request head, if it is a plain hit on a cached package.
fn plain_hit(head: &[u8], state: &AppState) -> Option<Hit> {
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
    let key = path.key();
    let open = state.open_files.get(&key, &state.store.final_path(&path))?;
    Some(Hit {
        open,
        key,
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

/// The response head actix-files would send for this file.
fn response_head(hit: &Hit) -> String {
    let meta = &hit.open.meta;
    let len = meta.len();
    let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
    let etag = etag(meta);
    format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {len}\r\ncontent-type: application/octet-stream\r\n\
         last-modified: {}\r\netag: {etag}\r\naccept-ranges: bytes\r\nx-cache-status: hit\r\n\
         date: {}\r\n{}\r\n",
        httpdate::fmt_http_date(mtime),
        httpdate::fmt_http_date(SystemTime::now()),
        if hit.close {
            "connection: close\r\n"
        } else {
            ""
        }
    )
}

/// Write the head, then the file with `sendfile`. Returns the body bytes sent.
async fn send_hit(stream: &mut TcpStream, hit: &Hit) -> io::Result<u64> {
    let head = response_head(hit);
    if hit.head_only {
        stream.write_all(head.as_bytes()).await?;
        return Ok(0);
    }
    // MSG_MORE: the head waits for the body's first bytes, so both leave in one segment
    // (one wake-up of the client instead of two).
    let mut rest = head.as_bytes();
    while !rest.is_empty() {
        let sock: &TcpStream = stream;
        let n = sock
            .async_io(Interest::WRITABLE, || {
                rustix::net::send(
                    sock,
                    rest,
                    rustix::net::SendFlags::MORE | rustix::net::SendFlags::NOSIGNAL,
                )
                .map_err(io::Error::from)
            })
            .await?;
        rest = &rest[n..];
    }
    let len = hit.open.meta.len();
    let mut offset = 0u64;
    while offset < len {
        let want = (len - offset).min(1 << 30) as usize;
        let sock: &TcpStream = stream;
        let sent = sock
            .async_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(sock, &hit.open.file, Some(&mut offset), want)
                    .map_err(io::Error::from)
            })
            .await?;
        if sent == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "cached file shrank while being sent",
            ));
        }
    }
    Ok(len)
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
