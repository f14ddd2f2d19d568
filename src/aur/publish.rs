//! Where builds go: the [`Publisher`] trait and [`CustomRepoPublisher`], which adds builds to
//! a custom repo of [`crate::custom_repo`] through the same code path as `pkgstash repo add`.

use std::path::Path;

use crate::custom_repo::CustomRepoError;
use crate::repo::vercmp::vercmp;

/// The custom repo as the build server sees it.
pub trait Publisher: Send + Sync {
    /// The version of `pkgname` the repo holds now, if any.
    fn current_version(&self, pkgname: &str) -> Option<String>;
    /// Add a built package (and its detached signature) to the repo.
    fn publish(&self, pkg: &Path, sig: Option<&Path>) -> Result<(), CustomRepoError>;
}

/// The custom repo `repo` of [`crate::custom_repo::CustomRepos`]: the same code path as
/// `pkgstash repo add`.
pub struct CustomRepoPublisher {
    repos: std::sync::Arc<crate::custom_repo::CustomRepos>,
    repo: String,
}

impl CustomRepoPublisher {
    pub fn new(repos: std::sync::Arc<crate::custom_repo::CustomRepos>, repo: &str) -> Self {
        CustomRepoPublisher {
            repos,
            repo: repo.to_string(),
        }
    }
}

impl Publisher for CustomRepoPublisher {
    fn current_version(&self, pkgname: &str) -> Option<String> {
        self.repos
            .list(&self.repo)
            .ok()?
            .into_iter()
            .filter(|e| e.name == pkgname)
            .map(|e| e.version)
            .max_by(|a, b| vercmp(a, b))
    }

    fn publish(&self, pkg: &Path, sig: Option<&Path>) -> Result<(), CustomRepoError> {
        self.repos.add_package(&self.repo, pkg, sig).map(|_| ())
    }
}
