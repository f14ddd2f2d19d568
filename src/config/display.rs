//! The effective configuration as TOML: what `check-config` prints, one function per
//! section, every default filled in, in a form the loader reads back. Secrets never appear:
//! the admin token is only said to be set, mirror credentials show as `user:***@`, and the
//! AUR webhook URL (often carrying a secret) is only said to be set.

use std::fmt;

use super::aur::AurConfig;
use super::units::{format_duration, format_rate, format_size};
use super::Config;

/// A string as a TOML basic string (JSON's escapes are valid TOML).
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// A list of strings as a TOML array.
fn toml_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.into_iter().map(toml_str).collect();
    format!("[{}]", items.join(", "))
}

/// The effective configuration as TOML (token redacted): what `check-config` prints.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        server_keys(self, f)?;
        upstreams(self, f)?;
        repos(self, f)?;
        policy(self, f)?;
        if let Some(aur) = &self.aur {
            write!(f, "{aur}")?;
        }
        Ok(())
    }
}

/// The top-level keys and whether the admin token is set.
fn server_keys(c: &Config, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(
        f,
        "listen = {}",
        toml_list(c.listen.iter().map(String::as_str))
    )?;
    writeln!(
        f,
        "cache_dir = {}",
        toml_str(&c.cache_dir.display().to_string())
    )?;
    writeln!(f, "db_max_age = \"{}\"", format_duration(c.db_max_age))?;
    writeln!(
        f,
        "upstream_timeout = \"{}\"",
        format_duration(c.upstream_timeout)
    )?;
    if let Some(r) = c.min_rate {
        writeln!(f, "min_rate = \"{}\"", format_rate(r))?;
    }
    writeln!(f, "send_timeout = \"{}\"", format_duration(c.send_timeout))?;
    writeln!(f, "fast_path = {}", c.fast_path)?;
    writeln!(
        f,
        "shutdown_grace = \"{}\"",
        format_duration(c.shutdown_grace)
    )?;
    writeln!(
        f,
        "trusted_proxies = {}",
        toml_list(
            c.trusted_proxies
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
        )
    )?;
    writeln!(
        f,
        "max_unknown_size = \"{}\"",
        format_size(c.max_unknown_size)
    )?;
    writeln!(
        f,
        "# admin token (PKGSTASH_TOKEN): {}",
        if c.token.is_some() {
            "set (redacted)"
        } else {
            "not set: admin API disabled"
        }
    )
}

fn upstreams(c: &Config, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for up in c.upstreams.values() {
        writeln!(f, "\n[upstreams.{}]", up.name)?;
        // Redacted (`user:***@`): check-config output is shown and pasted around.
        let m: Vec<String> = up.mirrors.iter().map(|m| m.to_string()).collect();
        writeln!(f, "mirrors = {}", toml_list(m.iter().map(String::as_str)))?;
    }
    Ok(())
}

fn repos(c: &Config, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for r in c.repos.values() {
        writeln!(f, "\n[repos.{}]", r.name)?;
        writeln!(f, "path = {}", toml_str(&r.path.display().to_string()))?;
        writeln!(f, "arch = {}", toml_list(r.arch.iter().map(String::as_str)))?;
        if let Some(k) = &r.sign_key {
            writeln!(f, "sign_key = {}", toml_str(k))?;
        }
        writeln!(f, "max_upload = \"{}\"", format_size(r.max_upload))?;
    }
    Ok(())
}

/// `[refresh]` and `[cleanup]`.
fn policy(c: &Config, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "\n[refresh]")?;
    writeln!(f, "prefetch = {}", c.refresh.prefetch)?;
    if let Some(i) = c.refresh.interval {
        writeln!(f, "interval = \"{}\"", format_duration(i))?;
    }
    writeln!(
        f,
        "prefetch_concurrency = {}",
        c.refresh.prefetch_concurrency
    )?;
    writeln!(f, "\n[cleanup]")?;
    writeln!(f, "keep_versions = {}", c.cleanup.keep_versions)?;
    if let Some(a) = c.cleanup.max_age {
        writeln!(f, "max_age = \"{}\"", format_duration(a))?;
    }
    if let Some(s) = c.cleanup.max_size {
        writeln!(f, "max_size = \"{}\"", format_size(s))?;
    }
    Ok(())
}

/// The `[aur]` section as TOML, for `check-config`.
impl fmt::Display for AurConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\n[aur]")?;
        writeln!(
            f,
            "packages = {}",
            toml_list(self.packages.iter().map(String::as_str))
        )?;
        writeln!(f, "repo = {}", toml_str(&self.repo))?;
        writeln!(f, "rpc_url = {}", toml_str(&self.rpc_url))?;
        writeln!(f, "git_url = {}", toml_str(&self.git_url))?;
        writeln!(
            f,
            "check_interval = \"{}\"",
            format_duration(self.check_interval)
        )?;
        let b = &self.builder;
        writeln!(f, "\n[aur.builder]")?;
        writeln!(f, "timeout = \"{}\"", format_duration(b.timeout))?;
        writeln!(f, "user = {}", toml_str(&b.user))?;
        writeln!(f, "isolation = \"{}\"", b.isolation.as_str())?;
        writeln!(f, "concurrent_builds = {}", b.concurrent_builds)?;
        writeln!(f, "dependencies = \"{}\"", b.dependencies.as_str())?;
        let repos: Vec<String> = b.dep_repos().iter().map(|r| r.to_string()).collect();
        writeln!(
            f,
            "dep_repos = {}",
            toml_list(repos.iter().map(String::as_str))
        )?;
        writeln!(f, "siglevel = {}", toml_str(&b.siglevel))?;
        if self.webhook.is_some() {
            // The URL often carries a secret (chat webhooks): never printed.
            writeln!(f, "\n[aur.notify]\n# webhook: set (redacted)")?;
        }
        Ok(())
    }
}
