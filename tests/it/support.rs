//! Test support: start the real `pkgstash` binary on 127.0.0.1 with a config of the
//! test's choosing ([`arch_config`] for the usual one), learn its port from its log, ask it
//! (requests, status, metrics, its cache) and kill it on drop; run commands that must succeed
//! ([`must`]) and read their output.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
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

    /// [`get`] `path` of this server.
    pub fn get(&self, path: &str) -> (u16, Result<Vec<u8>, String>) {
        get(&self.url(path))
    }

    /// The server's `/_pkgstash/status.json`.
    pub fn status_json(&self) -> serde_json::Value {
        client()
            .get(self.url("/_pkgstash/status.json"))
            .send()
            .expect("status")
            .json()
            .expect("json")
    }

    /// [`Pkgstash::status_json`], or `Value::Null` when it does not answer (for polling).
    pub fn status_json_or_null(&self) -> serde_json::Value {
        client()
            .get(self.url("/_pkgstash/status.json"))
            .send()
            .and_then(|r| r.json())
            .unwrap_or_default()
    }

    /// The server's `/_pkgstash/metrics` text.
    pub fn metrics(&self) -> String {
        client()
            .get(self.url("/_pkgstash/metrics"))
            .send()
            .expect("metrics")
            .text()
            .expect("text")
    }

    /// Files left in the cache's `.partial/` (an aborted download leaves none).
    pub fn partials(&self) -> usize {
        std::fs::read_dir(self.cache_dir.join(".partial"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Wait (10 s at most) until the download of cache path `rel` is published (a client may
    /// finish a moment before); its bytes.
    pub fn wait_cached(&self, rel: &str) -> Vec<u8> {
        let file = self.cache_dir.join(rel);
        wait_for(&format!("{rel} cached"), Duration::from_secs(10), || {
            file.is_file()
        });
        std::fs::read(&file).expect("read cached")
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

    /// Send `signal` (a `kill -s` name: `TERM`, `QUIT`) without waiting.
    pub fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status();
    }

    /// Has the process exited? Its exit code (`-1` for a signal) if so.
    pub fn exited(&mut self) -> Option<i32> {
        self.child
            .try_wait()
            .ok()
            .flatten()
            .map(|s| s.code().unwrap_or(-1))
    }

    /// Wait (at most `timeout`) for the process to exit: its exit code, `-1` for a signal.
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(code) = self.exited() {
                return code;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "pkgstash did not exit within {timeout:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
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

/// A config with one upstream `arch` on `mirrors` (URLs), `upstream_timeout` = `timeout`
/// (e.g. `"2s"`), and `extra` TOML (top-level keys, then any tables) before the upstream.
pub fn arch_config(timeout: &str, mirrors: &[String], extra: &str) -> String {
    let list: Vec<String> = mirrors.iter().map(|m| format!("\"{m}\"")).collect();
    format!(
        "upstream_timeout = \"{timeout}\"\n{extra}\n[upstreams.arch]\nmirrors = [{}]\n",
        list.join(", ")
    )
}

/// GET `url`: the status, and the body (`Err`: it was cut short, and why).
pub fn get(url: &str) -> (u16, Result<Vec<u8>, String>) {
    let resp = client().get(url).send().expect("request");
    let status = resp.status().as_u16();
    (
        status,
        resp.bytes().map(|b| b.to_vec()).map_err(|e| e.to_string()),
    )
}

/// GET `url`, which pkgstash must refuse to deliver whole (wrong bytes for its repo db): a
/// 200 whose body is cut short, or a 502 when the download was refused before the answer
/// began (a small file from a local mirror is fetched and checked in a moment). Panics, with
/// `what`, when the body arrives complete with a 200.
pub fn assert_refused_whole(url: &str, what: &str) {
    match get(url) {
        (200, Ok(body)) => panic!("{what}: served whole ({} bytes)", body.len()),
        (200, Err(_)) => {}
        (status, _) => assert_eq!(status, 502, "{what}"),
    }
}

/// GET `url`: the status and the body (empty when it was cut short).
pub fn get_body(url: &str) -> (u16, Vec<u8>) {
    let (status, body) = get(url);
    (status, body.unwrap_or_default())
}

/// GET `url` on a thread of its own (a client that waits while the test goes on): its body.
pub fn get_in_background(url: &str) -> std::thread::JoinHandle<reqwest::Result<Vec<u8>>> {
    let url = url.to_string();
    std::thread::spawn(move || {
        client()
            .get(&url)
            .send()
            .and_then(|r| r.bytes())
            .map(|b| b.to_vec())
    })
}

/// The value of the sample `name` (with its labels, e.g. `pkgstash_requests_total{result="hit"}`)
/// in Prometheus text `metrics`, if there is one.
pub fn metric_sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

/// Lossy UTF-8 of process output.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// stdout followed by stderr.
pub fn output_text(out: &Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

/// Panic unless `out` (of the command `what`) is a success: the message has its status,
/// stdout and stderr.
pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({})\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Run `cmd` (output captured); panic naming `what`, with its output, unless it succeeds.
pub fn must(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert_success(&out, &format!("{what} ({cmd:?})"));
    out
}

/// `(exit code, stdout, stderr)` of a finished command; the code is -1 when a signal ended it.
pub fn exit_and_output(out: &Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}
