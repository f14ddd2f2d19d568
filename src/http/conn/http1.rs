//! HTTP/1.x request heads framed exactly as actix-http frames them.
//!
//! pkgstash's connection front end ([`crate::http::conn`]) reads every request head itself and then
//! answers it with `sendfile` ([`crate::http::conn::fastpath`]) or hands exactly that request's bytes to
//! actix-http. Both must agree, byte for byte, on where a request starts and ends, or a
//! pipelined request could be swallowed or smuggled. So [`frame`] applies actix-http's own
//! rules (actix-http 3.18.11 and later, `h1/decoder.rs`):
//! - the head is parsed by the same `httparse` with the same (default) parser settings and the
//!   same limits: at most [`MAX_HEADERS`] headers, at most [`MAX_HEAD`] bytes buffered for an
//!   incomplete head; bare-LF line ends and leading empty lines are accepted as httparse does;
//! - the head is refused ([`Frame::Invalid`]: actix answers 400) on a method or target the
//!   `http` crate rejects, two `Content-Length`s, a `Content-Length` that is not digits (a `+`
//!   sign included), two `Transfer-Encoding`s or one that is not exactly `chunked` (or both
//!   `Transfer-Encoding` and `Content-Length`), `Transfer-Encoding` in HTTP/1.0, an HTTP/1.1
//!   request without exactly one `Host` (RFC 9112 §3.2), an HTTP/1.0 `POST` without a length;
//! - the body is `chunked`, else read to the end of the connection for `Upgrade: websocket` and
//!   `CONNECT`, else `Content-Length` bytes (0 = none);
//! - `Connection` is a token list (RFC 9110 §7.6.1): `close` anywhere wins, then `upgrade`,
//!   then `keep-alive`; without one HTTP/1.1 keeps the connection, HTTP/1.0 closes it.
//!
//! Where the body ends is [`crate::http::conn::http1_body`]'s job.

use actix_web::http::{Method, Uri};

/// Largest incomplete head buffered before the request is refused (actix-http's
/// `MAX_BUFFER_SIZE`: it answers 431).
pub const MAX_HEAD: usize = 131_072;
/// Most headers in one request (actix-http's `MAX_HEADERS`; more: 431).
pub const MAX_HEADERS: usize = 96;

/// How a request's body is delimited (RFC 9112 §6.3, as actix-http applies it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body: the request ends with its head.
    None,
    /// `Content-Length` bytes (more than 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the client closes (`Upgrade: websocket`, `CONNECT`).
    UntilClose,
}

/// The connection's fate after this request (actix-http's `ConnectionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionType {
    KeepAlive,
    Close,
    Upgrade,
}

/// A complete, valid request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Bytes of the head, the final empty line included.
    pub len: usize,
    pub method: String,
    /// The request target as sent (origin-form `/path?query`, absolute-form, `*`).
    pub target: String,
    /// Minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub minor_version: u8,
    pub body: BodyKind,
    pub connection: ConnectionType,
    /// Names of the headers, lowercased, in order (repeated names repeated).
    pub names: Vec<String>,
    /// Every line of the head ends with CRLF (no bare LF anywhere).
    pub crlf: bool,
}

impl Head {
    /// Is there a header `name` (lowercase)?
    pub fn has(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// Does the connection stay open after this request's response?
    pub fn keep_alive(&self) -> bool {
        self.connection == ConnectionType::KeepAlive
    }

    /// `METHOD TARGET HTTP/1.x`, as access logs print it.
    pub fn request_line(&self) -> String {
        format!(
            "{} {} HTTP/1.{}",
            self.method, self.target, self.minor_version
        )
    }
}

/// What the bytes at the start of a buffer are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// An incomplete head: read more.
    Partial,
    /// An incomplete head of [`MAX_HEAD`] bytes or more (actix answers 431).
    TooLarge,
    /// Not a request actix accepts (it answers 400 or 431 and closes the connection).
    Invalid,
    Head(Head),
}

/// Is `b` a byte `HeaderValue::to_str` accepts (visible ASCII or tab)?
fn visible(b: u8) -> bool {
    (32..127).contains(&b) || b == b'\t'
}

/// The value as text, when actix-http would see it as text at all.
fn text(value: &[u8]) -> Option<&str> {
    if value.iter().all(|&b| visible(b)) {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

/// What the headers of a request say, as actix-http's `set_headers` reads them.
#[derive(Default)]
struct HeaderScan {
    http11: bool,
    content_length: Option<u64>,
    chunked: bool,
    seen_te: bool,
    any_te: bool,
    hosts: usize,
    connection: Option<ConnectionType>,
    websocket: bool,
}

/// A header actix refuses.
struct Refused;

impl HeaderScan {
    fn header(&mut self, name: &str, value: &[u8]) -> Result<(), Refused> {
        match name {
            "content-length" => {
                let v = text(value).map(str::trim).ok_or(Refused)?;
                if self.content_length.is_some() || v.starts_with('+') {
                    return Err(Refused);
                }
                self.content_length = Some(v.parse::<u64>().map_err(|_| Refused)?);
            }
            "transfer-encoding" => {
                self.any_te = true;
                if self.seen_te {
                    return Err(Refused);
                }
                if self.http11 {
                    self.seen_te = true;
                    match text(value).map(str::trim) {
                        Some(v) if v.eq_ignore_ascii_case("chunked") => self.chunked = true,
                        Some(v) if v.eq_ignore_ascii_case("identity") => {}
                        _ => return Err(Refused),
                    }
                }
            }
            "host" => {
                self.hosts += 1;
                if self.hosts > 1 {
                    return Err(Refused);
                }
            }
            "connection" => {
                for token in text(value).unwrap_or("").split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        self.connection = Some(ConnectionType::Close);
                        break;
                    } else if token.eq_ignore_ascii_case("upgrade")
                        && self.connection != Some(ConnectionType::Close)
                    {
                        self.connection = Some(ConnectionType::Upgrade);
                    } else if token.eq_ignore_ascii_case("keep-alive") && self.connection.is_none()
                    {
                        self.connection = Some(ConnectionType::KeepAlive);
                    }
                }
            }
            "upgrade" => {
                self.websocket |=
                    text(value).is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
            }
            _ => {}
        }
        Ok(())
    }

    /// The body and the connection's fate, once every header is in; `Err` when actix refuses
    /// the combination.
    fn finish(self, method: &Method) -> Result<(BodyKind, ConnectionType), Refused> {
        let http11 = self.http11;
        if http11 && self.hosts == 0 {
            return Err(Refused);
        }
        if self.any_te && (!http11 || !self.chunked || self.content_length.is_some()) {
            return Err(Refused);
        }
        if !http11 && method == Method::POST && self.content_length.is_none() && !self.websocket {
            return Err(Refused);
        }
        let body = if self.chunked {
            BodyKind::Chunked
        } else if self.websocket {
            BodyKind::UntilClose
        } else {
            match self.content_length {
                Some(n) if n > 0 => BodyKind::Length(n),
                _ if method == Method::CONNECT => BodyKind::UntilClose,
                _ => BodyKind::None,
            }
        };
        let connection = match self.connection {
            Some(c) => c,
            None if http11 => ConnectionType::KeepAlive,
            None => ConnectionType::Close,
        };
        Ok((body, connection))
    }
}

/// Frame the request head at the start of `buf`.
pub fn frame(buf: &[u8]) -> Frame {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Frame::TooLarge,
        Ok(httparse::Status::Partial) => return Frame::Partial,
        Err(_) => return Frame::Invalid,
    };
    let (Some(method), Some(target), Some(minor_version)) = (req.method, req.path, req.version)
    else {
        return Frame::Invalid;
    };
    let Ok(parsed_method) = Method::from_bytes(method.as_bytes()) else {
        return Frame::Invalid;
    };
    if Uri::try_from(target).is_err() {
        return Frame::Invalid;
    }
    let mut scan = HeaderScan {
        http11: minor_version == 1,
        ..HeaderScan::default()
    };
    let mut names = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        if scan.header(&name, h.value).is_err() {
            return Frame::Invalid;
        }
        names.push(name);
    }
    let Ok((body, connection)) = scan.finish(&parsed_method) else {
        return Frame::Invalid;
    };
    Frame::Head(Head {
        len,
        method: method.to_string(),
        target: target.to_string(),
        minor_version,
        body,
        connection,
        names,
        crlf: crlf_only(&buf[..len]),
    })
}

/// Does every LF in `head` follow a CR?
fn crlf_only(head: &[u8]) -> bool {
    head.iter()
        .enumerate()
        .all(|(i, &b)| b != b'\n' || (i > 0 && head[i - 1] == b'\r'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(bytes: &[u8]) -> Head {
        match frame(bytes) {
            Frame::Head(h) => h,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
        }
    }

    #[test]
    fn plain_head_and_what_follows() {
        let h = head(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\n");
        assert_eq!(h.len, 28);
        assert_eq!((h.method.as_str(), h.target.as_str()), ("GET", "/a"));
        assert_eq!(h.body, BodyKind::None);
        assert!(h.keep_alive() && h.crlf);
        assert_eq!(h.request_line(), "GET /a HTTP/1.1");
        assert_eq!(frame(b"GET /a HTTP/1.1\r\nHost: x\r\n"), Frame::Partial);
    }

    #[test]
    fn bare_lf_heads_end_where_httparse_ends_them() {
        let both = b"GET /a HTTP/1.1\nHost: x\n\nGET /m HTTP/1.1\r\nHost: x\r\n\r\n";
        let h = head(both);
        assert_eq!(h.len, 25, "the first head ends at its empty LF line");
        assert!(!h.crlf);
        assert!(!head(b"GET /a HTTP/1.1\r\nHost: x\n\r\n").crlf);
        assert!(!head(b"GET /a HTTP/1.1\nHost: x\r\n\r\n").crlf);
        // Leading empty lines are skipped (RFC 9112 §2.2), and counted in the head.
        assert_eq!(head(b"\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n").len, 30);
    }

    #[test]
    fn bodies_are_delimited_like_actix() {
        let b = |s: &str| head(s.as_bytes()).body;
        assert_eq!(
            b("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"),
            BodyKind::Length(5)
        );
        assert_eq!(
            b("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"),
            BodyKind::None
        );
        assert_eq!(
            b("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked \r\n\r\n"),
            BodyKind::Chunked
        );
        assert_eq!(
            b("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n"),
            BodyKind::UntilClose
        );
        assert_eq!(
            b("CONNECT x:1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            BodyKind::UntilClose
        );
        assert_eq!(
            b("POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\n"),
            BodyKind::Length(2)
        );
    }

    #[test]
    fn what_actix_refuses_is_invalid() {
        for bad in [
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.0\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
            "G\0T / HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert_eq!(frame(bad.as_bytes()), Frame::Invalid, "{bad:?}");
        }
        // HTTP/1.0 needs no Host.
        assert!(matches!(frame(b"GET / HTTP/1.0\r\n\r\n"), Frame::Head(_)));
    }

    #[test]
    fn too_many_headers_or_too_long_heads() {
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "Host: a\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(frame(many.as_bytes()), Frame::Invalid);
        let long = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD));
        assert_eq!(frame(long.as_bytes()), Frame::TooLarge);
    }

    #[test]
    fn connection_tokens() {
        let c =
            |v: &str| head(format!("GET / HTTP/1.1\r\nHost: x\r\n{v}\r\n").as_bytes()).connection;
        use ConnectionType::*;
        assert_eq!(c("Connection: keep-alive, close\r\n"), Close);
        assert_eq!(c("Connection: close, keep-alive\r\n"), Close);
        assert_eq!(c("Connection: Keep-Alive\r\nConnection: CLOSE\r\n"), Close);
        assert_eq!(c("Connection: te, keep-alive\r\n"), KeepAlive);
        assert_eq!(c("Connection: upgrade\r\n"), Upgrade);
        assert_eq!(c(""), KeepAlive);
        let v10 = |v: &str| head(format!("GET / HTTP/1.0\r\n{v}\r\n").as_bytes()).connection;
        assert_eq!(v10(""), Close);
        assert_eq!(v10("Connection: keep-alive\r\n"), KeepAlive);
    }
}
