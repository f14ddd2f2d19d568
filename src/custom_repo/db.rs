//! A custom repo's published dbs: `<arch>/<name>.db.tar.gz` and `<arch>/<name>.files.tar.gz`
//! (+ `.sig` with a `sign_key`, + `repo-add`'s `<name>.db` / `<name>.files` symlinks), made
//! from the state ([`crate::repo::db_writer`]) and swapped in together under a write lock that
//! readers hold while opening a file; then `.pkgstash/dbs.stamp`, the digest of what they were
//! made from (state, arches, signing key), written last. Every file is written by
//! [`crate::durable`]'s rule (temp in the same directory, fsync, rename, fsync dir).

use std::fs::File;
use std::path::{Path, PathBuf};

use parking_lot::RwLock;

use super::signature::gpg_sign;
use super::state::{meta_dir, State};
use super::{io_err, CustomRepoError};
use crate::config::CustomRepoConfig;
use crate::repo::package::PackageMeta;

/// The two dbs of every arch, and whether it lists the packages' files.
const KINDS: [(&str, bool); 2] = [("db", false), ("files", true)];

/// One regenerated db file, waiting to be swapped in.
struct NewDb {
    /// The db, complete in a temporary file next to `final_path`.
    tmp: crate::durable::Staged,
    final_path: PathBuf,
    sig: Option<Vec<u8>>,
}

/// The published dbs of one repo.
pub(super) struct Dbs {
    /// Held (read) while a repo file is opened for serving, (write) while dbs are swapped.
    swap: RwLock<()>,
}

impl Dbs {
    pub(super) fn new() -> Dbs {
        Dbs {
            swap: RwLock::new(()),
        }
    }

    /// Are the published dbs those of `st` (stamp matches, every db file is there)?
    pub(super) fn match_state(&self, cfg: &CustomRepoConfig, st: &State) -> bool {
        let stamp_ok =
            std::fs::read_to_string(stamp_path(cfg)).is_ok_and(|s| s.trim() == stamp(cfg, st));
        stamp_ok
            && cfg.arch.iter().all(|arch| {
                KINDS.iter().all(|(kind, _)| {
                    let db = db_path(cfg, arch, kind);
                    let sig_ok = cfg.sign_key.is_none()
                        || PathBuf::from(format!("{}.sig", db.display())).is_file();
                    db.is_file() && sig_ok
                })
            })
    }

    /// Regenerate every arch's `.db` and `.files` from `st` and swap them in together.
    pub(super) fn publish(
        &self,
        cfg: &CustomRepoConfig,
        st: &State,
    ) -> Result<(), CustomRepoError> {
        let staged = stage(cfg, st)?;
        self.swap_in(cfg, staged)?;
        // Last: a crash before this regenerates the dbs at the next start.
        crate::durable::write(&stamp_path(cfg), stamp(cfg, st).as_bytes())
            .map_err(io_err(&cfg.name, "cannot write the db stamp"))
    }

    /// Rename the staged files into place under the write lock, signatures first.
    fn swap_in(&self, cfg: &CustomRepoConfig, staged: Vec<NewDb>) -> Result<(), CustomRepoError> {
        let name = &cfg.name;
        let _swap = self.swap.write();
        for NewDb {
            tmp,
            final_path,
            sig,
        } in staged
        {
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
            short_name_link(&final_path);
        }
        Ok(())
    }

    /// Open `path` under the read lock (so a db and its `.files` are never seen mid-swap).
    pub(super) fn open(&self, path: &Path) -> Option<File> {
        let _reading = self.swap.read();
        File::open(path).ok()
    }
}

/// Write every arch's dbs of `st` next to their final paths, signed when the repo signs.
fn stage(cfg: &CustomRepoConfig, st: &State) -> Result<Vec<NewDb>, CustomRepoError> {
    let name = &cfg.name;
    let mut staged = Vec::new();
    for arch in &cfg.arch {
        let pkgs: Vec<&PackageMeta> = st
            .packages
            .values()
            .filter(|p| p.arch == *arch || p.arch == "any")
            .collect();
        for (kind, with_files) in KINDS {
            let final_path = db_path(cfg, arch, kind);
            let tmp = crate::durable::Staged::new(&final_path)
                .and_then(|mut tmp| {
                    crate::repo::db_writer::write_db(tmp.file(), &pkgs, with_files)?;
                    Ok(tmp)
                })
                .map_err(io_err(
                    name,
                    format!("cannot write {}", final_path.display()),
                ))?;
            let sig = match &cfg.sign_key {
                Some(key) => Some(gpg_sign(name, key, tmp.path())?),
                None => None,
            };
            staged.push(NewDb {
                tmp,
                final_path,
                sig,
            });
        }
    }
    Ok(staged)
}

/// repo-add's short names (`<name>.db` → `<name>.db.tar.gz`), for anyone serving the
/// directory with another server. Best effort; an existing link is left alone.
fn short_name_link(final_path: &Path) {
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

/// `<path>/<arch>/<name>.<kind>.tar.gz`.
fn db_path(cfg: &CustomRepoConfig, arch: &str, kind: &str) -> PathBuf {
    cfg.path
        .join(arch)
        .join(format!("{}.{kind}.tar.gz", cfg.name))
}

fn stamp_path(cfg: &CustomRepoConfig) -> PathBuf {
    meta_dir(&cfg.path).join("dbs.stamp")
}

/// What the dbs are made from: the state, the arches and the signing key (hex SHA-256). Kept
/// next to the state after every db generation.
fn stamp(cfg: &CustomRepoConfig, st: &State) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(serde_json::to_vec(st).unwrap_or_default());
    h.update(cfg.arch.join(",").as_bytes());
    h.update([0]);
    h.update(cfg.sign_key.as_deref().unwrap_or("").as_bytes());
    hex::encode(h.finalize())
}

/// The db file (or its signature) a request for `<arch>/<file>` names: `<name>.db`,
/// `<name>.db.tar.gz`, `<name>.files`, `<name>.files.tar.gz`, each also with `.sig`. `None`
/// when `file` is no db name (`arch` is not checked here).
pub(super) fn requested_db(cfg: &CustomRepoConfig, arch: &str, file: &str) -> Option<PathBuf> {
    let name = &cfg.name;
    [false, true].into_iter().find_map(|sig| {
        let s = if sig { ".sig" } else { "" };
        KINDS.iter().find_map(|(kind, _)| {
            let names = [
                format!("{name}.{kind}{s}"),
                format!("{name}.{kind}.tar.gz{s}"),
            ];
            names
                .contains(&file.to_string())
                .then(|| cfg.path.join(arch).join(format!("{name}.{kind}.tar.gz{s}")))
        })
    })
}
