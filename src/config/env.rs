//! `PKGSTASH__KEY` environment overrides, layered over the file by the `config` crate:
//! `PKGSTASH__UPSTREAMS__ARCHLINUX__MIRRORS` sets `upstreams.archlinux.mirrors` (lowercase,
//! `__` → `.`). Values of list keys ([`LIST_KEYS`]) are split at commas; other values are
//! never split.

use std::collections::HashMap;

/// Keys whose value is a list (`*` = any one name, such as an upstream's): from the
/// environment, `PKGSTASH__UPSTREAMS__ARCHLINUX__MIRRORS=https://a,https://b` is split at
/// the commas. Other values are never split.
const LIST_KEYS: [&str; 6] = [
    "listen",
    "trusted_proxies",
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

/// The `config` crate source of the `PKGSTASH__*` variables of `env`.
pub(super) fn overrides(env: &HashMap<String, String>) -> config::Environment {
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
    environment.source(Some(overrides))
}

#[cfg(test)]
mod tests {
    use super::{env_key, is_list_key};
    use crate::config::test_support::load;

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
}
