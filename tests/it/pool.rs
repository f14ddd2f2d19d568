//! A sharded pool: three pkgstash nodes behind the shipped HAProxy config
//! (`packaging/haproxy/pkgstash.cfg`) or the shipped nginx one
//! (`packaging/nginx/pkgstash-pool.conf`), the real pacman as clients, a real nginx as the
//! upstream mirror — all on 127.0.0.1.
//!
//! - a cold pool under 4 pacmans fetches each package upstream once, for the whole pool;
//! - SIGTERM of the node serving a large package while pacmans download it: HAProxy sees the
//!   node go down through `/_pkgstash/health` (503) before it exits, no pacman fails;
//! - a node killed mid-transfer: pacman moves on to its next `Server` (the public mirror) and
//!   the pool serves the dead node's shard from another node;
//! - nginx as the balancer: sharded the same way, and a stopped node's shard moves.
//! - the shipped unit, compose file and README give Docker/systemd more time than the default
//!   `shutdown_grace`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::fixture::{tools_available, ArchMirror, PkgSpec};
use crate::haproxy::Haproxy;
use crate::nginx::Nginx;
use crate::sandbox::{Client, Sandbox};
use crate::support::{
    arch_config, get_body, is_root, output_text, require_tool, wait_for, Pkgstash,
};

const MIB: usize = 1 << 20;
const BIG: &str = "big-1.0-1-x86_64.pkg.tar.zst";

fn small_packages() -> Vec<PkgSpec> {
    vec![
        PkgSpec::new("alpha", "1.0-1", 20_000),
        PkgSpec::new("bravo", "1.0-1", 30_000),
        PkgSpec::new("charlie", "1.0-1", 40_000),
        PkgSpec::new("delta", "1.0-1", 25_000),
        PkgSpec::new("echo", "1.0-1", 35_000),
        PkgSpec::new("foxtrot", "1.0-1", 45_000),
    ]
}

/// core: small packages; extra: one of 16 MiB. Built once per test run.
fn mirror() -> &'static ArchMirror {
    static MIRROR: OnceLock<ArchMirror> = OnceLock::new();
    MIRROR.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pool-mirror");
        let _ = std::fs::remove_dir_all(&root);
        let mut m = ArchMirror::at(&root);
        m.add("core", &small_packages());
        m.add("extra", &[PkgSpec::new("big", "1.0-1", 16 * MIB)]);
        m
    })
}

fn tools() -> bool {
    let mut ok = tools_available() && crate::nginx::available();
    ok &= is_root() || require_tool("fakeroot");
    ok &= Client::Host.available();
    ok && crate::haproxy::binary().is_some()
}

/// One node of the pool: its own work and cache dir.
struct Node {
    p: Pkgstash,
    work: tempfile::TempDir,
}

/// The upstream nginx and three nodes over it.
struct Pool {
    upstream: Nginx,
    nodes: Vec<Node>,
}

impl Pool {
    /// Three nodes over the mirror served at `rate` (nginx `limit_rate`).
    fn start(rate: &str) -> Pool {
        let upstream = Nginx::serve(&mirror().root, rate);
        let cfg = arch_config(
            "5s",
            &[upstream.url()],
            "trusted_proxies = [\"127.0.0.1\"]\nshutdown_grace = \"60s\"\n",
        );
        let nodes = (0..3)
            .map(|_| {
                let work = tempfile::tempdir().expect("tempdir");
                let p =
                    Pkgstash::start_in(work.path(), &work.path().join("cache"), &cfg, &[], None);
                Node { p, work }
            })
            .collect();
        Pool { upstream, nodes }
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.p.addr).collect()
    }

    /// GET requests the upstream saw for `file`.
    fn upstream_gets(&self, file: &str) -> usize {
        self.upstream
            .requests_ending(&format!("/{file}"))
            .iter()
            .filter(|a| a.method == "GET")
            .count()
    }

    /// Indexes of the nodes holding `repo`'s `file` in their cache.
    fn holders(&self, repo: &str, file: &str) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| cached(&self.nodes[*i].p, repo, file).is_file())
            .collect()
    }

    /// The node whose downloads in flight include `file` with some bytes done.
    fn streaming(&self, file: &str) -> Option<usize> {
        (0..self.nodes.len()).find(|i| {
            let s = self.nodes[*i].p.status_json_or_null();
            s["inflight"].as_array().is_some_and(|v| {
                v.iter().any(|d| {
                    d["path"].as_str().is_some_and(|p| p.ends_with(file))
                        && d["bytes_done"].as_u64().unwrap_or(0) > MIB as u64
                })
            })
        })
    }
}

fn cached(p: &Pkgstash, repo: &str, file: &str) -> PathBuf {
    p.cache_dir
        .join("arch")
        .join(repo)
        .join("os/x86_64")
        .join(file)
}

/// A host-pacman sandbox whose `core` and `extra` use `servers` in order.
fn sandbox(servers: &[String]) -> Sandbox {
    let lines: String = servers.iter().map(|s| format!("Server = {s}\n")).collect();
    Sandbox::with_sections(
        Client::Host,
        &format!("\n[core]\n{lines}\n[extra]\n{lines}"),
        "Never",
    )
}

/// Run `pacman -Syw PKGS` in every sandbox at once; their outputs.
fn pacmans(boxes: &[Sandbox], pkgs: &[&str]) -> Vec<Output> {
    let mut args = vec!["-Syw"];
    args.extend_from_slice(pkgs);
    let children: Vec<_> = boxes
        .iter()
        .map(|b| {
            b.command(&args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn pacman")
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().expect("pacman"))
        .collect()
}

fn assert_all_succeeded(outs: &[Output], context: &str) {
    for (i, o) in outs.iter().enumerate() {
        assert!(
            o.status.success(),
            "pacman {i} failed ({context}):\n{}",
            output_text(o)
        );
    }
}

#[test]
fn four_pacmans_on_a_cold_pool_fetch_each_package_once() {
    if !tools() {
        return;
    }
    let pool = Pool::start("0");
    let Some(lb) = Haproxy::start(&pool.addrs()) else {
        return;
    };
    lb.wait_all_up();
    let server = lb.url("/arch/$repo/os/$arch");
    let boxes: Vec<Sandbox> = (0..4)
        .map(|_| sandbox(std::slice::from_ref(&server)))
        .collect();
    let mut names: Vec<&str> = small_packages().iter().map(|p| p.name).collect();
    names.push("big");
    let outs = pacmans(&boxes, &names);
    assert_all_succeeded(&outs, "cold pool");
    let mut shards = std::collections::BTreeSet::new();
    for (repo, file) in &mirror().packages {
        assert_eq!(
            pool.upstream_gets(file),
            1,
            "{file}: one upstream GET for the pool"
        );
        let holders = pool.holders(repo, file);
        assert_eq!(holders.len(), 1, "{file} lives on one node: {holders:?}");
        shards.extend(holders);
        for b in &boxes {
            assert!(
                b.cache_file(file).is_file(),
                "{file} downloaded by every pacman"
            );
        }
    }
    assert!(
        shards.len() >= 2,
        "the packages are spread over the nodes: {shards:?}"
    );
}

#[test]
fn sigterm_of_a_busy_node_loses_no_pacman() {
    if !tools() {
        return;
    }
    // 16 MiB at 2 MiB/s: about 8 s of download, longer than HAProxy needs to see a draining
    // node (2 failed checks 2 s apart).
    let mut pool = Pool::start("2m");
    let Some(lb) = Haproxy::start(&pool.addrs()) else {
        return;
    };
    lb.wait_all_up();
    let server = lb.url("/arch/$repo/os/$arch");
    let boxes: Vec<Sandbox> = (0..4)
        .map(|_| sandbox(std::slice::from_ref(&server)))
        .collect();
    let runner = std::thread::spawn(move || {
        let outs = pacmans(&boxes, &["big", "alpha", "bravo", "charlie"]);
        (boxes, outs)
    });
    let mut victim = None;
    wait_for(
        "the large package streaming",
        Duration::from_secs(30),
        || {
            victim = pool.streaming(BIG);
            victim.is_some()
        },
    );
    let v = victim.expect("victim");
    let name = format!("node{}", v + 1);
    pool.nodes[v].p.signal("TERM");
    // HAProxy's view of the node until the node exits: DOWN through its health check (HTTP
    // 503) while it still runs.
    let mut seen_down = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while pool.nodes[v].p.exited().is_none() {
        let stat = lb.server(&name);
        if pool.nodes[v].p.exited().is_none()
            && stat.status.starts_with("DOWN")
            && seen_down.is_none()
        {
            seen_down = Some(stat);
        }
        assert!(Instant::now() < deadline, "the node did not exit");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (boxes, outs) = runner.join().expect("pacmans");
    assert_all_succeeded(&outs, "a node drained mid-download");
    let node_log = pool.nodes[v].p.log();
    let stat = seen_down.unwrap_or_else(|| {
        panic!(
            "HAProxy never saw {name} DOWN before it exited\nhaproxy:\n{}\nnode:\n{node_log}",
            lb.log()
        )
    });
    assert_eq!(stat.check_status, "L7STS", "{stat:?}");
    assert_eq!(stat.check_code, "503", "{stat:?}");
    assert_eq!(pool.nodes[v].p.wait_exit(Duration::from_secs(1)), 0);
    assert!(node_log.contains("drained"), "{node_log}");
    assert!(
        cached(&pool.nodes[v].p, "extra", BIG).is_file(),
        "the download in flight was published before the exit"
    );
    for b in &boxes {
        assert!(b.cache_file(BIG).is_file());
    }
}

#[test]
fn node_death_pacman_moves_to_the_next_server_and_the_pool_reshards() {
    if !tools() {
        return;
    }
    let mut pool = Pool::start("2m");
    let Some(lb) = Haproxy::start(&pool.addrs()) else {
        return;
    };
    lb.wait_all_up();
    // The documented client setup: the pool first, then a public mirror (here the upstream
    // itself, as a public mirror would serve it).
    let servers = [
        lb.url("/arch/$repo/os/$arch"),
        format!("{}/$repo/os/$arch", pool.upstream.url()),
    ];
    let client = sandbox(&servers);
    let pacman = client
        .command(&["-Syw", "big"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("pacman");
    let mut victim = None;
    wait_for(
        "the large package streaming",
        Duration::from_secs(30),
        || {
            victim = pool.streaming(BIG);
            victim.is_some()
        },
    );
    let v = victim.expect("victim");
    // Killed: no drain, the transfer is cut.
    let node = pool.nodes.remove(v);
    let _work = node.work;
    let _ = node.p.kill9();
    let out = pacman.wait_with_output().expect("pacman output");
    assert!(out.status.success(), "pacman:\n{}", output_text(&out));
    assert!(client.cache_file(BIG).is_file());
    // HAProxy takes the dead node out; the pool serves its shard from another node.
    let name = format!("node{}", v + 1);
    wait_for("the dead node DOWN", Duration::from_secs(15), || {
        lb.server(&name).status.starts_with("DOWN")
    });
    let (status, body) = get_body(&lb.url(&format!("/arch/extra/os/x86_64/{BIG}")));
    assert_eq!(status, 200);
    assert!(
        body == std::fs::read(mirror().pool_file(BIG)).expect("pool file"),
        "the whole package"
    );
    let later = sandbox(&servers[..1]);
    later.ok(&["-Syw", "big"]);
    let holders = pool.holders("extra", BIG);
    assert_eq!(
        holders.len(),
        1,
        "one surviving node holds the dead node's package"
    );
}

/// nginx as the balancer, with the shipped snippet: one upstream GET per package, and a
/// stopped node's shard served by the others.
#[test]
fn the_shipped_nginx_config_shards_and_moves_a_stopped_nodes_shard() {
    if !(tools_available() && crate::nginx::available()) {
        return;
    }
    let mut pool = Pool::start("0");
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/nginx/pkgstash-pool.conf"),
    )
    .expect("shipped nginx config");
    let addrs = pool.addrs();
    let lb = Nginx::start_http(|port, _| {
        let mut conf = shipped.replace("listen 7878;", &format!("listen 127.0.0.1:{port};"));
        for (i, a) in addrs.iter().enumerate() {
            let example = format!("server 10.0.0.1{}:7878 ", i + 1);
            assert!(conf.contains(&example), "the shipped config changed shape");
            conf = conf.replace(&example, &format!("server {a} "));
        }
        conf
    });
    let get_all = |pool: &Pool| {
        for (repo, file) in &mirror().packages {
            let (status, body) = get_body(&format!("{}/arch/{repo}/os/x86_64/{file}", lb.url()));
            assert_eq!(status, 200, "{file}");
            assert!(body == std::fs::read(mirror().pool_file(file)).expect("file"));
            // (Published a moment after the last byte left.)
            wait_for(
                &format!("{file} on one node"),
                Duration::from_secs(5),
                || pool.holders(repo, file).len() == 1,
            );
        }
    };
    get_all(&pool);
    // (nginx writes its log line once the response has left: a moment after the node got it.)
    std::thread::sleep(Duration::from_millis(300));
    for (_, file) in &mirror().packages {
        assert_eq!(
            pool.upstream_gets(file),
            1,
            "{file}: {:?}",
            pool.upstream.log()
        );
    }
    // Stop the node holding the most packages (idle: it exits at once).
    let v = (0..3)
        .max_by_key(|i| {
            mirror()
                .packages
                .iter()
                .filter(|(r, f)| pool.holders(r, f).contains(i))
                .count()
        })
        .expect("a node");
    let moved: Vec<String> = mirror()
        .packages
        .iter()
        .filter(|(r, f)| pool.holders(r, f).contains(&v))
        .map(|(_, f)| f.clone())
        .collect();
    assert!(!moved.is_empty());
    let node = pool.nodes.remove(v);
    assert_eq!(node.p.terminate(), Some(0));
    get_all(&pool);
    std::thread::sleep(Duration::from_millis(300));
    for (_, file) in &mirror().packages {
        let want = if moved.contains(file) { 2 } else { 1 };
        assert_eq!(
            pool.upstream_gets(file),
            want,
            "{file}: only the stopped node's shard moved"
        );
    }
}

/// systemd's `TimeoutStopSec`, compose's `stop_grace_period` and the README's
/// `docker run --stop-timeout` all outlast the default `shutdown_grace`, which the sample
/// config states.
#[test]
fn stop_timeouts_outlast_the_default_grace() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| std::fs::read_to_string(repo.join(p)).expect(p);
    let out = crate::support::must(
        std::process::Command::new(crate::support::bin())
            .args(["check-config", "-c"])
            .arg(repo.join("config/pkgstash.toml")),
        "check-config",
    );
    let shown = crate::support::text(&out.stdout);
    let grace = shown
        .lines()
        .find_map(|l| l.strip_prefix("shutdown_grace = "))
        .map(|v| humantime::parse_duration(v.trim_matches('"')).expect("grace"))
        .expect("shutdown_grace shown");
    assert!(grace >= Duration::from_secs(60), "a few minutes: {grace:?}");
    let unit = read("packaging/systemd/pkgstash.service");
    let stop = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .map(|v| humantime::parse_duration(v.replace("min", "m").trim()).expect("unit"))
        .expect("TimeoutStopSec");
    let compose = read("packaging/docker/compose.yaml");
    let compose_stop = compose
        .lines()
        .find_map(|l| l.trim().strip_prefix("stop_grace_period:"))
        .map(|v| humantime::parse_duration(v.trim()).expect("compose"))
        .expect("stop_grace_period");
    let readme = read("README.md");
    let docker_stop = readme
        .split("--stop-timeout ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs)
        .expect("docker run --stop-timeout");
    for (what, d) in [
        ("TimeoutStopSec", stop),
        ("stop_grace_period", compose_stop),
        ("--stop-timeout", docker_stop),
    ] {
        assert!(
            d > grace,
            "{what} {d:?} must outlast shutdown_grace {grace:?}"
        );
    }
}
