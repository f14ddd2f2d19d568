//! The `[aur]` config section: raw serde structs and their validation into [`AurConfig`].
//! Absent section = build server off. Every error names the key (`aur.builder.timeout`, …).

use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;

/// Default AUR RPC base (the `info` endpoint is `<rpc_url>/info`).
pub const DEFAULT_RPC_URL: &str = "https://aur.archlinux.org/rpc/v5";
/// Default git URL template; `{pkgbase}` is replaced by the package base.
pub const DEFAULT_GIT_URL: &str = "https://aur.archlinux.org/{pkgbase}.git";
/// Default user makepkg runs as when pkgstash runs as root.
pub const DEFAULT_BUILD_USER: &str = "pkgstash-build";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAur {
    #[serde(default)]
    packages: Vec<String>,
    repo: Option<String>,
    rpc_url: Option<String>,
    git_url: Option<String>,
    check_interval: Option<String>,
    #[serde(default)]
    builder: RawBuilder,
    #[serde(default)]
    notify: RawNotify,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuilder {
    timeout: Option<String>,
    user: Option<String>,
    isolation: Option<String>,
    concurrent_builds: Option<i64>,
    dependencies: Option<String>,
    dep_repos: Option<Vec<String>>,
    siglevel: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    webhook: Option<String>,
}

/// How a build is isolated besides running as an unprivileged user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// bubblewrap when `bwrap` is on PATH, else [`Isolation::None`] (with a warning per build).
    Auto,
    /// Always bubblewrap; a build fails when `bwrap` is missing.
    Bwrap,
    /// Only the unprivileged user and the throw-away directory.
    None,
}

impl Isolation {
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Auto => "auto",
            Isolation::Bwrap => "bwrap",
            Isolation::None => "none",
        }
    }
}

/// Where a build's dependencies come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependencies {
    /// Those the build host lacks are installed from the repos pkgstash serves
    /// ([`BuilderConfig::dep_repos`]) into the build's own dependency root.
    Repos,
    /// Only the build host's packages: a missing dependency fails the build.
    Host,
}

impl Dependencies {
    pub fn as_str(self) -> &'static str {
        match self {
            Dependencies::Repos => "repos",
            Dependencies::Host => "host",
        }
    }
}

/// One repo build dependencies are installed from, as written in `aur.builder.dep_repos`:
/// `"NAME"` (a `[repos.NAME]` custom repo) or `"UPSTREAM/REPO"` (a repo of an upstream with
/// the Arch layout `/<upstream>/<repo>/os/<arch>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepRepoRef {
    Custom(String),
    Upstream { upstream: String, repo: String },
}

impl DepRepoRef {
    /// The repo name pacman knows it by (its db is `<name>.db`).
    pub fn name(&self) -> &str {
        match self {
            DepRepoRef::Custom(n) => n,
            DepRepoRef::Upstream { repo, .. } => repo,
        }
    }

    /// The URL path pkgstash serves it at, with pacman's `$arch`.
    pub fn path(&self) -> String {
        match self {
            DepRepoRef::Custom(n) => format!("/{n}/os/$arch"),
            DepRepoRef::Upstream { upstream, repo } => format!("/{upstream}/{repo}/os/$arch"),
        }
    }
}

impl std::fmt::Display for DepRepoRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DepRepoRef::Custom(n) => write!(f, "{n}"),
            DepRepoRef::Upstream { upstream, repo } => write!(f, "{upstream}/{repo}"),
        }
    }
}

/// pacman's default `SigLevel`, used for the upstream repos dependencies come from.
pub const DEFAULT_SIGLEVEL: &str = "Required DatabaseOptional";

/// Builder settings.
#[derive(Debug, Clone)]
pub struct BuilderConfig {
    /// A build running longer is killed (whole process group) and counts as failed; the
    /// dependency installation before it has the same limit.
    pub timeout: Duration,
    /// The unprivileged user makepkg runs as when pkgstash runs as root.
    pub user: String,
    pub isolation: Isolation,
    /// Builds running at once (default 1; never two of one package base).
    pub concurrent_builds: usize,
    pub dependencies: Dependencies,
    /// Repos dependencies are installed from, in pacman's order. `None` until
    /// `Config::validate` fills the default (every custom repo, `aur.repo` first).
    pub dep_repos: Option<Vec<DepRepoRef>>,
    /// pacman `SigLevel` for the upstream repos in `dep_repos` (custom repos: `Never`, their
    /// packages are pkgstash's own).
    pub siglevel: String,
    /// This server's own base URL (`http://127.0.0.1:7878`): dependencies are downloaded
    /// through it, so they are cached like any client's. Set once the server listens.
    pub server_url: String,
}

impl BuilderConfig {
    /// The dependency repos (empty before `Config::validate` filled them).
    pub fn dep_repos(&self) -> &[DepRepoRef] {
        self.dep_repos.as_deref().unwrap_or(&[])
    }
}

/// The words pacman's `SigLevel` accepts.
fn valid_siglevel(v: &str) -> bool {
    !v.trim().is_empty()
        && v.split_whitespace().all(|w| {
            let w = w
                .strip_prefix("Package")
                .or_else(|| w.strip_prefix("Database"))
                .unwrap_or(w);
            ["Never", "Optional", "Required", "TrustedOnly", "TrustAll"].contains(&w)
        })
}

/// The one of `choices` named `value` (absent: the first, the default).
fn keyword<T: Copy>(
    key: &str,
    value: Option<&str>,
    choices: &[T],
    name: fn(T) -> &'static str,
) -> Result<T, ConfigError> {
    let Some(value) = value else {
        return choices
            .first()
            .copied()
            .ok_or_else(|| invalid(key, "has no choices"));
    };
    choices
        .iter()
        .copied()
        .find(|c| name(*c) == value)
        .ok_or_else(|| {
            let names: Vec<String> = choices
                .iter()
                .map(|c| format!("\"{}\"", name(*c)))
                .collect();
            invalid(key, format!("`{value}` is not one of {}", names.join(", ")))
        })
}

/// Parse one `aur.builder.dep_repos` entry.
fn dep_repo(key: &str, value: &str) -> Result<DepRepoRef, ConfigError> {
    let value = value.trim();
    let name_ok = |n: &str| crate::config::valid_upstream_name(n) && n != "local";
    match value.split_once('/') {
        None if name_ok(value) => Ok(DepRepoRef::Custom(value.to_string())),
        Some((up, repo)) if name_ok(up) && name_ok(repo) => Ok(DepRepoRef::Upstream {
            upstream: up.to_string(),
            repo: repo.to_string(),
        }),
        _ => Err(invalid(
            key,
            format!(
                "`{value}` is neither a custom repo name nor UPSTREAM/REPO \
                 (e.g. \"archlinux/core\")"
            ),
        )),
    }
}

/// The validated `[aur]` section.
#[derive(Debug, Clone)]
pub struct AurConfig {
    /// Tracked AUR package names.
    pub packages: Vec<String>,
    /// The custom repo builds are published to.
    pub repo: String,
    /// RPC base URL without trailing slash.
    pub rpc_url: String,
    /// Git URL template containing `{pkgbase}`.
    pub git_url: String,
    pub check_interval: Duration,
    pub builder: BuilderConfig,
    /// Webhook URL notifications are POSTed to.
    pub webhook: Option<String>,
}

impl AurConfig {
    /// The git URL of `pkgbase`.
    pub fn git_url_for(&self, pkgbase: &str) -> String {
        self.git_url.replace("{pkgbase}", pkgbase)
    }
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        reason: reason.into(),
    }
}

fn duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value.trim()).map_err(|e| {
        invalid(
            key,
            format!("`{value}` is not a duration like \"30s\" or \"6h\": {e}"),
        )
    })
}

fn http_url(key: &str, value: &str) -> Result<String, ConfigError> {
    let v = value.trim().trim_end_matches('/');
    let ok = v
        .strip_prefix("http://")
        .or_else(|| v.strip_prefix("https://"))
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    if !ok || v.contains(char::is_whitespace) {
        return Err(invalid(key, format!("`{value}` is not an http(s):// URL")));
    }
    Ok(v.to_string())
}

/// An AUR package name: what the AUR allows (`[a-z0-9@._+-]`, not starting with `-` or `.`).
pub fn valid_package_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['-', '.'])
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "@._+-".contains(c))
}

/// Validate the raw section.
pub(crate) fn validate(raw: RawAur) -> Result<AurConfig, ConfigError> {
    let mut packages = Vec::new();
    for (i, p) in raw.packages.iter().enumerate() {
        let p = p.trim();
        if !valid_package_name(p) {
            return Err(invalid(
                &format!("aur.packages[{i}]"),
                format!("`{p}` is not an AUR package name"),
            ));
        }
        if !packages.iter().any(|q: &String| q == p) {
            packages.push(p.to_string());
        }
    }
    let repo = raw
        .repo
        .map(|r| r.trim().to_string())
        .ok_or_else(|| invalid("aur.repo", "required: the custom repo builds go to"))?;
    if !crate::config::valid_upstream_name(&repo) || repo == "local" {
        return Err(invalid(
            "aur.repo",
            format!("`{repo}` is not a repo name ([a-z0-9][a-z0-9._-]*, not `local`)"),
        ));
    }
    // That `repo` names a `[repos.<name>]` table is checked in `Config::validate`.
    let rpc_url = http_url(
        "aur.rpc_url",
        raw.rpc_url.as_deref().unwrap_or(DEFAULT_RPC_URL),
    )?;
    let git_url = raw
        .git_url
        .unwrap_or_else(|| DEFAULT_GIT_URL.to_string())
        .trim()
        .to_string();
    if !git_url.contains("{pkgbase}") {
        return Err(invalid(
            "aur.git_url",
            format!("`{git_url}` must contain {{pkgbase}}"),
        ));
    }
    let check_interval = duration(
        "aur.check_interval",
        raw.check_interval.as_deref().unwrap_or("6h"),
    )?;
    if check_interval.is_zero() {
        return Err(invalid("aur.check_interval", "must be more than 0s"));
    }
    let timeout = duration(
        "aur.builder.timeout",
        raw.builder.timeout.as_deref().unwrap_or("1h"),
    )?;
    if timeout.is_zero() {
        return Err(invalid("aur.builder.timeout", "must be more than 0s"));
    }
    let user = raw
        .builder
        .user
        .unwrap_or_else(|| DEFAULT_BUILD_USER.to_string());
    let user_ok = !user.is_empty()
        && user != "root"
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !user_ok {
        return Err(invalid(
            "aur.builder.user",
            format!("`{user}` must be an unprivileged user name (not root)"),
        ));
    }
    let isolation = keyword(
        "aur.builder.isolation",
        raw.builder.isolation.as_deref(),
        &[Isolation::Auto, Isolation::Bwrap, Isolation::None],
        Isolation::as_str,
    )?;
    let concurrent_builds = match raw.builder.concurrent_builds {
        None => 1,
        Some(n) if (1..=64).contains(&n) => n as usize,
        Some(n) => {
            return Err(invalid(
                "aur.builder.concurrent_builds",
                format!("{n} is not between 1 and 64"),
            ))
        }
    };
    let dependencies = keyword(
        "aur.builder.dependencies",
        raw.builder.dependencies.as_deref(),
        &[Dependencies::Repos, Dependencies::Host],
        Dependencies::as_str,
    )?;
    let dep_repos = match raw.builder.dep_repos {
        Some(list) => {
            let mut v: Vec<DepRepoRef> = Vec::new();
            for (i, e) in list.iter().enumerate() {
                let key = format!("aur.builder.dep_repos[{i}]");
                let r = dep_repo(&key, e)?;
                if v.iter().any(|o| o.name() == r.name()) {
                    return Err(invalid(
                        &key,
                        format!(
                            "a second repo named `{}` (pacman needs unique names)",
                            r.name()
                        ),
                    ));
                }
                v.push(r);
            }
            Some(v)
        }
        None => None,
    };
    let siglevel = raw
        .builder
        .siglevel
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| DEFAULT_SIGLEVEL.to_string());
    if !valid_siglevel(&siglevel) {
        return Err(invalid(
            "aur.builder.siglevel",
            format!("`{siglevel}` is not a pacman SigLevel (e.g. \"{DEFAULT_SIGLEVEL}\")"),
        ));
    }
    let webhook = match raw.notify.webhook {
        Some(w) => Some(http_url("aur.notify.webhook", &w)?),
        None => None,
    };
    Ok(AurConfig {
        packages,
        repo,
        rpc_url,
        git_url,
        check_interval,
        builder: BuilderConfig {
            timeout,
            user,
            isolation,
            concurrent_builds,
            dependencies,
            dep_repos,
            siglevel,
            server_url: String::new(),
        },
        webhook,
    })
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

impl std::fmt::Display for AurConfig {
    /// The section as TOML, for `check-config`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pkgs: Vec<String> = self.packages.iter().map(|p| toml_str(p)).collect();
        writeln!(f, "\n[aur]")?;
        writeln!(f, "packages = [{}]", pkgs.join(", "))?;
        writeln!(f, "repo = {}", toml_str(&self.repo))?;
        writeln!(f, "rpc_url = {}", toml_str(&self.rpc_url))?;
        writeln!(f, "git_url = {}", toml_str(&self.git_url))?;
        writeln!(
            f,
            "check_interval = \"{}\"",
            humantime::format_duration(self.check_interval)
        )?;
        writeln!(f, "\n[aur.builder]")?;
        writeln!(
            f,
            "timeout = \"{}\"",
            humantime::format_duration(self.builder.timeout)
        )?;
        writeln!(f, "user = {}", toml_str(&self.builder.user))?;
        writeln!(f, "isolation = \"{}\"", self.builder.isolation.as_str())?;
        writeln!(f, "concurrent_builds = {}", self.builder.concurrent_builds)?;
        writeln!(
            f,
            "dependencies = \"{}\"",
            self.builder.dependencies.as_str()
        )?;
        let repos: Vec<String> = self
            .builder
            .dep_repos()
            .iter()
            .map(|r| toml_str(&r.to_string()))
            .collect();
        writeln!(f, "dep_repos = [{}]", repos.join(", "))?;
        writeln!(f, "siglevel = {}", toml_str(&self.builder.siglevel))?;
        if self.webhook.is_some() {
            // The URL often carries a secret (chat webhooks): never printed.
            writeln!(f, "\n[aur.notify]\n# webhook: set (redacted)")?;
        }
        Ok(())
    }
}
