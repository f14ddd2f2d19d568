//! The built image run as README says (`docker run … -v pkgstash-cache:… -e PKGSTASH_TOKEN=…`),
//! plus `--network host` and environment overrides that point it at a real nginx mirror
//! (a `repo-add`ed Arch tree) on a free port: the real pacman syncs, installs and downloads
//! through it; `pkgstash status` works through `docker exec`; the HEALTHCHECK turns healthy;
//! the server runs as uid 7878; a new container on the same volume serves every package from
//! the cache; a bad value in the environment stops the container with status 2, naming the
//! key in `docker logs`.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::{engine, Engine};
use crate::fixture::{tools_available, ArchMirror, PkgSpec};
use crate::nginx::Nginx;
use crate::sandbox::Sandbox;
use crate::support::{client, require_tool, wait_for};
use crate::{image, readme};

const PACKAGES: [PkgSpec; 4] = [
    PkgSpec::new("libfoo", "1:2.0-1", 40_000),
    PkgSpec::new("foo+bar", "1.0-1", 30_000),
    PkgSpec {
        deps: &["libfoo>=1:2.0", "foo+bar"],
        ..PkgSpec::new("app", "1.0-1", 10_000)
    },
    PkgSpec::new("medium", "1.0-1", 3 << 20),
];

/// Containers and volumes of one test: removed before it starts and when it ends; their logs
/// are printed when it fails.
pub struct Owned {
    engine: Arc<Engine>,
    containers: Vec<String>,
    volumes: Vec<String>,
}

impl Owned {
    pub fn new(engine: &Arc<Engine>, containers: &[&str], volumes: &[&str]) -> Owned {
        let owned = Owned {
            engine: engine.clone(),
            containers: containers.iter().map(|c| c.to_string()).collect(),
            volumes: volumes.iter().map(|v| v.to_string()).collect(),
        };
        owned.remove();
        owned
    }

    fn remove(&self) {
        for c in &self.containers {
            let _ = self.engine.run(&["rm", "-f", c]);
        }
        for v in &self.volumes {
            let _ = self.engine.run(&["volume", "rm", "-f", v]);
        }
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for c in &self.containers {
                let out = self.engine.run(&["logs", c]);
                eprintln!(
                    "--- docker logs {c}\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        self.remove();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// README's `docker run`, adapted to this machine: host networking, the test's port and mirror.
fn readme_run(port: u16, mirror: &str) -> String {
    readme::adapted(
        &readme::command(&readme::docker_commands(), "docker run"),
        &["--network", "host"],
        &[
            ("PKGSTASH__LISTEN", format!("127.0.0.1:{port}")),
            (
                "PKGSTASH__UPSTREAMS__ARCHLINUX__MIRRORS",
                mirror.to_string(),
            ),
        ],
    )
}

/// Run README's `docker run` and wait until the server answers on `port`.
fn start(engine: &Engine, run: &str, port: u16) {
    let out = engine.sh(run).output().expect("docker run");
    assert!(
        out.status.success(),
        "`{run}` failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metrics = format!("http://127.0.0.1:{port}/_pkgstash/metrics");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client()
        .get(&metrics)
        .send()
        .map(|r| r.status().is_success())
        .unwrap_or(false)
    {
        let state = engine.ok(&["inspect", "-f", "{{.State.Status}}", readme::CONTAINER]);
        assert!(
            state == "running" && Instant::now() < deadline,
            "the container did not start serving on port {port} (state {state}):\n{}",
            engine.ok(&["logs", readme::CONTAINER])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn container_field(engine: &Engine, format: &str) -> String {
    engine.ok(&["inspect", "-f", format, readme::CONTAINER])
}

pub fn pacman_tools() -> bool {
    let mut ok = tools_available();
    ok &= require_tool("pacman");
    ok &= crate::nginx::available();
    ok
}

/// The whole life of README's container, against a real mirror with the real pacman.
#[test]
fn docker_container_serves_pacman_and_keeps_its_cache() {
    let Some(engine) = engine() else { return };
    if !pacman_tools() {
        return;
    }
    image::build(&engine);
    let _owned = Owned::new(&engine, &[readme::CONTAINER], &[readme::VOLUME]);

    let mut mirror = ArchMirror::new();
    mirror.add("core", &PACKAGES);
    let nginx = Nginx::serve(&mirror.root, "0");
    let port = free_port();
    let run = readme_run(port, &nginx.url());
    let started = Instant::now();
    start(&engine, &run, port);

    // The server process is uid/gid 7878 (on the host: no user namespace remapping), and so
    // are `docker exec`'s commands.
    let pid = container_field(&engine, "{{.State.Pid}}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let ids = |key: &str| -> Vec<String> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };
    assert_eq!(ids("Uid:"), vec!["7878"; 4], "server uids:\n{status}");
    assert_eq!(ids("Gid:"), vec!["7878"; 4], "server gids:\n{status}");
    assert!(status.contains("Name:\tpkgstash"), "{status}");
    assert_eq!(engine.ok(&["exec", readme::CONTAINER, "id", "-u"]), "7878");

    // The real pacman syncs and installs through the container.
    let server = format!("http://127.0.0.1:{port}/archlinux/$repo/os/$arch");
    let first = Sandbox::new(&[("core", &server)], "Never");
    first.ok(&["-Sy"]);
    first.ok(&["-S", "app"]);
    for p in ["app", "libfoo", "foo+bar"] {
        assert!(
            first
                .root()
                .join("usr/share")
                .join(p)
                .join("data")
                .is_file(),
            "{p} installed"
        );
    }
    first.ok(&["-Sw", "medium"]);
    let fetched = nginx.log();
    for spec in &PACKAGES {
        let hits: Vec<_> = fetched
            .iter()
            .filter(|a| a.uri.ends_with(&spec.file_name()))
            .collect();
        assert_eq!(
            hits.len(),
            1,
            "{} fetched once upstream: {hits:?}",
            spec.name
        );
        assert_eq!(hits[0].status, 200);
        assert_eq!(
            std::fs::read(first.cache_file(&spec.file_name())).expect("downloaded"),
            std::fs::read(mirror.pool_file(&spec.file_name())).expect("pool file"),
            "{} arrived intact",
            spec.name
        );
    }

    // `docker exec pkgstash pkgstash status`, as README shows it, finds the server.
    let exec = readme::command(&readme::docker_commands(), "docker exec");
    let out = engine.sh(&exec).output().expect("docker exec");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "`{exec}`: {}{shown}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files: usize = shown
        .lines()
        .find_map(|l| l.strip_prefix("archlinux "))
        .and_then(|row| row.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("status has an `archlinux` row with its files:\n{shown}"));
    assert!(
        files >= PACKAGES.len(),
        "status counts the cached packages of archlinux:\n{shown}"
    );

    // The image's HEALTHCHECK (first probe after its 30 s interval) reports healthy.
    wait_for("HEALTHCHECK healthy", Duration::from_secs(120), || {
        container_field(&engine, "{{.State.Health.Status}}") == "healthy"
    });
    eprintln!(
        "container healthy {:.0?} after docker run",
        started.elapsed()
    );

    // A new container on the same volume: every package is a hit (no upstream request);
    // the dbs at most revalidated (304), each with its `.sig` (the db pair is revalidated
    // together; this mirror has no signatures, so that asks 404).
    engine.ok(&["rm", "-f", readme::CONTAINER]);
    let before = nginx.log().len();
    start(&engine, &run, port);
    let second = Sandbox::new(&[("core", &server)], "Never");
    second.ok(&["-Sy"]);
    let names: Vec<&str> = PACKAGES.iter().map(|p| p.name).collect();
    second.ok(&[&["-Sw"][..], &names].concat());
    let after: Vec<_> = nginx.log().into_iter().skip(before).collect();
    for a in &after {
        if a.uri.ends_with(".db.sig") {
            assert_eq!(a.status, 404, "the db's signature asked with it: {a:?}");
            continue;
        }
        assert!(
            a.uri.ends_with(".db") || a.uri.ends_with(".db.tar.gz"),
            "after the restart only dbs may reach the mirror: {a:?}"
        );
        assert_eq!(a.status, 304, "a db revalidated, not fetched again: {a:?}");
    }
    for spec in &PACKAGES {
        assert_eq!(
            std::fs::read(second.cache_file(&spec.file_name())).expect("downloaded"),
            std::fs::read(mirror.pool_file(&spec.file_name())).expect("pool file"),
            "{} served from the volume",
            spec.name
        );
    }
}

/// A bad value in the environment: the container exits with status 2 and `docker logs` names
/// the key.
#[test]
fn docker_config_error_exits_2_naming_the_key() {
    let Some(engine) = engine() else { return };
    image::build(&engine);
    const NAME: &str = "pkgstash-bad-config";
    let _owned = Owned::new(&engine, &[NAME], &[]);
    engine.ok(&[
        "run",
        "-d",
        "--name",
        NAME,
        "--network",
        "host",
        "-e",
        "PKGSTASH__LISTEN=127.0.0.1:0",
        "-e",
        "PKGSTASH__CLEANUP__KEEP_VERSIONS=many",
        readme::IMAGE,
    ]);
    assert_eq!(engine.ok(&["wait", NAME]), "2", "exit status");
    let out = engine.run(&["logs", NAME]);
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(
        logs.contains("cleanup.keep_versions"),
        "the message names the key:\n{logs}"
    );
}

/// The image's HEALTHCHECK command fails when nothing answers on the port
/// `PKGSTASH__LISTEN` names (so `healthy` above means something).
#[test]
fn docker_healthcheck_fails_without_a_server() {
    let Some(engine) = engine() else { return };
    image::build(&engine);
    let test = engine.ok(&[
        "inspect",
        "-f",
        "{{json .Config.Healthcheck.Test}}",
        readme::IMAGE,
    ]);
    let test: Vec<String> = serde_json::from_str(&test).expect("Healthcheck.Test JSON");
    assert_eq!(test.first().map(String::as_str), Some("CMD"), "{test:?}");
    let listen = format!("PKGSTASH__LISTEN=127.0.0.1:{}", free_port());
    let mut args = vec![
        "run",
        "--rm",
        "--network",
        "host",
        "-e",
        &listen,
        "--entrypoint",
        &test[1],
        readme::IMAGE,
    ];
    args.extend(test[2..].iter().map(String::as_str));
    let out = engine.run(&args);
    assert!(
        !out.status.success(),
        "HEALTHCHECK {test:?} passed with no server ({listen})"
    );
}
