//! The `pkgstash` command line: exit codes and messages for good and bad configs.

use std::process::Command;

use crate::support::{bin, exit_and_output, must};

fn run(args: &[&str], config: Option<&str>, env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("PKGSTASH_TOKEN")
        .env_remove("PKGSTASH_CONFIG");
    if let Some(c) = config {
        let p = dir.path().join("pkgstash.toml");
        std::fs::write(&p, c).expect("write");
        cmd.arg("-c").arg(&p);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    exit_and_output(&cmd.output().expect("run pkgstash"))
}

const GOOD: &str = "cache_dir = \"/tmp/x\"\n[upstreams.archlinux]\nmirrors = [\"https://geo.mirror.pkgbuild.com\"]\n";

#[test]
fn check_config_prints_effective_config_and_redacts_token() {
    let (code, out, err) = run(
        &["check-config"],
        Some(GOOD),
        &[
            ("PKGSTASH_TOKEN", "hunter2-token"),
            ("PKGSTASH__DB_MAX_AGE", "2m"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("[upstreams.archlinux]"), "{out}");
    assert!(out.contains("db_max_age = \"2m\""), "{out}");
    assert!(!out.contains("hunter2") && !err.contains("hunter2"));
}

#[test]
fn sample_config_is_valid() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/config/pkgstash.toml");
    must(
        Command::new(bin()).args(["check-config", "-c", sample]),
        "pkgstash check-config",
    );
}

#[test]
fn bad_configs_exit_2_naming_the_key() {
    for (toml, key) in [
        (format!("bogus_key = 1\n{GOOD}"), "bogus_key"),
        (format!("db_max_age = \"later\"\n{GOOD}"), "db_max_age"),
        (format!("listen = \"localhost\"\n{GOOD}"), "listen"),
        (
            "[upstreams.local]\nmirrors = [\"http://a\"]\n".to_string(),
            "upstreams.local",
        ),
        (
            "[upstreams.arch]\nmirrors = [\"file:///etc\"]\n".to_string(),
            "upstreams.arch.mirrors[0]",
        ),
        (
            format!("{GOOD}[cleanup]\nmax_size = \"huge\"\n"),
            "cleanup.max_size",
        ),
        ("this is not toml".to_string(), "pkgstash.toml"),
    ] {
        let (code, _, err) = run(&["check-config"], Some(&toml), &[]);
        assert_eq!(code, 2, "{toml}: {err}");
        assert!(
            err.contains(key),
            "{toml}: message must name `{key}`: {err}"
        );
    }
}

#[test]
fn missing_config_file_and_bad_usage_exit_2() {
    let (code, _, err) = run(
        &["check-config", "-c", "/nonexistent/pkgstash.toml"],
        None,
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/pkgstash.toml"), "{err}");
    let (code, _, _) = run(&["no-such-command"], None, &[]);
    assert_eq!(code, 2);
    // -c after the subcommand works too, and $PKGSTASH_CONFIG is the fallback.
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("c.toml");
    std::fs::write(&p, GOOD).expect("write");
    let (code, _, err) = run(
        &["check-config"],
        None,
        &[("PKGSTASH_CONFIG", p.to_str().expect("utf8"))],
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn unwritable_cache_dir_is_a_clear_error_at_start() {
    let (code, _, err) = run(
        &["serve"],
        Some("listen = \"127.0.0.1:0\"\ncache_dir = \"/proc/pkgstash\"\n[upstreams.a]\nmirrors = [\"http://127.0.0.1:9\"]\n"),
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cache_dir") && err.contains("/proc/pkgstash"),
        "{err}"
    );
    assert_eq!(
        err.matches("(os error").count(),
        1,
        "the cause, once: {err}"
    );
}

/// A custom repo whose directory cannot be made: exit 2, the repo and its path named, the
/// cause printed once; a mirrorlist that cannot be read likewise.
#[test]
fn unusable_repo_dir_and_mirrorlist_are_clear_errors_naming_the_cause_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let (code, _, err) = run(
        &["serve"],
        Some(&format!(
            "listen = \"127.0.0.1:0\"\ncache_dir = \"{}\"\n[upstreams.a]\nmirrors = [\"http://127.0.0.1:9\"]\n\
             [repos.custom]\npath = \"/proc/pkgstash-repo\"\narch = [\"x86_64\"]\n",
            cache.display()
        )),
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("repo custom") && err.contains("/proc/pkgstash-repo"),
        "{err}"
    );
    assert_eq!(
        err.matches("(os error").count(),
        1,
        "the cause, once: {err}"
    );

    let (code, _, err) = run(
        &["check-config"],
        Some("cache_dir = \"/tmp/x\"\n[upstreams.a]\nmirrorlist = \"/nonexistent/mirrorlist\"\n"),
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/nonexistent/mirrorlist"), "{err}");
    assert_eq!(
        err.matches("(os error").count(),
        1,
        "the cause, once: {err}"
    );
}

#[test]
fn serve_listens_on_ipv4_and_ipv6_with_the_same_port() {
    // The documented dual-stack setup: wildcard v4 + wildcard v6 on one port (only loopback
    // is ever connected to).
    // Is IPv6 loopback available here at all?
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("SKIP: no IPv6 loopback");
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = [\"0.0.0.0:{port}\", \"[::]:{port}\"]\ncache_dir = \"{}\"\n[upstreams.arch]\nmirrors = [\"http://127.0.0.1:9\"]\n",
            dir.path().join("cache").display()
        ),
    )
    .expect("config");
    let mut child = Command::new(bin())
        .args(["serve", "-c"])
        .arg(&cfg)
        .env_remove("PKGSTASH_TOKEN")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut ok = (false, false);
    for _ in 0..100 {
        ok.0 |= std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        ok.1 |= std::net::TcpStream::connect(format!("[::1]:{port}")).is_ok();
        if ok.0 && ok.1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let exited = child.try_wait().ok().flatten();
    let _ = child.kill();
    let _ = child.wait();
    assert!(exited.is_none(), "pkgstash exited: {exited:?}");
    assert_eq!(ok, (true, true), "listening on both addresses");
}
