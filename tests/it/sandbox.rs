//! A pacman sandbox for tests: the real `pacman` with its own root, dbpath, cachedir and
//! pacman.conf (run under `fakeroot` when not root, behind `timeout`, in its own process group).
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::support::is_root;

/// A pacman sandbox: its own root, dbpath, cachedir and pacman.conf.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    /// A sandbox whose pacman.conf lists `repos` as (name, `Server =` URL), with `SigLevel`.
    pub fn new(repos: &[(&str, &str)], sig_level: &str) -> Sandbox {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = dir.path();
        for d in ["db", "cache", "gnupg", "hooks"] {
            std::fs::create_dir_all(r.join(d)).expect("mkdir");
        }
        let mut conf = format!(
            "[options]\n\
             RootDir = {r}\n\
             DBPath = {r}/db/\n\
             CacheDir = {r}/cache/\n\
             LogFile = {r}/pacman.log\n\
             GPGDir = {r}/gnupg/\n\
             HookDir = {r}/hooks/\n\
             Architecture = x86_64\n\
             SigLevel = {sig_level}\n\
             LocalFileSigLevel = Never\n\
             ParallelDownloads = 5\n",
            r = r.display()
        );
        for (name, server) in repos {
            conf.push_str(&format!("\n[{name}]\nServer = {server}\n"));
        }
        std::fs::write(r.join("pacman.conf"), conf).expect("pacman.conf");
        Sandbox { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let r = self.root();
        let mut cmd = Command::new("timeout");
        // Own process group, so `kill_group` reaches pacman behind `timeout`/`fakeroot`.
        cmd.process_group(0).args(["-k", "5", "300"]);
        if !is_root() {
            cmd.arg("fakeroot");
        }
        cmd.arg("pacman")
            .arg("--root")
            .arg(r)
            .arg("--dbpath")
            .arg(r.join("db"))
            .arg("--cachedir")
            .arg(r.join("cache"))
            .arg("--config")
            .arg(r.join("pacman.conf"))
            .arg("--noconfirm")
            .args(args)
            .args(
                args.first()
                    .filter(|a| a.starts_with("-S"))
                    .map(|_| "--noprogressbar"),
            )
            .stdin(Stdio::null())
            .env("LC_ALL", "C");
        cmd
    }

    /// Run pacman and return its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run pacman")
    }

    /// Run pacman, assert success, return stdout + stderr.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "pacman {args:?} failed:\n{text}");
        text
    }

    /// Start pacman in the background (stdout/stderr discarded).
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pacman")
    }

    pub fn cache_file(&self, name: &str) -> PathBuf {
        self.root().join("cache").join(name)
    }

    /// The version the synced db offers for `pkg`.
    pub fn sync_version(&self, pkg: &str) -> String {
        self.ok(&["-Sp", "--print-format", "%v", pkg])
            .trim()
            .to_string()
    }
}
