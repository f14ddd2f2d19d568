//! HTTP/1.x request heads framed exactly as the linked actix-http frames them.
//!
//! pkgstash's connection front end ([`crate::http::conn`]) reads every request head itself and then
//! answers it with `sendfile` ([`crate::http::conn::fastpath`]) or hands exactly that request's bytes to
//! actix-http. Both must agree, byte for byte, on where a request starts and ends, or a
//! pipelined request could be swallowed or smuggled. So [`frame`] applies actix-http's own
//! rules, those of the version `Cargo.lock` links.
//!
//! **Reference: actix-http [`ACTIX_HTTP`] (3.11.2)**, the newest that builds with rustc 1.85;
//! compared: `src/h1/decoder.rs` (`MessageType::set_headers`, `Request::decode`),
//! `src/h1/chunked.rs` (`ChunkedState`, mirrored in [`crate::http::conn::http1_body`]),
//! `src/h1/codec.rs` (`Codec::decode`: keep-alive), `src/requests/head.rs`
//! (`RequestHead::connection_type`). A unit test fails when `Cargo.lock` links another
//! version: compare that version's files again then. Its rules:
//! - the head is parsed by the same `httparse` with the same (default) parser settings and the
//!   same limits: at most [`MAX_HEADERS`] headers, at most [`MAX_HEAD`] bytes buffered for an
//!   incomplete head; bare-LF line ends and leading empty lines are accepted as httparse does;
//! - the head is refused ([`Frame::Invalid`]: actix answers 400 and closes) on a method or
//!   target the `http` crate rejects, two `Content-Length`s, a `Content-Length` that is not
//!   digits (a `+` sign included), and in HTTP/1.1 two `Transfer-Encoding`s or one that is
//!   neither `chunked` nor `identity`; and on an HTTP/1.0 `POST` without `Content-Length`;
//! - the body is `chunked` (HTTP/1.1 `Transfer-Encoding: chunked`, a `Content-Length` beside it
//!   ignored), else read to the end of the connection for `Upgrade: websocket` and `CONNECT`,
//!   else `Content-Length` bytes (0 = none); in HTTP/1.0, `Transfer-Encoding` is ignored;
//! - the connection's fate is the last `Connection` field taken whole (`keep-alive`, `close`,
//!   `upgrade`; any other value, a token list included, means the version's default:
//!   HTTP/1.1 keeps the connection, HTTP/1.0 closes it).
//!
//! Where actix-http 3.11.2 departs from RFC 9112 (later versions refuse these heads), the
//! request is framed as 3.11.2 frames it, never answered by the fast path, and answered by
//! actix through [`crate::http::request_rules`], on both paths alike:
//! - faulty framing ([`faulty_framing`]: `Transfer-Encoding` in HTTP/1.0, or with
//!   `Content-Length`, or not `chunked`) — request-smuggling material (RFC 9112 §6.1, §6.3,
//!   §11.2): `400` and the connection closes;
//! - an HTTP/1.1 request without exactly one `Host` (RFC 9112 §3.2): `400`;
//! - `close` in a `Connection` token list ([`lists_close`], RFC 9110 §7.6.1): the response
//!   closes the connection.
//!
//! (3.11.2 also reads `Expect: 100-…` in HTTP/1.0 requests: the fast path takes no request with
//! `Expect`, and the interim response is followed as any.) Where the body ends is
//! [`crate::http::conn::http1_body`]'s job.

use actix_web::http::{Method, Uri};

/// The actix-http version whose framing [`frame`] reproduces (the one `Cargo.lock` links).
// Named by the docs; a unit test checks it against Cargo.lock (no code reads it).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const ACTIX_HTTP: &str = "3.11.2";
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

/// The connection's fate after this request, as actix-http decides it (its `ConnectionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionType {
    KeepAlive,
    Close,
    Upgrade,
}

/// A complete head actix-http accepts.
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
    /// The connection's fate as actix-http decides it.
    pub connection: ConnectionType,
    /// A `Connection` field lists `close` ([`lists_close`]).
    pub close_requested: bool,
    /// The framing is faulty ([`faulty_framing`]): actix answers 400 and closes.
    pub faulty_framing: bool,
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

    /// How many `name` (lowercase) headers are there?
    pub fn count(&self, name: &str) -> usize {
        self.names.iter().filter(|n| *n == name).count()
    }

    /// Does the connection stay open after this request's response? Where actix-http keeps it,
    /// unless [`crate::http::request_rules`] makes the response close it.
    pub fn keep_alive(&self) -> bool {
        self.connection == ConnectionType::KeepAlive
            && !self.close_requested
            && !self.faulty_framing
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

/// RFC 9110 §7.6.1: does this `Connection` field value list the `close` option (anywhere,
/// any case)?
pub fn lists_close(value: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
}

/// Is the framing of a request faulty (RFC 9112) though actix-http 3.11.2 accepts it, given its
/// `Transfer-Encoding` field values and whether it has a `Content-Length`?
/// - HTTP/1.0 with `Transfer-Encoding` (3.11.2 ignores it): §6.1, "MUST treat the message as
///   if the framing is faulty ... and close the connection";
/// - `Transfer-Encoding` and `Content-Length` (3.11.2 reads the chunked body): §6.1, "the server
///   MUST close the connection after responding";
/// - a `Transfer-Encoding` that is not `chunked` (3.11.2 ignores `identity`): §6.3, "MUST
///   respond with the 400 (Bad Request) status code and then close the connection".
///
/// A proxy in front of pkgstash that framed such a request otherwise could smuggle a request
/// in its body (§11.2); so it is answered 400 and the connection closes.
pub fn faulty_framing(http11: bool, transfer_encodings: &[&[u8]], content_length: bool) -> bool {
    match transfer_encodings {
        [] => false,
        [te] if http11 => content_length || !te.trim_ascii().eq_ignore_ascii_case(b"chunked"),
        _ => true,
    }
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

/// What the headers of a request say, as actix-http 3.11.2's `set_headers` reads them.
#[derive(Default)]
struct HeaderScan<'a> {
    http11: bool,
    content_length: Option<u64>,
    chunked: bool,
    /// Every `Transfer-Encoding` value (HTTP/1.0's too, which actix ignores).
    transfer_encodings: Vec<&'a [u8]>,
    connection: Option<ConnectionType>,
    close_requested: bool,
    websocket: bool,
}

/// A header actix refuses.
struct Refused;

impl<'a> HeaderScan<'a> {
    fn header(&mut self, name: &str, value: &'a [u8]) -> Result<(), Refused> {
        match name {
            "content-length" => {
                let v = text(value).map(str::trim).ok_or(Refused)?;
                if self.content_length.is_some() || v.starts_with('+') {
                    return Err(Refused);
                }
                self.content_length = Some(v.parse::<u64>().map_err(|_| Refused)?);
            }
            "transfer-encoding" => {
                self.transfer_encodings.push(value);
                // Read in HTTP/1.1 only; one at most.
                if self.http11 {
                    if self.transfer_encodings.len() > 1 {
                        return Err(Refused);
                    }
                    match text(value).map(str::trim) {
                        Some(v) if v.eq_ignore_ascii_case("chunked") => self.chunked = true,
                        Some(v) if v.eq_ignore_ascii_case("identity") => {}
                        _ => return Err(Refused),
                    }
                }
            }
            "connection" => {
                self.close_requested |= lists_close(value);
                // The value taken whole; the last field wins, even one that says nothing.
                self.connection = match text(value).map(str::trim) {
                    Some(v) if v.eq_ignore_ascii_case("keep-alive") => {
                        Some(ConnectionType::KeepAlive)
                    }
                    Some(v) if v.eq_ignore_ascii_case("close") => Some(ConnectionType::Close),
                    Some(v) if v.eq_ignore_ascii_case("upgrade") => Some(ConnectionType::Upgrade),
                    _ => None,
                };
            }
            "upgrade" => {
                self.websocket |=
                    text(value).is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
            }
            _ => {}
        }
        Ok(())
    }

    /// The body, the connection's fate and whether the framing is faulty, once every header
    /// is in; `Err` when actix refuses the request.
    fn finish(self, method: &Method) -> Result<(BodyKind, ConnectionType, bool), Refused> {
        let http11 = self.http11;
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
        let faulty = faulty_framing(
            http11,
            &self.transfer_encodings,
            self.content_length.is_some(),
        );
        Ok((body, connection, faulty))
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
    let close_requested = scan.close_requested;
    let Ok((body, connection, faulty_framing)) = scan.finish(&parsed_method) else {
        return Frame::Invalid;
    };
    Frame::Head(Head {
        len,
        method: method.to_string(),
        target: target.to_string(),
        minor_version,
        body,
        connection,
        close_requested,
        faulty_framing,
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
        assert!(
            !head(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
                .faulty_framing
        );
    }

    #[test]
    fn what_actix_refuses_is_invalid() {
        for bad in [
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n",
            "POST / HTTP/1.0\r\n\r\n",
            // HTTP/1.0 ignores Transfer-Encoding: this POST has no length.
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
            "G\0T / HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert_eq!(frame(bad.as_bytes()), Frame::Invalid, "{bad:?}");
        }
        let mut te =
            b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\xff\r\n\r\n".to_vec();
        assert_eq!(frame(&te), Frame::Invalid, "not text");
        te[13] = b'0';
        assert!(matches!(frame(&te), Frame::Head(_)), "HTTP/1.0: ignored");
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

    // The differences between actix-http 3.11.2 (the reference) and the later versions this
    // framing first followed (3.18.11 to 3.20), one test each.

    /// 3.20 refuses an HTTP/1.1 head without exactly one `Host`; 3.11.2 accepts it (the 400 is
    /// `request_rules`'s, on both paths, and the connection goes on).
    #[test]
    fn host_count_does_not_frame() {
        for (bytes, hosts) in [
            (&b"GET / HTTP/1.1\r\n\r\nGET /b"[..], 0),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 2),
            (b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 2),
            (b"GET / HTTP/1.0\r\n\r\n", 0),
            (b"GET / HTTP/1.0\r\nHost: x\r\nHost: x\r\n\r\n", 2),
        ] {
            let h = head(bytes);
            assert_eq!(h.count("host"), hosts, "{bytes:?}");
            assert_eq!(h.body, BodyKind::None);
        }
        assert_eq!(head(b"GET / HTTP/1.1\r\n\r\nGET /b").len, 18);
        assert!(
            head(b"GET / HTTP/1.0\r\nHost: x\r\nHost: x\r\n\r\n").connection
                == ConnectionType::Close
        );
    }

    /// 3.20 reads `Connection` as a token list over every field; 3.11.2 takes the last field
    /// whole (anything but one of its three words: the version's default).
    #[test]
    fn connection_is_the_last_field_taken_whole() {
        let h = |v: &str, version: &str| {
            head(format!("GET / HTTP/1.{version}\r\nHost: x\r\n{v}\r\n").as_bytes())
        };
        use ConnectionType::*;
        for (fields, version, actix, close_requested) in [
            ("", "1", KeepAlive, false),
            ("", "0", Close, false),
            ("Connection: close\r\n", "1", Close, true),
            ("Connection: Keep-Alive\r\n", "0", KeepAlive, false),
            ("Connection:  UPGRADE \r\n", "1", Upgrade, false),
            // Token lists: neither word for 3.11.2, so the default.
            ("Connection: keep-alive, close\r\n", "1", KeepAlive, true),
            ("Connection: close, keep-alive\r\n", "1", KeepAlive, true),
            ("Connection: te,close\r\n", "1", KeepAlive, true),
            ("Connection: keep-alive, te\r\n", "0", Close, false),
            ("Connection: upgrade, close\r\n", "1", KeepAlive, true),
            // The last field wins, even one that says nothing.
            (
                "Connection: Keep-Alive\r\nConnection: CLOSE\r\n",
                "1",
                Close,
                true,
            ),
            (
                "Connection: close\r\nConnection: te\r\n",
                "1",
                KeepAlive,
                true,
            ),
            (
                "Connection: keep-alive\r\nConnection: te\r\n",
                "0",
                Close,
                false,
            ),
            (
                "Connection: close\r\nConnection: upgrade\r\n",
                "1",
                Upgrade,
                true,
            ),
        ] {
            let head = h(fields, version);
            assert_eq!(head.connection, actix, "{fields:?} 1.{version}");
            assert_eq!(head.close_requested, close_requested, "{fields:?}");
            assert_eq!(
                head.keep_alive(),
                actix == KeepAlive && !close_requested,
                "{fields:?} 1.{version}"
            );
        }
        // A value that is not text says nothing (3.11.2's `to_str` fails).
        let v = head(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\xff\r\n\r\n");
        assert_eq!(v.connection, KeepAlive);
    }

    /// 3.20 refuses `Transfer-Encoding` in HTTP/1.0; 3.11.2 ignores it (the body is
    /// `Content-Length`'s, or none).
    #[test]
    fn http10_transfer_encoding_is_ignored_and_faulty() {
        for (bytes, body) in [
            (
                &b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
                BodyKind::None,
            ),
            (
                b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n",
                BodyKind::Length(2),
            ),
            (
                b"GET / HTTP/1.0\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: x\r\n\r\n",
                BodyKind::None,
            ),
        ] {
            let h = head(bytes);
            assert_eq!(h.body, body, "{bytes:?}");
            assert!(h.faulty_framing && !h.keep_alive(), "{bytes:?}");
        }
    }

    /// 3.20 refuses `Transfer-Encoding: identity` and `Transfer-Encoding` beside
    /// `Content-Length`; 3.11.2 ignores `identity` and lets `chunked` override the length.
    #[test]
    fn identity_and_transfer_encoding_with_length_are_faulty() {
        let h =
            |fields: &str| head(format!("POST / HTTP/1.1\r\nHost: x\r\n{fields}\r\n").as_bytes());
        for (fields, body) in [
            ("Transfer-Encoding: identity\r\n", BodyKind::None),
            (
                "Transfer-Encoding: identity\r\nContent-Length: 3\r\n",
                BodyKind::Length(3),
            ),
            (
                "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
                BodyKind::Chunked,
            ),
            (
                "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
                BodyKind::Chunked,
            ),
            (
                "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
                BodyKind::Chunked,
            ),
        ] {
            let head = h(fields);
            assert_eq!(head.body, body, "{fields:?}");
            assert!(head.faulty_framing && !head.keep_alive(), "{fields:?}");
        }
    }

    #[test]
    fn faulty_framing_and_close_rules() {
        assert!(!faulty_framing(true, &[], true));
        assert!(!faulty_framing(false, &[], true));
        assert!(!faulty_framing(true, &[b" Chunked "], false));
        assert!(faulty_framing(true, &[b"chunked"], true));
        assert!(faulty_framing(true, &[b"identity"], false));
        assert!(faulty_framing(false, &[b"chunked"], false));
        assert!(faulty_framing(true, &[b"chunked", b"chunked"], false));
        assert!(lists_close(b"close"));
        assert!(lists_close(b"keep-alive , CLOSE"));
        assert!(lists_close(b"te,close\xff,close"));
        assert!(!lists_close(b"closed, keep-alive"));
        assert!(!lists_close(b""));
    }

    /// The reference is the actix-http `Cargo.lock` links: another version must be compared
    /// again (its `h1/decoder.rs`, `h1/chunked.rs`, `h1/codec.rs`) before this passes.
    #[test]
    fn the_reference_is_the_linked_actix_http() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock"))
            .expect("Cargo.lock");
        let versions: Vec<&str> = lock
            .split("[[package]]")
            .filter(|p| p.contains("\nname = \"actix-http\"\n"))
            .filter_map(|p| p.split("\nversion = \"").nth(1)?.split('"').next())
            .collect();
        assert_eq!(versions, [ACTIX_HTTP], "actix-http in Cargo.lock");
    }
}
