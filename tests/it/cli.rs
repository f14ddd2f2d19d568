//! The `pkgstash` command line: exit codes and messages for good and bad configs.

use std::process::Command;

use crate::support::bin;

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
    let out = cmd.output().expect("run pkgstash");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
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
    let out = Command::new(bin())
        .args(["check-config", "-c", sample])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
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
}
