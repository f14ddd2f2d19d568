//! The systemd units checked by `systemd-analyze` (verify, security), and the sysusers.d and
//! tmpfiles.d entries applied to a scratch root.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::package_contents::UNITS;
use crate::pkgfiles::{euid, pkg_file, read};
use crate::support::{bin, must, require_tool, text};

const REFRESH_CMD: &str = "/usr/bin/pkgstash refresh -c /etc/pkgstash/pkgstash.toml";
const SERVE_CMD: &str = "/usr/bin/pkgstash serve -c /etc/pkgstash/pkgstash.toml";

/// `[Section]` → `Key` → values (a key may repeat) of a unit file.
fn unit_settings(unit: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in read(&pkg_file(&format!("systemd/{unit}"))).lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[') {
            section = s.trim_end_matches(']').to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            out.entry(format!("{section}.{k}"))
                .or_default()
                .push(v.to_string());
        }
    }
    out
}

fn one(settings: &BTreeMap<String, Vec<String>>, key: &str) -> String {
    let v = settings
        .get(key)
        .unwrap_or_else(|| panic!("{key} is not set"));
    v.last().unwrap().clone()
}

/// `systemd-analyze verify` accepts the units without a single warning, in a scratch root
/// that has the system's units and a `/usr/bin/pkgstash`.
#[test]
fn packaging_systemd_units_verify() {
    if !require_tool("systemd-analyze") {
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let units = r.join("usr/lib/systemd/system");
    fs::create_dir_all(&units).expect("mkdir");
    fs::create_dir_all(r.join("usr/bin")).expect("mkdir");
    fs::copy(bin(), r.join("usr/bin/pkgstash")).expect("copy binary");
    for sys in ["/usr/lib/systemd/system", "/lib/systemd/system"] {
        if Path::new(sys).join("sysinit.target").exists() {
            must(
                Command::new("cp")
                    .arg("-a")
                    .arg(format!("{sys}/."))
                    .arg(&units),
                "copy system units",
            );
            break;
        }
    }
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify")
        .arg("--man=no")
        .arg(format!("--root={}", r.display()));
    for unit in UNITS {
        fs::copy(pkg_file(&format!("systemd/{unit}")), units.join(unit)).expect("copy unit");
        cmd.arg(units.join(unit));
    }
    let out = must(&mut cmd, "systemd-analyze verify");
    let noise = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        noise.trim().is_empty(),
        "systemd-analyze verify warned:\n{noise}"
    );

    // The same with the AUR builder drop-in (shipped as a doc example) in place.
    let dropin = r.join("etc/systemd/system/pkgstash.service.d");
    fs::create_dir_all(&dropin).expect("mkdir");
    fs::copy(
        pkg_file("systemd/aur-builder.conf"),
        dropin.join("aur-builder.conf"),
    )
    .expect("copy");
    let out = must(
        Command::new("systemd-analyze")
            .arg("verify")
            .arg("--man=no")
            .arg(format!("--root={}", r.display()))
            .arg(units.join("pkgstash.service")),
        "systemd-analyze verify with the aur-builder drop-in",
    );
    let noise = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        noise.trim().is_empty(),
        "systemd-analyze verify warned:\n{noise}"
    );

    // What the units must say.
    let serve = unit_settings("pkgstash.service");
    assert_eq!(one(&serve, "Service.ExecStart"), SERVE_CMD);
    assert_eq!(one(&serve, "Service.User"), "pkgstash");
    assert_eq!(
        one(&serve, "Service.EnvironmentFile"),
        "-/etc/pkgstash/pkgstash.env"
    );
    assert_eq!(one(&serve, "Service.Restart"), "on-failure");
    assert_eq!(one(&serve, "Service.ProtectSystem"), "strict");
    assert_eq!(
        one(&serve, "Service.ReadWritePaths"),
        "/var/cache/pkgstash /var/lib/pkgstash",
        "the cache and the custom repos are writable"
    );
    assert_eq!(one(&serve, "Install.WantedBy"), "multi-user.target");

    let refresh = unit_settings("pkgstash-refresh.service");
    assert_eq!(one(&refresh, "Service.ExecStart"), REFRESH_CMD);
    assert_eq!(one(&refresh, "Service.Type"), "oneshot");
    assert_eq!(
        one(&refresh, "Service.EnvironmentFile"),
        "-/etc/pkgstash/pkgstash.env"
    );
    let timer = unit_settings("pkgstash-refresh.timer");
    assert_eq!(one(&timer, "Timer.Persistent"), "true");
    assert!(timer.contains_key("Timer.RandomizedDelaySec"));
    assert_eq!(one(&timer, "Install.WantedBy"), "timers.target");
    must(
        Command::new("systemd-analyze")
            .arg("calendar")
            .arg(one(&timer, "Timer.OnCalendar")),
        "OnCalendar parses",
    );

    // The sysusers home and the tmpfiles dir are the cache dir the unit may write.
    let sysusers = read(&pkg_file("systemd/pkgstash.sysusers"));
    assert!(
        sysusers
            .lines()
            .any(|l| l.starts_with("u pkgstash ") && l.ends_with(" /var/cache/pkgstash")),
        "{sysusers}"
    );
    let tmpfiles = read(&pkg_file("systemd/pkgstash.tmpfiles"));
    assert!(
        tmpfiles
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == [
                    "d",
                    "/var/cache/pkgstash",
                    "0750",
                    "pkgstash",
                    "pkgstash",
                    "-"
                ]),
        "{tmpfiles}"
    );
}

/// `systemd-analyze security` rates both services "OK" or better (exposure < 5).
#[test]
fn packaging_systemd_security_ok() {
    if !require_tool("systemd-analyze") {
        return;
    }
    for unit in ["pkgstash.service", "pkgstash-refresh.service"] {
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(pkg_file(&format!("systemd/{unit}")))
            .output()
            .expect("systemd-analyze security");
        let report = text(&out.stdout);
        let overall = report
            .lines()
            .find_map(|l| {
                l.split(&format!("Overall exposure level for {unit}: "))
                    .nth(1)
            })
            .unwrap_or_else(|| panic!("no overall exposure for {unit}:\n{report}"));
        let mut words = overall.split_whitespace();
        let score: f64 = words
            .next()
            .and_then(|s| s.parse().ok())
            .expect("exposure score");
        let level = words.next().unwrap_or("");
        eprintln!("{unit}: exposure {score} {level}");
        assert!(
            ["OK", "SAFE", "PERFECT"].contains(&level) && score < 5.0,
            "{unit}: exposure {overall}\n{report}"
        );
        assert!(out.status.success(), "{unit}: {}", text(&out.stderr));
    }
}

/// sysusers.d creates a system user whose home is the cache, tmpfiles.d the cache dir,
/// owned by it, mode 0750 (applied to a scratch root).
#[test]
fn packaging_sysusers_and_tmpfiles_apply() {
    for tool in ["systemd-sysusers", "systemd-tmpfiles"] {
        if !require_tool(tool) {
            return;
        }
    }
    if euid() != 0 {
        eprintln!("SKIP: applying sysusers/tmpfiles to a scratch root needs root");
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    fs::create_dir_all(r.join("etc")).expect("mkdir");
    let rootarg = format!("--root={}", r.display());
    must(
        Command::new("systemd-sysusers")
            .arg(&rootarg)
            .arg(pkg_file("systemd/pkgstash.sysusers")),
        "systemd-sysusers",
    );
    let passwd = read(&r.join("etc/passwd"));
    let user: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("pkgstash:"))
        .unwrap_or_else(|| panic!("no pkgstash user:\n{passwd}"))
        .split(':')
        .collect();
    let uid: u32 = user[2].parse().expect("uid");
    assert!(uid > 0 && uid < 1000, "a system uid: {uid}");
    assert_eq!(user[5], "/var/cache/pkgstash");
    assert!(user[6].ends_with("nologin"), "shell {}", user[6]);
    must(
        Command::new("systemd-tmpfiles")
            .arg(&rootarg)
            .arg("--create")
            .arg(pkg_file("systemd/pkgstash.tmpfiles")),
        "systemd-tmpfiles --create",
    );
    let out = must(
        Command::new("stat")
            .args(["-c", "%F %a %u"])
            .arg(r.join("var/cache/pkgstash")),
        "stat",
    );
    assert_eq!(text(&out.stdout).trim(), format!("directory 750 {uid}"));
}
