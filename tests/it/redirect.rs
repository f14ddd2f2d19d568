//! Mirrors as they are in the wild: redirectors (GeoIP, http→https), credentials in a mirror
//! URL. Redirects are followed from configured mirrors only (a few hops, http/https only),
//! resumes go to where the body came from, credentials never leave the mirror's host and are
//! never shown.

use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use crate::admin::cli;
use crate::support::{arch_config, client, sha256_hex, wait_for, Pkgstash};
use crate::upstream::{payload, Behaviour, FakeMirror};

const PKG: &str = "/core/os/x86_64/bar-1.0-1-x86_64.pkg.tar.zst";
const PKG_URL: &str = "/arch/core/os/x86_64/bar-1.0-1-x86_64.pkg.tar.zst";
const CACHED: &str = "arch/core/os/x86_64/bar-1.0-1-x86_64.pkg.tar.zst";
const TOKEN: &str = "redirect-test-token-77";

fn start(mirrors: &[String], env: &[(&str, &str)]) -> Pkgstash {
    Pkgstash::start_env(&arch_config("2s", mirrors, ""), env)
}

/// A mirror answering every request with `status` (a 3xx) to the same path on `target`.
fn redirecting_to(target: &FakeMirror, status: u16) -> FakeMirror {
    let m = FakeMirror::start();
    m.set(Behaviour::Redirect(
        status,
        format!("{}{{path}}", target.url()),
    ));
    m
}

#[test]
fn redirect_to_another_host_is_followed_logged_and_shown() {
    let target = FakeMirror::start();
    let data = payload(300_000, 41);
    target.put(PKG, data.clone());
    let redirector = redirecting_to(&target, 302);
    let p = start(&[redirector.url()], &[("PKGSTASH_TOKEN", TOKEN)]);
    let (s, body) = p.get(PKG_URL);
    assert_eq!(s, 200, "a redirecting mirror is followed");
    assert_eq!(body.expect("body"), data);
    assert_eq!(p.wait_cached(CACHED), data);
    assert_eq!((redirector.count(PKG), target.count(PKG)), (1, 1));
    // The final URL is in the log (written just after the file is in place, so waited for);
    // status (JSON and the CLI table) says the mirror redirects.
    let via = format!("via {}{PKG}", target.url());
    wait_for(
        "the log line of the download",
        Duration::from_secs(5),
        || p.log().contains(&via),
    );
    let status = client()
        .get(p.url("/_pkgstash/status.json"))
        .send()
        .expect("status")
        .text()
        .expect("text");
    let v: Value = serde_json::from_str(&status).expect("json");
    assert_eq!(v["mirrors"][0]["url"], redirector.url());
    assert_eq!(v["mirrors"][0]["redirects_to"], target.url());
    assert_eq!(v["mirrors"][0]["failures"], 0);
    let (code, out, err) = cli(&p, &["mirrors"], Some(TOKEN));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("REDIRECTS TO") && out.contains(&target.url()),
        "{out}"
    );
}

#[test]
fn relative_and_chained_redirects_are_resolved() {
    let target = FakeMirror::start();
    let data = payload(100_000, 42);
    // The target moved its tree: a relative Location on the same host.
    target.put(&format!("/moved{PKG}"), data.clone());
    target.set(Behaviour::Redirect(301, "/moved{path}".into()));
    let hop = redirecting_to(&target, 307);
    let p = start(&[hop.url()], &[]);
    let (s, body) = p.get(PKG_URL);
    assert_eq!((s, body.expect("body")), (200, data));
    assert_eq!(target.count(&format!("/moved{PKG}")), 1);
    assert_eq!(
        p.status_json()["mirrors"][0]["redirects_to"],
        format!("{}/moved", target.url())
    );
}

#[test]
fn redirect_loops_and_other_schemes_fail_cleanly() {
    let looping = FakeMirror::start();
    looping.set(Behaviour::Redirect(302, "{path}".into()));
    let p = start(&[looping.url()], &[]);
    let (s, _) = p.get(PKG_URL);
    assert_eq!(s, 502);
    // The first request and five redirects, then the mirror is given up.
    assert_eq!(looping.count(PKG), 6);
    assert!(p.log().contains("more than 5 redirects"), "{}", p.log());

    let to_file = FakeMirror::start();
    to_file.set(Behaviour::Redirect(302, "file:///etc/passwd".into()));
    let to_ftp = FakeMirror::start();
    to_ftp.set(Behaviour::Redirect(301, "ftp://127.0.0.1/x".into()));
    let p = start(&[to_file.url(), to_ftp.url()], &[]);
    let (s, body) = p.get(PKG_URL);
    assert_eq!(s, 502);
    assert!(!String::from_utf8_lossy(&body.expect("body")).contains("root:"));
    let log = p.log();
    assert!(
        log.contains("to a file: URL, refused") && log.contains("to a ftp: URL, refused"),
        "{log}"
    );
    assert!(!p.cache_dir.join(CACHED).exists());
}

#[test]
fn resume_goes_to_the_url_the_body_came_from() {
    let target = FakeMirror::start();
    let data = payload(2 << 20, 43);
    target.put(PKG, data.clone());
    target.set(Behaviour::CloseOnceAfter(700_000));
    let redirector = redirecting_to(&target, 302);
    let p = start(&[redirector.url()], &[]);
    let (s, body) = p.get(PKG_URL);
    assert_eq!(s, 200);
    assert_eq!(sha256_hex(&body.expect("no error")), sha256_hex(&data));
    assert_eq!(p.wait_cached(CACHED), data);
    // Asked once; the resume went straight to the host that sent the first 700,000 bytes.
    assert_eq!(redirector.count(PKG), 1);
    let seen = target.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].range.as_deref(), Some("bytes=700000-"));
    assert_eq!(
        target.body_bytes(),
        data.len() as u64,
        "no byte fetched twice"
    );
}

fn basic(user: &str, password: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {b64}")
}

#[test]
fn credentials_in_a_mirror_url_are_sent_and_never_shown() {
    let m = FakeMirror::start();
    let data = payload(80_000, 44);
    m.put(PKG, data.clone());
    m.set(Behaviour::RequireAuth(basic("alice", "s3cr@t/pw")));
    let with_creds = format!("http://alice:s3cr%40t%2Fpw@127.0.0.1:{}/", m.port);
    let p = start(
        &[with_creds],
        &[("PKGSTASH_TOKEN", TOKEN), ("RUST_LOG", "debug")],
    );
    let (s, body) = p.get(PKG_URL);
    assert_eq!((s, body.expect("body")), (200, data));
    assert_eq!(m.seen()[0].authorization, Some(basic("alice", "s3cr@t/pw")));
    // Shown redacted everywhere: status.json (public), admin API, CLI, logs.
    let shown = format!("http://alice:***@127.0.0.1:{}", m.port);
    let status = client()
        .get(p.url("/_pkgstash/status.json"))
        .send()
        .expect("status")
        .text()
        .expect("text");
    let v: Value = serde_json::from_str(&status).expect("json");
    assert_eq!(v["mirrors"][0]["url"], shown.as_str());
    let api = client()
        .get(p.url("/_pkgstash/api/mirrors"))
        .bearer_auth(TOKEN)
        .send()
        .expect("api")
        .text()
        .expect("text");
    let (code, table, err) = cli(&p, &["mirrors"], Some(TOKEN));
    assert_eq!(code, 0, "{err}");
    assert!(table.contains(&shown), "{table}");
    let (code, config, err) = cli(&p, &["check-config"], None);
    assert_eq!(code, 0, "{err}");
    assert!(config.contains(&shown), "{config}");
    for (what, text) in [
        ("status.json", status.as_str()),
        ("admin API", api.as_str()),
        ("CLI", table.as_str()),
        ("check-config", config.as_str()),
        ("log", p.log().as_str()),
    ] {
        assert!(
            !text.contains("s3cr") && !text.contains(&basic("alice", "s3cr@t/pw")[6..]),
            "{what} shows the password:\n{text}"
        );
    }
}

#[test]
fn credentials_do_not_follow_a_redirect_to_another_host() {
    let other_host = FakeMirror::start();
    let data = payload(50_000, 45);
    other_host.put(PKG, data.clone());
    let own = redirecting_to(&other_host, 302);
    let sig = format!("{PKG}.sig");
    own.put(&format!("/moved{sig}"), b"signature".to_vec());
    let p = start(&[format!("http://bob:hunter2@127.0.0.1:{}", own.port)], &[]);
    let (s, body) = p.get(PKG_URL);
    assert_eq!((s, body.expect("body")), (200, data));
    let auth = Some(basic("bob", "hunter2"));
    assert_eq!(own.seen()[0].authorization, auth);
    assert_eq!(
        other_host.seen()[0].authorization,
        None,
        "credentials sent to another host"
    );
    // A redirect within the mirror's own origin keeps them.
    own.set(Behaviour::Redirect(302, "/moved{path}".into()));
    let (s, body) = p.get(&format!("{PKG_URL}.sig"));
    assert_eq!((s, body.expect("body")), (200, b"signature".to_vec()));
    let moved = own
        .seen()
        .into_iter()
        .find(|r| r.path == format!("/moved{sig}"))
        .expect("followed");
    assert_eq!(moved.authorization, auth);
}
