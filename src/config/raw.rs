//! The config file's shape as written: the serde structs the TOML (with `PKGSTASH__*`
//! overrides layered on top) is deserialized into, before any validation. Every table denies
//! unknown keys, so a misspelt key is an error naming it; values stay strings here (durations,
//! sizes, URLs) and are parsed by the section that owns them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// `listen` may be one address or a list.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "config key `listen`: expected \"host:port\" or a list of them"
)]
pub(super) enum RawListen {
    One(String),
    Many(Vec<String>),
}

/// `trusted_proxies` may be one address or network, or a list.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "config key `trusted_proxies`: expected \"ADDRESS[/PREFIX]\" or a list of them"
)]
pub(super) enum RawTrustedProxies {
    One(String),
    Many(Vec<String>),
}

/// The whole file: the top-level (server) keys, then one field per section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub listen: Option<RawListen>,
    pub cache_dir: Option<PathBuf>,
    pub db_max_age: Option<String>,
    pub upstream_timeout: Option<String>,
    pub min_rate: Option<String>,
    pub max_unknown_size: Option<String>,
    pub send_timeout: Option<String>,
    pub fast_path: Option<bool>,
    pub shutdown_grace: Option<String>,
    pub trusted_proxies: Option<RawTrustedProxies>,
    #[serde(default)]
    pub upstreams: BTreeMap<String, RawUpstream>,
    #[serde(default)]
    pub refresh: RawRefresh,
    #[serde(default)]
    pub cleanup: RawCleanup,
    #[serde(default)]
    pub repos: BTreeMap<String, RawRepo>,
    pub aur: Option<RawAur>,
}

/// `[upstreams.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    #[serde(default)]
    pub mirrors: Vec<String>,
    pub mirrorlist: Option<PathBuf>,
}

/// `[repos.NAME]`: a custom repo.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRepo {
    pub path: Option<PathBuf>,
    pub arch: Option<Vec<String>>,
    pub sign_key: Option<String>,
    pub max_upload: Option<String>,
}

/// `[refresh]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRefresh {
    pub prefetch: Option<bool>,
    pub interval: Option<String>,
    pub prefetch_concurrency: Option<u32>,
}

/// `[cleanup]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCleanup {
    pub keep_versions: Option<u32>,
    pub max_age: Option<String>,
    pub max_size: Option<String>,
}

/// `[aur]`: the AUR build server (absent = off).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAur {
    #[serde(default)]
    pub packages: Vec<String>,
    pub repo: Option<String>,
    pub rpc_url: Option<String>,
    pub git_url: Option<String>,
    pub check_interval: Option<String>,
    #[serde(default)]
    pub builder: RawBuilder,
    #[serde(default)]
    pub notify: RawNotify,
}

/// `[aur.builder]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBuilder {
    pub timeout: Option<String>,
    pub user: Option<String>,
    pub isolation: Option<String>,
    pub concurrent_builds: Option<i64>,
    pub dependencies: Option<String>,
    pub dep_repos: Option<Vec<String>>,
    pub siglevel: Option<String>,
}

/// `[aur.notify]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    pub webhook: Option<String>,
}
