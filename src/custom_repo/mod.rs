//! Custom repos (`[repos.<name>]`): packages published through pkgstash itself, served
//! read-only at `/<name>/os/<arch>/…` next to the cached mirrors.
//!
//! On disk, under the repo's `path`:
//! - `pool/<file>` (+ `.sig`): every package file kept (current and, per the cleanup policy's
//!   `keep_versions`, older versions);
//! - `.pkgstash/state.json`: the source of truth — metadata of every current package —
//!   replaced atomically and durably ([`crate::durable`]: temp + fsync + rename + fsync dir); `.pkgstash/dbs.stamp`: the digest of the
//!   state (+ arches, signing key) the published dbs were made from, written last;
//! - `<arch>/<name>.db.tar.gz`, `<arch>/<name>.files.tar.gz` (+ `.sig` when signing), with
//!   `<name>.db` / `<name>.files` symlinks as `repo-add` makes them: regenerated from the state
//!   after every change, and at start when the stamp or a db file says they are not the
//!   state's (so a crash between two renames heals itself).
//!
//! Changes of one repo are serialized by its mutex; db regeneration swaps both dbs under a
//! write lock that readers hold while opening a db file, so a client never sees a new `.db`
//! with an old `.files`. An upload is checked completely (archive, `.PKGINFO`, file name)
//! before anything of the repo changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::config::{Config, RepoConfig};
use crate::repo::package::{is_package_file_name, read_package, PackageMeta, PkgError};
use crate::repo::vercmp::vercmp;

/// Why a repo operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("no repo named `{0}`")]
    NoSuchRepo(String),
    #[error("repo {repo}: no package named `{name}`")]
    NoSuchPackage { repo: String, name: String },
    #[error("bad package: {0}")]
    BadPackage(#[from] PkgError),
    #[error("repo {repo}: architecture `{arch}` is not one of {allowed:?}")]
    WrongArch {
        repo: String,
        arch: String,
        allowed: Vec<String>,
    },
    #[error("bad signature: {0}")]
    BadSignature(String),
    #[error("repo {repo}: {what}: {source}")]
    Io {
        repo: String,
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("repo {repo}: signing failed: {why}")]
    Sign { repo: String, why: String },
}

/// What adding a package did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Added {
    pub repo: String,
    pub name: String,
    pub version: String,
    pub arch: String,
    pub filename: String,
    /// The version it replaced, if any.
    pub replaced: Option<String>,
    /// Older package files removed by the `keep_versions` policy.
    pub pruned: Vec<String>,
}

/// Saved state of one repo.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// Current packages by `name` (one version per name; an `any` package serves every arch).
    packages: BTreeMap<String, PackageMeta>,
}

/// One custom repo.
pub struct LocalRepo {
    pub cfg: RepoConfig,
    keep_versions: usize,
    /// Serializes changes.
    state: Mutex<State>,
    /// Held (read) while a db file is opened for serving, (write) while dbs are swapped.
    dbs: RwLock<()>,
}

/// All custom repos.
#[derive(Default)]
pub struct LocalRepos {
    repos: BTreeMap<String, LocalRepo>,
}

fn io_err(repo: &str, what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RepoError + '_ {
    let what = what.into();
    move |source| RepoError::Io {
        repo: repo.to_string(),
        what,
        source,
    }
}

impl LocalRepos {
    /// Open every configured repo: create its directories, load its state, regenerate dbs.
    pub fn open(cfg: &Config) -> Result<LocalRepos, RepoError> {
        let mut repos = BTreeMap::new();
        for rc in cfg.repos.values() {
            let repo = LocalRepo::open(rc.clone(), cfg.cleanup.keep_versions)?;
            repos.insert(rc.name.clone(), repo);
        }
        Ok(LocalRepos { repos })
    }

    pub fn get(&self, name: &str) -> Option<&LocalRepo> {
        self.repos.get(name)
    }

    fn repo(&self, name: &str) -> Result<&LocalRepo, RepoError> {
        self.get(name)
            .ok_or_else(|| RepoError::NoSuchRepo(name.to_string()))
    }

    /// Add the package at `pkg_file` (named as its file name) with an optional detached
    /// signature file.
    pub fn add_package(
        &self,
        repo: &str,
        pkg_file: &Path,
        sig: Option<&Path>,
    ) -> Result<Added, RepoError> {
        let filename = pkg_file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let sig = match sig {
            Some(p) => Some(std::fs::read(p).map_err(io_err(repo, "cannot read signature"))?),
            None => None,
        };
        self.repo(repo)?.add(pkg_file, &filename, sig)
    }

    /// Add an uploaded package (a temp file) published as `filename`.
    pub fn add_upload(
        &self,
        repo: &str,
        tmp: &Path,
        filename: &str,
        sig: Option<Vec<u8>>,
    ) -> Result<Added, RepoError> {
        self.repo(repo)?.add(tmp, filename, sig)
    }

    /// Remove package `name` from the repo's dbs (its files stay in the pool per policy).
    pub fn remove(&self, repo: &str, name: &str) -> Result<PackageMeta, RepoError> {
        self.repo(repo)?.remove(name)
    }

    /// The repo's current packages, sorted by name.
    pub fn list(&self, repo: &str) -> Result<Vec<PackageMeta>, RepoError> {
        Ok(self
            .repo(repo)?
            .state
            .lock()
            .packages
            .values()
            .cloned()
            .collect())
    }
}

impl LocalRepo {
    fn open(cfg: RepoConfig, keep_versions: usize) -> Result<LocalRepo, RepoError> {
        let name = cfg.name.clone();
        for d in [cfg.path.join("pool"), cfg.path.join(".pkgstash")] {
            std::fs::create_dir_all(&d)
                .map_err(io_err(&name, format!("cannot create {}", d.display())))?;
        }
        for a in &cfg.arch {
            let d = cfg.path.join(a);
            std::fs::create_dir_all(&d)
                .map_err(io_err(&name, format!("cannot create {}", d.display())))?;
        }
        let state_file = cfg.path.join(".pkgstash/state.json");
        let state = match std::fs::read(&state_file) {
            Ok(data) => serde_json::from_slice(&data).map_err(|e| RepoError::Io {
                repo: name.clone(),
                what: format!("cannot parse {}", state_file.display()),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(io_err(&name, "cannot read state")(e)),
        };
        // Leftovers of interrupted uploads and writes.
        let dirs = [".pkgstash", "pool"]
            .into_iter()
            .chain(cfg.arch.iter().map(String::as_str));
        for rd in dirs.filter_map(|d| std::fs::read_dir(cfg.path.join(d)).ok()) {
            for e in rd.flatten() {
                if e.file_name()
                    .to_string_lossy()
                    .starts_with(crate::durable::TEMP_PREFIX)
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let repo = LocalRepo {
            cfg,
            keep_versions,
            state: Mutex::new(state),
            dbs: RwLock::new(()),
        };
        {
            let st = repo.state.lock();
            // Only when the dbs are not those of this state (a crash between saving the state
            // and publishing its dbs, a config change, a deleted db): rewriting them at every
            // start would change their Last-Modified (every client re-downloads them) and
            // need the signing key at every start.
            let fresh = repo.dbs_match(&st);
            if !fresh {
                repo.write_dbs(&st)?;
            }
            log::info!(
                "custom repo {}: {} packages in {}{}",
                repo.cfg.name,
                st.packages.len(),
                repo.cfg.path.display(),
                if fresh { "" } else { " (dbs regenerated)" }
            );
        }
        Ok(repo)
    }

    /// Directory for upload temp files (same filesystem as the pool).
    pub fn upload_dir(&self) -> PathBuf {
        self.cfg.path.join(".pkgstash")
    }

    fn pool(&self) -> PathBuf {
        self.cfg.path.join("pool")
    }

    fn add(&self, src: &Path, filename: &str, sig: Option<Vec<u8>>) -> Result<Added, RepoError> {
        let name = self.cfg.name.clone();
        let mut meta = read_package(src, filename)?;
        if meta.arch != "any" && !self.cfg.arch.contains(&meta.arch) {
            return Err(RepoError::WrongArch {
                repo: name,
                arch: meta.arch,
                allowed: self.cfg.arch.clone(),
            });
        }
        let sig = match sig {
            Some(s) => Some(check_signature(s)?),
            None => None,
        };
        let mut st = self.state.lock();
        let pool = self.pool();
        let dest = pool.join(filename);
        // Copy (not move: the source may be the caller's file) via a temp file + rename.
        {
            let mut tmp = crate::durable::Staged::new(&dest)
                .map_err(io_err(&name, "cannot create a temp file in the pool"))?;
            let mut from =
                std::fs::File::open(src).map_err(io_err(&name, "cannot read package"))?;
            std::io::copy(&mut from, tmp.file()).map_err(io_err(&name, "cannot copy package"))?;
            tmp.commit()
                .map_err(io_err(&name, "cannot place package"))?;
        }
        let sig_path = pool.join(format!("{filename}.sig"));
        let sig = match (sig, &self.cfg.sign_key) {
            (Some(s), _) => Some(s),
            (None, Some(key)) => Some(gpg_sign(&name, key, &dest)?),
            (None, None) => None,
        };
        match &sig {
            Some(s) => crate::durable::write(&sig_path, s)
                .map_err(io_err(&name, "cannot write signature"))?,
            None => {
                if std::fs::remove_file(&sig_path).is_ok() {
                    let _ = crate::durable::sync_dir(&pool);
                }
            }
        }
        meta.pgpsig = sig.as_ref().map(|s| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(s)
        });
        let replaced = st
            .packages
            .insert(meta.name.clone(), meta.clone())
            .map(|old| old.version)
            .filter(|v| *v != meta.version);
        self.save(&st)?;
        self.write_dbs(&st)?;
        let pruned = self.prune(&st, &meta.name);
        log::info!(
            "custom repo {name}: added {filename}{}",
            replaced
                .as_deref()
                .map(|v| format!(" (replaces {v})"))
                .unwrap_or_default()
        );
        Ok(Added {
            repo: name,
            name: meta.name,
            version: meta.version,
            arch: meta.arch,
            filename: filename.to_string(),
            replaced,
            pruned,
        })
    }

    fn remove(&self, pkgname: &str) -> Result<PackageMeta, RepoError> {
        let mut st = self.state.lock();
        let Some(old) = st.packages.remove(pkgname) else {
            return Err(RepoError::NoSuchPackage {
                repo: self.cfg.name.clone(),
                name: pkgname.to_string(),
            });
        };
        self.save(&st)?;
        self.write_dbs(&st)?;
        self.prune(&st, pkgname);
        log::info!("custom repo {}: removed {}", self.cfg.name, old.filename);
        Ok(old)
    }

    fn save(&self, st: &State) -> Result<(), RepoError> {
        let data = serde_json::to_vec_pretty(st).map_err(|e| RepoError::Io {
            repo: self.cfg.name.clone(),
            what: "cannot encode state".into(),
            source: std::io::Error::other(e),
        })?;
        let path = self.cfg.path.join(".pkgstash/state.json");
        crate::durable::write(&path, &data).map_err(io_err(&self.cfg.name, "cannot save state"))
    }

    /// What the dbs are made from: the state, the arches and the signing key. Its digest is
    /// kept next to the state after every db generation.
    fn db_stamp(&self, st: &State) -> String {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(serde_json::to_vec(st).unwrap_or_default());
        h.update(self.cfg.arch.join(",").as_bytes());
        h.update([0]);
        h.update(self.cfg.sign_key.as_deref().unwrap_or("").as_bytes());
        hex::encode(h.finalize())
    }

    fn stamp_path(&self) -> PathBuf {
        self.cfg.path.join(".pkgstash/dbs.stamp")
    }

    /// Are the published dbs those of `st` (stamp matches, every db file is there)?
    fn dbs_match(&self, st: &State) -> bool {
        let stamp_ok =
            std::fs::read_to_string(self.stamp_path()).is_ok_and(|s| s.trim() == self.db_stamp(st));
        let name = &self.cfg.name;
        stamp_ok
            && self.cfg.arch.iter().all(|arch| {
                ["db", "files"].iter().all(|kind| {
                    let db = self
                        .cfg
                        .path
                        .join(arch)
                        .join(format!("{name}.{kind}.tar.gz"));
                    let sig_ok = self.cfg.sign_key.is_none()
                        || PathBuf::from(format!("{}.sig", db.display())).is_file();
                    db.is_file() && sig_ok
                })
            })
    }

    /// Regenerate every arch's `.db` and `.files` from the state and swap them in together.
    fn write_dbs(&self, st: &State) -> Result<(), RepoError> {
        let name = &self.cfg.name;
        let mut staged = Vec::new();
        for arch in &self.cfg.arch {
            let dir = self.cfg.path.join(arch);
            let pkgs: Vec<&PackageMeta> = st
                .packages
                .values()
                .filter(|p| p.arch == *arch || p.arch == "any")
                .collect();
            for (kind, with_files) in [("db", false), ("files", true)] {
                let final_path = dir.join(format!("{name}.{kind}.tar.gz"));
                let tmp = crate::durable::Staged::new(&final_path)
                    .and_then(|mut tmp| {
                        crate::repo::db_writer::write_db(tmp.file(), &pkgs, with_files)?;
                        Ok(tmp)
                    })
                    .map_err(io_err(
                        name,
                        format!("cannot write {}", final_path.display()),
                    ))?;
                let sig = match &self.cfg.sign_key {
                    Some(key) => Some(gpg_sign(name, key, tmp.path())?),
                    None => None,
                };
                staged.push((tmp, final_path, sig));
            }
        }
        let _swap = self.dbs.write();
        for (tmp, final_path, sig) in staged {
            let sig_path = PathBuf::from(format!("{}.sig", final_path.display()));
            match sig {
                Some(s) => crate::durable::write(&sig_path, &s)
                    .map_err(io_err(name, "cannot write db signature"))?,
                None => {
                    let _ = std::fs::remove_file(&sig_path);
                }
            }
            tmp.commit().map_err(io_err(
                name,
                format!("cannot publish {}", final_path.display()),
            ))?;
            // repo-add's short names, for anyone serving the directory with another server.
            if let Some(file) = final_path.file_name().and_then(|f| f.to_str()) {
                if let Some(short) = file.strip_suffix(".tar.gz") {
                    let link = final_path.with_file_name(short);
                    if std::fs::read_link(&link).is_err() {
                        let _ = std::fs::remove_file(&link);
                        let _ = std::os::unix::fs::symlink(file, &link);
                    }
                }
            }
        }
        // Last: a crash before this regenerates the dbs at the next start.
        crate::durable::write(&self.stamp_path(), self.db_stamp(st).as_bytes())
            .map_err(io_err(name, "cannot write the db stamp"))?;
        Ok(())
    }

    /// Remove pool files of `pkgname` beyond `keep_versions` (never the current one).
    fn prune(&self, st: &State, pkgname: &str) -> Vec<String> {
        let current = st.packages.get(pkgname).map(|p| p.filename.clone());
        let Ok(rd) = std::fs::read_dir(self.pool()) else {
            return Vec::new();
        };
        // (version, arch, file) of every pool file of this package name.
        let mut versions: Vec<(String, String, String)> = rd
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|f| is_package_file_name(f))
            .filter_map(|f| {
                let p = crate::repo::vercmp::parse_pkg_filename(&f)?;
                (p.name == pkgname).then(|| (p.version.to_string(), p.arch.to_string(), f.clone()))
            })
            .collect();
        versions.sort_by(|a, b| vercmp(&b.0, &a.0));
        let mut kept = 0usize;
        let mut pruned = Vec::new();
        for (_, _, file) in versions {
            if Some(&file) == current.as_ref() {
                kept += 1;
                continue;
            }
            if current.is_some() && kept < self.keep_versions {
                kept += 1;
                continue;
            }
            let path = self.pool().join(&file);
            if std::fs::remove_file(&path).is_ok() {
                let _ = std::fs::remove_file(self.pool().join(format!("{file}.sig")));
                pruned.push(file);
            }
        }
        pruned
    }

    /// The file to serve for `<arch>/<file>`, opened under the db read lock (so a db and its
    /// `.files` are never seen mid-swap). `None` when the repo does not have it.
    pub fn open_file(&self, arch: &str, file: &str) -> Option<(std::fs::File, PathBuf)> {
        if !self.cfg.arch.iter().any(|a| a == arch) {
            return None;
        }
        let name = &self.cfg.name;
        let db_file = |kind: &str, sig: bool| {
            let s = if sig { ".sig" } else { "" };
            [
                format!("{name}.{kind}{s}"),
                format!("{name}.{kind}.tar.gz{s}"),
            ]
            .contains(&file.to_string())
            .then(|| {
                self.cfg
                    .path
                    .join(arch)
                    .join(format!("{name}.{kind}.tar.gz{s}"))
            })
        };
        let db = db_file("db", false)
            .or_else(|| db_file("files", false))
            .or_else(|| db_file("db", true))
            .or_else(|| db_file("files", true));
        let path = match db {
            Some(p) => p,
            None => {
                let pkg = file.strip_suffix(".sig").unwrap_or(file);
                let st = self.state.lock();
                let listed = st
                    .packages
                    .values()
                    .any(|p| p.filename == pkg && (p.arch == arch || p.arch == "any"));
                if !listed {
                    return None;
                }
                self.pool().join(file)
            }
        };
        let _reading = self.dbs.read();
        std::fs::File::open(&path).ok().map(|f| (f, path))
    }
}

/// A detached signature must be a binary OpenPGP signature packet (what `gpg --detach-sign`
/// and makepkg write), not armored text or anything else.
fn check_signature(sig: Vec<u8>) -> Result<Vec<u8>, RepoError> {
    if sig.is_empty() || sig.len() > 16 << 10 {
        return Err(RepoError::BadSignature(format!(
            "{} bytes is not a detached signature",
            sig.len()
        )));
    }
    // Old-format packet tag 2 (0x88..0x8b) or new-format tag 2 (0xc2).
    let tag_ok = matches!(sig[0], 0x88..=0x8b | 0xc2);
    if !tag_ok {
        return Err(RepoError::BadSignature(
            "not a binary OpenPGP signature (use `gpg --detach-sign`, not --armor)".into(),
        ));
    }
    Ok(sig)
}

/// `gpg --detach-sign` with `key`; returns the signature bytes.
fn gpg_sign(repo: &str, key: &str, file: &Path) -> Result<Vec<u8>, RepoError> {
    let out = Command::new("gpg")
        .args([
            "--batch",
            "--yes",
            "--no-tty",
            "--detach-sign",
            "--local-user",
            key,
            "--output",
            "-",
        ])
        .arg(file)
        .output()
        .map_err(|e| RepoError::Sign {
            repo: repo.to_string(),
            why: format!("cannot run gpg: {e}"),
        })?;
    if !out.status.success() || out.stdout.is_empty() {
        return Err(RepoError::Sign {
            repo: repo.to_string(),
            why: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}
