//! Configuration: the raw TOML file (with `PKGSTASH__KEY` env overrides layered on top,
//! read by the `config` crate) is deserialized into [`RawConfig`], then validated into the
//! typed [`Config`] the rest of the program uses.
//!
//! Invariants of a [`Config`]: every upstream name is a valid URL segment and not `local`,
//! every upstream has at least one `http(s)://` mirror base (no trailing slash), durations and
//! sizes are parsed. Unknown keys are errors. Every error names the offending key.

pub mod aur;
pub mod mirror_url;
pub mod mirrorlist;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::mirror_url::MirrorUrl;
pub use crate::repo::path::valid_upstream_name;

/// Where the config file is looked for when neither `-c` nor `$PKGSTASH_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/pkgstash/pkgstash.toml";

/// Default of `max_unknown_size`: above the largest Arch package (a few GiB), far below a
/// filesystem an endless body would fill.
pub const DEFAULT_MAX_UNKNOWN_SIZE: u64 = 8 << 30;

/// A configuration problem. The message always names the key (or file and line).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The cause is part of the message (not a `source`): printed once, not twice.
    #[error("cannot read config {path}: {cause}")]
    Load {
        path: PathBuf,
        cause: config::ConfigError,
    },
    #[error("config key `{key}`: {reason}")]
    Invalid { key: String, reason: String },
    #[error(transparent)]
    Mirrorlist(#[from] mirrorlist::MirrorlistError),
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// `listen` may be one address or a list.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "config key `listen`: expected \"host:port\" or a list of them"
)]
enum RawListen {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<RawListen>,
    cache_dir: Option<PathBuf>,
    db_max_age: Option<String>,
    upstream_timeout: Option<String>,
    min_rate: Option<String>,
    max_unknown_size: Option<String>,
    send_timeout: Option<String>,
    fast_path: Option<bool>,
    #[serde(default)]
    upstreams: BTreeMap<String, RawUpstream>,
    #[serde(default)]
    refresh: RawRefresh,
    #[serde(default)]
    cleanup: RawCleanup,
    #[serde(default)]
    repos: BTreeMap<String, RawRepo>,
    aur: Option<crate::config::aur::RawAur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepo {
    path: Option<PathBuf>,
    arch: Option<Vec<String>>,
    sign_key: Option<String>,
    max_upload: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    #[serde(default)]
    mirrors: Vec<String>,
    mirrorlist: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRefresh {
    prefetch: Option<bool>,
    interval: Option<String>,
    prefetch_concurrency: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCleanup {
    keep_versions: Option<u32>,
    max_age: Option<String>,
    max_size: Option<String>,
}

/// Keys whose value is a list (`*` = any one name, such as an upstream's): from the
/// environment, `PKGSTASH__UPSTREAMS__ARCHLINUX__MIRRORS=https://a,https://b` is split at
/// the commas. Other values are never split.
const LIST_KEYS: [&str; 5] = [
    "listen",
    "upstreams.*.mirrors",
    "repos.*.arch",
    "aur.packages",
    "aur.builder.dep_repos",
];

/// The config key an environment variable names: `PKGSTASH__UPSTREAMS__ARCHLINUX__MIRRORS`
/// -> `upstreams.archlinux.mirrors` (as the `config` crate maps it: lowercase, `__` -> `.`).
fn env_key(var: &str) -> String {
    var.strip_prefix("PKGSTASH__")
        .unwrap_or(var)
        .to_lowercase()
        .replace("__", ".")
}

fn is_list_key(key: &str) -> bool {
    LIST_KEYS.iter().any(|pattern| {
        let (p, k): (Vec<&str>, Vec<&str>) =
            (pattern.split('.').collect(), key.split('.').collect());
        p.len() == k.len() && p.iter().zip(&k).all(|(p, k)| *p == "*" || p == k)
    })
}

/// The admin token. Never printed: `Debug` and `Display` redact it.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// Wrap a token value (e.g. from `PKGSTASH_TOKEN`).
    pub fn new(value: String) -> Token {
        Token(value)
    }

    /// The value, for sending it in an `Authorization` header (client commands only).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a presented token.
    pub fn matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        let a = self.0.as_bytes();
        let b = presented.as_bytes();
        a.len() == b.len() && bool::from(a.ct_eq(b))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One upstream distro/repo tree, served under `/<name>/`.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub name: String,
    /// Mirror base URLs in preference order (credentials held apart, shown redacted).
    pub mirrors: Vec<MirrorUrl>,
}

/// Scheduled refresh and prefetch.
#[derive(Debug, Clone)]
pub struct RefreshConfig {
    pub prefetch: bool,
    pub interval: Option<Duration>,
    pub prefetch_concurrency: usize,
}

/// Retention policy.
#[derive(Debug, Clone)]
pub struct CleanupConfig {
    pub keep_versions: usize,
    pub max_age: Option<Duration>,
    pub max_size: Option<u64>,
}

/// A custom repo of packages published through pkgstash, served under `/<name>/os/<arch>/`.
#[derive(Debug, Clone)]
pub struct CustomRepoConfig {
    pub name: String,
    /// Directory holding `<arch>/` subdirectories with the packages and dbs.
    pub path: PathBuf,
    pub arch: Vec<String>,
    /// GnuPG key id to sign packages and the db with (`gpg --detach-sign`), if any.
    pub sign_key: Option<String>,
    /// Largest accepted upload, bytes.
    pub max_upload: u64,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen addresses as `host:port` strings (resolved when binding).
    pub listen: Vec<String>,
    pub cache_dir: PathBuf,
    /// Serve a cached mutable file (db) this long without revalidating it upstream.
    pub db_max_age: Duration,
    /// Connect / first byte / stall limit per mirror.
    pub upstream_timeout: Duration,
    /// Switch away from a mirror whose rate stays under this many bytes/s (if another is healthy).
    pub min_rate: Option<u64>,
    /// Largest file downloaded when no cached repo db states its size, bytes: a longer body
    /// (or a larger `Content-Length`) fails the download.
    pub max_unknown_size: u64,
    /// Close a connection whose client accepts no response bytes for this long (nginx's
    /// `send_timeout`).
    pub send_timeout: Duration,
    /// pkgstash's own HTTP/1.1 front end ([`crate::http::conn`]: framing, deadlines, `sendfile` for
    /// plain package requests); `false`: actix-web alone serves every connection.
    pub fast_path: bool,
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    pub refresh: RefreshConfig,
    pub cleanup: CleanupConfig,
    /// Custom repos by name (disjoint from upstream names).
    pub repos: BTreeMap<String, CustomRepoConfig>,
    /// Admin token from `$PKGSTASH_TOKEN`; `None` disables the admin API.
    pub token: Option<Token>,
    /// The AUR build server; `None` (no `[aur]` section) = off.
    pub aur: Option<crate::config::aur::AurConfig>,
}

/// Parse a humantime duration ("30s", "5m", "1h 30m", "0s").
fn parse_duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value.trim()).map_err(|e| {
        invalid(
            key,
            format!("`{value}` is not a duration like \"30s\" or \"5m\": {e}"),
        )
    })
}

/// Parse a size ("50GiB", "200MB", "1024").
fn parse_size(key: &str, value: &str) -> Result<u64, ConfigError> {
    value
        .trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| invalid(key, format!("`{value}` is not a size like \"50GiB\": {e}")))
}

/// Parse a rate ("200KiB/s", "1MiB/s"; "/s" optional).
fn parse_rate(key: &str, value: &str) -> Result<u64, ConfigError> {
    let v = value.trim();
    let v = v.strip_suffix("/s").unwrap_or(v);
    parse_size(key, v)
}

/// Validate a mirror base URL (credentials split off, trailing slash stripped).
fn normalize_mirror(key: &str, url: &str) -> Result<MirrorUrl, ConfigError> {
    MirrorUrl::parse(url).map_err(|e| invalid(key, e.to_string()))
}

impl Config {
    /// Which config file to read: `-c` value, else `$PKGSTASH_CONFIG`, else the default.
    pub fn resolve_path(cli: Option<&Path>) -> PathBuf {
        if let Some(p) = cli {
            return p.to_path_buf();
        }
        match std::env::var_os("PKGSTASH_CONFIG") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => PathBuf::from(DEFAULT_CONFIG_PATH),
        }
    }

    /// Load the file at `path`, layer `PKGSTASH__*` env vars over it, read `PKGSTASH_TOKEN`, validate.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let env: std::collections::HashMap<String, String> = std::env::vars().collect();
        Self::load_with_env(path, &env)
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_with_env(
        path: &Path,
        env: &std::collections::HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let load_err = |cause| ConfigError::Load {
            path: path.to_path_buf(),
            cause,
        };
        if !path.is_file() {
            return Err(ConfigError::Load {
                path: path.to_path_buf(),
                cause: config::ConfigError::Message(
                    "file not found (or not a regular file)".into(),
                ),
            });
        }
        let overrides: config::Map<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("PKGSTASH__"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // Only list keys are split at commas ("listen" always: without any list key the
        // config crate would split every value).
        let mut environment = config::Environment::with_prefix("PKGSTASH")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("listen");
        for key in overrides.keys().map(|k| env_key(k)) {
            if is_list_key(&key) {
                environment = environment.with_list_parse_key(&key);
            }
        }
        let raw: RawConfig = config::Config::builder()
            .add_source(
                config::File::from(path)
                    .format(config::FileFormat::Toml)
                    .required(true),
            )
            .add_source(environment.source(Some(overrides)))
            .build()
            .map_err(load_err)?
            .try_deserialize()
            .map_err(load_err)?;
        let token = env
            .get("PKGSTASH_TOKEN")
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .map(Token);
        Self::validate(raw, token, path.parent().unwrap_or(Path::new(".")))
    }

    fn validate(
        raw: RawConfig,
        token: Option<Token>,
        base_dir: &Path,
    ) -> Result<Config, ConfigError> {
        let listen = match raw.listen {
            None => vec!["0.0.0.0:7878".to_string()],
            Some(RawListen::One(s)) => vec![s],
            Some(RawListen::Many(v)) => v,
        };
        if listen.is_empty() {
            return Err(invalid("listen", "needs at least one host:port"));
        }
        for addr in &listen {
            let ok = addr
                .rsplit_once(':')
                .map(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
                .unwrap_or(false);
            if !ok {
                return Err(invalid("listen", format!("`{addr}` is not host:port")));
            }
        }
        let cache_dir = raw
            .cache_dir
            .unwrap_or_else(|| PathBuf::from("/var/cache/pkgstash"));
        if cache_dir.as_os_str().is_empty() {
            return Err(invalid("cache_dir", "must not be empty"));
        }
        let db_max_age = match raw.db_max_age {
            Some(v) => parse_duration("db_max_age", &v)?,
            None => Duration::from_secs(30),
        };
        let upstream_timeout = match raw.upstream_timeout {
            Some(v) => parse_duration("upstream_timeout", &v)?,
            None => Duration::from_secs(15),
        };
        if upstream_timeout.is_zero() {
            return Err(invalid("upstream_timeout", "must be more than 0s"));
        }
        let min_rate = match raw.min_rate {
            Some(v) => Some(parse_rate("min_rate", &v)?).filter(|r| *r > 0),
            None => None,
        };
        let max_unknown_size = match raw.max_unknown_size {
            Some(v) => parse_size("max_unknown_size", &v)?,
            None => DEFAULT_MAX_UNKNOWN_SIZE,
        };
        if max_unknown_size == 0 {
            return Err(invalid("max_unknown_size", "must be more than 0"));
        }
        let send_timeout = match raw.send_timeout {
            Some(v) => parse_duration("send_timeout", &v)?,
            None => Duration::from_secs(60),
        };
        if send_timeout.is_zero() {
            return Err(invalid("send_timeout", "must be more than 0s"));
        }
        let fast_path = raw.fast_path.unwrap_or(true);
        if raw.upstreams.is_empty() && raw.repos.is_empty() {
            return Err(invalid(
                "upstreams",
                "at least one [upstreams.NAME] (or [repos.NAME]) table is required",
            ));
        }
        let mut upstreams = BTreeMap::new();
        for (name, up) in raw.upstreams {
            let key = format!("upstreams.{name}");
            if name == "local" {
                return Err(invalid(
                    key,
                    "the name `local` is reserved by pacman for its installed-packages database",
                ));
            }
            if !valid_upstream_name(&name) {
                return Err(invalid(
                    key,
                    "upstream names must match [a-z0-9][a-z0-9._-]*",
                ));
            }
            let mut mirrors = Vec::new();
            for (i, m) in up.mirrors.iter().enumerate() {
                mirrors.push(normalize_mirror(&format!("{key}.mirrors[{i}]"), m)?);
            }
            if let Some(list) = up.mirrorlist {
                let list = if list.is_relative() {
                    base_dir.join(list)
                } else {
                    list
                };
                for (line, base) in mirrorlist::read(&list)? {
                    mirrors.push(normalize_mirror(
                        &format!("{key}.mirrorlist ({}:{line})", list.display()),
                        &base,
                    )?);
                }
            }
            mirrors.dedup();
            if mirrors.is_empty() {
                return Err(invalid(
                    key,
                    "needs `mirrors = [...]` or a `mirrorlist` with at least one Server line",
                ));
            }
            upstreams.insert(name.clone(), UpstreamConfig { name, mirrors });
        }
        let refresh = RefreshConfig {
            prefetch: raw.refresh.prefetch.unwrap_or(true),
            interval: match raw.refresh.interval {
                Some(v) => Some(parse_duration("refresh.interval", &v)?).filter(|d| !d.is_zero()),
                None => None,
            },
            prefetch_concurrency: match raw.refresh.prefetch_concurrency {
                Some(0) => {
                    return Err(invalid(
                        "refresh.prefetch_concurrency",
                        "must be at least 1",
                    ))
                }
                Some(n) => n as usize,
                None => 2,
            },
        };
        let cleanup = CleanupConfig {
            keep_versions: match raw.cleanup.keep_versions {
                Some(0) => return Err(invalid("cleanup.keep_versions", "must be at least 1")),
                Some(n) => n as usize,
                None => 3,
            },
            max_age: match raw.cleanup.max_age {
                Some(v) => Some(parse_duration("cleanup.max_age", &v)?),
                None => None,
            },
            max_size: match raw.cleanup.max_size {
                Some(v) => Some(parse_size("cleanup.max_size", &v)?),
                None => None,
            },
        };
        let mut repos = BTreeMap::new();
        for (name, r) in raw.repos {
            let key = format!("repos.{name}");
            if name == "local" {
                return Err(invalid(
                    key,
                    "the name `local` is reserved by pacman for its installed-packages database \
                     (\"could not register 'local' database\")",
                ));
            }
            if !valid_upstream_name(&name) {
                return Err(invalid(key, "repo names must match [a-z0-9][a-z0-9._-]*"));
            }
            if upstreams.contains_key(&name) {
                return Err(invalid(
                    key,
                    format!("`{name}` is also an upstream name: both would be served at /{name}/"),
                ));
            }
            let path = r
                .path
                .unwrap_or_else(|| PathBuf::from("/var/lib/pkgstash/repos").join(&name));
            let path = if path.is_relative() {
                base_dir.join(path)
            } else {
                path
            };
            let arch = r.arch.unwrap_or_else(|| vec!["x86_64".to_string()]);
            if arch.is_empty() {
                return Err(invalid(
                    format!("{key}.arch"),
                    "needs at least one architecture",
                ));
            }
            for a in &arch {
                if a == "any" || !valid_upstream_name(a) {
                    return Err(invalid(
                        format!("{key}.arch"),
                        format!("`{a}` is not an architecture like \"x86_64\" (`any` packages go into every arch)"),
                    ));
                }
            }
            let max_upload = match r.max_upload {
                Some(v) => parse_size(&format!("{key}.max_upload"), &v)?,
                None => 2 << 30,
            };
            let sign_key = r
                .sign_key
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty());
            repos.insert(
                name.clone(),
                CustomRepoConfig {
                    name,
                    path,
                    arch,
                    sign_key,
                    max_upload,
                },
            );
        }
        let mut aur = match raw.aur {
            Some(a) => Some(crate::config::aur::validate(a)?),
            None => None,
        };
        if let Some(a) = &mut aur {
            if !repos.contains_key(&a.repo) {
                return Err(invalid(
                    "aur.repo",
                    format!(
                        "`{}` is not a [repos.NAME] table: builds are published there",
                        a.repo
                    ),
                ));
            }
            check_dep_repos(&mut a.builder, &a.repo, &repos, &upstreams)?;
        }
        Ok(Config {
            repos,
            listen,
            cache_dir,
            db_max_age,
            upstream_timeout,
            min_rate,
            max_unknown_size,
            send_timeout,
            fast_path,
            upstreams,
            refresh,
            cleanup,
            token,
            aur,
        })
    }

    /// The address client commands use to reach the running server: the first `listen`
    /// entry, with a wildcard host replaced by loopback.
    pub fn admin_base_url(&self) -> String {
        base_url_of(&self.listen)
    }
}

/// `http://HOST:PORT` of the first `listen` entry, a wildcard host replaced by loopback.
fn base_url_of(listen: &[String]) -> String {
    let addr = listen
        .first()
        .map(String::as_str)
        .unwrap_or("127.0.0.1:7878");
    let (host, port) = addr.rsplit_once(':').unwrap_or(("127.0.0.1", "7878"));
    let host = match host {
        "0.0.0.0" | "" => "127.0.0.1",
        "[::]" => "[::1]",
        h => h,
    };
    format!("http://{host}:{port}")
}

/// `aur.builder.dep_repos` must name served repos; absent, it is every custom repo
/// (`aur.repo` first: AUR packages depending on other AUR builds).
fn check_dep_repos(
    builder: &mut crate::config::aur::BuilderConfig,
    aur_repo: &str,
    repos: &BTreeMap<String, CustomRepoConfig>,
    upstreams: &BTreeMap<String, UpstreamConfig>,
) -> Result<(), ConfigError> {
    use crate::config::aur::DepRepoRef;
    match &builder.dep_repos {
        Some(list) => {
            for (i, r) in list.iter().enumerate() {
                let key = format!("aur.builder.dep_repos[{i}]");
                match r {
                    DepRepoRef::Custom(n) if !repos.contains_key(n) => {
                        return Err(invalid(&key, format!("`{n}` is not a [repos.NAME] table")))
                    }
                    DepRepoRef::Upstream { upstream, .. } if !upstreams.contains_key(upstream) => {
                        return Err(invalid(
                            &key,
                            format!("`{upstream}` is not an [upstreams.NAME] table"),
                        ))
                    }
                    _ => {}
                }
            }
        }
        None => {
            let mut list = vec![DepRepoRef::Custom(aur_repo.to_string())];
            list.extend(
                repos
                    .keys()
                    .filter(|n| n.as_str() != aur_repo)
                    .map(|n| DepRepoRef::Custom(n.clone())),
            );
            builder.dep_repos = Some(list);
        }
    }
    Ok(())
}

fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// The effective configuration as TOML (token redacted): what `check-config` prints.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let listen: Vec<String> = self.listen.iter().map(|l| toml_str(l)).collect();
        writeln!(f, "listen = [{}]", listen.join(", "))?;
        writeln!(
            f,
            "cache_dir = {}",
            toml_str(&self.cache_dir.display().to_string())
        )?;
        writeln!(f, "db_max_age = \"{}\"", fmt_duration(self.db_max_age))?;
        writeln!(
            f,
            "upstream_timeout = \"{}\"",
            fmt_duration(self.upstream_timeout)
        )?;
        if let Some(r) = self.min_rate {
            writeln!(
                f,
                "min_rate = \"{}/s\"",
                bytesize::ByteSize(r).to_string_as(true)
            )?;
        }
        writeln!(f, "send_timeout = \"{}\"", fmt_duration(self.send_timeout))?;
        writeln!(f, "fast_path = {}", self.fast_path)?;
        writeln!(
            f,
            "max_unknown_size = \"{}\"",
            bytesize::ByteSize(self.max_unknown_size).to_string_as(true)
        )?;
        writeln!(
            f,
            "# admin token (PKGSTASH_TOKEN): {}",
            if self.token.is_some() {
                "set (redacted)"
            } else {
                "not set: admin API disabled"
            }
        )?;
        for up in self.upstreams.values() {
            writeln!(f, "\n[upstreams.{}]", up.name)?;
            // Redacted (`user:***@`): check-config output is shown and pasted around.
            let m: Vec<String> = up
                .mirrors
                .iter()
                .map(|m| toml_str(&m.to_string()))
                .collect();
            writeln!(f, "mirrors = [{}]", m.join(", "))?;
        }
        for r in self.repos.values() {
            writeln!(f, "\n[repos.{}]", r.name)?;
            writeln!(f, "path = {}", toml_str(&r.path.display().to_string()))?;
            let a: Vec<String> = r.arch.iter().map(|a| toml_str(a)).collect();
            writeln!(f, "arch = [{}]", a.join(", "))?;
            if let Some(k) = &r.sign_key {
                writeln!(f, "sign_key = {}", toml_str(k))?;
            }
            writeln!(
                f,
                "max_upload = \"{}\"",
                bytesize::ByteSize(r.max_upload).to_string_as(true)
            )?;
        }
        writeln!(f, "\n[refresh]")?;
        writeln!(f, "prefetch = {}", self.refresh.prefetch)?;
        if let Some(i) = self.refresh.interval {
            writeln!(f, "interval = \"{}\"", fmt_duration(i))?;
        }
        writeln!(
            f,
            "prefetch_concurrency = {}",
            self.refresh.prefetch_concurrency
        )?;
        writeln!(f, "\n[cleanup]")?;
        writeln!(f, "keep_versions = {}", self.cleanup.keep_versions)?;
        if let Some(a) = self.cleanup.max_age {
            writeln!(f, "max_age = \"{}\"", fmt_duration(a))?;
        }
        if let Some(s) = self.cleanup.max_size {
            writeln!(
                f,
                "max_size = \"{}\"",
                bytesize::ByteSize(s).to_string_as(true)
            )?;
        }
        if let Some(aur) = &self.aur {
            write!(f, "{aur}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        std::fs::write(&p, toml).expect("write");
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_with_env(&p, &env)
    }

    fn bases<'a>(c: &'a Config, upstream: &str) -> Vec<&'a str> {
        c.upstreams[upstream]
            .mirrors
            .iter()
            .map(|m| m.base())
            .collect()
    }

    const MIN: &str = "[upstreams.archlinux]\nmirrors = [\"https://geo.mirror.pkgbuild.com/\"]\n";

    fn err_text(toml: &str) -> String {
        match load(toml, &[]) {
            Ok(_) => panic!("expected an error for:\n{toml}"),
            Err(e) => format!("{e} / {:?}", e),
        }
    }

    #[test]
    fn defaults_apply() {
        let c = load(MIN, &[]).expect("valid");
        assert_eq!(c.listen, vec!["0.0.0.0:7878"]);
        assert_eq!(c.db_max_age, Duration::from_secs(30));
        assert_eq!(c.upstream_timeout, Duration::from_secs(15));
        assert_eq!(c.send_timeout, Duration::from_secs(60));
        assert!(c.fast_path);
        assert_eq!(
            bases(&c, "archlinux"),
            vec!["https://geo.mirror.pkgbuild.com"]
        );
        assert_eq!(c.max_unknown_size, DEFAULT_MAX_UNKNOWN_SIZE);
        assert_eq!(c.cleanup.keep_versions, 3);
        assert!(c.refresh.prefetch);
        assert!(c.token.is_none());
    }

    /// Every list key can be set from the environment, comma-separated; other values keep
    /// their commas.
    #[test]
    fn env_lists_split_at_commas() {
        let c = load(
            "[upstreams.archlinux]\nmirrors = [\"https://a.example\"]\n\
             [upstreams.my_arm]\nmirrors = [\"https://b.example\"]\n\
             [repos.custom]\npath = \"/srv/repo\"\n",
            &[
                (
                    "PKGSTASH__UPSTREAMS__ARCHLINUX__MIRRORS",
                    "http://127.0.0.1:1,http://127.0.0.1:2",
                ),
                ("PKGSTASH__UPSTREAMS__MY_ARM__MIRRORS", "http://127.0.0.1:3"),
                ("PKGSTASH__REPOS__CUSTOM__ARCH", "x86_64,aarch64"),
            ],
        )
        .expect("valid");
        let bases = |up: &str| -> Vec<String> {
            c.upstreams[up]
                .mirrors
                .iter()
                .map(|m| m.base().to_string())
                .collect()
        };
        assert_eq!(
            bases("archlinux"),
            vec!["http://127.0.0.1:1", "http://127.0.0.1:2"]
        );
        assert_eq!(bases("my_arm"), vec!["http://127.0.0.1:3"]);
        assert_eq!(c.repos["custom"].arch, vec!["x86_64", "aarch64"]);
        assert!(is_list_key("aur.packages") && is_list_key("aur.builder.dep_repos"));
        assert!(!is_list_key("upstreams.archlinux") && !is_list_key("db_max_age"));
        assert_eq!(
            env_key("PKGSTASH__UPSTREAMS__MY_ARM__MIRRORS"),
            "upstreams.my_arm.mirrors"
        );
    }

    #[test]
    fn env_overrides_file_and_token_is_redacted() {
        let c = load(
            &format!("db_max_age = \"30s\"\n{MIN}"),
            &[
                ("PKGSTASH__DB_MAX_AGE", "5m"),
                ("PKGSTASH__LISTEN", "127.0.0.1:1,127.0.0.1:2"),
                ("PKGSTASH__CLEANUP__KEEP_VERSIONS", "5"),
                ("PKGSTASH_TOKEN", "s3cret-token"),
            ],
        )
        .expect("valid");
        assert_eq!(c.db_max_age, Duration::from_secs(300));
        assert_eq!(c.listen, vec!["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!(c.cleanup.keep_versions, 5);
        let tok = c.token.clone().expect("token");
        assert!(tok.matches("s3cret-token"));
        assert!(!tok.matches("s3cret-tokeN"));
        let shown = format!("{c}\n{c:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn errors_name_the_key() {
        assert!(err_text(&format!("bogus = 1\n{MIN}")).contains("bogus"));
        assert!(err_text(&format!("db_max_age = \"soon\"\n{MIN}")).contains("db_max_age"));
        assert!(err_text(&format!("upstream_timeout = \"0s\"\n{MIN}")).contains("upstream_timeout"));
        assert!(err_text(&format!("send_timeout = \"0s\"\n{MIN}")).contains("send_timeout"));
        assert!(err_text(&format!("send_timeout = \"later\"\n{MIN}")).contains("send_timeout"));
        assert!(err_text(&format!("fast_path = \"maybe\"\n{MIN}")).contains("fast_path"));
        assert!(err_text(&format!("listen = \"nope\"\n{MIN}")).contains("listen"));
        assert!(err_text(&format!("[cleanup]\nmax_size = \"lots\"\n{MIN}"))
            .contains("cleanup.max_size"));
        assert!(err_text(&format!("[cleanup]\nkeep_versions = 0\n{MIN}"))
            .contains("cleanup.keep_versions"));
        assert!(err_text(&format!("[refresh]\nbogus = true\n{MIN}")).contains("bogus"));
        assert!(
            err_text("[upstreams.x]\nmirrors = [\"ftp://a\"]\n").contains("upstreams.x.mirrors[0]")
        );
        assert!(err_text("[upstreams.x]\nmirrors = []\n").contains("upstreams.x"));
        assert!(err_text("[upstreams.\"-x\"]\nmirrors = [\"http://a\"]\n").contains("upstreams.-x"));
        assert!(err_text("[upstreams.local]\nmirrors = [\"http://a\"]\n").contains("reserved"));
        assert!(err_text("listen = \"127.0.0.1:1\"\n").contains("upstreams"));
        assert!(err_text("[upstreams.x]\nmirrorz = [\"http://a\"]\n").contains("mirrorz"));
    }

    #[test]
    fn mirror_credentials_are_kept_apart_and_never_shown() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("mirrorlist"),
            "Server = https://bob:list%23pw@b.example/arch/$repo/os/$arch\n",
        )
        .expect("write");
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "[upstreams.arch]\nmirrors = [\"http://alice:s3cret@a.example/\"]\nmirrorlist = \"mirrorlist\"\n",
        )
        .expect("write");
        let c = Config::load_with_env(&p, &HashMap::new()).expect("valid");
        assert_eq!(
            bases(&c, "arch"),
            vec!["http://a.example", "https://b.example/arch"]
        );
        let creds: Vec<(String, Option<String>)> = c.upstreams["arch"]
            .mirrors
            .iter()
            .filter_map(|m| m.credentials())
            .map(|c| (c.user.clone(), c.password.clone()))
            .collect();
        assert_eq!(
            creds,
            vec![
                ("alice".to_string(), Some("s3cret".to_string())),
                ("bob".to_string(), Some("list#pw".to_string()))
            ]
        );
        let shown = format!("{c}\n{c:?}");
        assert!(
            shown.contains("http://alice:***@a.example")
                && shown.contains("https://bob:***@b.example/arch"),
            "{shown}"
        );
        assert!(
            !shown.contains("s3cret") && !shown.contains("list#pw") && !shown.contains("list%23pw"),
            "{shown}"
        );
        // A bad URL's message does not show the password either.
        let e = err_text("[upstreams.x]\nmirrors = [\"http://u:hunter2@h/?q\"]\n");
        assert!(
            e.contains("upstreams.x.mirrors[0]") && !e.contains("hunter2"),
            "{e}"
        );
    }

    #[test]
    fn max_unknown_size_is_a_size() {
        let c = load(&format!("max_unknown_size = \"512MiB\"\n{MIN}"), &[]).expect("valid");
        assert_eq!(c.max_unknown_size, 512 << 20);
        assert!(
            c.to_string().contains("max_unknown_size = \"512.0 MiB\""),
            "{c}"
        );
        assert!(
            err_text(&format!("max_unknown_size = \"huge\"\n{MIN}")).contains("max_unknown_size")
        );
        assert!(err_text(&format!("max_unknown_size = \"0\"\n{MIN}")).contains("max_unknown_size"));
    }

    #[test]
    fn mirrorlist_is_read_relative_to_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("mirrorlist"),
            "## comment\n#Server = http://off/$repo/os/$arch\nServer = http://a.example/archlinux/$repo/os/$arch\n\nServer=https://b.example/$repo/os/$arch\n",
        )
        .expect("write");
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "[upstreams.archlinux]\nmirrors = [\"http://first\"]\nmirrorlist = \"mirrorlist\"\n",
        )
        .expect("write");
        let c = Config::load_with_env(&p, &HashMap::new()).expect("valid");
        assert_eq!(
            bases(&c, "archlinux"),
            vec![
                "http://first",
                "http://a.example/archlinux",
                "https://b.example"
            ]
        );
    }

    #[test]
    fn aur_section_defaults_and_errors() {
        let c = load(
            &format!("{MIN}[repos.custom]\n[aur]\npackages = [\"yay\", \"paru-bin\"]\nrepo = \"custom\"\n"),
            &[],
        )
        .expect("valid");
        let aur = c.aur.expect("aur on");
        assert_eq!(aur.packages, vec!["yay", "paru-bin"]);
        assert_eq!(aur.rpc_url, "https://aur.archlinux.org/rpc/v5");
        assert_eq!(aur.git_url_for("yay"), "https://aur.archlinux.org/yay.git");
        assert_eq!(aur.check_interval, Duration::from_secs(6 * 3600));
        assert_eq!(aur.builder.user, "pkgstash-build");
        // Dependencies come from the served repos: by default every custom repo.
        assert_eq!(aur.builder.dependencies.as_str(), "repos");
        assert_eq!(aur.builder.concurrent_builds, 1);
        assert_eq!(aur.builder.siglevel, "Required DatabaseOptional");
        let names: Vec<String> = aur
            .builder
            .dep_repos()
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(names, vec!["custom"]);
        assert!(load(MIN, &[]).expect("valid").aur.is_none());
        let e = err_text(&format!("{MIN}[aur]\nrepo = \"custom\"\n"));
        assert!(e.contains("aur.repo") && e.contains("[repos.NAME]"), "{e}");
        let with = |extra: &str| {
            err_text(&format!(
                "{MIN}[repos.custom]\n[aur]\nrepo = \"custom\"\n{extra}"
            ))
        };
        assert!(with("packages = [\"Bad Name\"]\n").contains("aur.packages[0]"));
        assert!(with("check_interval = \"often\"\n").contains("aur.check_interval"));
        assert!(with("git_url = \"https://x/y.git\"\n").contains("aur.git_url"));
        assert!(with("[aur.builder]\nuser = \"root\"\n").contains("aur.builder.user"));
        assert!(with("[aur.builder]\nisolation = \"chroot\"\n").contains("aur.builder.isolation"));
        assert!(
            with("[aur.builder]\ndependencies = \"auto\"\n").contains("aur.builder.dependencies")
        );
        assert!(with("[aur.builder]\nsiglevel = \"Sometimes\"\n").contains("aur.builder.siglevel"));
        assert!(with("[aur.builder]\nconcurrent_builds = 0\n")
            .contains("aur.builder.concurrent_builds"));
        let e = with("[aur.builder]\ndep_repos = [\"custom\", \"nowhere/core\"]\n");
        assert!(
            e.contains("aur.builder.dep_repos[1]") && e.contains("[upstreams.NAME]"),
            "{e}"
        );
        let e = with("[aur.builder]\ndep_repos = [\"other\"]\n");
        assert!(
            e.contains("aur.builder.dep_repos[0]") && e.contains("[repos.NAME]"),
            "{e}"
        );
        let e = with("[aur.builder]\ndep_repos = [\"a/b/c\"]\n");
        assert!(e.contains("aur.builder.dep_repos[0]"), "{e}");
        let e = with("[aur.builder]\ndep_repos = [\"archlinux/core\", \"other/core\"]\n");
        assert!(
            e.contains("aur.builder.dep_repos[1]") && e.contains("unique"),
            "{e}"
        );
        let c = load(
            &format!("{MIN}[repos.custom]\n[aur]\nrepo = \"custom\"\n[aur.builder]\ndep_repos = [\"archlinux/core\", \"custom\"]\nsiglevel = \"Optional  TrustAll\"\n"),
            &[],
        )
        .expect("valid");
        let shown = c.to_string();
        assert!(
            shown.contains("dep_repos = [\"archlinux/core\", \"custom\"]")
                && shown.contains("siglevel = \"Optional TrustAll\""),
            "{shown}"
        );
        assert!(with("[aur.notify]\nwebhook = \"ftp://x\"\n").contains("aur.notify.webhook"));
        assert!(with("bogus = 1\n").contains("bogus"));
        assert!(
            err_text(&format!("{MIN}[repos.custom]\n[aur]\npackages = []\n")).contains("aur.repo")
        );
        let shown = load(
            &format!("{MIN}[repos.custom]\n[aur]\nrepo = \"custom\"\nnotify = {{ webhook = \"https://hooks.example/s3cret\" }}\n"),
            &[],
        )
        .expect("valid")
        .to_string();
        assert!(
            shown.contains("[aur]") && !shown.contains("s3cret"),
            "{shown}"
        );
    }

    #[test]
    fn admin_url_uses_loopback_for_wildcards() {
        let c = load(&format!("listen = \"0.0.0.0:7878\"\n{MIN}"), &[]).expect("valid");
        assert_eq!(c.admin_base_url(), "http://127.0.0.1:7878");
    }

    #[test]
    fn repos_are_checked() {
        let up = "[upstreams.arch]\nmirrors = [\"http://m\"]\n";
        let c = load(
            &format!("{up}[repos.custom]\npath = \"/srv/custom\"\n"),
            &[],
        )
        .expect("ok");
        assert_eq!(c.repos["custom"].arch, ["x86_64"]);
        assert_eq!(c.repos["custom"].path, PathBuf::from("/srv/custom"));
        let e = load(&format!("{up}[repos.local]\n"), &[]).expect_err("local");
        assert!(
            e.to_string().contains("repos.local") && e.to_string().contains("reserved"),
            "{e}"
        );
        let e = load(&format!("{up}[repos.arch]\n"), &[]).expect_err("clash");
        assert!(
            e.to_string().contains("repos.arch") && e.to_string().contains("upstream"),
            "{e}"
        );
        let e = load(&format!("{up}[repos.c]\narch = [\"any\"]\n"), &[]).expect_err("any");
        assert!(e.to_string().contains("repos.c.arch"), "{e}");
        let e = load(&format!("{up}[repos.c]\nmax_upload = \"lots\"\n"), &[]).expect_err("size");
        assert!(e.to_string().contains("repos.c.max_upload"), "{e}");
        let e = load(&format!("{up}[repos.c]\nbogus = 1\n"), &[]).expect_err("unknown");
        assert!(e.to_string().contains("bogus"), "{e}");
    }
}
