//! The HTTP/1.1 front end over raw sockets: every byte stream is framed into the requests
//! actix would frame (bare LF, mixed line ends, pipelined bodies), every connection is
//! bounded (a trickled head gets 408, a client that never reads is cut off), `Host` and
//! `Connection` follow RFC 9112 on both paths, and cut-short transfers are logged and counted.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::rawhttp::{Raw, Resp};
use crate::support::{metric_sample, wait_for, Pkgstash};
use crate::upstream::{payload, FakeMirror};

pub const PKG_URL: &str = "/arch/core/os/x86_64/foo-1.0-1-x86_64.pkg.tar.zst";
pub const PKG_REL: &str = "arch/core/os/x86_64/foo-1.0-1-x86_64.pkg.tar.zst";
const METRICS_CLOSE: &str =
    "GET /_pkgstash/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// Admin token of the servers these tests start.
pub const TOKEN: &str = "framing-t0ken";

/// A server whose cache holds the package at [`PKG_URL`] (`len` bytes); `top` goes before the
/// upstream table (top-level keys).
pub fn cached_server(len: usize, top: &str) -> (FakeMirror, Pkgstash, Vec<u8>) {
    let up = FakeMirror::start();
    let p = Pkgstash::start_env(
        &format!("{top}\n[upstreams.arch]\nmirrors = [\"{}\"]\n", up.url()),
        &[("PKGSTASH_TOKEN", TOKEN)],
    );
    let data = payload(len, 42);
    let file = p.cache_dir.join(PKG_REL);
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    std::fs::write(&file, &data).expect("write cached package");
    (up, p, data)
}

/// Send `bytes` in one write on a new connection; every response until the server closes.
pub fn exchange(p: &Pkgstash, bytes: &[u8], head_only: &[bool]) -> Vec<Resp> {
    let mut c = Raw::connect(p.addr);
    c.send(bytes);
    c.responses_until_close(head_only)
}

pub fn statuses(r: &[Resp]) -> Vec<u16> {
    r.iter().map(|r| r.status).collect()
}

/// Does the response end the connection: `Connection: close`, an HTTP/1.0 response without
/// `Connection: keep-alive` (RFC 9112 §9.3), or `Connection: upgrade` without a switch of
/// protocols (actix keeps no such connection)?
pub fn closes(r: &Resp) -> bool {
    let tokens = |t: &str| {
        r.header("connection")
            .is_some_and(|v| v.split(',').any(|x| x.trim().eq_ignore_ascii_case(t)))
    };
    tokens("close")
        || (r.head.starts_with("HTTP/1.0") && !tokens("keep-alive"))
        || (tokens("upgrade") && r.status != 101)
}

/// Does `ours` answer the same requests as `alone` (actix by itself)? The one difference
/// allowed: after a response that ends the connection nothing more is answered (RFC 9112
/// §9.6: the server "MUST NOT process any further requests"), where actix alone may go on
/// answering requests it had already read.
pub fn compare_answers(ours: &[Resp], alone: &[Resp]) -> Result<(), String> {
    let n = ours.len().min(alone.len());
    let fewer_ok = ours.len() < alone.len() && ours.last().is_some_and(closes);
    if statuses(&ours[..n]) != statuses(&alone[..n])
        || (ours.len() < alone.len() && !fewer_ok)
        || ours.len() > alone.len()
    {
        return Err(format!("ours {ours:?}, actix alone {alone:?}"));
    }
    Ok(())
}

/// [`compare_answers`], as an assertion.
pub fn same_answers(ours: &[Resp], alone: &[Resp], what: &str) {
    if let Err(e) = compare_answers(ours, alone) {
        panic!("{what:?}: {e}");
    }
}

#[test]
fn bare_lf_and_mixed_line_ends_are_framed_as_actix_frames_them() {
    let (_up, p, data) = cached_server(100_000, "");
    let get_lf = format!("GET {PKG_URL} HTTP/1.1\nHost: x\n\n");
    // The example: a cached package asked with bare-LF line ends, then the metrics.
    let r = exchange(&p, format!("{get_lf}{METRICS_CLOSE}").as_bytes(), &[]);
    assert_eq!(statuses(&r), [200, 200], "{r:?}");
    assert!(r[0].body == data);
    assert!(String::from_utf8_lossy(&r[1].body).contains("pkgstash_requests_total"));
    // Mixed line ends, either way round, and leading empty lines.
    for head in [
        format!("GET {PKG_URL} HTTP/1.1\r\nHost: x\n\r\n"),
        format!("GET {PKG_URL} HTTP/1.1\nHost: x\r\n\r\n"),
        format!("GET {PKG_URL} HTTP/1.1\r\nHost: x\r\nAccept: */*\n\n"),
        format!("\r\nGET {PKG_URL} HTTP/1.1\r\nHost: x\r\n\r\n"),
    ] {
        let r = exchange(&p, format!("{head}{METRICS_CLOSE}").as_bytes(), &[]);
        assert_eq!(statuses(&r), [200, 200], "{head:?}: {r:?}");
        assert!(r[0].body == data, "{head:?}");
    }
    // A HEAD with bare LFs: no body is taken from the next response.
    let r = exchange(
        &p,
        format!("HEAD {PKG_URL} HTTP/1.1\nHost: x\n\n{METRICS_CLOSE}").as_bytes(),
        &[true],
    );
    assert_eq!(statuses(&r), [200, 200], "{r:?}");
    assert_eq!(r[0].header("content-length"), Some("100000"));
    // Hits on a keep-alive connection between requests actix answers, all pipelined.
    let get = format!("GET {PKG_URL} HTTP/1.1\r\nHost: x\r\n\r\n");
    let metrics = "GET /_pkgstash/metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    let r = exchange(
        &p,
        format!("{metrics}{get}{get_lf}{metrics}{get}{METRICS_CLOSE}").as_bytes(),
        &[],
    );
    assert_eq!(statuses(&r), [200, 200, 200, 200, 200, 200], "{r:?}");
    for i in [1, 2, 4] {
        assert!(r[i].body == data, "response {i}");
    }
    // Pipelined after a bare-LF head: a body that holds a request is never a request.
    let inner = format!("GET {PKG_URL} HTTP/1.1\r\nHost: x\r\n\r\n");
    let post = format!(
        "POST /_pkgstash/api/refresh HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n{inner}",
        inner.len()
    );
    let r = exchange(&p, format!("{get_lf}{post}{METRICS_CLOSE}").as_bytes(), &[]);
    assert_eq!(statuses(&r), [200, 200, 200], "{r:?}");
    assert!(String::from_utf8_lossy(&r[1].body).contains("dbs_checked"));
    assert!(String::from_utf8_lossy(&r[2].body).contains("pkgstash_requests_total"));
}

#[test]
fn pipelined_bodies_are_framed_as_actix_alone_frames_them() {
    let (_up, p, data) = cached_server(100_000, "");
    // The same cache, served by actix alone: the framing every stream must match.
    let (_up2, alone, _) = cached_server(100_000, "fast_path = false");
    let both = |bytes: &str| {
        let r = exchange(&p, bytes.as_bytes(), &[]);
        let want = exchange(&alone, bytes.as_bytes(), &[]);
        same_answers(&r, &want, bytes);
        r
    };
    let get_lf = format!("GET {PKG_URL} HTTP/1.1\nHost: x\n\n");
    let inner = format!("GET {PKG_URL} HTTP/1.1\r\nHost: x\r\n\r\n");
    // (A handler that answers before reading a body may make actix close the connection; one
    // that reads it keeps it open.)
    for (auth, status) in [("", 401), ("Authorization: Bearer framing-t0ken\r\n", 200)] {
        for body in [
            "Content-Length: 5\r\n\r\nhello".to_string(),
            format!("Content-Length: {}\r\n\r\n{inner}", inner.len()),
            format!(
                "Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{inner}\r\n0\r\n\r\n",
                inner.len()
            ),
            "Transfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\n\r\n".to_string(),
            // actix-http 3.11.2 reads a chunk-size line without digits as the last chunk.
            "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n\r\n\r\n".to_string(),
            "Transfer-Encoding: chunked\r\n\r\n;x=y\r\n\r\n".to_string(),
        ] {
            let post = format!("POST /_pkgstash/api/refresh HTTP/1.1\r\nHost: x\r\n{auth}{body}");
            let r = both(&format!("{get_lf}{post}{METRICS_CLOSE}"));
            assert!(r.len() >= 2 && r[0].body == data, "{post:?}: {r:?}");
            assert_eq!(r[1].status, status, "{post:?}: {r:?}");
            // Then only the metrics, if the connection went on.
            assert!(r.len() <= 3, "{post:?}: {r:?}");
            if let Some(m) = r.get(2) {
                assert!(String::from_utf8_lossy(&m.body).contains("pkgstash_requests_total"));
            }
        }
        // A trailer section (RFC 9112 §7.1.2): actix-http 3.11.2 reads none and drops the
        // connection at its first byte, whichever path the request takes: nothing after it is
        // answered, the POST at most (whether it is depends on timing, for actix alone too:
        // from one run to the next it answers the POST or not, so each path is held to that
        // rule rather than to the other's run).
        let post = format!(
            "POST /_pkgstash/api/refresh HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n"
        );
        let bytes = format!("{get_lf}{post}{METRICS_CLOSE}");
        for server in [&p, &alone] {
            let r = exchange(server, bytes.as_bytes(), &[]);
            assert!(!r.is_empty() && r[0].body == data, "{post:?}: {r:?}");
            assert!(r[1..].iter().all(|r| r.status == status), "{post:?}: {r:?}");
            assert!(r.len() <= 2, "{post:?}: {r:?}");
        }
    }
}

/// Trickle `prefix` and then a header line one byte per `gap` on `c` until the server answers
/// or closes; how long after the first trickled byte that took (`None`: not within `limit`).
fn trickle(c: &mut Raw, prefix: &[u8], gap: Duration, limit: Duration) -> Option<Duration> {
    let first = Instant::now();
    c.stream.set_nonblocking(true).expect("nonblocking");
    let line = b"GET /_pkgstash/metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    let mut bytes = prefix
        .iter()
        .chain(line.iter())
        .chain(std::iter::repeat(&b'a'));
    let answered = loop {
        if first.elapsed() > limit {
            break None;
        }
        let mut peek = [0u8; 1];
        match c.stream.peek(&mut peek) {
            Ok(_) => break Some(first.elapsed()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break Some(first.elapsed()),
        }
        if let Some(b) = bytes.next() {
            let _ = c.stream.write(std::slice::from_ref(b));
        }
        std::thread::sleep(gap);
    };
    c.stream.set_nonblocking(false).expect("blocking");
    answered
}

#[test]
fn a_trickled_head_gets_408_on_every_request_of_a_connection() {
    let (_up, p, data) = cached_server(10_000, "");
    let addr = p.addr;
    let get = format!("GET {PKG_URL} HTTP/1.1\r\nHost: x\r\n\r\n");
    let metrics = "GET /_pkgstash/metrics HTTP/1.1\r\nHost: x\r\n\r\n".to_string();
    let post = format!(
        "POST /_pkgstash/api/refresh HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 2\r\n\r\nhi"
    );
    // (what comes before the trickled head on the connection, its responses, the gap)
    let cases: Vec<(String, usize, u64)> = vec![
        (String::new(), 0, 150),
        (get.clone(), 1, 150),
        (metrics.clone(), 1, 150),
        (post, 1, 150),
        (format!("{get}{metrics}"), 2, 150),
        (String::new(), 0, 1000),
    ];
    let threads: Vec<_> = cases
        .into_iter()
        .map(|(before, answers, gap)| {
            let data = data.clone();
            std::thread::spawn(move || {
                let mut c = Raw::connect(addr);
                if !before.is_empty() {
                    c.send(before.as_bytes());
                    for _ in 0..answers {
                        let r = c.response(false).expect("answer before the trickle");
                        assert!(r.status < 500, "{r:?}");
                        if r.header("x-cache-status") == Some("hit") {
                            assert!(r.body == data);
                        }
                    }
                }
                let took = trickle(
                    &mut c,
                    b"",
                    Duration::from_millis(gap),
                    Duration::from_secs(12),
                );
                let r = c.response(false);
                (before, gap, took, r.map(|r| r.status))
            })
        })
        .collect();
    for t in threads {
        let (before, gap, took, status) = t.join().expect("thread");
        let took = took.unwrap_or_else(|| {
            panic!("{before:?} then a head trickled every {gap} ms: still open after 12 s")
        });
        assert!(
            took >= Duration::from_secs(4) && took < Duration::from_secs(8),
            "{before:?}, gap {gap} ms: answered after {took:?} (the head timeout is 5 s)"
        );
        assert_eq!(status, Some(408), "{before:?}, gap {gap} ms");
    }
}

#[test]
fn host_is_required_once_in_http11_on_both_paths() {
    let (_up, p, _data) = cached_server(1000, "");
    for target in [
        PKG_URL,
        "/_pkgstash/metrics",
        "/arch/core/os/x86_64/core.db",
    ] {
        for (head, want) in [
            (format!("GET {target} HTTP/1.1\r\n\r\n"), 400),
            (
                format!("GET {target} HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
                400,
            ),
            (
                format!("GET {target} HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"),
                400,
            ),
            (format!("GET {target} HTTP/1.0\r\n\r\n"), 0),
        ] {
            let r = exchange(&p, head.as_bytes(), &[]);
            let got = r.first().map(|r| r.status).unwrap_or(0);
            if want == 400 {
                assert_eq!(got, 400, "{head:?}: {r:?}");
            } else {
                assert_ne!(got, 400, "{head:?}: HTTP/1.0 needs no Host: {r:?}");
            }
        }
    }
}

#[test]
fn connection_close_wins_in_a_token_list_on_both_paths() {
    let (_up, p, data) = cached_server(1000, "");
    for target in [PKG_URL, "/_pkgstash/metrics"] {
        for conn in [
            "Connection: keep-alive, close\r\n",
            "Connection: close, keep-alive\r\n",
            "Connection: Keep-Alive\r\nConnection: CLOSE\r\n",
            "Connection: te,close\r\n",
        ] {
            let mut c = Raw::connect(p.addr);
            c.send(format!("GET {target} HTTP/1.1\r\nHost: x\r\n{conn}\r\n").as_bytes());
            let r = c.response(false).expect("response");
            assert_eq!(r.status, 200, "{target} {conn:?}");
            if target == PKG_URL {
                assert!(r.body == data);
            }
            assert!(
                c.closed_within(Duration::from_secs(3)),
                "{target} with {conn:?}: the connection must close after the response"
            );
        }
        // Without close, it stays open for the next request.
        let mut c = Raw::connect(p.addr);
        let req = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n");
        c.send(req.as_bytes());
        assert_eq!(c.response(false).expect("first").status, 200);
        c.send(req.as_bytes());
        assert_eq!(c.response(false).expect("second").status, 200);
    }
}

/// Read everything until the server ends the connection; the byte count.
fn drain(c: &mut Raw) -> usize {
    c.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut n = c.pending().len();
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        match c.stream.read(&mut chunk) {
            Ok(0) | Err(_) => return n,
            Ok(k) => n += k,
        }
    }
}

/// A connection whose receive buffer is small (the server's sends block soon).
fn small_window(p: &Pkgstash) -> Raw {
    let s =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    s.set_recv_buffer_size(4096).expect("rcvbuf");
    s.connect(&p.addr.into()).expect("connect");
    let stream: std::net::TcpStream = s.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let mut c = Raw::connect(p.addr);
    c.stream = stream;
    c
}

#[test]
fn a_client_that_never_reads_is_cut_off_after_the_send_timeout() {
    let len = 48 << 20;
    let (_up, p, _data) = cached_server(len, "send_timeout = \"2s\"");
    let requests = [
        // The fast path (sendfile)...
        format!("GET {PKG_URL} HTTP/1.1\r\nHost: x\r\n\r\n"),
        // ... and actix (a range: the mirror handler).
        format!("GET {PKG_URL} HTTP/1.1\r\nHost: x\r\nRange: bytes=1-\r\n\r\n"),
    ];
    let conns: Vec<Raw> = requests
        .iter()
        .map(|req| {
            let mut c = small_window(&p);
            c.send(req.as_bytes());
            c
        })
        .collect();
    std::thread::sleep(Duration::from_secs(5));
    for (mut c, req) in conns.into_iter().zip(&requests) {
        let got = drain(&mut c);
        assert!(
            got < len / 2,
            "{req:?}: the server kept sending to a client that did not read ({got} bytes)"
        );
    }
    wait_for("send timeouts logged", Duration::from_secs(5), || {
        p.log().matches("send timeout").count() >= 2
    });
    // Each cut-off request has its access-log line, with what was sent.
    let log = p.log();
    for status in ["200", "206"] {
        let line = log
            .lines()
            .find(|l| {
                l.contains("pkgstash::access") && l.contains(&format!("HTTP/1.1\" {status} "))
            })
            .unwrap_or_else(|| panic!("no access-log line with {status}:\n{log}"));
        let sent: usize = line
            .split(&format!("HTTP/1.1\" {status} "))
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("bytes in {line}"));
        assert!(sent < len, "{line}");
    }
}

/// Value of `name` in the Prometheus text of `p`.
fn metric(p: &Pkgstash, name: &str) -> f64 {
    metric_sample(&p.metrics(), name).unwrap_or(0.0)
}

#[test]
fn aborted_transfers_are_logged_and_counted_once_on_both_paths() {
    let len = 32 << 20;
    let (_up, p, _data) = cached_server(len, "");
    for (i, (extra, status)) in [("", "200"), ("Range: bytes=1-\r\n", "206")]
        .iter()
        .enumerate()
    {
        let mut c = small_window(&p);
        c.send(format!("GET {PKG_URL} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").as_bytes());
        let mut some = vec![0u8; 100_000];
        c.stream.read_exact(&mut some).expect("some bytes");
        // Gone with unread bytes: a reset; the server's next send fails.
        drop(c);
        let needle = format!("\"GET {PKG_URL} HTTP/1.1\" {status} ");
        wait_for(
            &format!("access-log line {needle}"),
            Duration::from_secs(10),
            || p.log().contains(&needle),
        );
        let log = p.log();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(&needle)).collect();
        assert_eq!(lines.len(), 1, "{log}");
        let sent: usize = lines[0]
            .split(&needle)
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("bytes");
        assert!(sent >= 100_000 && sent < len, "{}", lines[0]);
        assert_eq!(
            metric(&p, "pkgstash_requests_total{result=\"hit\"}"),
            (i + 1) as f64
        );
    }
}
