//! Test support: start the real `pkgstash` binary on 127.0.0.1 with a config of the
//! test's choosing, learn its port from its log, and kill it on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running pkgstash process. Killed (SIGKILL) when dropped.
pub struct Pkgstash {
    pub addr: SocketAddr,
    pub cache_dir: PathBuf,
    pub config_path: PathBuf,
    child: Child,
    /// Keeps the temp dir alive as long as the server runs (unless a dir was given).
    _dir: Option<tempfile::TempDir>,
    log: std::sync::Arc<parking_lot::Mutex<Vec<String>>>,
}

/// Path of the built binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pkgstash")
}

/// True when running in CI, where a missing external tool is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Is `tool` on PATH? In CI a missing tool panics; locally the caller may skip.
pub fn require_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found && in_ci() {
        panic!("required tool `{tool}` is missing (CI=true: a missing tool is a failure)");
    }
    if !found {
        eprintln!("SKIP: `{tool}` not installed");
    }
    found
}

impl Pkgstash {
    /// Start pkgstash in a fresh temp dir. `body` is the TOML after the top-level
    /// keys `listen` and `cache_dir` (which this function sets), e.g.
    /// `"[upstreams.arch]\nmirrors = [\"http://127.0.0.1:1234\"]\n"`.
    pub fn start(body: &str) -> Pkgstash {
        let dir = tempfile::tempdir().expect("tempdir");
        let (work, cache) = (dir.path().to_path_buf(), dir.path().join("cache"));
        Self::start_in(&work, &cache, body, &[], Some(dir))
    }

    /// Start with extra environment variables.
    pub fn start_env(body: &str, env: &[(&str, &str)]) -> Pkgstash {
        let dir = tempfile::tempdir().expect("tempdir");
        let (work, cache) = (dir.path().to_path_buf(), dir.path().join("cache"));
        Self::start_in(&work, &cache, body, env, Some(dir))
    }

    /// Start with a given work dir and cache dir (for restarts over the same cache).
    pub fn start_in(
        work: &Path,
        cache_dir: &Path,
        body: &str,
        env: &[(&str, &str)],
        dir: Option<tempfile::TempDir>,
    ) -> Pkgstash {
        let config_path = work.join("pkgstash.toml");
        let toml = format!(
            "listen = \"127.0.0.1:0\"\ncache_dir = \"{}\"\n{}",
            cache_dir.display(),
            body
        );
        std::fs::write(&config_path, toml).expect("write config");
        let mut cmd = Command::new(bin());
        cmd.arg("serve")
            .arg("-c")
            .arg(&config_path)
            .env(
                "RUST_LOG",
                std::env::var("PKGSTASH_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env_remove("PKGSTASH_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn pkgstash");
        let stderr = child.stderr.take().expect("stderr");
        let log = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var("PKGSTASH_TEST_ECHO").is_ok() {
                    eprintln!("[pkgstash] {line}");
                }
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    if let Ok(addr) = rest.trim().parse::<SocketAddr>() {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(addr);
                        }
                    }
                }
                log2.lock().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("pkgstash did not start; log:\n{}", log.lock().join("\n"));
            }
        };
        Pkgstash {
            addr,
            cache_dir: cache_dir.to_path_buf(),
            config_path,
            child,
            _dir: dir,
            log,
        }
    }

    /// `http://127.0.0.1:PORT` + `path` (path starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory of the server so far (`VmHWM`), bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .expect("VmHWM")
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().join("\n")
    }

    /// SIGKILL the server now (crash simulation). Returns the temp dir so a restart can reuse it.
    pub fn kill9(mut self) -> Option<tempfile::TempDir> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self._dir.take()
    }

    /// Send SIGTERM and wait for exit; returns the exit status code.
    pub fn terminate(mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for Pkgstash {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// sha256 hex of bytes.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Are we root? (pacman then runs directly, else under fakeroot; nginx needs `user root;`.)
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Poll `cond` until it holds; panic naming `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A blocking HTTP client for talking to pkgstash (60 s per request: a test failing on a
/// hang says so instead of waiting for CI's limit).
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client")
}
