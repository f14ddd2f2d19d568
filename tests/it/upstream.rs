//! A programmable fake mirror on 127.0.0.1 for HTTP-level tests: serves files from memory and
//! can misbehave on purpose (404, 500, close or stall after N bytes, trickle, ignore Range,
//! HTML pages, wrong bytes). It records every request so tests can count upstream traffic.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

/// How the fake mirror answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    Normal,
    /// Always 404.
    NotFound,
    /// Always this status with a short body.
    Status(u16),
    /// Send headers with the full Content-Length, then close after N body bytes.
    CloseAfter(u64),
    /// Send N body bytes, then stop sending (keep the socket open) for the given time.
    StallAfter(u64, Duration),
    /// Send the body at about this many bytes per second.
    Trickle(u64),
    /// Answer 200 with the whole body even when asked for a range.
    IgnoreRange,
    /// Answer 200 `text/html` instead of the file.
    Html,
    /// Serve the file with every byte flipped (same length).
    WrongBytes,
    /// Wait this long before answering at all.
    DelayHead(Duration),
    /// Answer with this redirect status and `Location` (`{path}` in it is replaced by the
    /// request's path, e.g. `http://127.0.0.1:PORT{path}` or `/moved{path}`); paths under
    /// `/moved/` are served normally (a same-host redirect target).
    Redirect(u16, String),
    /// Like `CloseAfter`, for the first response only; then `Normal`.
    CloseOnceAfter(u64),
    /// HTTP/1.1 200 with neither Content-Length nor chunked encoding: the body ends when the
    /// connection closes (RFC 9112 §6.3).
    CloseDelimited,
    /// HTTP/1.0 200 without Content-Length: read until the connection closes.
    CloseDelimitedHttp10,
    /// `Transfer-Encoding: chunked`, no Content-Length.
    Chunked,
    /// A chunked body that does not end (repeats the file until the client goes away, or
    /// [`ENDLESS_CAP`] bytes: a broken pkgstash must not fill the test machine's disk).
    Endless,
    /// 401 unless `Authorization` is exactly this value; then normal.
    RequireAuth(String),
    /// Answer every request in full: no 304, whatever the conditional headers.
    IgnoreConditionals,
}

/// Where an `Endless` body stops after all.
pub const ENDLESS_CAP: u64 = 64 << 20;

/// One request as the fake mirror saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub range: Option<String>,
    pub if_modified_since: Option<String>,
    pub authorization: Option<String>,
    pub if_none_match: Option<String>,
    pub status: u16,
}

#[derive(Debug)]
struct File {
    data: Vec<u8>,
    modified: SystemTime,
}

#[derive(Debug)]
struct Shared {
    files: Mutex<HashMap<String, File>>,
    behaviour: Mutex<Behaviour>,
    seen: Mutex<Vec<Seen>>,
    body_bytes: AtomicU64,
    stop: AtomicBool,
    /// Send `ETag`s (a hash of the content) and honour `If-None-Match`.
    etags: AtomicBool,
}

/// A running fake mirror. Stops accepting when dropped.
pub struct FakeMirror {
    pub port: u16,
    shared: Arc<Shared>,
}

impl FakeMirror {
    pub fn start() -> FakeMirror {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake mirror");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(Shared {
            files: Mutex::new(HashMap::new()),
            behaviour: Mutex::new(Behaviour::Normal),
            seen: Mutex::new(Vec::new()),
            body_bytes: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            etags: AtomicBool::new(false),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve_conn(conn, &s);
                });
            }
        });
        FakeMirror { port, shared }
    }

    /// The mirror base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Put a file at `path` (starting with `/`), modified now.
    pub fn put(&self, path: &str, data: Vec<u8>) {
        self.put_at(path, data, SystemTime::now());
    }

    pub fn put_at(&self, path: &str, data: Vec<u8>, modified: SystemTime) {
        self.shared
            .files
            .lock()
            .insert(path.to_string(), File { data, modified });
    }

    /// Remove the file at `path` (404 from now on).
    pub fn remove(&self, path: &str) {
        self.shared.files.lock().remove(path);
    }

    /// Send `ETag`s and honour `If-None-Match` (like nginx), or not (the default).
    pub fn set_etags(&self, on: bool) {
        self.shared.etags.store(on, Ordering::SeqCst);
    }

    pub fn set(&self, b: Behaviour) {
        *self.shared.behaviour.lock() = b;
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().clone()
    }

    /// Requests for `path`.
    pub fn count(&self, path: &str) -> usize {
        self.shared
            .seen
            .lock()
            .iter()
            .filter(|s| s.path == path)
            .count()
    }

    /// Body bytes sent so far.
    pub fn body_bytes(&self) -> u64 {
        self.shared.body_bytes.load(Ordering::SeqCst)
    }
}

impl Drop for FakeMirror {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Random-looking but deterministic bytes.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn serve_conn(conn: TcpStream, s: &Shared) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut conn = conn;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let raw_path = parts.next().unwrap_or("/").to_string();
    let mut range = None;
    let mut ims = None;
    let mut authorization = None;
    let mut inm = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "range" => range = Some(v.trim().to_string()),
                "if-modified-since" => ims = Some(v.trim().to_string()),
                "authorization" => authorization = Some(v.trim().to_string()),
                "if-none-match" => inm = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    let path = percent_encoding::percent_decode_str(&raw_path)
        .decode_utf8_lossy()
        .to_string();
    let behaviour = s.behaviour.lock().clone();
    let file = s
        .files
        .lock()
        .get(&path)
        .map(|f| (f.data.clone(), f.modified));
    let record = |status: u16| {
        s.seen.lock().push(Seen {
            path: path.clone(),
            range: range.clone(),
            if_modified_since: ims.clone(),
            authorization: authorization.clone(),
            if_none_match: inm.clone(),
            status,
        })
    };
    if let Behaviour::DelayHead(d) = behaviour {
        std::thread::sleep(d);
    }
    let simple = |conn: &mut TcpStream,
                  status: u16,
                  ctype: &str,
                  body: &[u8]|
     -> std::io::Result<()> {
        write!(
            conn,
            "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        conn.write_all(body)
    };
    match (&behaviour, &file) {
        (Behaviour::Redirect(code, to), _) if !path.starts_with("/moved/") => {
            record(*code);
            let location = to.replace("{path}", &raw_path);
            write!(
                conn,
                "HTTP/1.1 {code} X\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
            return Ok(());
        }
        (Behaviour::RequireAuth(want), _) if authorization.as_deref() != Some(want.as_str()) => {
            record(401);
            return simple(&mut conn, 401, "text/html", b"<h1>401</h1>");
        }
        (Behaviour::Status(code), _) => {
            record(*code);
            return simple(&mut conn, *code, "text/html", b"<h1>error</h1>");
        }
        (Behaviour::NotFound, _) | (_, None) => {
            record(404);
            return simple(&mut conn, 404, "text/html", b"<h1>404</h1>");
        }
        (Behaviour::Html, _) => {
            record(200);
            return simple(&mut conn, 200, "text/html", b"<html>captive portal</html>");
        }
        _ => {}
    }
    let Some((mut data, modified)) = file else {
        return Ok(());
    };
    let behaviour = match behaviour {
        Behaviour::CloseOnceAfter(n) => {
            *s.behaviour.lock() = Behaviour::Normal;
            Behaviour::CloseAfter(n)
        }
        b => b,
    };
    if behaviour == Behaviour::WrongBytes {
        data.iter_mut().for_each(|b| *b = !*b);
    }
    let lm = httpdate::fmt_http_date(modified);
    let etag = s.etags.load(Ordering::SeqCst).then(|| {
        use sha2::Digest;
        format!("\"{}\"", hex::encode(&sha2::Sha256::digest(&data)[..8]))
    });
    let etag_line = etag
        .as_ref()
        .map(|t| format!("ETag: {t}\r\n"))
        .unwrap_or_default();
    let (ims, inm) = match behaviour {
        Behaviour::IgnoreConditionals => (None, None),
        _ => (ims.clone(), inm.clone()),
    };
    if let (Some(tag), Some(asked)) = (&etag, &inm) {
        // RFC 9110 §13.1.2: If-None-Match decides; If-Modified-Since is then ignored.
        if asked == tag {
            record(304);
            write!(
                conn,
                "HTTP/1.1 304 Not Modified\r\n{etag_line}Last-Modified: {lm}\r\nConnection: close\r\n\r\n"
            )?;
            return Ok(());
        }
    } else if let Some(since) = ims
        .as_deref()
        .and_then(|v| httpdate::parse_http_date(v).ok())
    {
        let secs = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        };
        if secs(modified) <= secs(since) {
            record(304);
            write!(
                conn,
                "HTTP/1.1 304 Not Modified\r\nLast-Modified: {lm}\r\nConnection: close\r\n\r\n"
            )?;
            return Ok(());
        }
    }
    match behaviour {
        Behaviour::CloseDelimited | Behaviour::CloseDelimitedHttp10 => {
            record(200);
            let version = if behaviour == Behaviour::CloseDelimited {
                "1.1"
            } else {
                "1.0"
            };
            write!(
                conn,
                "HTTP/{version} 200 OK\r\nContent-Type: application/octet-stream\r\nLast-Modified: {lm}\r\n\r\n"
            )?;
            for c in data.chunks(64 * 1024) {
                conn.write_all(c)?;
                s.body_bytes.fetch_add(c.len() as u64, Ordering::SeqCst);
            }
            conn.flush()?;
            let _ = conn.shutdown(Shutdown::Both);
            return Ok(());
        }
        Behaviour::Chunked | Behaviour::Endless => {
            record(200);
            write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nLast-Modified: {lm}\r\nConnection: close\r\n\r\n"
            )?;
            let mut sent = 0u64;
            loop {
                for c in data.chunks(64 * 1024) {
                    write!(conn, "{:x}\r\n", c.len())?;
                    conn.write_all(c)?;
                    conn.write_all(b"\r\n")?;
                    s.body_bytes.fetch_add(c.len() as u64, Ordering::SeqCst);
                    sent += c.len() as u64;
                }
                if behaviour == Behaviour::Chunked || data.is_empty() || sent >= ENDLESS_CAP {
                    break;
                }
            }
            conn.write_all(b"0\r\n\r\n")?;
            return Ok(());
        }
        _ => {}
    }
    let total = data.len() as u64;
    let start = match (&range, &behaviour) {
        (Some(r), b) if *b != Behaviour::IgnoreRange => r
            .strip_prefix("bytes=")
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|n| n.parse::<u64>().ok()),
        _ => None,
    };
    let (status, body) = match start {
        Some(st) if st < total => (206, &data[st as usize..]),
        Some(_) => {
            record(416);
            write!(conn, "HTTP/1.1 416 X\r\nContent-Range: bytes */{total}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
            return Ok(());
        }
        None => (200, &data[..]),
    };
    record(status);
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nLast-Modified: {lm}\r\n{etag_line}Accept-Ranges: bytes\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(st) = start {
        head.push_str(&format!(
            "Content-Range: bytes {st}-{}/{total}\r\n",
            total - 1
        ));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    if method == "HEAD" {
        return Ok(());
    }
    // Bytes already in the file before this response's body (for CloseAfter/StallAfter offsets).
    let base = start.unwrap_or(0);
    let send = |conn: &mut TcpStream, chunk: &[u8]| -> std::io::Result<()> {
        conn.write_all(chunk)?;
        s.body_bytes.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        Ok(())
    };
    match behaviour {
        Behaviour::CloseAfter(n) => {
            let n = n.saturating_sub(base).min(body.len() as u64) as usize;
            send(&mut conn, &body[..n])?;
            conn.flush()?;
            let _ = conn.shutdown(Shutdown::Both);
        }
        Behaviour::StallAfter(n, d) => {
            let n = n.saturating_sub(base).min(body.len() as u64) as usize;
            send(&mut conn, &body[..n])?;
            conn.flush()?;
            std::thread::sleep(d);
            send(&mut conn, &body[n..])?;
        }
        Behaviour::Trickle(rate) => {
            let chunk = (rate / 20).max(1) as usize;
            for c in body.chunks(chunk) {
                send(&mut conn, c)?;
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        _ => {
            for c in body.chunks(64 * 1024) {
                send(&mut conn, c)?;
            }
        }
    }
    // Drain anything the client still sends, then close.
    let _ = conn.set_read_timeout(Some(Duration::from_millis(10)));
    let mut sink = [0u8; 64];
    let _ = reader.read(&mut sink);
    Ok(())
}
