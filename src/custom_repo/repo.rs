//! One custom repo: its configuration, its state behind the mutex that serializes changes, its
//! pool and its published dbs. Adding or removing a package saves the state, then regenerates
//! the dbs, then prunes the pool; a request for `<arch>/<file>` opens what the repo serves.

use std::fs::File;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use super::db::{requested_db, Dbs};
use super::pool::Pool;
use super::signature::{check_signature, gpg_sign};
use super::state::{meta_dir, State};
use super::{io_err, Added, CustomRepoError};
use crate::config::CustomRepoConfig;
use crate::repo::package::{read_package, PackageMeta};

/// One custom repo.
pub struct CustomRepo {
    pub cfg: CustomRepoConfig,
    /// Serializes changes.
    state: Mutex<State>,
    pool: Pool,
    dbs: Dbs,
}

impl CustomRepo {
    /// Create the repo's directories, load its state, regenerate its dbs when they are not
    /// the state's.
    pub(super) fn open(
        cfg: CustomRepoConfig,
        keep_versions: usize,
    ) -> Result<CustomRepo, CustomRepoError> {
        let name = cfg.name.clone();
        let dirs: Vec<PathBuf> = [cfg.path.join("pool"), meta_dir(&cfg.path)]
            .into_iter()
            .chain(cfg.arch.iter().map(|a| cfg.path.join(a)))
            .collect();
        for d in &dirs {
            std::fs::create_dir_all(d)
                .map_err(io_err(&name, format!("cannot create {}", d.display())))?;
        }
        let state = State::load(&name, &cfg.path)?;
        remove_leftovers(&dirs);
        let repo = CustomRepo {
            pool: Pool::new(&name, cfg.path.join("pool"), keep_versions),
            cfg,
            state: Mutex::new(state),
            dbs: Dbs::new(),
        };
        {
            let st = repo.state.lock();
            // Only when the dbs are not those of this state (a crash between saving the state
            // and publishing its dbs, a config change, a deleted db): rewriting them at every
            // start would change their Last-Modified (every client re-downloads them) and
            // need the signing key at every start.
            let fresh = repo.dbs.match_state(&repo.cfg, &st);
            if !fresh {
                repo.dbs.publish(&repo.cfg, &st)?;
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
        meta_dir(&self.cfg.path)
    }

    /// The current packages, sorted by name.
    pub(super) fn packages(&self) -> Vec<PackageMeta> {
        self.state.lock().packages.values().cloned().collect()
    }

    /// Check `src` completely (archive, `.PKGINFO`, `filename`, arch, signature), then publish
    /// it as `filename` with `sig` (or a signature of the repo's key, or none).
    pub(super) fn add(
        &self,
        src: &Path,
        filename: &str,
        sig: Option<Vec<u8>>,
    ) -> Result<Added, CustomRepoError> {
        let name = self.cfg.name.clone();
        let mut meta = read_package(src, filename).map_err(CustomRepoError::BadPackage)?;
        if meta.arch != "any" && !self.cfg.arch.contains(&meta.arch) {
            return Err(CustomRepoError::WrongArch {
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
        let dest = self.pool.place(src, filename)?;
        let sig = match (sig, &self.cfg.sign_key) {
            (Some(s), _) => Some(s),
            (None, Some(key)) => Some(gpg_sign(&name, key, &dest)?),
            (None, None) => None,
        };
        self.pool.set_signature(filename, sig.as_deref())?;
        meta.pgpsig = sig.as_ref().map(|s| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(s)
        });
        let replaced = st
            .packages
            .insert(meta.name.clone(), meta.clone())
            .map(|old| old.version)
            .filter(|v| *v != meta.version);
        self.commit(&st)?;
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

    /// Remove `pkgname` from the state and the dbs; its pool files are pruned.
    pub(super) fn remove(&self, pkgname: &str) -> Result<PackageMeta, CustomRepoError> {
        let mut st = self.state.lock();
        let Some(old) = st.packages.remove(pkgname) else {
            return Err(CustomRepoError::NoSuchPackage {
                repo: self.cfg.name.clone(),
                name: pkgname.to_string(),
            });
        };
        self.commit(&st)?;
        self.prune(&st, pkgname);
        log::info!("custom repo {}: removed {}", self.cfg.name, old.filename);
        Ok(old)
    }

    /// Save the changed state, then publish its dbs.
    fn commit(&self, st: &State) -> Result<(), CustomRepoError> {
        st.save(&self.cfg.name, &self.cfg.path)?;
        self.dbs.publish(&self.cfg, st)
    }

    /// Prune the pool files of `pkgname`, keeping the one the state lists.
    fn prune(&self, st: &State, pkgname: &str) -> Vec<String> {
        let current = st.packages.get(pkgname).map(|p| p.filename.as_str());
        self.pool.prune(pkgname, current)
    }

    /// The file to serve for `<arch>/<file>`, opened under the db read lock (so a db and its
    /// `.files` are never seen mid-swap). `None` when the repo does not have it.
    pub fn open_file(&self, arch: &str, file: &str) -> Option<(File, PathBuf)> {
        if !self.cfg.arch.iter().any(|a| a == arch) {
            return None;
        }
        let path = match requested_db(&self.cfg, arch, file) {
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
                self.pool.path(file)
            }
        };
        self.dbs.open(&path).map(|f| (f, path))
    }
}

/// Remove the leftovers of interrupted uploads and writes: [`crate::durable`]'s temporary
/// files in the repo's directories `dirs`.
fn remove_leftovers(dirs: &[PathBuf]) {
    for rd in dirs.iter().filter_map(|d| std::fs::read_dir(d).ok()) {
        for e in rd.flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with(crate::durable::TEMP_PREFIX)
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
