//! A fake AUR for the build server's tests: the RPC (`/rpc/v5/info`) from a tiny HTTP server,
//! package git repos as local bare repos (for `git_url`), a webhook receiver that records what
//! pkgstash notifies, and tiny source-less PKGBUILDs. Used by [`crate::aur`] and
//! [`crate::browser`].
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::support::{is_root, must, require_tool, text};

/// The unprivileged user builds run as when the tests run as root.
pub const BUILD_USER: &str = "pkgstash-build";

/// makepkg, fakeroot, bsdtar, git, repo-add, pacman here, and (as root) the build user
/// [`BUILD_USER`] (created when missing).
pub fn build_tools() -> bool {
    let mut ok = true;
    for t in [
        "makepkg", "fakeroot", "bsdtar", "git", "repo-add", "pacman", "setpriv",
    ] {
        ok &= require_tool(t);
    }
    if ok && is_root() {
        let exists = Command::new("id")
            .arg(BUILD_USER)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !exists {
            // Concurrent tests may race to create it: check again after.
            let _ = Command::new("useradd")
                .args(["--system", "--no-create-home", "--home-dir", "/nonexistent"])
                .args(["--shell", "/usr/sbin/nologin", BUILD_USER])
                .status();
            let made = Command::new("id")
                .arg(BUILD_USER)
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(made, "cannot create the build user {BUILD_USER}");
        }
    }
    ok
}

/// Read one HTTP request: (request line, body).
fn read_request(stream: &TcpStream) -> Option<(String, Vec<u8>)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((line.trim().to_string(), body))
}

fn respond(mut stream: &TcpStream, status: &str, body: &[u8]) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(body);
}

/// A tiny fake AUR RPC: `GET /rpc/v5/info?arg[]=…` answers from `packages`.
pub struct FakeAur {
    port: u16,
    /// name → (package base, version)
    packages: Arc<Mutex<BTreeMap<String, (String, String)>>>,
}

impl FakeAur {
    pub fn start() -> FakeAur {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let packages: Arc<Mutex<BTreeMap<String, (String, String)>>> = Arc::default();
        let pk = packages.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let Some((line, _)) = read_request(&stream) else {
                    continue;
                };
                let target = line.split(' ').nth(1).unwrap_or("");
                let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
                let names: Vec<String> = query
                    .split('&')
                    .filter_map(|kv| {
                        kv.strip_prefix("arg%5B%5D=")
                            .or_else(|| kv.strip_prefix("arg[]="))
                    })
                    .map(|n| n.replace("%2B", "+"))
                    .collect();
                let results: Vec<Value> = {
                    let map = pk.lock().expect("lock");
                    names
                        .iter()
                        .filter_map(|n| {
                            map.get(n).map(|(base, ver)| {
                                serde_json::json!({"Name": n, "PackageBase": base, "Version": ver, "ID": 1})
                            })
                        })
                        .collect()
                };
                let body = serde_json::json!({
                    "version": 5, "type": "multiinfo", "resultcount": results.len(), "results": results
                });
                if target.starts_with("/rpc/v5/info") {
                    respond(&stream, "200 OK", body.to_string().as_bytes());
                } else {
                    respond(&stream, "404 Not Found", b"{}");
                }
            }
        });
        FakeAur { port, packages }
    }

    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}/rpc/v5", self.port)
    }

    pub fn set(&self, name: &str, version: &str) {
        self.packages
            .lock()
            .expect("lock")
            .insert(name.into(), (name.into(), version.into()));
    }
}

/// Records every JSON body POSTed to it.
pub struct Webhook {
    port: u16,
    received: Arc<Mutex<Vec<Value>>>,
}

impl Webhook {
    pub fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let received: Arc<Mutex<Vec<Value>>> = Arc::default();
        let rx = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                if let Some((_, body)) = read_request(&stream) {
                    if let Ok(v) = serde_json::from_slice(&body) {
                        rx.lock().expect("lock").push(v);
                    }
                    respond(&stream, "200 OK", b"");
                }
            }
        });
        Webhook { port, received }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    pub fn events(&self, event: &str) -> Vec<Value> {
        self.received
            .lock()
            .expect("lock")
            .iter()
            .filter(|v| v["event"] == event)
            .cloned()
            .collect()
    }
}

/// A package's git repo on the fake AUR: a bare repo and a work tree to commit from.
pub struct AurRepo {
    pub work: PathBuf,
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = must(
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=aur", "-c", "user.email=aur@example.org"])
            .args(args),
        &format!("git {args:?}"),
    );
    text(&out.stdout).trim().to_string()
}

impl AurRepo {
    /// `<root>/<name>.git` (bare) with a work tree `<root>/<name>.work`.
    pub fn create(root: &Path, name: &str) -> AurRepo {
        let bare = root.join(format!("{name}.git"));
        let work = root.join(format!("{name}.work"));
        std::fs::create_dir_all(&bare).expect("mkdir");
        git(&bare, &["init", "-q", "--bare", "-b", "master"]);
        std::fs::create_dir_all(&work).expect("mkdir");
        git(&work, &["init", "-q", "-b", "master"]);
        git(
            &work,
            &["remote", "add", "origin", &bare.display().to_string()],
        );
        AurRepo { work }
    }

    /// Commit `files` (path, content) and push; returns the commit id.
    pub fn commit(&self, files: &[(&str, String)], msg: &str) -> String {
        for (path, content) in files {
            std::fs::write(self.work.join(path), content).expect("write");
        }
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", msg]);
        git(&self.work, &["push", "-q", "origin", "HEAD:master"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }
}

/// A tiny PKGBUILD without sources: `package()` writes one file naming the version.
pub fn pkgbuild(name: &str, ver: &str, rel: u32, build_body: &str) -> String {
    format!(
        "# Maintainer: pkgstash tests\npkgname={name}\npkgver={ver}\npkgrel={rel}\n\
         pkgdesc=\"pkgstash AUR test package\"\narch=('any')\nlicense=('MIT')\n\n\
         build() {{\n{build_body}\n}}\n\n\
         package() {{\n  mkdir -p \"$pkgdir/usr/share/{name}\"\n  echo \"{name} $pkgver-$pkgrel\" > \"$pkgdir/usr/share/{name}/version\"\n}}\n"
    )
}

pub fn srcinfo(name: &str, ver: &str, rel: u32) -> String {
    format!(
        "pkgbase = {name}\n\tpkgdesc = pkgstash AUR test package\n\tpkgver = {ver}\n\tpkgrel = {rel}\n\tarch = any\n\tlicense = MIT\n\npkgname = {name}\n"
    )
}

pub fn package_files(
    name: &str,
    ver: &str,
    rel: u32,
    build_body: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("PKGBUILD", pkgbuild(name, ver, rel, build_body)),
        (".SRCINFO", srcinfo(name, ver, rel)),
    ]
}
