//! `[upstreams.NAME]`: the distro trees pkgstash mirrors, each served under `/<NAME>/`, each
//! with its mirror bases in preference order — `mirrors = [...]` first, then the `Server`
//! lines of a pacman `mirrorlist` file (relative paths are relative to the config file).

use std::collections::BTreeMap;
use std::path::Path;

use super::mirror_url::MirrorUrl;
use super::raw::RawUpstream;
use super::{invalid, mirrorlist, ConfigError};
use crate::repo::path::valid_upstream_name;

/// One upstream distro/repo tree, served under `/<name>/`.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub name: String,
    /// Mirror base URLs in preference order (credentials held apart, shown redacted).
    pub mirrors: Vec<MirrorUrl>,
}

/// Validate every `[upstreams.NAME]` table (`base_dir`: the config file's directory).
pub(super) fn validate(
    raw: BTreeMap<String, RawUpstream>,
    base_dir: &Path,
) -> Result<BTreeMap<String, UpstreamConfig>, ConfigError> {
    let mut upstreams = BTreeMap::new();
    for (name, up) in raw {
        let upstream = upstream(name, up, base_dir)?;
        upstreams.insert(upstream.name.clone(), upstream);
    }
    Ok(upstreams)
}

fn upstream(
    name: String,
    raw: RawUpstream,
    base_dir: &Path,
) -> Result<UpstreamConfig, ConfigError> {
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
    for (i, m) in raw.mirrors.iter().enumerate() {
        mirrors.push(mirror(&format!("{key}.mirrors[{i}]"), m)?);
    }
    if let Some(list) = raw.mirrorlist {
        let list = if list.is_relative() {
            base_dir.join(list)
        } else {
            list
        };
        for (line, base) in mirrorlist::read(&list)? {
            mirrors.push(mirror(
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
    Ok(UpstreamConfig { name, mirrors })
}

/// Validate a mirror base URL (credentials split off, trailing slash stripped).
fn mirror(key: &str, url: &str) -> Result<MirrorUrl, ConfigError> {
    MirrorUrl::parse(url).map_err(|e| invalid(key, e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::config::test_support::{bases, err_text};
    use crate::config::Config;

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
}
