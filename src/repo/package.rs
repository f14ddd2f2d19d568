//! A package archive (`.pkg.tar.{zst,xz,gz}` or uncompressed): its `.PKGINFO` metadata and
//! file list, read in one streaming pass with the `tar` crate (compression by magic bytes),
//! plus the archive's own size, md5 and sha256 — everything a repo db entry needs.
//!
//! Uploads are untrusted: what reading one may hold in memory is bounded — `.PKGINFO`
//! ([`MAX_PKGINFO`]), the file list ([`MAX_FILE_LIST`]), tar extension headers and the member
//! count and decompressed size ([`PKG_TAR_LIMITS`]) — and a package over a bound is refused
//! ([`PkgError::TooLarge`]) before it costs more.

use std::io::Read;
use std::path::Path;

use md5::Md5;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::repo::bounded_tar::{Bounded, Limits};
use crate::repo::db::decompress;

/// Largest `.PKGINFO` read (real ones are a few KiB; it is read whole into memory).
pub(crate) const MAX_PKGINFO: u64 = 1 << 20;
/// Largest file list kept (bytes of path names; Arch's largest packages list a few MiB).
pub(crate) const MAX_FILE_LIST: usize = 128 << 20;
/// Bounds on a package's tar stream: 128 GiB decompressed, a million members, 1 MiB per
/// extension header (GNU long name, PAX).
pub(crate) const PKG_TAR_LIMITS: Limits = Limits {
    max_bytes: 128 << 30,
    max_members: 1_000_000,
    max_extension: 1 << 20,
};

/// Why an archive is not an acceptable package.
#[derive(Debug, thiserror::Error)]
pub enum PkgError {
    #[error("cannot read package: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a package archive: {0}")]
    BadArchive(String),
    #[error("package has no .PKGINFO")]
    NoPkgInfo,
    #[error("package refused: {0}")]
    TooLarge(String),
    #[error(".PKGINFO: missing `{0}`")]
    Missing(&'static str),
    #[error(".PKGINFO: bad `{key}` value `{value}`")]
    BadValue { key: &'static str, value: String },
    #[error(
        "file name `{got}` does not match the package's .PKGINFO (expected `{expected}.pkg.tar.*`)"
    )]
    NameMismatch { got: String, expected: String },
}

/// A package's `.PKGINFO`, plus what the repo db records about the archive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageMeta {
    pub filename: String,
    pub name: String,
    pub base: String,
    /// `[epoch:]pkgver-pkgrel`
    pub version: String,
    pub desc: String,
    pub url: String,
    pub arch: String,
    pub builddate: String,
    pub packager: String,
    /// Installed size (`size` in .PKGINFO).
    pub isize: u64,
    /// Archive size.
    pub csize: u64,
    pub md5: String,
    pub sha256: String,
    /// Base64 detached signature, when the package is signed.
    pub pgpsig: Option<String>,
    pub groups: Vec<String>,
    pub license: Vec<String>,
    pub replaces: Vec<String>,
    pub conflicts: Vec<String>,
    pub provides: Vec<String>,
    pub depends: Vec<String>,
    pub optdepends: Vec<String>,
    pub makedepends: Vec<String>,
    pub checkdepends: Vec<String>,
    /// Installed paths, sorted, directories with a trailing `/` (the `.files` db's `%FILES%`).
    pub files: Vec<String>,
}

impl PackageMeta {
    /// `name-version-arch`, the file name without `.pkg.tar.*`.
    pub(crate) fn stem(&self) -> String {
        format!("{}-{}-{}", self.name, self.version, self.arch)
    }
}

/// Is `name` a package file name pacman accepts (`*.pkg.tar` + optional compression)?
pub(crate) fn is_package_file_name(name: &str) -> bool {
    name.split_once(".pkg.tar").is_some_and(|(stem, ext)| {
        !stem.is_empty()
            && [
                "", ".zst", ".xz", ".gz", ".bz2", ".lz4", ".lzo", ".lrz", ".Z",
            ]
            .contains(&ext)
    })
}

/// size, md5 and sha256 of a file, streamed.
fn digest_file(path: &Path) -> std::io::Result<(u64, String, String)> {
    let mut f = std::fs::File::open(path)?;
    let (mut md5, mut sha) = (Md5::new(), Sha256::new());
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        md5.update(&buf[..n]);
        sha.update(&buf[..n]);
        size += n as u64;
    }
    Ok((
        size,
        hex::encode(md5.finalize()),
        hex::encode(sha.finalize()),
    ))
}

/// Read the package at `path`, which is to be published as `filename`; the file name must
/// match `.PKGINFO`'s name, version and arch.
pub(crate) fn read_package(path: &Path, filename: &str) -> Result<PackageMeta, PkgError> {
    if !is_package_file_name(filename) || filename.contains('/') {
        return Err(PkgError::BadArchive(format!(
            "`{filename}` is not a package file name (name-version-arch.pkg.tar.zst)"
        )));
    }
    let (csize, md5, sha256) = digest_file(path)?;
    let file = std::fs::File::open(path)?;
    let decoder = decompress(file)
        .map_err(|e| PkgError::BadArchive(e.to_string()))?
        .ok_or_else(|| PkgError::BadArchive("empty file".into()))?;
    let mut archive = tar::Archive::new(Bounded::new(decoder, PKG_TAR_LIMITS));
    let mut pkginfo: Option<String> = None;
    let mut files = Vec::new();
    let mut file_list_bytes = 0usize;
    let entries = archive
        .entries()
        .map_err(|e| PkgError::BadArchive(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| PkgError::BadArchive(e.to_string()))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).to_string();
        let name = raw.trim_start_matches("./").to_string();
        if name == ".PKGINFO" {
            if entry.size() > MAX_PKGINFO {
                return Err(PkgError::TooLarge(format!(
                    ".PKGINFO is {} bytes, over the limit of {MAX_PKGINFO}",
                    entry.size()
                )));
            }
            let mut text = String::new();
            entry
                .by_ref()
                .take(MAX_PKGINFO)
                .read_to_string(&mut text)
                .map_err(|e| PkgError::BadArchive(format!(".PKGINFO: {e}")))?;
            pkginfo = Some(text);
            continue;
        }
        if name.is_empty() || name.starts_with('.') {
            continue;
        }
        let is_dir = entry.header().entry_type().is_dir();
        file_list_bytes += name.len() + 1;
        if file_list_bytes > MAX_FILE_LIST {
            return Err(PkgError::TooLarge(format!(
                "its file list is over the limit of {MAX_FILE_LIST} bytes"
            )));
        }
        files.push(if is_dir && !name.ends_with('/') {
            format!("{name}/")
        } else {
            name
        });
    }
    files.sort();
    files.dedup();
    let mut meta = parse_pkginfo(&pkginfo.ok_or(PkgError::NoPkgInfo)?)?;
    meta.filename = filename.to_string();
    meta.csize = csize;
    meta.md5 = md5;
    meta.sha256 = sha256;
    meta.files = files;
    let stem = meta.stem();
    if filename.split_once(".pkg.tar").map(|(s, _)| s) != Some(stem.as_str()) {
        return Err(PkgError::NameMismatch {
            got: filename.to_string(),
            expected: stem,
        });
    }
    Ok(meta)
}

/// Parse `.PKGINFO` (`key = value` lines, `#` comments).
pub(crate) fn parse_pkginfo(text: &str) -> Result<PackageMeta, PkgError> {
    let mut m = PackageMeta::default();
    let mut size: Option<String> = None;
    for line in text.lines() {
        let line = line.trim_end();
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once(" = ") else {
            continue;
        };
        let v = value.to_string();
        match key.trim() {
            "pkgname" => m.name = v,
            "pkgbase" => m.base = v,
            "pkgver" => m.version = v,
            "pkgdesc" => m.desc = v,
            "url" => m.url = v,
            "builddate" => m.builddate = v,
            "packager" => m.packager = v,
            "size" => size = Some(v),
            "arch" => m.arch = v,
            "license" => m.license.push(v),
            "group" => m.groups.push(v),
            "replaces" => m.replaces.push(v),
            "conflict" => m.conflicts.push(v),
            "provides" => m.provides.push(v),
            "depend" => m.depends.push(v),
            "optdepend" => m.optdepends.push(v),
            "makedepend" => m.makedepends.push(v),
            "checkdepend" => m.checkdepends.push(v),
            _ => {}
        }
    }
    if m.name.is_empty() {
        return Err(PkgError::Missing("pkgname"));
    }
    if m.version.is_empty() {
        return Err(PkgError::Missing("pkgver"));
    }
    if m.arch.is_empty() {
        return Err(PkgError::Missing("arch"));
    }
    if !crate::repo::path::valid_upstream_name(&m.name.replace(['+', '@'], "-")) {
        return Err(PkgError::BadValue {
            key: "pkgname",
            value: m.name,
        });
    }
    if m.version.contains(['/', ' ']) || !m.version.contains('-') {
        return Err(PkgError::BadValue {
            key: "pkgver",
            value: m.version,
        });
    }
    if m.arch.contains(['/', ' ']) {
        return Err(PkgError::BadValue {
            key: "arch",
            value: m.arch,
        });
    }
    if m.base.is_empty() {
        m.base = m.name.clone();
    }
    if let Some(s) = size {
        m.isize = s.trim().parse().map_err(|_| PkgError::BadValue {
            key: "size",
            value: s,
        })?;
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkginfo_fields() {
        let m = parse_pkginfo(
            "# Generated by makepkg\npkgname = foo+bar\npkgbase = foo\npkgver = 1:2.0-1\n\
             pkgdesc = a = b\nsize = 1024\narch = x86_64\nlicense = MIT\nlicense = GPL\n\
             depend = glibc>=2\noptdepend = bash: for scripts\n",
        )
        .expect("parse");
        assert_eq!(m.name, "foo+bar");
        assert_eq!(m.base, "foo");
        assert_eq!(m.version, "1:2.0-1");
        assert_eq!(m.desc, "a = b");
        assert_eq!(m.isize, 1024);
        assert_eq!(m.license, ["MIT", "GPL"]);
        assert_eq!(m.optdepends, ["bash: for scripts"]);
        assert_eq!(m.stem(), "foo+bar-1:2.0-1-x86_64");
    }

    #[test]
    fn pkginfo_errors_name_the_field() {
        let e = parse_pkginfo("pkgver = 1-1\narch = any\n").expect_err("no name");
        assert!(e.to_string().contains("pkgname"), "{e}");
        let e = parse_pkginfo("pkgname = ../x\npkgver = 1-1\narch = any\n").expect_err("bad");
        assert!(e.to_string().contains("pkgname"), "{e}");
    }

    #[test]
    fn package_file_names() {
        assert!(is_package_file_name("a-1-1-any.pkg.tar.zst"));
        assert!(is_package_file_name("a-1-1-any.pkg.tar"));
        assert!(!is_package_file_name("a-1-1-any.pkg.tar.zst.sig"));
        assert!(!is_package_file_name("core.db"));
    }
}
