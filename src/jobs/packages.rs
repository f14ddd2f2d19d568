//! The cached packages as the cleanup and prefetch plans see them: cache keys grouped by
//! directory ([`by_dir`]), and a directory's package files grouped by package name + arch,
//! newest version first ([`versions`], pacman's `vercmp` order). Pure: no disk, no dbs.

use std::collections::{BTreeMap, HashMap};

use crate::cache::catalog::is_package_name;
use crate::cache::index::FileInfo;
use crate::repo::vercmp::{parse_pkg_filename, vercmp};

/// Package name and arch: the files of one package in one directory differ in version only.
pub type NameArch = (String, String);

/// Cached files (`upstream/dir/name` keys, as [`crate::cache::index::CacheIndex::snapshot`]
/// gives them) grouped by directory key (`upstream/dir`) → file names there, directories in
/// order.
pub fn by_dir(files: &[(String, FileInfo)]) -> BTreeMap<&str, Vec<&str>> {
    let mut dirs: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (key, _) in files {
        if let Some((dir, name)) = key.rsplit_once('/') {
            dirs.entry(dir).or_default().push(name);
        }
    }
    dirs
}

/// The package files among `names` (signatures and anything else left out), grouped by
/// name + arch: each group's `(version, file name)`s newest first; equal versions keep the
/// order of `names`.
pub fn versions<'n>(names: &[&'n str]) -> HashMap<NameArch, Vec<(String, &'n str)>> {
    let mut groups: HashMap<NameArch, Vec<(String, &str)>> = HashMap::new();
    for name in names.iter().filter(|n| is_package_name(n)) {
        if let Some(p) = parse_pkg_filename(name) {
            groups
                .entry((p.name, p.arch))
                .or_default()
                .push((p.version, name));
        }
    }
    for group in groups.values_mut() {
        group.sort_by(|a, b| vercmp(&b.0, &a.0));
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> FileInfo {
        FileInfo {
            size: 1,
            mtime: 0,
            last_served: 0,
            hits: 0,
        }
    }

    #[test]
    fn files_by_directory_and_versions_newest_first() {
        let files: Vec<(String, FileInfo)> = [
            "arch/core/os/x86_64/a-1.0-1-x86_64.pkg.tar.zst",
            "arch/core/os/x86_64/a-1.0-1-x86_64.pkg.tar.zst.sig",
            "arch/core/os/x86_64/a-1:0.5-1-x86_64.pkg.tar.zst",
            "arch/core/os/x86_64/a-1.10-1-x86_64.pkg.tar.zst",
            "arch/core/os/x86_64/a-1.2-1-any.pkg.tar.zst",
            "arch/core/os/x86_64/core.db",
            "arch/extra/os/x86_64/b-2-1-any.pkg.tar.xz",
        ]
        .iter()
        .map(|k| (k.to_string(), info()))
        .collect();
        let dirs = by_dir(&files);
        assert_eq!(
            dirs.keys().copied().collect::<Vec<_>>(),
            ["arch/core/os/x86_64", "arch/extra/os/x86_64"]
        );
        let groups = versions(&dirs["arch/core/os/x86_64"]);
        let of = |name: &str, arch: &str| {
            groups[&(name.to_string(), arch.to_string())]
                .iter()
                .map(|(v, _)| v.as_str())
                .collect::<Vec<_>>()
        };
        // The epoch wins, then 1.10 > 1.0 (vercmp, not string order); `.sig` and db left out.
        assert_eq!(of("a", "x86_64"), ["1:0.5-1", "1.10-1", "1.0-1"]);
        assert_eq!(of("a", "any"), ["1.2-1"]);
        assert_eq!(groups.len(), 2);
    }
}
