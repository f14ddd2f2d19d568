//! One custom repo's saved state, `<path>/.pkgstash/state.json`: the metadata of every current
//! package, the source of truth the dbs are made from. Replaced atomically and durably
//! ([`crate::durable::write`]) after every change; a missing file is an empty repo.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{io_err, CustomRepoError};
use crate::repo::package::PackageMeta;

/// The directory of pkgstash's own files in a repo (state, stamp, upload temp files).
pub(super) fn meta_dir(repo_path: &Path) -> PathBuf {
    repo_path.join(".pkgstash")
}

fn state_path(repo_path: &Path) -> PathBuf {
    meta_dir(repo_path).join("state.json")
}

/// Saved state of one repo.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct State {
    /// Current packages by `name` (one version per name; an `any` package serves every arch).
    pub(super) packages: BTreeMap<String, PackageMeta>,
}

impl State {
    /// Load repo `repo`'s state from under `repo_path` (none saved yet: empty).
    pub(super) fn load(repo: &str, repo_path: &Path) -> Result<State, CustomRepoError> {
        let state_file = state_path(repo_path);
        match std::fs::read(&state_file) {
            Ok(data) => serde_json::from_slice(&data).map_err(|e| CustomRepoError::Io {
                repo: repo.to_string(),
                what: format!("cannot parse {}", state_file.display()),
                cause: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(io_err(repo, "cannot read state")(e)),
        }
    }

    /// Replace the saved state of repo `repo` under `repo_path` with this one.
    pub(super) fn save(&self, repo: &str, repo_path: &Path) -> Result<(), CustomRepoError> {
        let data = serde_json::to_vec_pretty(self).map_err(|e| CustomRepoError::Io {
            repo: repo.to_string(),
            what: "cannot encode state".into(),
            cause: std::io::Error::other(e),
        })?;
        crate::durable::write(&state_path(repo_path), &data)
            .map_err(io_err(repo, "cannot save state"))
    }
}
