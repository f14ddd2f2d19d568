//! A Docker engine of the tests' own: Debian's `dockerd` started with its own data root,
//! exec root, socket and config (no bridge, no iptables: containers use `--network host`),
//! shared by the tests of this binary and stopped when the last of them is done.
//!
//! The data root lives under cargo's target dir (`target/tmp/docker`), so base images and
//! build layers are kept between local runs and never committed. The socket and exec root
//! live under `/tmp/pkgstash-docker-HASH` (unix socket paths are short), HASH naming the data
//! root, so two checkouts get two engines. A file lock on the data root keeps two test
//! processes of one checkout from sharing (or killing) one engine.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::repo;
use crate::support::{in_ci, is_root, sha256_hex};

/// A running `dockerd` of ours. Stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Engine {
    /// `unix:///tmp/pkgstash-docker-HASH/docker.sock`
    pub host: String,
    /// Where the engine keeps images, containers and volumes.
    pub data_root: PathBuf,
    run_dir: PathBuf,
    pid: u32,
    _lock: fs::File,
}

static ENGINE: Mutex<Weak<Engine>> = Mutex::new(Weak::new());

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `name` on PATH or in the sbin dirs a non-login root shell may lack.
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// The engine, started on first use. `None` (after printing why) when this machine cannot run
/// one and we are not in CI; in CI (`CI=true`) a missing engine is a failure.
pub fn engine() -> Option<Arc<Engine>> {
    let mut slot = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = slot.upgrade() {
        return Some(e);
    }
    let missing: Vec<&str> = ["dockerd", "docker", "debootstrap"]
        .into_iter()
        .filter(|t| find_tool(t).is_none())
        .collect();
    let why = if !missing.is_empty() {
        Some(format!(
            "{} not installed (scripts/install-test-deps.sh installs them)",
            missing.join(", ")
        ))
    } else if !is_root() {
        Some("running dockerd and debootstrap needs root".to_string())
    } else {
        None
    };
    if let Some(why) = why {
        assert!(
            !in_ci(),
            "Docker tests cannot run: {why} (CI=true: a failure, not a skip)"
        );
        eprintln!("SKIP: Docker tests: {why}");
        return None;
    }
    let e = Arc::new(Engine::start());
    *slot = Arc::downgrade(&e);
    Some(e)
}

impl Engine {
    fn start() -> Engine {
        let data_root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("docker");
        fs::create_dir_all(&data_root).expect("mkdir data root");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(data_root.with_extension("lock"))
            .expect("lock file");
        // Another test process of this checkout may be using the engine: wait for it.
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).expect("flock");
        let hash = &sha256_hex(data_root.to_string_lossy().as_bytes())[..12];
        let run_dir = PathBuf::from(format!("/tmp/pkgstash-docker-{hash}"));
        fs::create_dir_all(&run_dir).expect("mkdir run dir");
        let pidfile = run_dir.join("dockerd.pid");
        kill_stale(&pidfile, &data_root);
        let sock = run_dir.join("docker.sock");
        let _ = fs::remove_file(&sock);
        let config = run_dir.join("daemon.json");
        fs::write(&config, "{}\n").expect("daemon.json");
        let log_path = data_root.with_extension("log");
        let log = fs::File::create(&log_path).expect("dockerd log");
        let started = Instant::now();
        let child = Command::new(find_tool("dockerd").expect("dockerd"))
            .process_group(0)
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .arg("--config-file")
            .arg(&config)
            .arg("--data-root")
            .arg(&data_root)
            .arg("--exec-root")
            .arg(run_dir.join("exec"))
            .arg("--pidfile")
            .arg(&pidfile)
            .arg(format!("--cgroup-parent={}", cgroup_parent(&run_dir)))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn dockerd");
        let engine = Engine {
            host: format!("unix://{}", sock.display()),
            data_root,
            run_dir,
            pid: child.id(),
            _lock: lock,
        };
        // The child is reaped by Drop (waitpid on the pid); keep no handle.
        std::mem::forget(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = engine
                .docker()
                .args(["version", "--format", "{{.Server.Version}}"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if ok {
                break;
            }
            let alive = Path::new(&format!("/proc/{}", engine.pid)).exists();
            if !alive || Instant::now() > deadline {
                panic!(
                    "dockerd did not start:\n{}",
                    fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!(
            "dockerd started in {:.1?} (data root {})",
            started.elapsed(),
            engine.data_root.display()
        );
        engine.remove_leftovers();
        engine
    }

    /// The `docker` CLI talking to this engine only (its own client config dir too).
    pub fn docker(&self) -> Command {
        self.with_env(Command::new("docker"))
    }

    /// `sh -c SCRIPT` in the repository root, its `docker` commands talking to this engine:
    /// how the tests run README's commands as written.
    pub fn sh(&self, script: &str) -> Command {
        let mut c = self.with_env(Command::new("sh"));
        c.arg("-c").arg(script).current_dir(repo());
        c
    }

    fn with_env(&self, mut c: Command) -> Command {
        c.env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", self.run_dir.join("client"))
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null());
        c
    }

    /// `docker ARGS`, panicking with its output unless it succeeds; returns stdout, trimmed.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed ({}):\n{}{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout).trim().to_string()
    }

    /// `docker ARGS` (any outcome).
    pub fn run(&self, args: &[&str]) -> Output {
        self.docker()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run docker {args:?}: {e}"))
    }

    /// CPU time used so far by every container of this engine, build steps included (its
    /// cgroup parent; v1 `cpuacct.usage` or v2 `cpu.stat`), in seconds. `None` where the
    /// cgroup cannot be read. The difference over a build is its cost on an idle machine,
    /// whatever else the machine is doing.
    pub fn cpu_seconds(&self) -> Option<f64> {
        // The engine makes its cgroup with its first container: none yet is 0 s.
        let parent = cgroup_parent(&self.run_dir);
        let v1 = Path::new("/sys/fs/cgroup/cpuacct");
        if v1.is_dir() {
            let Ok(ns) = fs::read_to_string(v1.join(&parent).join("cpuacct.usage")) else {
                return Some(0.0);
            };
            return ns.trim().parse::<f64>().ok().map(|ns| ns / 1e9);
        }
        let v2 = Path::new("/sys/fs/cgroup");
        if !v2.join("cgroup.controllers").is_file() {
            return None;
        }
        let Ok(stat) = fs::read_to_string(v2.join(&parent).join("cpu.stat")) else {
            return Some(0.0);
        };
        stat.lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(|us| us.trim().parse::<f64>().ok())
            .map(|us| us / 1e6)
    }

    /// Containers and volumes a killed test run left behind (the engine is ours alone).
    /// Images stay: they are the cache.
    fn remove_leftovers(&self) {
        let ids = self.ok(&["ps", "-aq"]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(&ids);
            self.ok(&args);
        }
        self.ok(&["volume", "prune", "-f"]);
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_raw(self.pid as i32).expect("pid");
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG) {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                    let _ =
                        rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        unmount_below(&self.run_dir);
        eprintln!("dockerd stopped");
    }
}

/// Unmount what a stopped dockerd left mounted below `dir` (its network namespace file).
fn unmount_below(dir: &Path) {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let prefix = format!("{}/", dir.display());
    for point in mounts.lines().filter_map(|l| l.split_whitespace().nth(1)) {
        if point.starts_with(&prefix) {
            let _ = rustix::mount::unmount(point, rustix::mount::UnmountFlags::DETACH);
        }
    }
}

/// The cgroup all containers of the engine at `run_dir` go under (`pkgstash-docker-HASH`).
fn cgroup_parent(run_dir: &Path) -> String {
    run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .expect("run dir name")
}

/// A dockerd of an earlier, killed test run on this data root: stop it (its pidfile names
/// it, and its command line must name our data root, so a recycled pid is left alone).
fn kill_stale(pidfile: &Path, data_root: &Path) {
    let Some(pid) = fs::read_to_string(pidfile)
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
    else {
        return;
    };
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if !text(&cmdline).contains(&*data_root.to_string_lossy()) {
        return;
    }
    eprintln!("stopping a stale dockerd (pid {pid}) of an earlier run");
    let Some(p) = rustix::process::Pid::from_raw(pid) else {
        return;
    };
    let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Path::new(&format!("/proc/{pid}")).exists() {
        if Instant::now() > deadline {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            std::thread::sleep(Duration::from_millis(500));
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
