//! The compose file as shipped, built and run by a real compose tool against the tests'
//! engine, then the real pacman syncs and downloads through it: `docker compose` (v2) when the
//! CLI has it, else `docker-compose` (v1, what Debian 12 packages). The tests add an override
//! file for this machine (`network_mode: host`, the test's port and mirror), as a user adds
//! one for theirs.
//!
//! README's `up -d --build` is run as its two halves, `build` and `run -d` of the service:
//! with host networking the compose file's `ports:` must not be applied (compose v1 refuses
//! "host network_mode is incompatible with port_bindings", and an override cannot remove a
//! list), and `run` leaves ports out while applying the rest of the service (image, volume,
//! environment). The engine has no bridge, so `ports:` itself stays linted only.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::container::{pacman_tools, Owned};
use crate::engine::{engine, Engine};
use crate::fixture::{ArchMirror, PkgSpec};
use crate::nginx::Nginx;
use crate::sandbox::Sandbox;
use crate::support::{client, in_ci};
use crate::{image, readme, text};

/// The compose program: `["docker", "compose"]` or `["docker-compose"]`, whichever works with
/// this engine.
fn compose_tool(engine: &Engine) -> Option<Vec<&'static str>> {
    let v2 = engine
        .docker()
        .args(["compose", "version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if v2 {
        return Some(vec!["docker", "compose"]);
    }
    let v1 = Command::new("docker-compose")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    v1.then(|| vec!["docker-compose"])
}

/// README's compose line (`docker compose -f packaging/docker/compose.yaml up -d --build`).
fn readme_compose() -> String {
    let section = readme::docker_section();
    let block = section
        .split("```sh\n")
        .nth(2)
        .and_then(|b| b.split("```").next())
        .expect("README's Docker section: a second ```sh block with the compose command");
    let cmd = block.trim();
    assert_eq!(
        cmd, "docker compose -f packaging/docker/compose.yaml up -d --build",
        "README's compose command"
    );
    cmd.to_string()
}

const CONTAINER: &str = "pkgstash-compose";

#[test]
fn docker_compose_builds_and_serves_pacman() {
    let Some(engine) = engine() else { return };
    let readme_cmd = readme_compose();
    let Some(tool) = compose_tool(&engine) else {
        assert!(
            !in_ci(),
            "no compose tool (docker compose / docker-compose) in CI"
        );
        eprintln!("SKIP: no compose tool; compose.yaml is only linted");
        return;
    };
    if !pacman_tools() {
        return;
    }
    // README's build first: compose's build of the same Dockerfile then comes from the
    // layer cache instead of compiling a second time in parallel.
    image::build(&engine);
    // compose names things after the compose file's directory: project `docker`.
    let _owned = Owned::new(&engine, &[CONTAINER], &["docker_pkgstash-cache"]);

    let mut mirror = ArchMirror::new();
    mirror.add("core", &[PkgSpec::new("tool", "2.0-1", 50_000)]);
    let nginx = Nginx::serve(&mirror.root, "0");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let dir = tempfile::tempdir().expect("tempdir");
    let override_file = dir.path().join("compose.override.yaml");
    std::fs::write(
        &override_file,
        format!(
            "services:\n  pkgstash:\n    build:\n      network: host\n    network_mode: host\n    \
             environment:\n      PKGSTASH__LISTEN: \"127.0.0.1:{port}\"\n      \
             PKGSTASH__UPSTREAMS__ARCHLINUX__MIRRORS: \"{}\"\n",
            nginx.url()
        ),
    )
    .expect("override");

    // README's command's two halves, with the tool this machine has and the override file.
    let files = format!(
        "{} -f packaging/docker/compose.yaml -f {}",
        tool.join(" "),
        override_file.display()
    );
    assert!(readme_cmd.ends_with(" up -d --build"), "{readme_cmd}");
    let _down = Down(&engine, format!("{files} down -v"));
    let started = Instant::now();
    for cmd in [
        format!("{files} build"),
        format!("{files} run -d --name {CONTAINER} pkgstash"),
    ] {
        let out = engine
            .sh(&cmd)
            .env("PKGSTASH_TOKEN", "0123456789abcdef0123456789abcdef")
            .output()
            .expect("compose");
        assert!(
            out.status.success(),
            "`{cmd}` failed:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    eprintln!("compose build + run took {:.0?}", started.elapsed());
    let log = || engine.ok(&["logs", CONTAINER]);

    let metrics = format!("http://127.0.0.1:{port}/_pkgstash/metrics");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client()
        .get(&metrics)
        .send()
        .map(|r| r.status().is_success())
        .unwrap_or(false)
    {
        assert!(
            Instant::now() < deadline,
            "compose's pkgstash is not serving:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let sandbox = Sandbox::new(
        &[(
            "core",
            &format!("http://127.0.0.1:{port}/archlinux/$repo/os/$arch"),
        )],
        "Never",
    );
    sandbox.ok(&["-Sy"]);
    sandbox.ok(&["-Sw", "tool"]);
    assert_eq!(
        std::fs::read(sandbox.cache_file("tool-2.0-1-x86_64.pkg.tar.zst")).expect("downloaded"),
        std::fs::read(mirror.pool_file("tool-2.0-1-x86_64.pkg.tar.zst")).expect("pool"),
    );
}

/// `compose down -v` when the test ends, however it ends.
struct Down<'a>(&'a Engine, String);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = self.0.sh(&self.1).output();
    }
}
