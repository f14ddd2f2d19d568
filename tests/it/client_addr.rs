//! Who the client is behind a load balancer (`trusted_proxies`): a trusted peer's
//! `X-Forwarded-For` names the client (right-most untrusted entry) in the access log (both
//! front-end paths) and for the admin-auth failure limiter; an untrusted peer's header
//! changes nothing. Clients connect from distinct loopback addresses (127.0.0.0/8).

use std::net::IpAddr;
use std::time::Duration;

use crate::support::{arch_config, metric_sample, wait_for, Pkgstash};
use crate::upstream::{payload, FakeMirror};

const TOKEN: &str = "t0ken-client-addr-71c3";
const PKG: &str = "/core/os/x86_64/foo-1.0-1-x86_64.pkg.tar.zst";
const PKG_URL: &str = "/arch/core/os/x86_64/foo-1.0-1-x86_64.pkg.tar.zst";

/// A client whose connections come from `ip`.
fn client_from(ip: &str) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .local_address(ip.parse::<IpAddr>().expect("ip"))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// `GET path` from `c` with `token` and an `X-Forwarded-For`: the status.
fn call(p: &Pkgstash, c: &reqwest::blocking::Client, path: &str, token: &str, xff: &str) -> u16 {
    let resp = c
        .get(p.url(path))
        .bearer_auth(token)
        .header("x-forwarded-for", xff)
        .send()
        .expect("request");
    let status = resp.status().as_u16();
    let _ = resp.bytes();
    status
}

fn start() -> (FakeMirror, Pkgstash) {
    let m = FakeMirror::start();
    m.put(PKG, payload(5000, 3));
    let p = Pkgstash::start_env(
        &arch_config("5s", &[m.url()], "trusted_proxies = [\"127.0.0.1\"]\n"),
        &[("PKGSTASH_TOKEN", TOKEN)],
    );
    (m, p)
}

/// Access-log lines of `client` for requests whose line starts with `request`.
/// How long an access-log line may take to appear after its client has read the answer.
const LOG_WAIT: Duration = Duration::from_secs(10);

fn logged_for(p: &Pkgstash, client: &str, request: &str) -> usize {
    p.log()
        .lines()
        .filter(|l| l.contains(&format!(" {client} \"{request}")))
        .count()
}

#[test]
fn forged_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    let (_m, p) = start();
    let attacker = client_from("127.0.0.3");
    for i in 0..20 {
        let status = call(
            &p,
            &attacker,
            "/_pkgstash/api/status",
            "guess",
            &format!("192.0.2.{i}"),
        );
        assert_eq!(status, 401);
    }
    // Blocked as itself, whatever address it claims next.
    assert_eq!(
        call(
            &p,
            &attacker,
            "/_pkgstash/api/status",
            TOKEN,
            "198.51.100.1"
        ),
        429
    );
    // Another client is not.
    assert_eq!(
        call(
            &p,
            &client_from("127.0.0.4"),
            "/_pkgstash/api/status",
            TOKEN,
            "127.0.0.3"
        ),
        200
    );
    // The log names the peer, on both paths (a package: the sendfile front end; the API: actix).
    assert_eq!(call(&p, &attacker, PKG_URL, "", "192.0.2.99"), 200);
    assert_eq!(call(&p, &attacker, PKG_URL, "", "192.0.2.99"), 200);
    // (access-log lines are written when a transfer has ended: waited for, then read whole)
    wait_for("both package GETs logged for the peer", LOG_WAIT, || {
        logged_for(&p, "127.0.0.3", &format!("GET {PKG_URL}")) >= 2
    });
    wait_for("every admin call logged for the peer", LOG_WAIT, || {
        logged_for(&p, "127.0.0.3", "GET /_pkgstash/api/status") >= 21
    });
    let log = p.log();
    assert!(
        !log.contains(" 192.0.2.") && !log.contains(" 198.51.100.1"),
        "{log}"
    );
    assert!(log.contains("from 127.0.0.3: wrong token"), "{log}");
    assert_eq!(
        metric_sample(&p.metrics(), "pkgstash_admin_blocked_clients"),
        Some(1.0)
    );
}

#[test]
fn a_trusted_proxy_names_the_client() {
    let (_m, p) = start();
    let balancer = client_from("127.0.0.1");
    // A forged left part stays left of what the balancer appended: the client is 192.0.2.7.
    for _ in 0..20 {
        let status = call(
            &p,
            &balancer,
            "/_pkgstash/api/status",
            "guess",
            "6.6.6.6, 192.0.2.7",
        );
        assert_eq!(status, 401);
    }
    assert_eq!(
        call(&p, &balancer, "/_pkgstash/api/status", TOKEN, "192.0.2.7"),
        429,
        "the client behind the balancer is blocked"
    );
    assert_eq!(
        call(&p, &balancer, "/_pkgstash/api/status", TOKEN, "192.0.2.8"),
        200,
        "not every client behind the balancer"
    );
    assert_eq!(call(&p, &balancer, PKG_URL, "", "192.0.2.7"), 200);
    assert_eq!(call(&p, &balancer, PKG_URL, "", "192.0.2.7"), 200);
    // A request's access-log line is written when its transfer has ended, which may be just
    // after the client has read the last byte: waited for.
    wait_for("both package GETs logged for the client", LOG_WAIT, || {
        logged_for(&p, "192.0.2.7", &format!("GET {PKG_URL}")) >= 2
    });
    wait_for("every admin call logged for the client", LOG_WAIT, || {
        logged_for(&p, "192.0.2.7", "GET /_pkgstash/api/status") >= 21
    });
    let log = p.log();
    assert!(!log.contains(" 6.6.6.6"), "{log}");
    assert!(log.contains("from 192.0.2.7: wrong token"), "{log}");
}
