//! `[repos.NAME]`: custom repos of packages published through pkgstash (`pkgstash repo add`,
//! AUR builds), each served under `/<NAME>/os/<arch>/`. A custom repo's name is disjoint from
//! the upstream names (both would be served at `/<NAME>/`) and is never `local` (pacman's
//! installed-packages database).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::raw::RawRepo;
use super::units::parse_size;
use super::upstreams::UpstreamConfig;
use super::{invalid, ConfigError};
use crate::repo::path::valid_upstream_name;

/// Default `max_upload`: 2 GiB.
const DEFAULT_MAX_UPLOAD: u64 = 2 << 30;

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

/// Validate every `[repos.NAME]` table against the validated `upstreams` (`base_dir`: the
/// config file's directory, relative `path`s start there).
pub(super) fn validate(
    raw: BTreeMap<String, RawRepo>,
    upstreams: &BTreeMap<String, UpstreamConfig>,
    base_dir: &Path,
) -> Result<BTreeMap<String, CustomRepoConfig>, ConfigError> {
    let mut repos = BTreeMap::new();
    for (name, r) in raw {
        let repo = repo(name, r, upstreams, base_dir)?;
        repos.insert(repo.name.clone(), repo);
    }
    Ok(repos)
}

fn repo(
    name: String,
    raw: RawRepo,
    upstreams: &BTreeMap<String, UpstreamConfig>,
    base_dir: &Path,
) -> Result<CustomRepoConfig, ConfigError> {
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
    let path = raw
        .path
        .unwrap_or_else(|| PathBuf::from("/var/lib/pkgstash/repos").join(&name));
    let path = if path.is_relative() {
        base_dir.join(path)
    } else {
        path
    };
    let arch = arch(&key, raw.arch)?;
    let max_upload = match raw.max_upload {
        Some(v) => parse_size(&format!("{key}.max_upload"), &v)?,
        None => DEFAULT_MAX_UPLOAD,
    };
    let sign_key = raw
        .sign_key
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty());
    Ok(CustomRepoConfig {
        name,
        path,
        arch,
        sign_key,
        max_upload,
    })
}

/// `repos.NAME.arch`: at least one architecture (default `x86_64`), never `any`.
fn arch(key: &str, raw: Option<Vec<String>>) -> Result<Vec<String>, ConfigError> {
    let arch = raw.unwrap_or_else(|| vec!["x86_64".to_string()]);
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
    Ok(arch)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::config::test_support::load;

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
