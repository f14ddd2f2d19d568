//! Request path → [`RepoPath`]. [`RepoPath::parse`] is the only way to build one, and every
//! handler and cache operation takes a `RepoPath`, so a hostile path cannot reach the disk.
//!
//! Defence layers, in order:
//! 1. the raw path must start with `/` (absolute-URL request targets are refused by the handler);
//! 2. percent-decoding happens exactly once; a `%` left after decoding means double encoding
//!    (SECURITY: `%252e%252e` would become `..` in a second decoding somewhere else) → refused;
//! 3. the decoded path must be UTF-8 without NUL, control characters or backslashes;
//! 4. every segment is checked: no empty segments, no `.`/`..`, no dot-files (SECURITY: this
//!    also keeps `.partial/` and `.quarantine/` out of reach), only characters that occur in
//!    mirror file names;
//! 5. a trailing `/` (a directory) is "not found", never a listing;
//! 6. lengths are bounded before anything else: the path to [`MAX_PATH`] bytes (decoded; three
//!    times that encoded), each segment to [`MAX_SEGMENT`] bytes (Linux's `NAME_MAX`: a longer
//!    name can never be a file) → [`PathError::TooLong`] (414), before any upstream request.

use std::fmt;

/// Longest accepted request path, bytes after percent-decoding (Arch paths are ~100 bytes;
/// with the cache directory in front it stays far below `PATH_MAX`, 4096).
pub(crate) const MAX_PATH: usize = 1024;
/// Longest accepted path segment, bytes (`NAME_MAX`).
pub(crate) const MAX_SEGMENT: usize = 255;

/// Is `name` a valid upstream (or repo) name — the first segment of every mirror URL path: `[a-z0-9][a-z0-9._-]*`?
pub fn valid_upstream_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
}

/// Why a path was refused. `BadRequest` → 400, `TooLong` → 414, `NotFound` → 404.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("bad request path: {0}")]
    BadRequest(&'static str),
    #[error("request path too long: {0}")]
    TooLong(&'static str),
    #[error("not found: {0}")]
    NotFound(&'static str),
}

/// Whether a file may change upstream (repo databases and friends) or never does (packages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum FileKind {
    /// Packages and their signatures: cached forever.
    Immutable,
    /// Databases, `lastsync`, anything not a package: revalidated after `db_max_age`.
    Mutable,
}

/// A validated cache path: upstream name + relative path (segments joined by `/`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoPath {
    upstream: String,
    rel: String,
    kind: FileKind,
}

/// Package archive suffixes (`name-ver-rel-arch.pkg.tar.*`).
const PKG_MARKER: &str = ".pkg.tar";

impl RepoPath {
    /// Parse the raw (still percent-encoded) URI path of a request.
    pub fn parse(raw: &str) -> Result<RepoPath, PathError> {
        use PathError::{BadRequest, NotFound, TooLong};
        if !raw.starts_with('/') {
            return Err(BadRequest("path must start with /"));
        }
        if raw.len() > 3 * MAX_PATH {
            return Err(TooLong("more than 1024 bytes"));
        }
        let decoded = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| BadRequest("path is not UTF-8"))?;
        if decoded.len() > MAX_PATH {
            return Err(TooLong("more than 1024 bytes"));
        }
        if decoded.contains('%') {
            return Err(BadRequest("double-encoded path"));
        }
        if decoded.contains('\\') {
            return Err(BadRequest("backslash in path"));
        }
        if decoded.chars().any(|c| c.is_control()) {
            return Err(BadRequest("control character in path"));
        }
        let body = &decoded[1..];
        if body.is_empty() {
            return Err(NotFound("no upstream in path"));
        }
        let (body, is_dir) = match body.strip_suffix('/') {
            Some(b) => (b, true),
            None => (body, false),
        };
        let mut segments = Vec::new();
        for seg in body.split('/') {
            check_segment(seg)?;
            segments.push(seg);
        }
        if is_dir {
            return Err(NotFound("directory"));
        }
        let (upstream, rest) = match segments.split_first() {
            Some((u, rest)) if !rest.is_empty() => (*u, rest),
            _ => return Err(NotFound("no file below the upstream")),
        };
        if !valid_upstream_name(upstream) {
            return Err(NotFound("unknown upstream"));
        }
        let rel = rest.join("/");
        let kind = classify(rest.last().copied().unwrap_or_default());
        Ok(RepoPath {
            upstream: upstream.to_string(),
            rel,
            kind,
        })
    }

    /// Build from parts already known to be valid (e.g. a file name from a repo db joined to a
    /// db's directory); runs the same checks as [`RepoPath::parse`].
    pub(crate) fn from_parts(upstream: &str, rel: &str) -> Result<RepoPath, PathError> {
        let raw = format!("/{upstream}/{rel}");
        // Encode `%` so that parse's single decoding gives back exactly `rel`.
        Self::parse(&raw.replace('%', "%25"))
    }

    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// Path below the upstream, `/`-separated, no leading slash.
    pub(crate) fn rel(&self) -> &str {
        &self.rel
    }

    pub(crate) fn kind(&self) -> FileKind {
        self.kind
    }

    /// Last segment.
    pub(crate) fn file_name(&self) -> &str {
        self.rel.rsplit('/').next().unwrap_or(&self.rel)
    }

    /// Directory part of `rel` (empty at the top).
    pub(crate) fn dir(&self) -> &str {
        self.rel.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
    }

    /// The cache key: `upstream/rel`.
    pub(crate) fn key(&self) -> String {
        format!("{}/{}", self.upstream, self.rel)
    }

    /// `rel` percent-encoded for an upstream URL (`:` and `+` are kept as mirrors expect them).
    pub fn rel_url_encoded(&self) -> String {
        const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'/')
            .remove(b'.')
            .remove(b'-')
            .remove(b'_')
            .remove(b'~')
            .remove(b'+')
            .remove(b':')
            .remove(b'@')
            .remove(b'=')
            .remove(b',');
        percent_encoding::utf8_percent_encode(&self.rel, SET).to_string()
    }
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}/{}", self.upstream, self.rel)
    }
}

fn check_segment(seg: &str) -> Result<(), PathError> {
    use PathError::{BadRequest, TooLong};
    if seg.len() > MAX_SEGMENT {
        return Err(TooLong("a path segment has more than 255 bytes"));
    }
    if seg.is_empty() {
        return Err(BadRequest("empty path segment"));
    }
    if seg == "." || seg == ".." {
        return Err(BadRequest("dot segment"));
    }
    if seg.starts_with('.') {
        return Err(BadRequest("dot-file"));
    }
    let ok = seg
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-+:@~=,".contains(c));
    if !ok {
        return Err(BadRequest("character not allowed in path"));
    }
    Ok(())
}

/// Is `name` a pacman repo db (`X.db`, `X.files`, `X.db.tar`, `X.db.tar.gz`, `X.files.tar.zst`,
/// …; not its `.sig`)?
pub(crate) fn is_repo_db_name(name: &str) -> bool {
    [".db", ".files"].iter().any(|kind| {
        name.rfind(kind).is_some_and(|pos| {
            let rest = &name[pos + kind.len()..];
            let ext_ok = match rest.strip_prefix(".tar") {
                Some("") => true,
                Some(ext) => ext
                    .strip_prefix('.')
                    .is_some_and(|e| !e.is_empty() && e.chars().all(|c| c.is_ascii_alphanumeric())),
                None => rest.is_empty(),
            };
            pos > 0 && ext_ok
        })
    })
}

/// Packages and their `.sig` are immutable; everything else may change upstream.
pub(crate) fn classify(file_name: &str) -> FileKind {
    let base = file_name.strip_suffix(".sig").unwrap_or(file_name);
    let is_pkg = base
        .find(PKG_MARKER)
        .map(|pos| {
            let tail = &base[pos + PKG_MARKER.len()..];
            tail.is_empty()
                || (tail.starts_with('.') && tail[1..].chars().all(|c| c.is_ascii_alphanumeric()))
        })
        .unwrap_or(false);
    if is_pkg {
        FileKind::Immutable
    } else {
        FileKind::Mutable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PathError::{BadRequest, NotFound};

    fn ok(raw: &str) -> RepoPath {
        RepoPath::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    #[test]
    fn accepts_mirror_paths() {
        let p = ok("/archlinux/core/os/x86_64/core.db");
        assert_eq!(p.upstream(), "archlinux");
        assert_eq!(p.rel(), "core/os/x86_64/core.db");
        assert_eq!(p.kind(), FileKind::Mutable);
        assert_eq!(p.file_name(), "core.db");
        assert_eq!(p.dir(), "core/os/x86_64");
        assert_eq!(p.key(), "archlinux/core/os/x86_64/core.db");

        let p = ok("/archlinux/extra/os/x86_64/gtk2-1%3A2.24.33-4-x86_64.pkg.tar.zst");
        assert_eq!(p.file_name(), "gtk2-1:2.24.33-4-x86_64.pkg.tar.zst");
        assert_eq!(p.kind(), FileKind::Immutable);
        assert_eq!(
            p.rel_url_encoded(),
            "extra/os/x86_64/gtk2-1:2.24.33-4-x86_64.pkg.tar.zst"
        );
        let p = ok("/arch/extra/os/x86_64/libc++-19.1-1-x86_64.pkg.tar.zst.sig");
        assert_eq!(p.kind(), FileKind::Immutable);
        assert_eq!(ok("/a/lastsync").kind(), FileKind::Mutable);
        assert_eq!(
            ok("/a/core/os/x86_64/core.files.tar.gz").kind(),
            FileKind::Mutable
        );
        assert_eq!(
            ok("/a/core/os/x86_64/core.db.sig").kind(),
            FileKind::Mutable
        );
    }

    #[test]
    fn classify_table() {
        for (name, kind) in [
            ("a-1-1-x86_64.pkg.tar.zst", FileKind::Immutable),
            ("a-1-1-x86_64.pkg.tar.xz", FileKind::Immutable),
            ("a-1-1-any.pkg.tar.gz.sig", FileKind::Immutable),
            ("a-1-1-any.pkg.tar", FileKind::Immutable),
            ("core.db", FileKind::Mutable),
            ("core.db.tar.gz", FileKind::Mutable),
            ("core.files.sig", FileKind::Mutable),
            ("lastupdate", FileKind::Mutable),
            ("x.pkg.tar.zst.part", FileKind::Mutable),
        ] {
            assert_eq!(classify(name), kind, "{name}");
        }
    }

    #[test]
    fn repo_db_names() {
        for name in [
            "core.db",
            "core.files",
            "core.db.tar",
            "core.db.tar.gz",
            "extra.files.tar.zst",
            "my.repo.db",
        ] {
            assert!(is_repo_db_name(name), "{name}");
        }
        for name in [
            "core.db.sig",
            ".db",
            "lastsync",
            "core.db.tar.gz.old~",
            "core.dbx",
            "a-1-1-any.pkg.tar.zst",
        ] {
            assert!(!is_repo_db_name(name), "{name}");
        }
    }

    #[test]
    fn rejects_hostile_paths() {
        let cases: &[(&str, PathError)] = &[
            ("/archlinux/../etc/passwd", BadRequest("dot segment")),
            (
                "/archlinux/core/../../etc/passwd",
                BadRequest("dot segment"),
            ),
            ("/archlinux/%2e%2e/etc/passwd", BadRequest("dot segment")),
            ("/archlinux/%2E%2E/etc/passwd", BadRequest("dot segment")),
            ("/archlinux/..%2fetc/passwd", BadRequest("dot segment")),
            (
                "/archlinux/%2e%2e%2fetc%2fpasswd",
                BadRequest("dot segment"),
            ),
            (
                "/archlinux/%252e%252e/etc",
                BadRequest("double-encoded path"),
            ),
            ("/archlinux/%25", BadRequest("double-encoded path")),
            ("/archlinux/a%00b", BadRequest("control character in path")),
            ("/archlinux/a\0b", BadRequest("control character in path")),
            ("/archlinux/a%0ab", BadRequest("control character in path")),
            ("/archlinux/..\\..\\etc", BadRequest("backslash in path")),
            ("/archlinux/a%5cb", BadRequest("backslash in path")),
            ("/archlinux/./core.db", BadRequest("dot segment")),
            ("/archlinux/.partial/x", BadRequest("dot-file")),
            ("/archlinux/core/.hidden", BadRequest("dot-file")),
            ("/.partial/x", BadRequest("dot-file")),
            ("/archlinux//etc/passwd", BadRequest("empty path segment")),
            ("//etc/passwd", BadRequest("empty path segment")),
            ("archlinux/core.db", BadRequest("path must start with /")),
            ("http://evil/x", BadRequest("path must start with /")),
            (
                "/archlinux/a b",
                BadRequest("character not allowed in path"),
            ),
            (
                "/archlinux/a%20b",
                BadRequest("character not allowed in path"),
            ),
            (
                "/archlinux/a?b",
                BadRequest("character not allowed in path"),
            ),
            ("/archlinux/%ff", BadRequest("path is not UTF-8")),
            ("/archlinux/é", BadRequest("character not allowed in path")),
            ("/archlinux/core/os/", NotFound("directory")),
            ("/archlinux/", NotFound("directory")),
            ("/archlinux", NotFound("no file below the upstream")),
            ("/", NotFound("no upstream in path")),
            ("/Arch/core.db", NotFound("unknown upstream")),
            ("/_pkgstash/core.db", NotFound("unknown upstream")),
        ];
        for (raw, want) in cases {
            assert_eq!(RepoPath::parse(raw).as_ref(), Err(want), "{raw:?}");
        }
    }

    #[test]
    fn long_paths_and_segments_rejected() {
        let raw = format!("/a/{}", "x".repeat(256));
        assert!(matches!(RepoPath::parse(&raw), Err(PathError::TooLong(_))));
        assert!(RepoPath::parse(&format!("/a/{}", "x".repeat(255))).is_ok());
        // Many short segments: the 4,200 characters ending in a package name.
        let many = format!("/a/{}x.pkg.tar.zst", "abcdefgh/".repeat(466));
        assert!(many.len() > 4200);
        assert!(matches!(RepoPath::parse(&many), Err(PathError::TooLong(_))));
        // Encoded: the decoded length counts, and an absurd encoded one is refused at once.
        let enc = format!("/a/{}", "%61".repeat(1100));
        assert!(matches!(RepoPath::parse(&enc), Err(PathError::TooLong(_))));
        let ok = format!("/a/{}/b", "%61".repeat(200));
        assert!(RepoPath::parse(&ok).is_ok());
        let at_limit = format!("/a/{}", "b/".repeat(509));
        assert!(at_limit.len() <= MAX_PATH + 1);
    }

    #[test]
    fn from_parts_round_trips() {
        let p =
            RepoPath::from_parts("arch", "core/os/x86_64/a-1:2-1-any.pkg.tar.zst").expect("valid");
        assert_eq!(p.rel(), "core/os/x86_64/a-1:2-1-any.pkg.tar.zst");
        assert!(RepoPath::from_parts("arch", "../x").is_err());
        assert!(RepoPath::from_parts("arch", "a%2e%2e").is_err());
    }
}
