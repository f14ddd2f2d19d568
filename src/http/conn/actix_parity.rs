//! Differential test of the front end's framing ([`frame`], [`RequestBytes`]) against the
//! HTTP/1 codec of the linked actix-http itself (`actix_http::h1::Codec`, what its dispatcher
//! decodes requests with), over byte streams from a grammar: request heads (methods, versions,
//! line ends, `Host`, `Connection`, `Content-Length`, `Transfer-Encoding`, `Upgrade`, folded and
//! random fields), bodies good and bad (lengths off by a few bytes; chunked with extensions,
//! trailers, empty sizes, bad line ends), pipelined, mixed with raw bytes. Both must find the
//! same requests: the same head and body lengths, the same refusals, the same keep-alive; and
//! the front end's view of the rules actix leaves out (faulty framing, `Host`, `close` in a
//! token list) must be the middleware's ([`crate::http::request_rules`]).
//!
//! `PROPTEST_CASES` sets the number of cases (default 4096).

use actix_codec::Decoder as _;
use actix_http::error::ParseError;
use actix_http::h1::{Codec, Message, MessageType};
use bytes::BytesMut;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::http::conn::http1::{frame, BodyKind, ConnectionType, Frame};
use crate::http::conn::http1_body::RequestBytes;
use crate::http::request_rules::{judge, Verdict};

/// How a body is delimited, as both sides can say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    None,
    /// `Content-Length` or chunked.
    Counted,
    /// Until the connection closes.
    Rest,
}

/// One step of framing a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Head {
        len: usize,
        body: Body,
        keep_alive: bool,
        upgrade: bool,
        /// (faulty framing, HTTP/1.1 without one `Host`, `close` listed)
        rules: (bool, bool, bool),
    },
    /// A counted body of `n` bytes, complete.
    BodyEnd(usize),
    /// A counted body, `n` bytes so far, more to come.
    BodyPartial(usize),
    /// A counted body malformed at its `n`-th byte: the connection is dropped.
    BodyError(usize),
    /// An incomplete head.
    Partial,
    /// A head actix refuses (400 or 431).
    Refused,
}

/// The steps actix-http's codec takes over `stream`.
fn actix_steps(stream: &[u8]) -> Vec<Step> {
    let mut codec = Codec::default();
    let mut buf = BytesMut::from(stream);
    let mut steps = Vec::new();
    loop {
        let before = buf.len();
        let req = match codec.decode(&mut buf) {
            Ok(Some(Message::Item(req))) => req,
            Ok(Some(Message::Chunk(_))) => unreachable!("a chunk without a request"),
            Ok(None) => {
                steps.push(Step::Partial);
                return steps;
            }
            Err(_) => {
                steps.push(Step::Refused);
                return steps;
            }
        };
        let body = match codec.message_type() {
            MessageType::None => Body::None,
            MessageType::Payload => Body::Counted,
            MessageType::Stream => Body::Rest,
        };
        let (verdict, close) = judge(req.head());
        steps.push(Step::Head {
            len: before - buf.len(),
            body,
            keep_alive: codec.keep_alive(),
            upgrade: codec.upgrade(),
            rules: (
                verdict == Verdict::FaultyFraming,
                verdict == Verdict::Host,
                close,
            ),
        });
        match body {
            Body::None => continue,
            Body::Rest => return steps,
            Body::Counted => {}
        }
        let mut n = 0;
        loop {
            let before = buf.len();
            let item = codec.decode(&mut buf);
            n += before - buf.len();
            match item {
                Ok(Some(Message::Chunk(Some(_)))) => {}
                Ok(Some(Message::Chunk(None))) => {
                    steps.push(Step::BodyEnd(n));
                    break;
                }
                Ok(Some(Message::Item(_))) => unreachable!("a request inside a body"),
                Ok(None) => {
                    steps.push(Step::BodyPartial(n));
                    return steps;
                }
                Err(ParseError::Io(_)) => {
                    steps.push(Step::BodyError(n));
                    return steps;
                }
                Err(e) => panic!("a body error that is not I/O: {e:?}"),
            }
        }
    }
}

/// The steps the front end takes over `stream`.
fn our_steps(stream: &[u8]) -> Vec<Step> {
    let mut rest = stream;
    let mut steps = Vec::new();
    loop {
        let head = match frame(rest) {
            Frame::Head(h) => h,
            Frame::Partial => {
                steps.push(Step::Partial);
                return steps;
            }
            Frame::Invalid | Frame::TooLarge => {
                steps.push(Step::Refused);
                return steps;
            }
        };
        let body = match head.body {
            BodyKind::None => Body::None,
            BodyKind::Length(_) | BodyKind::Chunked => Body::Counted,
            BodyKind::UntilClose => Body::Rest,
        };
        steps.push(Step::Head {
            len: head.len,
            body,
            keep_alive: head.connection == ConnectionType::KeepAlive,
            upgrade: head.connection == ConnectionType::Upgrade,
            rules: (
                head.faulty_framing,
                !head.faulty_framing && head.minor_version == 1 && head.count("host") != 1,
                head.close_requested,
            ),
        });
        if body == Body::Rest {
            return steps;
        }
        let mut request = RequestBytes::new(head.len, head.body);
        let taken = request.take(rest);
        rest = &rest[taken..];
        let n = taken - head.len;
        if request.ended() {
            if body == Body::Counted {
                steps.push(Step::BodyEnd(n));
            }
            continue;
        }
        steps.push(if request.malformed() {
            Step::BodyError(n)
        } else {
            Step::BodyPartial(n)
        });
        return steps;
    }
}

fn pick(v: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::sample::select(v).prop_map(String::from)
}

fn eol() -> impl Strategy<Value = &'static str> {
    prop_oneof![12 => Just("\r\n"), 3 => Just("\n"), 1 => Just("\r"), 1 => Just("\r\r\n")]
}

fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => pick(&["Host: x", "host: y", "Host:", "HOST : x"]),
        4 => pick(&[
            "keep-alive", "close", "upgrade", "Keep-Alive", "CLOSE", "keep-alive, close",
            "close, keep-alive", "upgrade, close", "te", " close ", "close\u{1}", "",
        ])
        .prop_map(|v| format!("Connection: {v}")),
        3 => pick(&["0", "1", "3", "+3", "-1", " 3 ", "3, 3", "abc", "0x3", "18446744073709551616", ""])
            .prop_map(|v| format!("Content-Length: {v}")),
        3 => pick(&["chunked", "Chunked ", "identity", "gzip", "gzip, chunked", "chunked, chunked", "", "chunked\u{1}"])
            .prop_map(|v| format!("Transfer-Encoding: {v}")),
        1 => pick(&["websocket", "WebSocket", "h2c"]).prop_map(|v| format!("Upgrade: {v}")),
        1 => pick(&["100-continue", "100-x", "nope"]).prop_map(|v| format!("Expect: {v}")),
        1 => Just(" folded".to_string()),
        1 => Just("X-Obs: caf\u{e9}".to_string()),
        2 => "[A-Za-z-]{1,8}: [ -~]{0,12}",
    ]
}

fn chunked_body() -> impl Strategy<Value = Vec<u8>> {
    let chunk = prop_oneof![
        6 => prop::collection::vec(any::<u8>(), 1..9).prop_map(|b| {
            let mut c = format!("{:x}\r\n", b.len()).into_bytes();
            c.extend(b);
            c.extend(b"\r\n");
            c
        }),
        1 => pick(&["3;x=y\r\nabc\r\n", "2 \t;a\r\nab\r\n", "1 1\r\na\r\n", "1\nb\r\n",
            "2\r\nabc\r\n", "1;\u{1}\r\na\r\n", "g\r\n", "01\r\nz\r\n"])
            .prop_map(String::into_bytes),
    ];
    let end = pick(&[
        "0\r\n\r\n",
        "0\r\n\r\n",
        "0;e\r\n\r\n",
        "0\r\nT: 1\r\n\r\n",
        "\r\n\r\n",
        ";x\r\n\r\n",
        "0\r\n\n",
        "0\n\n",
        "00\r\n\r\n",
        "0 \r\n\r\n",
        "",
    ]);
    (prop::collection::vec(chunk, 0..3), end).prop_map(|(chunks, end)| {
        let mut body = chunks.concat();
        body.extend(end.into_bytes());
        body
    })
}

/// A request: head, and a body announced (or not, or wrongly).
fn request() -> impl Strategy<Value = Vec<u8>> {
    let method = pick(&[
        "GET", "GET", "HEAD", "POST", "PUT", "CONNECT", "OPTIONS", "G T", "GET\u{0}",
    ]);
    let target = pick(&[
        "/",
        "/a/b.pkg.tar.zst",
        "*",
        "http://h/x",
        "/a?b",
        "/%zz",
        "/\u{7f}",
        "x:1",
    ]);
    let version = pick(&[
        "HTTP/1.1",
        "HTTP/1.1",
        "HTTP/1.0",
        "HTTP/2.0",
        "HTTP/1.1 x",
        "http/1.1",
    ]);
    let body = prop_oneof![
        3 => Just((None, Vec::new())),
        2 => (prop::collection::vec(any::<u8>(), 0..9), -2i64..3).prop_map(|(b, skew)| {
            let declared = (b.len() as i64 + skew).max(0);
            (Some(format!("Content-Length: {declared}")), b)
        }),
        2 => chunked_body().prop_map(|b| (Some("Transfer-Encoding: chunked".to_string()), b)),
        1 => prop::collection::vec(any::<u8>(), 0..9).prop_map(|b| (None, b)),
    ];
    (
        method,
        target,
        version,
        eol(),
        prop::collection::vec((field(), eol()), 0..6),
        any::<prop::sample::Index>(),
        body,
        eol(),
        eol(),
    )
        .prop_map(|(m, t, v, e0, mut fields, at, (announce, body), e1, e2)| {
            if let Some(a) = announce {
                let i = at.index(fields.len() + 1);
                fields.insert(i, (a, e1));
            }
            let mut out = format!("{m} {t} {v}{e0}").into_bytes();
            for (f, e) in fields {
                out.extend(f.into_bytes());
                out.extend(e.as_bytes());
            }
            out.extend(e2.as_bytes());
            out.extend(body);
            out
        })
}

fn stream() -> impl Strategy<Value = Vec<u8>> {
    let item = prop_oneof![
        8 => request(),
        1 => prop::collection::vec(any::<u8>(), 1..24),
        1 => pick(&["\r\n", "\n", "\r\n\r\n"]).prop_map(String::into_bytes),
    ];
    prop::collection::vec(item, 1..5).prop_map(|items| items.concat())
}

fn check(stream: &[u8]) -> Result<(), TestCaseError> {
    let actix = actix_steps(stream);
    let ours = our_steps(stream);
    prop_assert_eq!(
        &ours,
        &actix,
        "{:?}: ours, then actix-http's",
        String::from_utf8_lossy(stream)
    );
    Ok(())
}

#[actix_rt::test]
async fn every_stream_is_framed_as_the_linked_actix_http_frames_it() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    if let Err(e) = runner.run(&stream(), |bytes| check(&bytes)) {
        panic!("{e}");
    }
}

/// The differences from later actix-http versions, each as a stream both must frame alike.
#[actix_rt::test]
async fn the_known_differences_are_framed_alike() {
    for stream in [
        // No Host, two Hosts: accepted (the 400 is the middleware's).
        &b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"[..],
        b"GET / HTTP/1.0\r\nHost: x\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        // Connection: the last field, whole.
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nConnection: te\r\n\r\n",
        b"GET / HTTP/1.0\r\nConnection: keep-alive, te\r\n\r\n",
        // Transfer-Encoding: ignored in HTTP/1.0; identity ignored; chunked over a length.
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\nGET / HTTP/1.0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\nContent-Length: 2\r\n\r\nabGET / HTTP/1.1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        // Chunk sizes without digits; extensions; a trailer (malformed for 3.11.2).
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n;x\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\n\r\n",
    ] {
        let ours = our_steps(stream);
        assert_eq!(ours, actix_steps(stream), "{:?}", String::from_utf8_lossy(stream));
        assert!(ours.len() > 1, "{ours:?}");
    }
}
