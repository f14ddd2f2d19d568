//! A raw HTTP/1.1 client for framing tests: the exact bytes a test chooses go out, and the
//! responses are cut from the socket by their own framing (`Content-Length`, chunked, none for
//! `HEAD`/1xx/204/304, else until close), so a test sees exactly how the server framed them.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One response as it came off the wire.
#[derive(Clone)]
pub struct Resp {
    pub status: u16,
    /// Status line and header lines, CRLFs included.
    pub head: String,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{} body bytes]", self.head, self.body.len())
    }
}

impl Resp {
    /// The first header `name` (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// A raw connection.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
    eof: bool,
}

impl Raw {
    /// Connect (reads time out after 15 s: a hang fails the test instead of blocking CI).
    pub fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .expect("read timeout");
        Raw {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Write `bytes` in one `write` call.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Read more bytes into the buffer; false at EOF (or reset).
    fn fill(&mut self) -> bool {
        if self.eof {
            return false;
        }
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.eof = true;
                false
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                panic!("no response within the read timeout")
            }
            Err(_) => {
                self.eof = true;
                false
            }
        }
    }

    /// The next response; `None` when the connection ends before one starts. `head_only`: the
    /// request was a `HEAD` (no body follows whatever the head says).
    pub fn response(&mut self, head_only: bool) -> Option<Resp> {
        let head_end = loop {
            if let Some(p) = find(&self.buf, b"\r\n\r\n") {
                break p + 4;
            }
            if !self.fill() {
                assert!(
                    self.buf.is_empty(),
                    "connection ended inside a response head: {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_string();
        self.buf.drain(..head_end);
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line: {head}"));
        let mut resp = Resp {
            status,
            head,
            body: Vec::new(),
        };
        if head_only || status < 200 || status == 204 || status == 304 {
            return Some(resp);
        }
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        if chunked {
            resp.body = self.chunked_body();
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len.parse().expect("content-length");
            resp.body = self.take(len);
        } else {
            while self.fill() {}
            resp.body = std::mem::take(&mut self.buf);
        }
        Some(resp)
    }

    /// Exactly `n` bytes (fewer if the connection ends first): a body whose head was read
    /// with `response(true)`.
    pub fn take(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n && self.fill() {}
        let n = n.min(self.buf.len());
        self.buf.drain(..n).collect()
    }

    fn line(&mut self) -> String {
        loop {
            if let Some(p) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..p]).to_string();
                self.buf.drain(..p + 2);
                return line;
            }
            assert!(self.fill(), "connection ended inside a chunked body");
        }
    }

    fn chunked_body(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let size = self.line();
            let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                .expect("chunk size");
            if size == 0 {
                while !self.line().is_empty() {}
                return body;
            }
            body.extend(self.take(size));
            assert_eq!(self.line(), "", "chunk not followed by CRLF");
        }
    }

    /// Every response until the server closes the connection (`head_only[i]`: the i-th
    /// request was a `HEAD`; missing entries mean `GET`).
    pub fn responses_until_close(&mut self, head_only: &[bool]) -> Vec<Resp> {
        let mut out = Vec::new();
        while let Some(r) = self.response(head_only.get(out.len()).copied().unwrap_or(false)) {
            out.push(r);
        }
        out
    }

    /// Does the server close the connection within `limit` (without sending anything)?
    pub fn closed_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        self.stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let mut chunk = [0u8; 4096];
        let closed = loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => break true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                    if Instant::now() >= deadline {
                        break false;
                    }
                }
                Err(_) => break true,
            }
        };
        self.stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .expect("timeout");
        closed
    }

    /// Bytes received but not yet parsed.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }
}

/// Offset of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
