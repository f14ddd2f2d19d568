//! A pacman sandbox for tests: the real `pacman` with its own root, dbpath, cachedir and
//! pacman.conf, behind `timeout`, in its own process group. The client is either the host's
//! pacman 6.0 (run under `fakeroot` when not root) or Debian 13's pacman 7.0 in the trixie
//! chroot ([`crate::trixie`]), which downloads as the unprivileged `DownloadUser = alpm`
//! inside pacman's landlock sandbox, as Arch's default pacman.conf has it.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::support::{is_root, must, output_text};
use crate::trixie;

/// Which real pacman runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    /// The host's pacman (Debian 12: 6.0).
    Host,
    /// Debian 13's pacman 7.0 in the trixie chroot.
    Trixie,
}

impl Client {
    /// Can this client run here? (In CI a missing piece panics.) Makes the trixie root on
    /// first use.
    pub fn available(self) -> bool {
        match self {
            Client::Host => crate::support::require_tool("pacman"),
            Client::Trixie => {
                if !trixie::available() {
                    return false;
                }
                trixie::root();
                true
            }
        }
    }
}

/// A pacman sandbox: its own root, dbpath, cachedir and pacman.conf.
pub struct Sandbox {
    dir: tempfile::TempDir,
    client: Client,
}

impl Sandbox {
    /// A host-pacman sandbox whose pacman.conf lists `repos` as (name, `Server =` URL), with
    /// `SigLevel`.
    pub fn new(repos: &[(&str, &str)], sig_level: &str) -> Sandbox {
        Sandbox::with_client(Client::Host, repos, sig_level)
    }

    /// A sandbox for `client` whose pacman.conf lists `repos` as (name, `Server =` URL).
    pub fn with_client(client: Client, repos: &[(&str, &str)], sig_level: &str) -> Sandbox {
        let sections: String = repos
            .iter()
            .map(|(name, server)| format!("\n[{name}]\nServer = {server}\n"))
            .collect();
        Sandbox::with_sections(client, &sections, sig_level)
    }

    /// A sandbox for `client` with `sections` (pacman.conf repo sections, verbatim) after
    /// `[options]`.
    pub fn with_sections(client: Client, sections: &str, sig_level: &str) -> Sandbox {
        let dir = tempfile::tempdir().expect("tempdir");
        // pacman 7's DownloadUser must reach the cache dir.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let sb = Sandbox { dir, client };
        for d in ["db", "cache", "gnupg", "hooks"] {
            std::fs::create_dir_all(sb.root().join(d)).expect("mkdir");
        }
        let download_user = match client {
            Client::Host => "",
            Client::Trixie => "DownloadUser = alpm\n",
        };
        let conf = format!(
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
             ParallelDownloads = 5\n\
             {download_user}{sections}",
            r = sb.pacman_root().display()
        );
        std::fs::write(sb.root().join("pacman.conf"), conf).expect("pacman.conf");
        sb
    }

    pub fn client(&self) -> Client {
        self.client
    }

    /// The sandbox directory, as the tests see it.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The sandbox directory, as pacman sees it.
    fn pacman_root(&self) -> PathBuf {
        match self.client {
            Client::Host => self.root().to_path_buf(),
            Client::Trixie => PathBuf::from(trixie::SANDBOX_MOUNT),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let r = self.pacman_root();
        let mut cmd = Command::new("timeout");
        // Own process group, so `kill_group` reaches pacman behind `timeout`/`fakeroot`/`bwrap`.
        cmd.process_group(0).args(["-k", "5", "300"]);
        match self.client {
            Client::Host => {
                if !is_root() {
                    cmd.arg("fakeroot");
                }
                cmd.arg("pacman");
            }
            Client::Trixie => {
                cmd.args(trixie::argv(Some(self.root()), "pacman"));
            }
        }
        cmd.arg("--root")
            .arg(&r)
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
        let what = format!("pacman ({:?}) {args:?}", self.client);
        output_text(&must(&mut self.command(args), &what))
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

    /// The partial download of `name`, wherever this pacman keeps it: `<cache>/<name>.part`
    /// (pacman 6), or `<cache>/download-XXXXXX/<name>.part` (pacman 7 with a DownloadUser).
    pub fn partial_file(&self, name: &str) -> Option<PathBuf> {
        let part = format!("{name}.part");
        let direct = self.cache_file(&part);
        if direct.exists() {
            return Some(direct);
        }
        std::fs::read_dir(self.root().join("cache"))
            .ok()?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("download-"))
            .map(|e| e.path().join(&part))
            .find(|p| p.exists())
    }

    /// The version the synced db offers for `pkg`.
    pub fn sync_version(&self, pkg: &str) -> String {
        self.ok(&["-Sp", "--print-format", "%v", pkg])
            .trim()
            .to_string()
    }
}
