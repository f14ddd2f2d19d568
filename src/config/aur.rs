//! The `[aur]` config section (the AUR build server; absent = off): its validated shape
//! [`AurConfig`] and the validation of the raw section, one function per part (`[aur]`,
//! `[aur.builder]`, `[aur.notify]`), then `resolve` against the served repos. Every error
//! names the key (`aur.builder.timeout`, …).

use std::collections::BTreeMap;
use std::time::Duration;

use super::raw::{RawAur, RawBuilder};
use super::repos::CustomRepoConfig;
use super::units::parse_positive_duration;
use super::upstreams::UpstreamConfig;
use super::{invalid, ConfigError};
use crate::repo::path::valid_upstream_name;

/// Default AUR RPC base (the `info` endpoint is `<rpc_url>/info`).
pub const DEFAULT_RPC_URL: &str = "https://aur.archlinux.org/rpc/v5";
/// Default git URL template; `{pkgbase}` is replaced by the package base.
pub const DEFAULT_GIT_URL: &str = "https://aur.archlinux.org/{pkgbase}.git";
/// Default user makepkg runs as when pkgstash runs as root.
pub const DEFAULT_BUILD_USER: &str = "pkgstash-build";

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
    let name_ok = |n: &str| valid_upstream_name(n) && n != "local";
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

/// Validate the raw section on its own; [`resolve`] then checks it against the served repos.
pub(super) fn validate(raw: RawAur) -> Result<AurConfig, ConfigError> {
    let packages = packages(&raw.packages)?;
    let repo = repo(raw.repo)?;
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
    let check_interval = parse_positive_duration(
        "aur.check_interval",
        raw.check_interval.as_deref(),
        Duration::from_secs(6 * 3600),
    )?;
    let builder = builder(raw.builder)?;
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
        builder,
        webhook,
    })
}

/// `aur.packages`: AUR package names, trimmed, duplicates dropped (first one kept).
fn packages(raw: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut packages: Vec<String> = Vec::new();
    for (i, p) in raw.iter().enumerate() {
        let p = p.trim();
        if !valid_package_name(p) {
            return Err(invalid(
                format!("aur.packages[{i}]"),
                format!("`{p}` is not an AUR package name"),
            ));
        }
        if !packages.iter().any(|q| q == p) {
            packages.push(p.to_string());
        }
    }
    Ok(packages)
}

/// `aur.repo`: required, a repo name (that it names a `[repos.NAME]` table is checked by
/// [`resolve`]).
fn repo(raw: Option<String>) -> Result<String, ConfigError> {
    let repo = raw
        .map(|r| r.trim().to_string())
        .ok_or_else(|| invalid("aur.repo", "required: the custom repo builds go to"))?;
    if !valid_upstream_name(&repo) || repo == "local" {
        return Err(invalid(
            "aur.repo",
            format!("`{repo}` is not a repo name ([a-z0-9][a-z0-9._-]*, not `local`)"),
        ));
    }
    Ok(repo)
}

/// `[aur.builder]`.
fn builder(raw: RawBuilder) -> Result<BuilderConfig, ConfigError> {
    let timeout = parse_positive_duration(
        "aur.builder.timeout",
        raw.timeout.as_deref(),
        Duration::from_secs(3600),
    )?;
    let user = build_user(raw.user)?;
    let isolation = keyword(
        "aur.builder.isolation",
        raw.isolation.as_deref(),
        &[Isolation::Auto, Isolation::Bwrap, Isolation::None],
        Isolation::as_str,
    )?;
    let concurrent_builds = match raw.concurrent_builds {
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
        raw.dependencies.as_deref(),
        &[Dependencies::Repos, Dependencies::Host],
        Dependencies::as_str,
    )?;
    let dep_repos = match raw.dep_repos {
        Some(list) => Some(dep_repos(&list)?),
        None => None,
    };
    let siglevel = raw
        .siglevel
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| DEFAULT_SIGLEVEL.to_string());
    if !valid_siglevel(&siglevel) {
        return Err(invalid(
            "aur.builder.siglevel",
            format!("`{siglevel}` is not a pacman SigLevel (e.g. \"{DEFAULT_SIGLEVEL}\")"),
        ));
    }
    Ok(BuilderConfig {
        timeout,
        user,
        isolation,
        concurrent_builds,
        dependencies,
        dep_repos,
        siglevel,
        server_url: String::new(),
    })
}

/// `aur.builder.user`: an unprivileged user name (never root).
fn build_user(raw: Option<String>) -> Result<String, ConfigError> {
    let user = raw.unwrap_or_else(|| DEFAULT_BUILD_USER.to_string());
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
    Ok(user)
}

/// `aur.builder.dep_repos` as written: each entry parsed, names unique (pacman's repo names).
fn dep_repos(list: &[String]) -> Result<Vec<DepRepoRef>, ConfigError> {
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
    Ok(v)
}

/// Check the section against the served repos: `aur.repo` names a `[repos.NAME]` table, and
/// `aur.builder.dep_repos` names served repos; absent, it is every custom repo (`aur.repo`
/// first: AUR packages depending on other AUR builds).
pub(super) fn resolve(
    aur: &mut AurConfig,
    repos: &BTreeMap<String, CustomRepoConfig>,
    upstreams: &BTreeMap<String, UpstreamConfig>,
) -> Result<(), ConfigError> {
    if !repos.contains_key(&aur.repo) {
        return Err(invalid(
            "aur.repo",
            format!(
                "`{}` is not a [repos.NAME] table: builds are published there",
                aur.repo
            ),
        ));
    }
    match &aur.builder.dep_repos {
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
            let mut list = vec![DepRepoRef::Custom(aur.repo.clone())];
            list.extend(
                repos
                    .keys()
                    .filter(|n| **n != aur.repo)
                    .map(|n| DepRepoRef::Custom(n.clone())),
            );
            aur.builder.dep_repos = Some(list);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::test_support::{err_text, load, MIN};

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
}
