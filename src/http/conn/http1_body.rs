//! Where HTTP/1.1 bodies end, on both sides of a connection the front end ([`crate::http::conn`])
//! shares with actix-http:
//! - [`RequestBytes`]: which of the bytes read from a client belong to the request handed to
//!   actix — its head, then its body as actix-http reads it (`Content-Length` bytes, or a
//!   chunked body decoded by [`Chunked`], a copy of the `h1/chunked.rs` state machine of
//!   actix-http 3.11.2 (the linked version, [`crate::http::conn::http1::ACTIX_HTTP`]) with its
//!   leniencies and errors), so the next request's bytes stay with the front end;
//! - [`ResponseEnd`]: when the response actix writes is complete (RFC 9112 §6.3: none after
//!   `HEAD`, 1xx, 204 and 304, else `Content-Length` or chunked, else until the connection
//!   closes), and whether it closes the connection.

use crate::http::conn::http1::BodyKind;

/// actix-http 3.11.2's chunked decoder states (`h1/chunked.rs`, `ChunkedState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    SizeLws,
    Extension,
    SizeLf,
    Body,
    BodyCr,
    BodyLf,
    EndCr,
    EndLf,
    End,
}

/// Where a chunked body ends (RFC 9112 §7.1), decided as actix-http 3.11.2 decides it, byte
/// for byte. Unlike later versions (3.18.11 to 3.20, which require a first hex digit and read
/// a trailer section), 3.11.2:
/// - reads a chunk-size line without digits as size 0 (`\r\n` or `;ext\r\n` ends the body);
/// - refuses a trailer section (RFC 9112 §7.1.2): the first byte after the last chunk's line
///   must be the final CR, else the body is malformed there and actix drops the connection.
///
/// Neither lets two parsers disagree on where a well-formed body ends; both are followed
/// here because they decide where actix stops reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunked {
    state: ChunkState,
    /// Size of the chunk being read, then its bytes still to come.
    size: u64,
}

/// The result of feeding bytes to a [`Chunked`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// All `n` bytes belong to the body, which goes on.
    More(usize),
    /// The body ends after the first `n` bytes.
    End(usize),
    /// Byte `n - 1` is malformed (actix-http drops the connection there).
    Error(usize),
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked {
            state: ChunkState::Size,
            size: 0,
        }
    }
}

fn hex(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
}

impl Chunked {
    /// Has the last chunk been read?
    pub fn ended(&self) -> bool {
        self.state == ChunkState::End
    }

    /// Feed the next bytes of the body.
    pub fn scan(&mut self, bytes: &[u8]) -> Scan {
        use ChunkState::*;
        let mut i = 0;
        while i < bytes.len() {
            if self.state == End {
                return Scan::End(i);
            }
            if self.state == Body {
                let n = self.size.min((bytes.len() - i) as u64);
                self.size -= n;
                i += n as usize;
                if self.size == 0 {
                    self.state = BodyCr;
                }
                continue;
            }
            let b = bytes[i];
            i += 1;
            let next = match (self.state, b) {
                (Size | SizeLws, b'\t' | b' ') => Some(SizeLws),
                (Size | SizeLws, b';') => Some(Extension),
                (Size | SizeLws, b'\r') => Some(SizeLf),
                (Size, _) => hex(b).and_then(|d| {
                    self.size = self.size.checked_mul(16)?.checked_add(d)?;
                    Some(Size)
                }),
                (SizeLws, _) => None,
                (Extension, b'\r') => Some(SizeLf),
                (Extension, 0x00..=0x08 | 0x0a..=0x1f | 0x7f) => None,
                (Extension, _) => Some(Extension),
                (SizeLf, b'\n') if self.size > 0 => Some(Body),
                (SizeLf, b'\n') => Some(EndCr),
                (SizeLf, _) => None,
                (BodyCr, b'\r') => Some(BodyLf),
                (BodyCr, _) => None,
                (BodyLf, b'\n') => Some(Size),
                (BodyLf, _) => None,
                (EndCr, b'\r') => Some(EndLf),
                (EndCr, _) => None,
                (EndLf, b'\n') => Some(End),
                (EndLf, _) => None,
                (Body | End, _) => Some(self.state),
            };
            match next {
                Some(s) => self.state = s,
                None => return Scan::Error(i),
            }
        }
        if self.state == End {
            Scan::End(i)
        } else {
            Scan::More(i)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum BodyLeft {
    Length(u64),
    Chunked(Chunked),
    /// Everything (a body read until the connection closes, or one actix will reject).
    All,
}

/// The bytes of one request, counted off as they are handed to actix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestBytes {
    head_left: usize,
    body: BodyLeft,
}

impl RequestBytes {
    /// A request with a head of `head_len` bytes and a body of `kind`.
    pub fn new(head_len: usize, kind: BodyKind) -> RequestBytes {
        RequestBytes {
            head_left: head_len,
            body: match kind {
                BodyKind::None => BodyLeft::Length(0),
                BodyKind::Length(n) => BodyLeft::Length(n),
                BodyKind::Chunked => BodyLeft::Chunked(Chunked::default()),
                BodyKind::UntilClose => BodyLeft::All,
            },
        }
    }

    /// Every byte the connection will ever carry (actix frames them itself).
    pub fn whole_connection() -> RequestBytes {
        RequestBytes {
            head_left: 0,
            body: BodyLeft::All,
        }
    }

    /// How many of `next` (the next bytes from the client) belong to this request; they are
    /// counted as handed over.
    pub fn take(&mut self, next: &[u8]) -> usize {
        let head = self.head_left.min(next.len());
        self.head_left -= head;
        let rest = &next[head..];
        if self.head_left > 0 || rest.is_empty() {
            return head;
        }
        let body = match &mut self.body {
            BodyLeft::Length(left) => {
                let n = (*left).min(rest.len() as u64);
                *left -= n;
                n as usize
            }
            BodyLeft::Chunked(c) => match c.scan(rest) {
                Scan::More(n) | Scan::End(n) => n,
                Scan::Error(n) => {
                    // actix drops the connection at this byte: what follows is nobody's request.
                    self.body = BodyLeft::All;
                    n
                }
            },
            BodyLeft::All => rest.len(),
        };
        head + body
    }

    /// Was the body malformed (everything after it handed over as is)?
    #[cfg(test)]
    pub fn malformed(&self) -> bool {
        self.head_left == 0 && self.body == BodyLeft::All
    }

    /// Has every byte of the request been handed over?
    pub fn ended(&self) -> bool {
        self.head_left == 0
            && match &self.body {
                BodyLeft::Length(n) => *n == 0,
                BodyLeft::Chunked(c) => c.ended(),
                BodyLeft::All => false,
            }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Written {
    /// Response head bytes so far.
    Head(Vec<u8>),
    Length(u64),
    Chunked(Chunked),
    UntilClose,
    Done,
}

/// Follows the bytes actix writes for one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseEnd {
    head_only: bool,
    state: Written,
    /// Status of the final (non-1xx) response, once its head is written.
    pub status: Option<u16>,
    /// Its `Connection` header has `close`.
    pub close: bool,
    /// Body bytes written (chunk framing included).
    pub body_bytes: u64,
}

/// A response head longer than this is not ours: stop following (never "done").
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

impl ResponseEnd {
    /// For the response to a request; `head_only`: it was a `HEAD`.
    pub fn new(head_only: bool) -> ResponseEnd {
        ResponseEnd {
            head_only,
            state: Written::Head(Vec::new()),
            status: None,
            close: false,
            body_bytes: 0,
        }
    }

    /// Is the response complete?
    pub fn done(&self) -> bool {
        self.state == Written::Done
    }

    /// Follow `bytes` written to the client.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.state {
                Written::Head(head) => {
                    let old = head.len();
                    head.extend_from_slice(bytes);
                    let Some(end) = find(head, b"\r\n\r\n") else {
                        if head.len() > MAX_RESPONSE_HEAD {
                            self.state = Written::UntilClose;
                        }
                        return;
                    };
                    let end = end + 4;
                    bytes = &bytes[end - old..];
                    let head = std::mem::take(head);
                    self.state = self.after_head(&head[..end]);
                }
                Written::Length(left) => {
                    let n = (*left).min(bytes.len() as u64);
                    *left -= n;
                    self.body_bytes += n;
                    bytes = &bytes[n as usize..];
                    if *left == 0 {
                        self.state = Written::Done;
                    }
                }
                Written::Chunked(c) => {
                    let n = match c.scan(bytes) {
                        Scan::More(n) => n,
                        Scan::End(n) => {
                            self.state = Written::Done;
                            n
                        }
                        Scan::Error(n) => {
                            self.state = Written::UntilClose;
                            n
                        }
                    };
                    self.body_bytes += n as u64;
                    bytes = &bytes[n..];
                }
                Written::UntilClose | Written::Done => {
                    self.body_bytes += bytes.len() as u64;
                    return;
                }
            }
        }
    }

    /// The state after a complete response head.
    fn after_head(&mut self, head: &[u8]) -> Written {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        if !matches!(resp.parse(head), Ok(httparse::Status::Complete(_))) {
            return Written::UntilClose;
        }
        let status = resp.code.unwrap_or(0);
        if (100..200).contains(&status) && status != 101 {
            return Written::Head(Vec::new()); // interim (100 Continue): the real one follows
        }
        self.status = Some(status);
        let mut length = None;
        let mut chunked = false;
        for h in resp.headers.iter() {
            let value = String::from_utf8_lossy(h.value);
            if h.name.eq_ignore_ascii_case("connection") {
                self.close |= value
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("close"));
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value
                    .rsplit(',')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"));
            } else if h.name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<u64>().ok();
            }
        }
        if status == 101 {
            Written::UntilClose
        } else if self.head_only || status == 204 || status == 304 {
            Written::Done
        } else if chunked {
            Written::Chunked(Chunked::default())
        } else {
            match length {
                Some(0) => Written::Done,
                Some(n) => Written::Length(n),
                None => Written::UntilClose,
            }
        }
    }
}

/// Offset of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `body` one byte at a time: how many bytes until the end (`Ok`) or the error.
    fn bytewise(body: &[u8]) -> Result<usize, usize> {
        let mut c = Chunked::default();
        let mut n = 0;
        for b in body {
            match c.scan(std::slice::from_ref(b)) {
                Scan::More(k) => n += k,
                Scan::End(k) => return Ok(n + k),
                Scan::Error(k) => return Err(n + k),
            }
        }
        Ok(n)
    }

    #[test]
    fn chunked_body_ends_where_actix_ends_it() {
        let body =
            b"5\r\nhello\r\n3;ext=1\r\nabc\r\nA \t; x=\"y z\"\r\n0123456789\r\n0\r\n\r\nGET /next";
        let mut c = Chunked::default();
        assert_eq!(c.scan(body), Scan::End(body.len() - 9));
        assert!(c.ended());
        assert_eq!(bytewise(body), Ok(body.len() - 9), "fed one byte at a time");
        let mut c = Chunked::default();
        assert_eq!(c.scan(b"0\r\n\r\n"), Scan::End(5));
        // Size with trailing whitespace is accepted; a bare LF is not, nor digits after
        // whitespace, nor control bytes in an extension.
        let mut c = Chunked::default();
        assert_eq!(c.scan(b"1 \r\nx\r\n0\r\n\r\n"), Scan::End(12));
        for (bad, at) in [
            (&b"1\nx"[..], 2),
            (b"g", 1),
            (b"1 1\r\n", 3),
            (b"1;a\x01\r\n", 4),
            (b"1\r\nxy", 5),
            (b"1\r\nx\ry", 6),
            (b"0\r\n\rx", 5),
            (b"fffffffffffffffff\r\n", 17),
        ] {
            let mut c = Chunked::default();
            assert_eq!(c.scan(bad), Scan::Error(at), "{bad:?}");
            assert_eq!(bytewise(bad), Err(at), "{bad:?}");
        }
    }

    /// actix-http 3.11.2 (unlike 3.20) reads a chunk-size line without digits as size 0.
    #[test]
    fn a_size_line_without_digits_is_the_last_chunk() {
        for (body, end) in [
            (&b"\r\n\r\nGET"[..], 4),
            (b";x=y\r\n\r\nGET", 8),
            (b" \r\n\r\nGET", 5),
            (b"2\r\nab\r\n\r\n\r\nGET", 11),
        ] {
            let mut c = Chunked::default();
            assert_eq!(c.scan(body), Scan::End(end), "{body:?}");
            assert_eq!(bytewise(body), Ok(end), "{body:?}");
        }
    }

    /// actix-http 3.11.2 (unlike 3.20) reads no trailer section: the first trailer byte is
    /// malformed, and actix drops the connection there.
    #[test]
    fn a_trailer_section_is_malformed() {
        let body = b"3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\n";
        let mut c = Chunked::default();
        assert_eq!(c.scan(body), Scan::Error(16), "at the T");
        assert_eq!(bytewise(body), Err(16));
        let mut r = RequestBytes::new(2, BodyKind::Chunked);
        assert_eq!(r.take(&[b"hh", &body[..]].concat()), 18);
        assert!(!r.ended());
        assert_eq!(r.take(&body[16..]), body.len() - 16, "then everything");
    }

    #[test]
    fn request_bytes_stop_at_the_end_of_the_request() {
        let mut r = RequestBytes::new(10, BodyKind::None);
        assert_eq!(r.take(b"0123456"), 7);
        assert!(!r.ended());
        assert_eq!(r.take(b"789GET"), 3);
        assert!(r.ended());
        let mut r = RequestBytes::new(2, BodyKind::Length(3));
        assert_eq!(r.take(b"hhbbbnext"), 5);
        assert!(r.ended());
        let mut r = RequestBytes::new(2, BodyKind::Chunked);
        assert_eq!(r.take(b"hh1\r\nx\r\n0\r\n\r\nnext"), 13);
        assert!(r.ended());
        let mut r = RequestBytes::new(1, BodyKind::Chunked);
        assert_eq!(r.take(b"hZrest"), 2, "up to the bad byte");
        assert_eq!(
            r.take(b"rest"),
            4,
            "then everything: actix drops the connection"
        );
        assert!(!r.ended());
        let mut r = RequestBytes::whole_connection();
        assert_eq!(r.take(b"abc"), 3);
        assert!(!r.ended());
    }

    #[test]
    fn response_end_follows_actix_output() {
        let mut r = ResponseEnd::new(false);
        r.feed(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhel");
        assert!(!r.done());
        r.feed(b"lo");
        assert!(r.done() && !r.close);
        assert_eq!((r.status, r.body_bytes), (Some(200), 5));

        let mut r = ResponseEnd::new(false);
        for b in b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n" {
            assert!(!r.done());
            r.feed(std::slice::from_ref(b));
        }
        assert!(r.done() && r.close);

        let mut r = ResponseEnd::new(true);
        r.feed(b"HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n");
        assert!(r.done(), "no body after HEAD");
        let mut r = ResponseEnd::new(false);
        r.feed(b"HTTP/1.1 304 Not Modified\r\n\r\n");
        assert!(r.done());
        let mut r = ResponseEnd::new(false);
        r.feed(b"HTTP/1.0 200 OK\r\n\r\nbody until close");
        assert!(!r.done());
    }
}
