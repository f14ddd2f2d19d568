//! Over raw sockets, on both paths (pkgstash's front end, and actix alone with
//! `fast_path = false`): requests the linked actix-http (3.11.2) reads although RFC 9112 calls
//! their framing faulty get `400` and the connection closes, with nothing smuggled in them
//! answered; `close` anywhere in a `Connection` token list closes the connection; an HTTP/1.0
//! request ends its connection whatever its `Host` fields.
//!
//! (actix alone may still answer requests it had already read when it sent a response that
//! closes the connection; the front end answers nothing after one. So actix alone gets its
//! faulty request by itself.)

use std::time::Duration;

use crate::framing::{cached_server, closes, exchange, statuses, PKG_URL, TOKEN};
use crate::rawhttp::Raw;

const METRICS_CLOSE: &str =
    "GET /_pkgstash/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

#[test]
fn faulty_framing_is_answered_400_and_closes_on_both_paths() {
    let (_up, fast, _) = cached_server(1000, "");
    let (_up2, alone, _) = cached_server(1000, "fast_path = false");
    // A request a proxy could frame otherwise: what follows its head is a cached package's GET.
    let inner = format!("GET {PKG_URL} HTTP/1.1\r\nHost: x\r\n\r\n");
    let refresh = format!(
        "POST /_pkgstash/api/refresh HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
    );
    let cases = [
        // HTTP/1.0 with Transfer-Encoding (actix-http 3.11.2 ignores it): RFC 9112 §6.1.
        format!(
            "GET {PKG_URL} HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{inner}\r\n0\r\n\r\n",
            inner.len()
        ),
        format!(
            "POST /_pkgstash/api/refresh HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{inner}"
        ),
        // Not chunked (3.11.2 ignores `identity`): §6.3.
        format!("GET {PKG_URL} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n{inner}"),
        format!("{refresh}Transfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello{inner}"),
        // Both Content-Length and Transfer-Encoding (3.11.2 reads the chunks): §6.1.
        format!(
            "{refresh}Content-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{inner}",
            5 + inner.len()
        ),
        format!(
            "GET {PKG_URL} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n0\r\n\r\n{inner}"
        ),
    ];
    for case in &cases {
        let r = exchange(&fast, format!("{case}{METRICS_CLOSE}").as_bytes(), &[]);
        assert_eq!(statuses(&r), [400], "front end: {case:?}: {r:?}");
        assert!(closes(&r[0]), "front end: {case:?}: {r:?}");
        let r = exchange(&alone, case.as_bytes(), &[]);
        assert!(
            r.first().is_some_and(|r| r.status == 400 && closes(r)),
            "actix alone: {case:?}: {r:?}"
        );
    }
}

#[test]
fn close_in_a_connection_token_list_closes_on_actix_alone_too() {
    let (_up, alone, data) = cached_server(1000, "fast_path = false");
    for target in [PKG_URL, "/_pkgstash/metrics"] {
        for conn in [
            "Connection: keep-alive, close\r\n",
            "Connection: close\r\nConnection: te\r\n",
            "Connection: upgrade, close\r\n",
        ] {
            let mut c = Raw::connect(alone.addr);
            c.send(format!("GET {target} HTTP/1.1\r\nHost: x\r\n{conn}\r\n").as_bytes());
            let r = c.response(false).expect("response");
            assert_eq!(r.status, 200, "{target} {conn:?}");
            assert!(target != PKG_URL || r.body == data);
            assert!(closes(&r), "{target} {conn:?}: {r:?}");
            assert!(
                c.closed_within(Duration::from_secs(3)),
                "{target} with {conn:?}: the connection must close after the response"
            );
        }
    }
}

#[test]
fn an_http10_request_ends_its_connection_whatever_its_host_fields() {
    let (_up, fast, data) = cached_server(1000, "");
    for hosts in ["", "Host: x\r\n", "Host: x\r\nHost: y\r\n"] {
        for target in [PKG_URL, "/_pkgstash/metrics"] {
            let get = format!("GET {target} HTTP/1.0\r\n{hosts}\r\n");
            let r = exchange(&fast, format!("{get}{METRICS_CLOSE}").as_bytes(), &[]);
            assert_eq!(statuses(&r), [200], "{get:?}: {r:?}");
            assert!(closes(&r[0]), "{get:?}: {r:?}");
            assert!(target != PKG_URL || r[0].body == data);
        }
    }
}

/// A request answered without its body being read (here: no `Host`, 400) keeps its connection
/// on both paths, whether it comes first or pipelined: its body is never taken for a request.
#[test]
fn an_unread_body_is_dropped_and_the_connection_goes_on_on_both_paths() {
    let (_up, fast, _) = cached_server(1000, "");
    let (_up2, alone, _) = cached_server(1000, "fast_path = false");
    let metrics = "GET /_pkgstash/metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    for first in ["", metrics] {
        for body in [
            "Content-Length: 5\r\n\r\nhello",
            "Content-Length: 0\r\n\r\n",
        ] {
            let bytes = format!("{first}POST /_pkgstash/metrics HTTP/1.1\r\n{body}{METRICS_CLOSE}");
            let want: Vec<u16> = if first.is_empty() {
                vec![400, 200]
            } else {
                vec![200, 400, 200]
            };
            for server in [&fast, &alone] {
                let r = exchange(server, bytes.as_bytes(), &[]);
                assert_eq!(statuses(&r), want, "{bytes:?}: {r:?}");
            }
        }
    }
}
