//! A real HAProxy (Debian's `haproxy`) on 127.0.0.1 running the shipped
//! `packaging/haproxy/pkgstash.cfg` — the very file, with only its addresses, the stats socket
//! path and the log target replaced — in front of pkgstash nodes. Its stats socket says what
//! it thinks of each node; its log (stdout/stderr) is kept. Stopped (SIGKILL) on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::support::require_tool;

/// Where Debian installs it (often not on a non-root PATH).
const SBIN: &str = "/usr/sbin/haproxy";

/// The shipped config.
pub fn shipped_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/haproxy/pkgstash.cfg")
}

/// The haproxy binary, if installed (in CI a missing one panics).
pub fn binary() -> Option<PathBuf> {
    if Path::new(SBIN).is_file() {
        return Some(PathBuf::from(SBIN));
    }
    require_tool("haproxy").then(|| PathBuf::from("haproxy"))
}

/// One server line of `show stat`.
#[derive(Debug, Clone)]
pub struct ServerStat {
    pub name: String,
    /// `UP`, `DOWN`, `MAINT`, `UP 1/2`, `DOWN 1/2`, …
    pub status: String,
    /// The last check's result: `L7OK`, `L7STS` (wrong status), `L4CON` (refused), …
    pub check_status: String,
    /// The last check's HTTP status, when it got one.
    pub check_code: String,
}

/// A running HAProxy.
pub struct Haproxy {
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

/// The shipped config with the test's addresses: the frontend on `127.0.0.1:port`, one
/// `server nodeN ADDR` per node (the shipped lines' options kept: `default-server` has them).
pub fn config_for(port: u16, nodes: &[SocketAddr], socket: &Path) -> String {
    let shipped = std::fs::read_to_string(shipped_config()).expect("shipped haproxy config");
    let mut out = String::new();
    let mut servers_done = false;
    let mut replaced = 0;
    for line in shipped.lines() {
        let t = line.trim_start();
        if t.starts_with("server node") {
            if !servers_done {
                for (i, n) in nodes.iter().enumerate() {
                    out.push_str(&format!("    server node{} {n}\n", i + 1));
                }
                servers_done = true;
                replaced += 1;
            }
            continue;
        }
        let new = if t == "bind :7878" {
            format!("    bind 127.0.0.1:{port}")
        } else if t == "log /dev/log local0" {
            "    log stdout format raw local0".to_string()
        } else if let Some(rest) = t.strip_prefix("stats socket /run/haproxy/pkgstash.sock") {
            format!("    stats socket {}{rest}", socket.display())
        } else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        replaced += 1;
        out.push_str(&new);
        out.push('\n');
    }
    assert_eq!(replaced, 4, "the shipped config changed shape:\n{shipped}");
    out
}

impl Haproxy {
    /// Start the shipped config in front of `nodes`. `None` when haproxy is missing (skip).
    pub fn start(nodes: &[SocketAddr]) -> Option<Haproxy> {
        let bin = binary()?;
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("free port");
            if let Some(h) = Self::try_start(&bin, port, nodes) {
                return Some(h);
            }
        }
        panic!("haproxy did not start (installed, so this is a failure)");
    }

    fn try_start(bin: &Path, port: u16, nodes: &[SocketAddr]) -> Option<Haproxy> {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("stats.sock");
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, config_for(port, nodes, &socket)).expect("write cfg");
        let mut child = Command::new(bin)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn haproxy");
        let log = Arc::new(Mutex::new(Vec::new()));
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if std::env::var("PKGSTASH_TEST_ECHO").is_ok() {
                        eprintln!("[haproxy] {line}");
                    }
                    log.lock().push(line);
                }
            });
        }
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(addr).is_ok() && socket.exists() {
                return Some(Haproxy {
                    addr,
                    dir,
                    child,
                    log,
                });
            }
            if let Ok(Some(_)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(200));
                eprintln!("haproxy exited: {}", log.lock().join("\n"));
                return None;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Run one stats-socket command; its answer.
    pub fn command(&self, cmd: &str) -> String {
        let mut s = UnixStream::connect(self.dir.path().join("stats.sock")).expect("stats socket");
        s.write_all(format!("{cmd}\n").as_bytes()).expect("send");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        out
    }

    /// The backend's servers as `show stat` reports them.
    pub fn servers(&self) -> Vec<ServerStat> {
        let csv = self.command("show stat");
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let col = |row: &[&str], name: &str| {
            header
                .iter()
                .position(|h| *h == name)
                .and_then(|i| row.get(i))
                .map(|v| v.to_string())
                .unwrap_or_default()
        };
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|row| row.first() == Some(&"pkgstash_pool"))
            .filter(|row| row.get(1).is_some_and(|n| n.starts_with("node")))
            .map(|row| ServerStat {
                name: col(&row, "svname"),
                status: col(&row, "status"),
                check_status: col(&row, "check_status"),
                check_code: col(&row, "check_code"),
            })
            .collect()
    }

    /// `show stat` of server `name` (`node1`, …).
    pub fn server(&self, name: &str) -> ServerStat {
        self.servers()
            .into_iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no server {name}"))
    }

    /// Wait until every node is `UP` (the first checks have passed).
    pub fn wait_all_up(&self) {
        crate::support::wait_for("every node UP", Duration::from_secs(15), || {
            self.servers().iter().all(|s| s.status == "UP")
        });
    }

    /// Everything HAProxy logged so far.
    pub fn log(&self) -> String {
        self.log.lock().join("\n")
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
