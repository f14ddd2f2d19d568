//! Why a command failed, and its exit code (DESIGN.md): 2 for bad usage or a bad config (the
//! message names the key, the path or the file), 1 for a failure at run time.
//!
//! Messages are printed as `pkgstash: <message>: <source>: …` (the error and its sources).
//! A cause written into a message is not also a `source`, so it is printed once.

use std::path::PathBuf;

use crate::cache::store::StoreError;
use crate::cli::client::ClientError;
use crate::config::ConfigError;
use crate::custom_repo::CustomRepoError;
use crate::repo::path::PathError;

/// A command's failure.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Boxed: a `config` crate error is large, and every command returns this type.
    #[error(transparent)]
    Config(Box<ConfigError>),
    /// An admin API request failed (its own exit code: [`ClientError::exit_code`]).
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cache_dir {} does not exist", .0.display())]
    NoCacheDir(PathBuf),
    /// `verify` found cached packages that do not match their repo db.
    #[error(
        "{bad} cached package(s) do not match their repo db{}",
        if *.quarantined { " (moved to .quarantine/)" } else { "" }
    )]
    Mismatch { bad: usize, quarantined: bool },
    /// `evict`: the path given is not a cache path.
    #[error("bad path {input:?}: {cause}")]
    BadPath { input: String, cause: PathError },
    #[error("{} is not a file name", .0.display())]
    NotAFileName(PathBuf),
    #[error("{} is not a file", .0.display())]
    NotAFile(PathBuf),
    /// `repo add`: the signature file cannot be read.
    #[error("cannot read {}: {cause}", .path.display())]
    ReadSignature {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// `serve`: the cache directory cannot be used.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `serve`: a custom repo cannot be opened.
    #[error(transparent)]
    Repos(#[from] CustomRepoError),
    /// `serve`: a `listen` address cannot be bound.
    #[error(transparent)]
    Bind(std::io::Error),
    /// `serve`: the server stopped with an error.
    #[error(transparent)]
    Serve(std::io::Error),
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> CliError {
        CliError::Config(Box::new(e))
    }
}

impl CliError {
    /// The process exit code: 2 for bad usage or configuration, 1 for a runtime failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Client(e) => e.exit_code(),
            CliError::Mismatch { .. } | CliError::Bind(_) | CliError::Serve(_) => 1,
            CliError::Config(_)
            | CliError::NoCacheDir(_)
            | CliError::BadPath { .. }
            | CliError::NotAFileName(_)
            | CliError::NotAFile(_)
            | CliError::ReadSignature { .. }
            | CliError::Store(_)
            | CliError::Repos(_) => 2,
        }
    }
}
