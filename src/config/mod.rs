//! Configuration: the TOML file (with `PKGSTASH__KEY` env overrides layered on top, read by
//! the `config` crate) is deserialized into the raw serde structs of `raw.rs`, then validated
//! section by section into the typed [`Config`] the rest of the program uses.
//!
//! One module per section: `server.rs` (the top-level keys), `upstreams.rs` (with
//! [`mirror_url`] and [`mirrorlist`]), `repos.rs` (custom repos), `policy.rs` (refresh,
//! cleanup), [`aur`]; `units.rs` is the one parser of durations, sizes and rates they all
//! use, `env.rs` the environment overrides, `display.rs` the effective-config printout.
//!
//! Invariants of a [`Config`]: every upstream name is a valid URL segment and not `local`,
//! every upstream has at least one `http(s)://` mirror base (no trailing slash), durations and
//! sizes are parsed. Unknown keys are errors. Every error names the offending key.

pub(crate) mod aur;
mod display;
mod env;
pub(crate) mod mirror_url;
pub(crate) mod mirrorlist;
mod policy;
mod raw;
mod repos;
mod server;
mod token;
mod units;
mod upstreams;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use raw::RawConfig;

pub use policy::{CleanupConfig, RefreshConfig};
pub use repos::CustomRepoConfig;
pub use server::{loopback_url, DEFAULT_MAX_UNKNOWN_SIZE, DEFAULT_SHUTDOWN_GRACE};
pub use token::Token;
pub use upstreams::UpstreamConfig;

/// Where the config file is looked for when neither `-c` nor `$PKGSTASH_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/pkgstash/pkgstash.toml";

/// A configuration problem. The message always names the key (or file and line).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The cause is part of the message (not a `source`): printed once, not twice.
    #[error("cannot read config {path}: {cause}")]
    Load {
        path: PathBuf,
        cause: config::ConfigError,
    },
    /// The file reads, but a `PKGSTASH__*` override makes the whole unreadable (an unknown
    /// key, a value of the wrong type): the fault is named as the environment's.
    #[error("config from the environment (PKGSTASH__* variables): {cause}")]
    Env { cause: config::ConfigError },
    #[error("config key `{key}`: {reason}")]
    Invalid { key: String, reason: String },
    #[error(transparent)]
    Mirrorlist(#[from] mirrorlist::MirrorlistError),
}

/// The error for a bad value at `key`.
fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
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
    /// After SIGTERM, how long transfers in progress (and downloads in flight) may go on while
    /// new requests are refused (503) and the health check fails; `0s`: stop at once.
    pub shutdown_grace: Duration,
    /// Peers whose `X-Forwarded-For` names the client (load balancers); empty: none.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    pub refresh: RefreshConfig,
    pub cleanup: CleanupConfig,
    /// Custom repos by name (disjoint from upstream names).
    pub repos: BTreeMap<String, CustomRepoConfig>,
    /// Admin token from `$PKGSTASH_TOKEN`; `None` disables the admin API.
    pub token: Option<Token>,
    /// The AUR build server; `None` (no `[aur]` section) = off.
    pub aur: Option<aur::AurConfig>,
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
        let env: HashMap<String, String> = std::env::vars().collect();
        Self::load_with_env(path, &env)
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_with_env(
        path: &Path,
        env: &HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let load_err = |cause| ConfigError::Load {
            path: path.to_path_buf(),
            cause,
        };
        if !path.is_file() {
            return Err(load_err(config::ConfigError::Message(
                "file not found (or not a regular file)".into(),
            )));
        }
        let file = || {
            config::File::from(path)
                .format(config::FileFormat::Toml)
                .required(true)
        };
        let read = |builder: config::ConfigBuilder<config::builder::DefaultState>| {
            builder.build()?.try_deserialize::<RawConfig>()
        };
        let raw = match read(
            config::Config::builder()
                .add_source(file())
                .add_source(env::overrides(env)),
        ) {
            Ok(raw) => raw,
            // Whose fault: the file's own, or an override's (the file alone reads)?
            Err(cause) => match read(config::Config::builder().add_source(file())) {
                Ok(_) => return Err(ConfigError::Env { cause }),
                Err(_) => return Err(load_err(cause)),
            },
        };
        Self::validate(
            raw,
            Token::from_env(env),
            path.parent().unwrap_or(Path::new(".")),
        )
    }

    /// Validate section by section, in the order of the file's documentation (the first
    /// error found is the one reported); `base_dir` is the config file's directory.
    fn validate(
        raw: RawConfig,
        token: Option<Token>,
        base_dir: &Path,
    ) -> Result<Config, ConfigError> {
        let top = server::validate(&raw)?;
        if raw.upstreams.is_empty() && raw.repos.is_empty() {
            return Err(invalid(
                "upstreams",
                "at least one [upstreams.NAME] (or [repos.NAME]) table is required",
            ));
        }
        let upstreams = upstreams::validate(raw.upstreams, base_dir)?;
        let refresh = policy::refresh(raw.refresh)?;
        let cleanup = policy::cleanup(raw.cleanup)?;
        let repos = repos::validate(raw.repos, &upstreams, base_dir)?;
        let aur = match raw.aur {
            Some(raw) => {
                let mut aur = aur::validate(raw)?;
                aur::resolve(&mut aur, &repos, &upstreams)?;
                Some(aur)
            }
            None => None,
        };
        Ok(Config {
            listen: top.listen,
            cache_dir: top.cache_dir,
            db_max_age: top.db_max_age,
            upstream_timeout: top.upstream_timeout,
            min_rate: top.min_rate,
            max_unknown_size: top.max_unknown_size,
            send_timeout: top.send_timeout,
            fast_path: top.fast_path,
            shutdown_grace: top.shutdown_grace,
            trusted_proxies: top.trusted_proxies,
            upstreams,
            refresh,
            cleanup,
            repos,
            token,
            aur,
        })
    }

    /// The address client commands use to reach the running server: the first `listen`
    /// entry through [`loopback_url`] (a wildcard host replaced by loopback).
    pub fn admin_base_url(&self) -> String {
        loopback_url(
            self.listen
                .first()
                .map(String::as_str)
                .unwrap_or("127.0.0.1:7878"),
        )
    }
}

/// Loading a config from text, for the section modules' tests.
#[cfg(test)]
pub(crate) mod test_support {
    use std::collections::HashMap;

    use super::{Config, ConfigError};

    /// A minimal valid config: one upstream.
    pub const MIN: &str =
        "[upstreams.archlinux]\nmirrors = [\"https://geo.mirror.pkgbuild.com/\"]\n";

    /// Load `toml` (written to a temporary file) with exactly the environment `env`.
    pub fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        std::fs::write(&p, toml).expect("write");
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_with_env(&p, &env)
    }

    /// The mirror bases of `upstream`.
    pub fn bases<'a>(c: &'a Config, upstream: &str) -> Vec<&'a str> {
        c.upstreams[upstream]
            .mirrors
            .iter()
            .map(|m| m.base())
            .collect()
    }

    /// The error `toml` must give, as `Display / Debug`.
    pub fn err_text(toml: &str) -> String {
        match load(toml, &[]) {
            Ok(_) => panic!("expected an error for:\n{toml}"),
            Err(e) => format!("{e} / {:?}", e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::test_support::{bases, err_text, load, MIN};
    use super::DEFAULT_MAX_UNKNOWN_SIZE;

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

    #[test]
    fn an_unknown_key_is_blamed_on_where_it_came_from() {
        let from_env = load(MIN, &[("PKGSTASH__FOO", "1")])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            from_env.starts_with("config from the environment (PKGSTASH__* variables): ")
                && from_env.contains("foo"),
            "{from_env}"
        );
        let from_file = err_text(&format!("foo = 1\n{MIN}"));
        assert!(
            from_file.starts_with("cannot read config ") && from_file.contains("foo"),
            "{from_file}"
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
}
