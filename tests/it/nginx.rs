//! A real nginx serving a directory on 127.0.0.1, as an upstream mirror for tests: its own
//! config and prefix dir, an adjustable `limit_rate`, and a JSON access log the tests read to
//! count requests and bytes. Stopped (SIGKILL) on drop.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{is_root, require_tool};

/// One line of the access log.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Access {
    pub method: String,
    pub uri: String,
    pub status: u16,
    pub bytes: u64,
    #[serde(default)]
    pub range: String,
    #[serde(default)]
    pub ims: String,
}

/// A running nginx.
pub struct Nginx {
    pub addr: SocketAddr,
    prefix: tempfile::TempDir,
    child: Child,
}

/// Is nginx installed? (In CI a missing nginx panics.)
pub fn available() -> bool {
    require_tool("nginx")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Nginx {
    /// Serve `root` with `limit_rate` (nginx syntax: `0` = unlimited, `2m` = 2 MiB/s).
    pub fn serve(root: &Path, limit_rate: &str) -> Nginx {
        let server = format!(
            "root {};\n        limit_rate {limit_rate};\n        disable_symlinks off;\n        autoindex off;",
            root.display()
        );
        Self::start(&server)
    }

    /// A redirector (like a GeoIP mirror or an http→https redirect): every request is
    /// answered `302 Found` to the same URI under `target` (e.g. `http://127.0.0.1:PORT`).
    pub fn redirect_to(target: &str) -> Nginx {
        Self::start(&format!(
            "location / {{ return 302 {target}$request_uri; }}"
        ))
    }

    /// Start with `server` as the server block's directives.
    fn start(server: &str) -> Nginx {
        Self::start_http(|port, pd| {
            format!(
                "server {{\n        listen 127.0.0.1:{port};\n        access_log {pd}/access.log json;\n        {server}\n    }}"
            )
        })
    }

    /// Start with `http(port, prefix dir)` as the `http {}` block's own directives (after the
    /// common ones: types, the `json` log format, temp paths, sendfile). It must listen on
    /// `127.0.0.1:port`.
    pub fn start_http(http: impl Fn(u16, &str) -> String) -> Nginx {
        // A port picked by the kernel can be taken by someone else before nginx binds it:
        // retry a few times.
        for _ in 0..5 {
            let port = free_port();
            let prefix = tempfile::tempdir().expect("tempdir");
            let block = http(port, &prefix.path().display().to_string());
            if let Some(n) = Self::try_start(prefix, &block, port) {
                return n;
            }
        }
        panic!("nginx did not start");
    }

    fn try_start(prefix: tempfile::TempDir, http: &str, port: u16) -> Option<Nginx> {
        let p = prefix.path();
        let pd = p.display();
        let user = if is_root() { "user root;" } else { "" };
        let conf = format!(
            r#"{user}
worker_processes 1;
daemon off;
pid {pd}/nginx.pid;
error_log {pd}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    types {{ }}
    default_type application/octet-stream;
    access_log off;
    log_format json escape=json '{{"method":"$request_method","uri":"$uri","status":$status,"bytes":$body_bytes_sent,"range":"$http_range","ims":"$http_if_modified_since"}}';
    client_body_temp_path {pd}/body;
    proxy_temp_path {pd}/proxy;
    fastcgi_temp_path {pd}/fastcgi;
    uwsgi_temp_path {pd}/uwsgi;
    scgi_temp_path {pd}/scgi;
    sendfile on;
    {http}
}}
"#
        );
        let conf_path = p.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("nginx conf");
        let mut child = Command::new("nginx")
            .process_group(0)
            .arg("-p")
            .arg(p)
            .arg("-e")
            .arg(p.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(addr).is_ok() {
                return Some(Nginx {
                    addr,
                    prefix,
                    child,
                });
            }
            if let Ok(Some(_)) = child.try_wait() {
                let err = std::fs::read_to_string(p.join("error.log")).unwrap_or_default();
                eprintln!("nginx exited: {err}");
                return None;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Base URL, e.g. `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request logged so far (nginx writes the line when a response ends).
    pub fn log(&self) -> Vec<Access> {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn log_path(&self) -> PathBuf {
        self.prefix.path().join("access.log")
    }

    /// Requests whose URI ends with `suffix`.
    pub fn requests_ending(&self, suffix: &str) -> Vec<Access> {
        self.log()
            .into_iter()
            .filter(|a| a.uri.ends_with(suffix))
            .collect()
    }

    /// Stop nginx now (a mirror going down): master and workers. Killing only the master
    /// would leave its workers serving.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}
