//! Where builds go: the [`Publisher`] trait and [`LocalRepoPublisher`], which adds builds to
//! a custom repo of [`crate::custom_repo`] through the same code path as `pkgstash repo add`.

use std::path::Path;

use crate::custom_repo::RepoError;
use crate::repo::vercmp::vercmp;

/// The custom repo as the build server sees it.
pub trait Publisher: Send + Sync {
    /// The version of `pkgname` the repo holds now, if any.
    fn current_version(&self, pkgname: &str) -> Option<String>;
    /// Add a built package (and its detached signature) to the repo.
    fn publish(&self, pkg: &Path, sig: Option<&Path>) -> Result<(), RepoError>;
}

/// The custom repo `repo` of [`crate::custom_repo::LocalRepos`]: the same code path as
/// `pkgstash repo add`.
pub struct LocalRepoPublisher {
    repos: std::sync::Arc<crate::custom_repo::LocalRepos>,
    repo: String,
}

impl LocalRepoPublisher {
    pub fn new(repos: std::sync::Arc<crate::custom_repo::LocalRepos>, repo: &str) -> Self {
        LocalRepoPublisher {
            repos,
            repo: repo.to_string(),
        }
    }
}

impl Publisher for LocalRepoPublisher {
    fn current_version(&self, pkgname: &str) -> Option<String> {
        self.repos
            .list(&self.repo)
            .ok()?
            .into_iter()
            .filter(|e| e.name == pkgname)
            .map(|e| e.version)
            .max_by(|a, b| vercmp(a, b))
    }

    fn publish(&self, pkg: &Path, sig: Option<&Path>) -> Result<(), RepoError> {
        self.repos.add_package(&self.repo, pkg, sig).map(|_| ())
    }
}
