//! pacman's version comparison (`alpm_pkg_vercmp` / `rpmvercmp`) and package file names.
//!
//! A version is `[epoch:]pkgver[-pkgrel]`. Epochs compare first (missing = 0), then pkgver
//! segment by segment (runs of digits compare numerically, runs of letters lexically, a
//! numeric segment beats an alpha one, and a trailing alpha segment loses to nothing:
//! `1.0a < 1.0 < 1.0.1`), then pkgrel only when both versions have one.

use std::cmp::Ordering;

/// Compare two full versions like `vercmp(8)`.
pub fn vercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (e1, v1, r1) = parse_evr(a);
    let (e2, v2, r2) = parse_evr(b);
    let ord = rpmvercmp(e1, e2);
    if ord != Ordering::Equal {
        return ord;
    }
    let ord = rpmvercmp(v1, v2);
    if ord != Ordering::Equal {
        return ord;
    }
    match (r1, r2) {
        (Some(r1), Some(r2)) => rpmvercmp(r1, r2),
        _ => Ordering::Equal,
    }
}

/// Split `[epoch:]version[-release]` like libalpm's `parseEVR`.
fn parse_evr(evr: &str) -> (&str, &str, Option<&str>) {
    let digits = evr.bytes().take_while(u8::is_ascii_digit).count();
    let (epoch, rest) = if evr.as_bytes().get(digits) == Some(&b':') {
        let e = &evr[..digits];
        (if e.is_empty() { "0" } else { e }, &evr[digits + 1..])
    } else {
        ("0", evr)
    };
    match rest.rfind('-') {
        Some(i) => (epoch, &rest[..i], Some(&rest[i + 1..])),
        None => (epoch, rest, None),
    }
}

/// libalpm's `rpmvercmp` on one component.
///
/// A line-by-line port of `rpmvercmp` in pacman's `lib/libalpm/version.c` (the C walks two
/// `char*` cursors per string; `one`/`ptr1`, `two`/`ptr2` are those cursors as indexes, and
/// `at` reads the NUL past the end). It stays one function, longer than our usual limit, on
/// purpose: read side by side with alpm's C, every branch can be checked against its
/// original, and pacman's ordering quirks (separator lengths, alpha vs. numeric segments,
/// trailing alpha) are kept exactly; split up, that correspondence would be lost.
fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut one, mut two) = (0usize, 0usize);
    let (mut ptr1, mut ptr2) = (0usize, 0usize);
    let at = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(0);
    while at(a, one) != 0 && at(b, two) != 0 {
        while at(a, one) != 0 && !at(a, one).is_ascii_alphanumeric() {
            one += 1;
        }
        while at(b, two) != 0 && !at(b, two).is_ascii_alphanumeric() {
            two += 1;
        }
        if at(a, one) == 0 || at(b, two) == 0 {
            break;
        }
        // Different separator lengths decide.
        if one - ptr1 != two - ptr2 {
            return if one - ptr1 < two - ptr2 {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        ptr1 = one;
        ptr2 = two;
        let isnum = at(a, ptr1).is_ascii_digit();
        if isnum {
            while at(a, ptr1).is_ascii_digit() {
                ptr1 += 1;
            }
            while at(b, ptr2).is_ascii_digit() {
                ptr2 += 1;
            }
        } else {
            while at(a, ptr1).is_ascii_alphabetic() {
                ptr1 += 1;
            }
            while at(b, ptr2).is_ascii_alphabetic() {
                ptr2 += 1;
            }
        }
        if one == ptr1 {
            return Ordering::Less;
        }
        if two == ptr2 {
            return if isnum {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let (mut s1, mut s2) = (&a[one..ptr1], &b[two..ptr2]);
        if isnum {
            while s1.first() == Some(&b'0') {
                s1 = &s1[1..];
            }
            while s2.first() == Some(&b'0') {
                s2 = &s2[1..];
            }
            match s1.len().cmp(&s2.len()) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        match s1.cmp(s2) {
            Ordering::Equal => {}
            o => return o,
        }
        one = ptr1;
        two = ptr2;
    }
    let (c1, c2) = (at(a, one), at(b, two));
    if c1 == 0 && c2 == 0 {
        return Ordering::Equal;
    }
    // A remaining alpha segment never beats an empty string.
    if (c1 == 0 && !c2.is_ascii_alphabetic()) || c1.is_ascii_alphabetic() {
        Ordering::Less
    } else {
        Ordering::Greater
    }
}

/// The parts of a package file name `name-[epoch:]pkgver-pkgrel-arch.pkg.tar[.ext]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkgFileName {
    pub name: String,
    /// `[epoch:]pkgver-pkgrel`
    pub version: String,
    pub arch: String,
    /// `pkg.tar.zst`, `pkg.tar`, …
    pub ext: String,
}

/// Parse a package file name; `None` for anything else (signatures, dbs, …).
pub fn parse_pkg_filename(file_name: &str) -> Option<PkgFileName> {
    let (name, version, arch) = split_pkg_filename(file_name)?;
    Some(PkgFileName {
        name: name.to_string(),
        version: version.to_string(),
        arch: arch.to_string(),
        ext: file_name[name.len() + version.len() + arch.len() + 3..].to_string(),
    })
}

/// [`parse_pkg_filename`] without copying: `(name, [epoch:]pkgver-pkgrel, arch)` as slices
/// of `file_name` (plans over 100,000 cached files parse each name).
pub fn split_pkg_filename(file_name: &str) -> Option<(&str, &str, &str)> {
    let pos = file_name.rfind(".pkg.tar")?;
    let (stem, ext) = (&file_name[..pos], &file_name[pos + 1..]);
    let tail = &ext["pkg.tar".len()..];
    if !(tail.is_empty()
        || (tail.starts_with('.')
            && tail.len() > 1
            && tail[1..].bytes().all(|c| c.is_ascii_alphanumeric())))
    {
        return None;
    }
    let mut parts = stem.rsplitn(4, '-');
    let arch = parts.next()?;
    let rel = parts.next()?;
    let ver = parts.next()?;
    let name = parts.next()?;
    if [name, ver, rel, arch].iter().any(|s| s.is_empty()) {
        return None;
    }
    // `ver-rel` is one slice of the stem: `name-` before it, `-arch` after.
    let version = &stem[name.len() + 1..stem.len() - arch.len() - 1];
    Some((name, version, arch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::{Equal as E, Greater as G, Less as L};

    /// Expected results produced by the real `vercmp` binary (pacman 6.0.2).
    pub(crate) const TABLE: &[(&str, &str, Ordering)] = &[
        ("1.0", "1.0", E),
        ("1.0", "1.1", L),
        ("1.1", "1.0", G),
        ("1.0", "1.0.1", L),
        ("1.0a", "1.0", L),
        ("1.0", "1.0a", G),
        ("1.0.a", "1.0", G),
        ("1.0a", "1.0.a", L),
        ("1.0alpha", "1.0beta", L),
        ("1.0rc1", "1.0", L),
        ("1.0", "1.0rc1", G),
        ("1.0.1", "1.0a", G),
        ("1.001", "1.1", E),
        ("1.0010", "1.9", G),
        ("2.0", "10.0", L),
        ("1:1.0", "2.0", G),
        ("1:1.0", "1:2.0", L),
        ("0:1.0", "1.0", E),
        (":1.0", "1.0", E),
        ("1.0-1", "1.0-2", L),
        ("1.0-2", "1.0-10", L),
        ("1.0-1", "1.0", E),
        ("1.0", "1.0-1", E),
        ("1.0-1.1", "1.0-1", G),
        ("1.0-1", "1.0-1.1", L),
        ("1.0_1", "1.0.1", E),
        ("1.0..1", "1.0.1", G),
        ("1.0+1", "1.0.1", E),
        ("1.0", "1.0.0", L),
        ("1", "1.0", L),
        ("a", "1", L),
        ("1", "a", G),
        ("a", "b", L),
        ("abc", "abd", L),
        ("1.2.3", "1.2.3.4", L),
        ("1.2.3.4", "1.2.3", G),
        ("2.0.0", "2.0", G),
        ("20240101", "20231231", G),
        ("r123.abc", "r124.abc", L),
        ("1.0.r12.gabc", "1.0.r9.gdef", G),
        ("1.2.3-1", "1.2.3-1", E),
        ("1:2.0-1", "1:2.0-2", L),
        ("2:0.1-1", "1:9.9-9", G),
        ("6.1.arch1", "6.1", G),
        ("6.1", "6.1.arch1", L),
        ("6.1.arch1-1", "6.1.arch2-1", L),
        ("1.0~rc1", "1.0", G),
        ("1.0a1", "1.0b1", L),
        ("1.0.0a", "1.0.0", L),
        ("1.0.0", "1.0.0.0", L),
        ("0.9", "1.0", L),
        ("1.10", "1.9", G),
        ("1.010", "1.10", E),
        ("1.2a", "1.2b", L),
        ("1.2a3", "1.2a10", L),
        ("22.1-1", "22.1.1-1", L),
        ("3.0", "3.0p1", G),
        ("3.0p1", "3.0.1", L),
        ("1.0-0.1", "1.0-0.2", L),
        ("999", "1000", L),
    ];

    #[test]
    fn table_from_the_real_vercmp() {
        for (a, b, want) in TABLE {
            assert_eq!(vercmp(a, b), *want, "vercmp({a}, {b})");
            assert_eq!(vercmp(b, a), want.reverse(), "vercmp({b}, {a})");
        }
    }

    #[test]
    fn package_file_names() {
        let p = parse_pkg_filename("gtk2-1:2.24.33-4-x86_64.pkg.tar.zst").expect("pkg");
        assert_eq!(
            p,
            PkgFileName {
                name: "gtk2".into(),
                version: "1:2.24.33-4".into(),
                arch: "x86_64".into(),
                ext: "pkg.tar.zst".into()
            }
        );
        let p = parse_pkg_filename("lib32-libc++-19.1.7-1-x86_64.pkg.tar.xz").expect("pkg");
        assert_eq!(
            (p.name.as_str(), p.version.as_str()),
            ("lib32-libc++", "19.1.7-1")
        );
        let p = parse_pkg_filename("python-foo-bar-1.0-1-any.pkg.tar").expect("pkg");
        assert_eq!(
            (p.name.as_str(), p.arch.as_str(), p.ext.as_str()),
            ("python-foo-bar", "any", "pkg.tar")
        );
        assert_eq!(
            split_pkg_filename("lib32-libc++-1:19.1.7-1-x86_64.pkg.tar.xz"),
            Some(("lib32-libc++", "1:19.1.7-1", "x86_64"))
        );
        for bad in [
            "core.db",
            "a-1-1-any.pkg.tar.zst.sig",
            "a-1-any.pkg.tar.zst",
            "-1-1-any.pkg.tar.zst",
            "a-1-1-any.pkg.tar.zst.part",
            "lastsync",
        ] {
            assert_eq!(parse_pkg_filename(bad), None, "{bad}");
            assert_eq!(split_pkg_filename(bad), None, "{bad}");
        }
    }
}
