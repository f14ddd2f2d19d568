//! Custom repos (`[repos.<name>]`): packages published through pkgstash itself, served
//! read-only at `/<name>/os/<arch>/…` next to the cached mirrors.
//!
//! On disk, under the repo's `path`:
//! - `pool/<file>` (+ `.sig`): every package file kept (current and, per the cleanup policy's
//!   `keep_versions`, older versions) ([`pool`]);
//! - `.pkgstash/state.json`: the source of truth — metadata of every current package —
//!   replaced atomically and durably ([`crate::durable`]: temp + fsync + rename + fsync dir)
//!   ([`state`]); `.pkgstash/dbs.stamp`: the digest of the state (+ arches, signing key) the
//!   published dbs were made from, written last;
//! - `<arch>/<name>.db.tar.gz`, `<arch>/<name>.files.tar.gz` (+ `.sig` when signing), with
//!   `<name>.db` / `<name>.files` symlinks as `repo-add` makes them: regenerated from the state
//!   after every change, and at start when the stamp or a db file says they are not the
//!   state's (so a crash between two renames heals itself) ([`db`]).
//!
//! Changes of one repo are serialized by its mutex ([`CustomRepo`]); db regeneration swaps both
//! dbs under a write lock that readers hold while opening a db file, so a client never sees a
//! new `.db` with an old `.files`. An upload is checked completely (archive, `.PKGINFO`, file
//! name, architecture, signature ([`signature`])) before anything of the repo changes.
//!
//! This module is the registry of every configured repo ([`CustomRepos`]) and the errors.

mod db;
mod pool;
mod repo;
mod signature;
mod state;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use self::repo::CustomRepo;
use crate::config::Config;
use crate::repo::package::{PackageMeta, PkgError};

/// Why a custom repo operation failed. A cause written into a message is not also a `source`
/// (printed with its sources, it shows once).
#[derive(Debug, thiserror::Error)]
pub enum CustomRepoError {
    #[error("no repo named `{0}`")]
    NoSuchRepo(String),
    #[error("repo {repo}: no package named `{name}`")]
    NoSuchPackage { repo: String, name: String },
    #[error("bad package: {0}")]
    BadPackage(PkgError),
    #[error("repo {repo}: architecture `{arch}` is not one of {allowed:?}")]
    WrongArch {
        repo: String,
        arch: String,
        allowed: Vec<String>,
    },
    #[error("bad signature: {0}")]
    BadSignature(String),
    #[error("repo {repo}: {what}: {cause}")]
    Io {
        repo: String,
        what: String,
        cause: std::io::Error,
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

/// All custom repos, by name.
#[derive(Default)]
pub struct CustomRepos {
    repos: BTreeMap<String, CustomRepo>,
}

impl CustomRepos {
    /// Open every configured repo: create its directories, load its state, regenerate dbs.
    pub fn open(cfg: &Config) -> Result<CustomRepos, CustomRepoError> {
        let mut repos = BTreeMap::new();
        for rc in cfg.repos.values() {
            let repo = CustomRepo::open(rc.clone(), cfg.cleanup.keep_versions)?;
            repos.insert(rc.name.clone(), repo);
        }
        Ok(CustomRepos { repos })
    }

    pub fn get(&self, name: &str) -> Option<&CustomRepo> {
        self.repos.get(name)
    }

    /// Every repo, by name.
    pub fn iter(&self) -> impl Iterator<Item = &CustomRepo> {
        self.repos.values()
    }

    fn repo(&self, name: &str) -> Result<&CustomRepo, CustomRepoError> {
        self.get(name)
            .ok_or_else(|| CustomRepoError::NoSuchRepo(name.to_string()))
    }

    /// Add the package at `pkg_file` (named as its file name) with an optional detached
    /// signature file.
    pub fn add_package(
        &self,
        repo: &str,
        pkg_file: &Path,
        sig: Option<&Path>,
    ) -> Result<Added, CustomRepoError> {
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
    ) -> Result<Added, CustomRepoError> {
        self.repo(repo)?.add(tmp, filename, sig)
    }

    /// Remove package `name` from the repo's dbs (its files stay in the pool per policy).
    pub fn remove(&self, repo: &str, name: &str) -> Result<PackageMeta, CustomRepoError> {
        self.repo(repo)?.remove(name)
    }

    /// The repo's current packages, sorted by name.
    pub fn list(&self, repo: &str) -> Result<Vec<PackageMeta>, CustomRepoError> {
        Ok(self.repo(repo)?.packages())
    }
}

/// Maps an I/O error of repo `repo` to [`CustomRepoError::Io`] saying `what` failed.
fn io_err(
    repo: &str,
    what: impl Into<String>,
) -> impl FnOnce(std::io::Error) -> CustomRepoError + '_ {
    let what = what.into();
    move |cause| CustomRepoError::Io {
        repo: repo.to_string(),
        what,
        cause,
    }
}
