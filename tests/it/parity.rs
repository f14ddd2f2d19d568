//! Property test: any byte stream — request heads from a grammar (random line ends,
//! duplicated, conflicting and folded headers, bodies with right and wrong lengths, chunked
//! bodies good and bad, pipelining) mixed with raw random bytes — gets the same answers from
//! pkgstash's front end (framing, sendfile fast path, one request at a time to actix) as from
//! actix-web alone (`fast_path = false`): the same sequence of request lines and statuses in
//! the access logs, and the same statuses on the wire.
//!
//! One difference is allowed (see [`same_answers`]): after a response that says
//! `Connection: close`, pkgstash answers nothing more (RFC 9112 §9.6), where actix alone may
//! still answer requests it had already read.
//!
//! `PROPTEST_CASES` sets the number of cases (default 256), `PROPTEST_RNG_SEED` the streams
//! (default: a fixed seed, the same streams on every run).

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

use crate::framing::{cached_server, closes, PKG_URL};
use crate::rawhttp::{find, Resp};
use crate::support::{client, Pkgstash};

/// Targets: a cached package (the fast path), pkgstash's own routes, misses the mirror
/// answers 404, refused paths, other forms.
const TARGETS: &[&str] = &[
    PKG_URL,
    PKG_URL,
    "/_pkgstash/metrics",
    "/_pkgstash/status.json",
    "/_pkgstash/api/refresh",
    "/arch/core/os/x86_64/core.db",
    "/arch/core/os/x86_64/bar-1.0-1-any.pkg.tar.zst",
    "/arch/../etc/passwd",
    "/arch/core/os/x86_64/foo-1.0-1-x86_64.pkg.tar.zst?x=1",
    "/nope/x",
    "*",
    "http://h/arch/core/os/x86_64/foo-1.0-1-x86_64.pkg.tar.zst",
];

fn eol() -> impl Strategy<Value = &'static str> {
    prop_oneof![10 => Just("\r\n"), 3 => Just("\n"), 1 => Just("\r")]
}

fn header() -> impl Strategy<Value = String> {
    let one_of = |v: &'static [&'static str]| proptest::sample::select(v).prop_map(String::from);
    prop_oneof![
        6 => Just("Host: x".to_string()),
        1 => Just("host: y".to_string()),
        2 => one_of(&["keep-alive", "close", "keep-alive, close", "close, keep-alive", "upgrade", "te"])
            .prop_map(|v| format!("Connection: {v}")),
        1 => one_of(&["bytes=0-9", "bytes=0-0,5-10", "bytes=99999999-", "items=1-2", "bytes=-5"])
            .prop_map(|v| format!("Range: {v}")),
        1 => Just("If-None-Match: \"x\"".to_string()),
        1 => Just("If-Modified-Since: Tue, 14 Nov 2023 22:13:20 GMT".to_string()),
        1 => Just("Expect: 100-continue".to_string()),
        1 => Just("Upgrade: websocket".to_string()),
        1 => one_of(&["0", "5", "+5", "abc", " 3 ", "5, 5"]).prop_map(|v| format!("Content-Length: {v}")),
        1 => one_of(&["chunked", "identity", "gzip", "gzip, chunked"])
            .prop_map(|v| format!("Transfer-Encoding: {v}")),
        1 => Just(" folded".to_string()),
        1 => Just("Host : x".to_string()),
        2 => "[A-Za-z-]{1,10}: [ -~]{0,16}",
    ]
}

/// A body, with the header that announces it (or not, or wrongly).
fn body() -> impl Strategy<Value = (Option<String>, Vec<u8>)> {
    let bytes = prop::collection::vec(any::<u8>(), 0..12);
    prop_oneof![
        6 => Just((None, Vec::new())),
        2 => (bytes.clone(), -2i64..3).prop_map(|(b, skew)| {
            let declared = (b.len() as i64 + skew).max(0);
            (Some(format!("Content-Length: {declared}")), b)
        }),
        1 => (bytes.clone(), any::<bool>()).prop_map(|(b, good)| {
            let mut body = format!("{:x}\r\n", b.len()).into_bytes();
            body.extend(&b);
            body.extend_from_slice(if good { b"\r\n0\r\n\r\n" } else { b"\r\nz\r\n" });
            if b.is_empty() {
                body = b"0\r\n\r\n".to_vec();
            }
            (Some("Transfer-Encoding: chunked".to_string()), body)
        }),
        1 => bytes.prop_map(|b| (None, b)),
    ]
}

fn request() -> impl Strategy<Value = Vec<u8>> {
    let method = proptest::sample::select(
        &[
            "GET", "GET", "GET", "HEAD", "HEAD", "POST", "DELETE", "OPTIONS", "G T", "CONNECT",
        ][..],
    );
    let version = proptest::sample::select(
        &[
            "HTTP/1.1",
            "HTTP/1.1",
            "HTTP/1.1",
            "HTTP/1.0",
            "HTTP/2.0",
            "HTTP/1.1 x",
        ][..],
    );
    (
        method,
        proptest::sample::select(TARGETS),
        version,
        eol(),
        prop::collection::vec((header(), eol()), 0..5),
        body(),
        eol(),
        eol(),
    )
        .prop_map(|(m, t, v, e0, headers, (body_header, body), e1, e2)| {
            let mut out = format!("{m} {t} {v}{e0}").into_bytes();
            for (h, e) in headers {
                out.extend(h.as_bytes());
                out.extend(e.as_bytes());
            }
            if let Some(h) = body_header {
                out.extend(h.as_bytes());
                out.extend(e1.as_bytes());
            }
            out.extend(e2.as_bytes());
            out.extend(body);
            out
        })
}

/// A request the fast path may answer (a package, one Host, harmless headers), with random
/// line ends.
fn plain_request() -> impl Strategy<Value = Vec<u8>> {
    let harmless = proptest::sample::select(
        &[
            "Accept: */*",
            "User-Agent: pacman/6.0.2 (Linux x86_64) libalpm/13.0.2",
            "Connection: keep-alive",
            "Connection: close",
            "Cache-Control: no-cache",
        ][..],
    );
    (
        proptest::sample::select(&["GET", "HEAD"][..]),
        eol(),
        prop::collection::vec((harmless, eol()), 0..3),
        0..3usize,
        eol(),
        eol(),
    )
        .prop_map(|(m, e0, mut headers, host_at, e1, e2)| {
            headers.insert(host_at.min(headers.len()), ("Host: x", e1));
            let mut out = format!("{m} {PKG_URL} HTTP/1.1{e0}").into_bytes();
            for (h, e) in headers {
                out.extend(h.as_bytes());
                out.extend(e.as_bytes());
            }
            out.extend(e2.as_bytes());
            out
        })
}

/// A whole stream: requests and raw bytes, pipelined.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let item = prop_oneof![
        5 => request(),
        4 => plain_request(),
        1 => prop::collection::vec(any::<u8>(), 1..48),
    ];
    prop::collection::vec(item, 1..5).prop_map(|items| items.concat())
}

/// The responses in `bytes`, framed strictly: the `i`-th final response answers the `i`-th
/// logged request (no body after a `HEAD`'s head, nor after 1xx, 204, 304).
fn parse_strict(mut bytes: &[u8], log: &[(String, u16)]) -> Result<Vec<Resp>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let end = find(bytes, b"\r\n\r\n").ok_or_else(|| {
            format!(
                "response {} cut short: {:?}",
                out.len(),
                String::from_utf8_lossy(bytes)
            )
        })?;
        let head = String::from_utf8_lossy(&bytes[..end + 4]).to_string();
        bytes = &bytes[end + 4..];
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not a response: {head:?}"))?;
        if (100..200).contains(&status) {
            continue; // interim (100 Continue)
        }
        let resp = Resp {
            status,
            head,
            body: Vec::new(),
        };
        let head_only = log
            .get(out.len())
            .is_some_and(|(line, _)| line.starts_with("HEAD "));
        if head_only || status == 204 || status == 304 {
        } else if resp
            .header("transfer-encoding")
            .is_some_and(|v| v.contains("chunked"))
        {
            loop {
                let p = find(bytes, b"\r\n").ok_or("chunk size cut short")?;
                let size = usize::from_str_radix(String::from_utf8_lossy(&bytes[..p]).trim(), 16)
                    .map_err(|e| format!("chunk size: {e}"))?;
                let next = p + 2 + size + 2;
                if bytes.len() < next {
                    return Err("chunk cut short".into());
                }
                bytes = &bytes[next..];
                if size == 0 {
                    break;
                }
            }
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len.parse().map_err(|e| format!("content-length: {e}"))?;
            if bytes.len() < len {
                return Err(format!("body of response {} cut short", out.len()));
            }
            bytes = &bytes[len..];
        } else {
            bytes = &[];
        }
        out.push(resp);
    }
    Ok(out)
}

/// `(request line, status)` of the access-log lines `p` wrote since line `from`, up to the
/// marker line of `mark`.
fn logged(p: &Pkgstash, from: usize, mark: &str) -> Vec<(String, u16)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = p.log();
        let lines: Vec<&str> = log.lines().skip(from).collect();
        if let Some(end) = lines.iter().position(|l| l.contains(mark)) {
            return lines[..end]
                .iter()
                .filter(|l| l.contains("pkgstash::access"))
                .filter_map(|l| {
                    let (_, rest) = l.split_once('"')?;
                    let (line, rest) = rest.rsplit_once('"')?;
                    let status = rest.split_whitespace().next()?.parse().ok()?;
                    Some((line.to_string(), status))
                })
                .collect();
        }
        assert!(Instant::now() < deadline, "marker {mark} not logged");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Ends every stream: answered, it closes the connection.
const SENTINEL: &[u8] =
    b"GET /_pkgstash/metrics?end HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// A connection to `p` from a loopback address of case `case`'s own (`127.1.x.y`), so that
/// the admin API's per-client limit on failed attempts (401, then 429) counts each case
/// apart: the front end, which answers nothing after a response that closes, and actix alone,
/// which may go on, would otherwise reach the limit after different numbers of cases.
fn connect_from(p: &Pkgstash, case: usize) -> std::net::TcpStream {
    let (x, y) = ((case / 250 % 256) as u8, (1 + case % 250) as u8);
    let local = std::net::SocketAddr::from(([127, 1, x, y], 0));
    let s =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    s.bind(&local.into()).expect("bind a loopback address");
    s.connect(&p.addr.into()).expect("connect");
    s.into()
}

/// Send `bytes` and [`SENTINEL`], and read until the server closes. When nothing more comes
/// for a moment (a body still awaited), end the sending side. (Not at once: actix alone
/// sometimes drops requests it has read but not answered when the client's side closes.)
fn answers(p: &Pkgstash, bytes: &[u8], case: usize) -> (Vec<u8>, Vec<(String, u16)>) {
    let from = p.log().lines().count();
    let mut s = connect_from(p, case);
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let _ = s.write_all(&[bytes, SENTINEL].concat());
    let mut out = Vec::new();
    let mut half_closed = false;
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                assert!(!half_closed, "no end of the answers");
                let _ = s.shutdown(Shutdown::Write);
                s.set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("timeout");
                half_closed = true;
            }
            Err(_) => break,
        }
    }
    let mark = format!("mark={case} ");
    let _ = client()
        .get(p.url(&format!("/_pkgstash/metrics?mark={case}")))
        .send()
        .and_then(|r| r.bytes());
    (out, logged(p, from, &mark))
}

/// `ours` (pkgstash's access log) and `alone` (actix alone's) list the same requests with the
/// same statuses, and `wire` (pkgstash's bytes) holds exactly those answers, well framed.
fn check(wire: &[u8], ours: &[(String, u16)], alone: &[(String, u16)]) -> Result<(), String> {
    let resps = parse_strict(wire, ours)?;
    // Every logged request answered in order, then at most one refusal actix does not log.
    let statuses: Vec<u16> = resps.iter().map(|r| r.status).collect();
    let logged: Vec<u16> = ours.iter().map(|(_, s)| *s).collect();
    let extra = statuses.get(ours.len()..).unwrap_or(&[]);
    if statuses[..ours.len().min(statuses.len())] != logged[..]
        || extra.len() > 1
        || extra.iter().any(|s| ![400, 431].contains(s))
    {
        return Err(format!(
            "answers on the wire {statuses:?} are not the logged ones {ours:?}"
        ));
    }
    // Nothing after a response that ends the connection (RFC 9112 §9.6).
    if resps.iter().rev().skip(1).any(closes) {
        return Err(format!("answers after one that closes: {resps:?}"));
    }
    let n = ours.len().min(alone.len());
    if ours[..n] != alone[..n] {
        return Err(format!("ours {ours:?}, actix alone {alone:?}"));
    }
    if ours.len() < alone.len() && !resps.last().is_some_and(closes) {
        return Err(format!(
            "fewer answers than actix alone without closing: ours {ours:?} {resps:?}, actix alone {alone:?}"
        ));
    }
    // actix-http's HTTP/1 codec keeps the method of the last request it parsed: when it has
    // parsed the next pipelined request before writing a HEAD's response, it encodes that
    // response as a GET's and fails for want of a body (or sends one): actix alone stops
    // there, pkgstash (one request at a time) goes on.
    if ours.len() > alone.len() && !alone.last().is_some_and(|(l, _)| l.starts_with("HEAD ")) {
        return Err(format!(
            "more answers than actix alone: ours {ours:?}, actix alone {alone:?}"
        ));
    }
    Ok(())
}

#[test]
fn any_byte_stream_gets_the_answers_actix_alone_gives() {
    let (_up, fast, _) = cached_server(100_000, "");
    let (_up2, alone, _) = cached_server(100_000, "fast_path = false");
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    // The same streams on every run (CI runs this once: a failure is a fault, never luck);
    // `PROPTEST_RNG_SEED` picks other ones.
    let base = Config::default();
    let rng_seed = match base.rng_seed {
        RngSeed::Random => RngSeed::Fixed(15),
        seed => seed,
    };
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        rng_seed,
        ..base
    });
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run(&stream(), |bytes| {
        let case = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let what = String::from_utf8_lossy(&bytes).to_string();
        let (wire, ours) = answers(&fast, &bytes, case);
        let (_, alone) = answers(&alone, &bytes, case);
        check(&wire, &ours, &alone).map_err(|e| TestCaseError::fail(format!("{what:?}: {e}")))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
