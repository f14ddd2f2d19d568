//! pacman 7.0 (Debian 13's, in the trixie chroot) with pkgstash as a `CacheServer` in front
//! of a `Server` line, as the README documents for pacman >= 6.1 (the host's 6.0 has no
//! `CacheServer`). pacman.conf(5): cache servers are tried first for packages, never for
//! databases, and a 404 there does not drop them from the pool. Downloads run as
//! `DownloadUser = alpm` inside pacman's landlock sandbox; the kernels these tests run on
//! support it, so the sandbox stays on (no `DisableSandbox`) and the test checks it was used.

use crate::fixture::{ArchMirror, PkgSpec};
use crate::nginx::Nginx;
use crate::pacman::{all_names, answers, assert_identical, e2e_tools, fetches, package_files};
use crate::pacman::{mirror_behind_pkgstash, pkgstash};
use crate::sandbox::{Client, Sandbox};
use crate::support::{must, Pkgstash};

/// `[core]` and `[extra]`, each with pkgstash as `CacheServer` and `server` as `Server`.
fn cache_server_sections(p: &Pkgstash, server: &str) -> String {
    let cache = p.url("/arch/$repo/os/$arch");
    ["core", "extra"]
        .iter()
        .map(|repo| {
            format!("\n[{repo}]\nCacheServer = {cache}\nServer = {server}/$repo/os/$arch\n")
        })
        .collect()
}

/// Requests pkgstash answered, as `METHOD path` from its access log.
fn requested(p: &Pkgstash) -> Vec<String> {
    p.log()
        .lines()
        .filter(|l| l.contains("pkgstash::access"))
        .filter_map(|l| l.split('"').nth(1).map(str::to_string))
        .collect()
}

/// Packages come through pkgstash (one upstream download each, hits for the next machine),
/// databases straight from the `Server`, every file byte-identical.
#[test]
fn pacman_e2e_cache_server_in_front_of_server_pacman7() {
    if !e2e_tools(Client::Trixie) {
        return;
    }
    let (mirror, nginx, p) = mirror_behind_pkgstash("0");
    let sections = cache_server_sections(&p, &nginx.url());
    let mut args = vec!["-Syyw"];
    args.extend(all_names());
    let names = package_files(mirror);

    let first = Sandbox::with_sections(Client::Trixie, &sections, "Never");
    first.ok(&args);
    assert_identical(mirror, &first, &names);
    for n in &names {
        assert_eq!(
            answers(&p, &format!("/{n}")),
            vec![200],
            "{n} from the cache server"
        );
        assert_eq!(fetches(&nginx, n), 1, "{n}: one upstream download");
    }
    let seen = requested(&p);
    assert!(
        !seen
            .iter()
            .any(|r| r.contains(".db") || r.contains(".files")),
        "pacman never asks a cache server for databases: {seen:?}"
    );
    for repo in ["core", "extra"] {
        let db = format!("/{repo}/os/x86_64/{repo}.db");
        assert!(
            nginx.log().iter().any(|a| a.uri == db && a.status == 200),
            "{db} synced from the Server"
        );
    }

    // The next machine: every package is a hit, nothing more from upstream.
    let second = Sandbox::with_sections(Client::Trixie, &sections, "Never");
    second.ok(&args);
    assert_identical(mirror, &second, &names);
    for n in &names {
        assert_eq!(answers(&p, &format!("/{n}")), vec![200, 200]);
        assert_eq!(fetches(&nginx, n), 1, "{n}: still one upstream download");
    }
    assert!(p.log().contains(" hit"), "access log shows hits");
}

/// A package the cache server's upstream lacks: pkgstash answers 404, pacman takes it from
/// the `Server`, and the cache server still serves the other package of the same
/// transaction. The download ran as `alpm` in the landlock sandbox.
#[test]
fn pacman_e2e_cache_server_404_falls_back_to_server_pacman7() {
    if !e2e_tools(Client::Trixie) {
        return;
    }
    // pkgstash's upstream has `app`; the Server (the client's own mirrorlist) is a copy of it
    // that also has `newer` (the same `app` file: pacman checks it against the Server's db).
    let mut behind = ArchMirror::new();
    behind.add("core", &[PkgSpec::new("app", "1.0-1", 20_000)]);
    behind.add("extra", &[PkgSpec::new("tool", "1.0-1", 20_000)]);
    let ahead_dir = tempfile::tempdir().expect("tempdir");
    must(
        std::process::Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", behind.root.display()))
            .arg(ahead_dir.path()),
        "copy the mirror",
    );
    let mut ahead = ArchMirror::at(ahead_dir.path());
    ahead.add("core", &[PkgSpec::new("newer", "2.0-1", 30_000)]);
    let upstream = Nginx::serve(&behind.root, "0");
    let server = Nginx::serve(&ahead.root, "0");
    let p = pkgstash(&[upstream.url()], "");
    let sb = Sandbox::with_sections(
        Client::Trixie,
        &cache_server_sections(&p, &server.url()),
        "Never",
    );
    sb.ok(&["-Syy"]);
    let out = sb.ok(&["-Sw", "--debug", "newer", "app"]);
    let (app, newer) = (
        "app-1.0-1-x86_64.pkg.tar.zst",
        "newer-2.0-1-x86_64.pkg.tar.zst",
    );
    for (name, from) in [(app, &behind), (newer, &ahead)] {
        let got = std::fs::read(sb.cache_file(name)).expect("in pacman's cache");
        assert!(
            got == std::fs::read(from.pool_file(name)).expect("pool"),
            "{name}"
        );
    }
    assert_eq!(answers(&p, &format!("/{newer}")), vec![404]);
    assert_eq!(answers(&p, &format!("/{app}")), vec![200]);
    assert_eq!(fetches(&server, newer), 1, "newer from the Server");
    assert_eq!(fetches(&server, app), 0, "app from the cache server only");
    assert!(
        out.contains("option 'sandboxuser' = alpm")
            && out.contains("filesystem access has been restricted to"),
        "pacman 7 downloads as alpm inside its landlock sandbox:\n{out}"
    );
}
