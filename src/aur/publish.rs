//! Where builds go: the [`Publisher`] trait, and [`RepoAddPublisher`], a stand-in custom repo
//! (a directory + the real `repo-add`) used until the build server is wired to the custom
//! repo of `crate::localrepo` (see the `WIRE:` note in `server.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::vercmp::vercmp;

/// The custom repo as the build server sees it.
pub trait Publisher: Send + Sync {
    /// The version of `pkgname` the repo holds now, if any.
    fn current_version(&self, pkgname: &str) -> Option<String>;
    /// Add a built package (and its detached signature) to the repo.
    fn publish(&self, pkg: &Path, sig: Option<&Path>) -> Result<(), String>;
}

// WIRE: at merge with the custom repo (issue 10), add this adapter and use it in
// `AppState::new` instead of `RepoAddPublisher`:
//
// /// The custom repo `repo` of [`crate::localrepo::LocalRepos`]: the same code path as `repo add`.
// pub struct LocalRepoPublisher {
//     repos: std::sync::Arc<crate::localrepo::LocalRepos>,
//     repo: String,
// }
//
// impl LocalRepoPublisher {
//     pub fn new(repos: std::sync::Arc<crate::localrepo::LocalRepos>, repo: &str) -> Self {
//         LocalRepoPublisher { repos, repo: repo.to_string() }
//     }
// }
//
// impl Publisher for LocalRepoPublisher {
//     fn current_version(&self, pkgname: &str) -> Option<String> {
//         self.repos.list(&self.repo).ok()?.into_iter()
//             .filter(|e| e.name == pkgname)
//             .map(|e| e.version)
//             .max_by(|a, b| vercmp(a, b))
//     }
//     fn publish(&self, pkg: &Path, sig: Option<&Path>) -> Result<(), String> {
//         self.repos.add_package(&self.repo, pkg, sig).map(|_| ()).map_err(|e| e.to_string())
//     }
// }

/// A repo directory `<dir>/<repo>.db.tar.gz` maintained with `repo-add`.
pub struct RepoAddPublisher {
    dir: PathBuf,
    repo: String,
    lock: parking_lot::Mutex<()>,
}

impl RepoAddPublisher {
    pub fn new(dir: PathBuf, repo: &str) -> RepoAddPublisher {
        RepoAddPublisher {
            dir,
            repo: repo.to_string(),
            lock: parking_lot::Mutex::new(()),
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.join(format!("{}.db.tar.gz", self.repo))
    }
}

impl Publisher for RepoAddPublisher {
    fn current_version(&self, pkgname: &str) -> Option<String> {
        let db = self.db();
        if !db.is_file() {
            return None;
        }
        match crate::repodb::parse_db_file(&db) {
            Ok(entries) => entries
                .into_iter()
                .filter(|e| e.name == pkgname)
                .map(|e| e.version)
                .max_by(|a, b| vercmp(a, b)),
            Err(e) => {
                log::warn!("aur: cannot read {}: {e}", db.display());
                None
            }
        }
    }

    fn publish(&self, pkg: &Path, sig: Option<&Path>) -> Result<(), String> {
        let _one_at_a_time = self.lock.lock();
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        let name = pkg
            .file_name()
            .ok_or_else(|| format!("{} has no file name", pkg.display()))?;
        let dest = self.dir.join(name);
        std::fs::copy(pkg, &dest).map_err(|e| format!("cannot copy {}: {e}", pkg.display()))?;
        if let Some(sig) = sig {
            let mut sig_dest = dest.clone().into_os_string();
            sig_dest.push(".sig");
            std::fs::copy(sig, &sig_dest)
                .map_err(|e| format!("cannot copy {}: {e}", sig.display()))?;
        }
        let out = Command::new("repo-add")
            .arg("-q")
            .arg(self.db())
            .arg(&dest)
            .output()
            .map_err(|e| format!("cannot run repo-add: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "repo-add failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(())
    }
}
