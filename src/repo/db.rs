//! pacman repo databases (`*.db`, `*.files`): a tar archive — compressed with gzip, zstd, xz or
//! not at all, detected by magic bytes, never by name — of `name-version/desc` members (and, in
//! `.files` dbs, `name-version/files`).
//!
//! Parsing streams: tar entries are visited in order and only `desc` members are read, so a
//! large `.files` db never sits in memory. A `desc` is sections (`%FILENAME%`, `%NAME%`,
//! `%VERSION%`, `%ARCH%`, `%CSIZE%`, `%ISIZE%`, `%SHA256SUM%`, `%PGPSIG%`, …), each a header line
//! followed by value lines up to a blank line; unknown sections are ignored.
//!
//! A db comes from a mirror, so it is untrusted and bounded ([`DbLimits`]): decompressed bytes,
//! tar members, extension headers ([`crate::repo::bounded_tar`]), package entries, the memory of the
//! entries kept, and the size of one `desc`. Over a limit, or when the archive itself is broken,
//! the whole db is an error. A `desc` that cannot be read (a missing field, a number that does not
//! fit, bad UTF-8, too large) only makes *that* entry [`Malformed`]: the rest of the db stays
//! usable, and the malformed entry is kept so that callers can refuse its package instead of
//! treating it as unlisted ([`crate::repo::db_index::RepoIndex::listing`]).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};

use sha2::{Digest, Sha256};

use crate::repo::bounded_tar::{Bounded, Limits};

/// One package as the db describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbEntry {
    pub name: String,
    /// `[epoch:]pkgver-pkgrel`
    pub version: String,
    pub arch: String,
    pub filename: String,
    /// Compressed (download) size.
    pub csize: Option<u64>,
    /// Installed size.
    pub isize: Option<u64>,
    pub sha256: Option<String>,
    pub has_pgpsig: bool,
    /// sha256 of the detached signature in `%PGPSIG%` (base64-decoded): what the package's
    /// `.sig` file holds.
    pub pgpsig_sha256: Option<[u8; 32]>,
}

/// A `desc` member that could not be read: its package is listed, but not usably.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// Tar member, e.g. `foo-1.0-1/desc`.
    pub member: String,
    /// `%FILENAME%`, when that much could be read.
    pub filename: Option<String>,
    pub reason: String,
}

/// Everything read from one db.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedDb {
    pub entries: Vec<DbEntry>,
    pub malformed: Vec<Malformed>,
}

/// Why a db could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RepoDbError {
    #[error("cannot read repo db: {0}")]
    Io(#[source] std::io::Error),
    #[error("repo db is not a (gzip/zstd/xz-compressed) tar archive: {0}")]
    BadArchive(String),
    #[error("repo db is too large: {0}")]
    TooLarge(String),
    #[error("repo db member {member}: missing %{field}%")]
    MissingField { member: String, field: &'static str },
    #[error("repo db member {member}: bad %{field}% value `{value}`")]
    BadField {
        member: String,
        field: &'static str,
        value: String,
    },
}

/// Bounds on one db (see the module docs). [`DB_LIMITS`] fits every real repo with room to
/// spare: Arch's `extra` has ~14,000 packages, its `extra.files` is ~50 MiB compressed and a
/// few hundred MiB of tar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbLimits {
    /// The tar stream: decompressed bytes, members, extension headers.
    pub tar: Limits,
    /// Package entries (`desc` members, malformed ones included).
    pub max_entries: usize,
    /// Estimated memory of the entries kept (strings plus per-entry overhead), bytes.
    pub max_index_bytes: usize,
    /// Bytes of one `desc` member.
    pub max_desc: u64,
}

/// The limits every db from a mirror is read with.
pub const DB_LIMITS: DbLimits = DbLimits {
    tar: Limits {
        max_bytes: 2 << 30,
        max_members: 1_000_000,
        max_extension: 1 << 20,
    },
    max_entries: 100_000,
    max_index_bytes: 64 << 20,
    max_desc: 1 << 20,
};

/// Per-entry memory beyond its strings (struct, two map slots, key copies' headers).
const ENTRY_OVERHEAD: usize = 256;

/// Compression of a db, by magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
    Xz,
    None,
}

/// Detect compression from the first bytes.
pub fn detect(head: &[u8]) -> Result<Compression, RepoDbError> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Compression::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Compression::Zstd)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Ok(Compression::Xz)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Ok(Compression::None)
    } else if head.is_empty() {
        // An empty repo: repo-add writes an empty archive; treat zero bytes as no packages.
        Ok(Compression::None)
    } else {
        Err(RepoDbError::BadArchive(
            "unknown compression (magic bytes)".into(),
        ))
    }
}

/// Parse a db from a reader, within [`DB_LIMITS`].
pub fn parse_db<R: Read>(reader: R) -> Result<ParsedDb, RepoDbError> {
    parse_db_limited(reader, &DB_LIMITS)
}

/// Parse a db from a reader, within `limits`.
pub fn parse_db_limited<R: Read>(reader: R, limits: &DbLimits) -> Result<ParsedDb, RepoDbError> {
    match decompress(reader)? {
        Some(decoder) => parse_tar(Bounded::new(decoder, limits.tar), limits),
        None => Ok(ParsedDb::default()),
    }
}

/// The decompressed stream of a (gzip/zstd/xz/un-)compressed archive, by magic bytes;
/// `None` for zero bytes. Unbounded: wrap it in [`Bounded`] before reading it as a tar.
pub fn decompress<'a, R: Read + 'a>(reader: R) -> Result<Option<Box<dyn Read + 'a>>, RepoDbError> {
    let mut buffered = BufReader::with_capacity(64 * 1024, reader);
    let head = buffered.fill_buf().map_err(RepoDbError::Io)?.to_vec();
    if head.is_empty() {
        return Ok(None);
    }
    let decoder: Box<dyn Read + 'a> = match detect(&head)? {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(buffered)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(buffered).map_err(RepoDbError::Io)?)
        }
        Compression::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(buffered)),
        Compression::None => Box::new(buffered),
    };
    Ok(Some(decoder))
}

fn parse_tar<R: Read>(reader: R, limits: &DbLimits) -> Result<ParsedDb, RepoDbError> {
    let mut archive = tar::Archive::new(reader);
    let mut out = ParsedDb::default();
    let mut memory = 0usize;
    let entries = archive
        .entries()
        .map_err(|e| RepoDbError::BadArchive(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| RepoDbError::BadArchive(e.to_string()))?;
        let member = String::from_utf8_lossy(&entry.path_bytes()).to_string();
        if !(member.ends_with("/desc") && entry.header().entry_type().is_file()) {
            continue; // skipped without reading (the tar reader seeks past it)
        }
        if out.entries.len() + out.malformed.len() >= limits.max_entries {
            return Err(RepoDbError::TooLarge(format!(
                "more than {} packages",
                limits.max_entries
            )));
        }
        let size = entry.size();
        let parsed: Result<DbEntry, (String, Option<String>)> = if size > limits.max_desc {
            Err((
                format!("desc of {size} bytes (the limit is {})", limits.max_desc),
                None,
            ))
        } else {
            let mut raw = Vec::with_capacity(size as usize);
            entry
                .read_to_end(&mut raw)
                .map_err(|e| RepoDbError::BadArchive(format!("{member}: {e}")))?;
            let text = String::from_utf8_lossy(&raw);
            // What can still be read names the package a malformed entry is for.
            let filename = || {
                sections(&text)
                    .get("FILENAME")
                    .and_then(|v| v.first())
                    .map(|s| s.to_string())
            };
            match text {
                std::borrow::Cow::Owned(_) => Err(("desc is not UTF-8".into(), filename())),
                std::borrow::Cow::Borrowed(t) => {
                    parse_desc(&member, t).map_err(|e| (e.to_string(), filename()))
                }
            }
        };
        match parsed {
            Ok(e) => {
                memory += ENTRY_OVERHEAD
                    + 2 * (e.name.len() + e.arch.len() + e.filename.len())
                    + e.version.len()
                    + e.sha256.as_ref().map_or(0, String::len);
                out.entries.push(e);
            }
            Err((reason, filename)) => {
                memory += ENTRY_OVERHEAD
                    + member.len()
                    + reason.len()
                    + filename.as_ref().map_or(0, String::len);
                out.malformed.push(Malformed {
                    member,
                    filename,
                    reason,
                });
            }
        }
        if memory > limits.max_index_bytes {
            return Err(RepoDbError::TooLarge(format!(
                "its entries take more than {} bytes",
                limits.max_index_bytes
            )));
        }
    }
    Ok(out)
}

/// The sections of a `desc`: name → value lines.
fn sections(text: &str) -> HashMap<&str, Vec<&str>> {
    let mut sections: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut current: Option<&str> = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            current = None;
            continue;
        }
        if line.len() > 2 && line.starts_with('%') && line.ends_with('%') && current.is_none() {
            let name = &line[1..line.len() - 1];
            sections.entry(name).or_default();
            current = Some(name);
            continue;
        }
        if let Some(name) = current {
            sections.entry(name).or_default().push(line);
        }
    }
    sections
}

/// Parse one `desc` member.
pub fn parse_desc(member: &str, text: &str) -> Result<DbEntry, RepoDbError> {
    let sections = sections(text);
    let one = |field: &'static str| -> Option<String> {
        sections
            .get(field)
            .and_then(|v| v.first())
            .map(|s| s.to_string())
    };
    let need = |field: &'static str| {
        one(field).ok_or(RepoDbError::MissingField {
            member: member.to_string(),
            field,
        })
    };
    let bad = |field: &'static str, value: String| RepoDbError::BadField {
        member: member.to_string(),
        field,
        value,
    };
    let number = |field: &'static str| -> Result<Option<u64>, RepoDbError> {
        match one(field) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| bad(field, v)),
        }
    };
    let sha256 = match one("SHA256SUM") {
        Some(v) if v.len() == 64 && v.bytes().all(|c| c.is_ascii_hexdigit()) => {
            Some(v.to_ascii_lowercase())
        }
        Some(v) => return Err(bad("SHA256SUM", v)),
        None => None,
    };
    let pgpsig: String = sections
        .get("PGPSIG")
        .map(|v| v.concat())
        .unwrap_or_default();
    let pgpsig_sha256 = if pgpsig.is_empty() {
        None
    } else {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(pgpsig.trim())
            .map_err(|_| bad("PGPSIG", pgpsig.chars().take(40).collect()))?;
        Some(Sha256::digest(raw).into())
    };
    Ok(DbEntry {
        name: need("NAME")?,
        version: need("VERSION")?,
        arch: one("ARCH").unwrap_or_else(|| "any".into()),
        filename: need("FILENAME")?,
        csize: number("CSIZE")?,
        isize: number("ISIZE")?,
        sha256,
        has_pgpsig: pgpsig_sha256.is_some(),
        pgpsig_sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::db_index::{Listing, RepoIndex};
    use std::io::Write;

    const DESC: &str = "%FILENAME%\nfoo-1:2.0-1-x86_64.pkg.tar.zst\n\n%NAME%\nfoo\n\n%BASE%\nfoo\n\n%VERSION%\n1:2.0-1\n\n%DESC%\nthe foo\n\n%CSIZE%\n1234\n\n%ISIZE%\n5678\n\n%SHA256SUM%\nABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789\n\n%PGPSIG%\niQEzBAABCAAdFiEE\n\n%ARCH%\nx86_64\n\n%DEPENDS%\nbar\nbaz>=1\n\n";

    fn tar_with(members: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, body) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_cksum();
            b.append_data(&mut h, name, body.as_bytes())
                .expect("append");
        }
        b.into_inner().expect("tar")
    }

    fn sample() -> Vec<u8> {
        tar_with(&[
            ("foo-1:2.0-1/desc", DESC),
            ("foo-1:2.0-1/files", "%FILES%\nusr/\nusr/bin/foo\n"),
            (
                "bar-1.0-1/desc",
                "%FILENAME%\nbar-1.0-1-any.pkg.tar.xz\n\n%NAME%\nbar\n\n%VERSION%\n1.0-1\n\n%ARCH%\nany\n",
            ),
        ])
    }

    fn check(entries: &[DbEntry]) {
        assert_eq!(entries.len(), 2);
        let foo = &entries[0];
        assert_eq!(foo.name, "foo");
        assert_eq!(foo.version, "1:2.0-1");
        assert_eq!(foo.arch, "x86_64");
        assert_eq!(foo.filename, "foo-1:2.0-1-x86_64.pkg.tar.zst");
        assert_eq!(foo.csize, Some(1234));
        assert_eq!(foo.isize, Some(5678));
        assert_eq!(
            foo.sha256.as_deref(),
            Some("abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789")
        );
        assert!(foo.has_pgpsig);
        assert!(!entries[1].has_pgpsig);
        assert_eq!(entries[1].csize, None);
        let idx = RepoIndex::from_entries(entries.to_vec());
        assert_eq!(
            idx.by_filename("bar-1.0-1-any.pkg.tar.xz")
                .map(|e| e.name.as_str()),
            Some("bar")
        );
        assert_eq!(
            idx.by_name_arch("foo", "x86_64")
                .map(|e| e.version.as_str()),
            Some("1:2.0-1")
        );
        assert!(idx.by_name_arch("foo", "any").is_none());
    }

    #[test]
    fn parses_every_compression() {
        let tar = sample();
        check(&parse_db(&tar[..]).expect("plain").entries);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar).expect("gz");
        check(
            &parse_db(&gz.finish().expect("gz")[..])
                .expect("gzip")
                .entries,
        );
        let zst = zstd::encode_all(&tar[..], 3).expect("zstd");
        check(&parse_db(&zst[..]).expect("zstd").entries);
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 6);
        xz.write_all(&tar).expect("xz");
        check(&parse_db(&xz.finish().expect("xz")[..]).expect("xz").entries);
    }

    #[test]
    fn errors_are_clear() {
        assert!(matches!(
            parse_db(&b"<html>not a db</html>"[..]),
            Err(RepoDbError::BadArchive(_))
        ));
        assert_eq!(parse_db(&b""[..]).expect("empty"), ParsedDb::default());
    }

    #[test]
    fn a_bad_entry_is_skipped_and_kept_as_malformed() {
        let good = "%FILENAME%\ngood-1-1-any.pkg.tar.zst\n\n%NAME%\ngood\n\n%VERSION%\n1-1\n";
        let tar = tar_with(&[
            ("x-1-1/desc", "%NAME%\nx\n\n%VERSION%\n1-1\n"),
            ("good-1-1/desc", good),
            (
                "big-1-1/desc",
                "%FILENAME%\nbig-1-1-any.pkg.tar.zst\n\n%NAME%\nbig\n\n%VERSION%\n1-1\n\n%CSIZE%\n99999999999999999999999\n",
            ),
            (
                "sig-1-1/desc",
                "%FILENAME%\nsig-1-1-any.pkg.tar.zst\n\n%NAME%\nsig\n\n%VERSION%\n1-1\n\n%PGPSIG%\n!!not base64!!\n",
            ),
        ]);
        let parsed = parse_db(&tar[..]).expect("the db is still usable");
        assert_eq!(parsed.entries.len(), 1);
        assert_eq!(parsed.malformed.len(), 3);
        let no_name = &parsed.malformed[0];
        assert_eq!(no_name.filename, None);
        assert!(
            no_name.reason.contains("x-1-1/desc") && no_name.reason.contains("FILENAME"),
            "{no_name:?}"
        );
        let overflow = &parsed.malformed[1];
        assert_eq!(
            overflow.filename.as_deref(),
            Some("big-1-1-any.pkg.tar.zst")
        );
        assert!(overflow.reason.contains("CSIZE"), "{overflow:?}");

        let idx = RepoIndex::from_parsed(parsed);
        assert!(matches!(
            idx.listing("good-1-1-any.pkg.tar.zst"),
            Listing::Entry(_)
        ));
        assert!(
            matches!(idx.listing("big-1-1-any.pkg.tar.zst"), Listing::Malformed(r) if r.contains("CSIZE"))
        );
        assert!(
            matches!(idx.listing("sig-1-1-any.pkg.tar.zst"), Listing::Malformed(r) if r.contains("PGPSIG"))
        );
        // No readable file name: every file of that name-version is refused.
        assert!(matches!(
            idx.listing("x-1-1-x86_64.pkg.tar.zst"),
            Listing::Malformed(_)
        ));
        assert_eq!(idx.listing("x-1-2-x86_64.pkg.tar.zst"), Listing::Unlisted);
        assert_eq!(idx.listing("other-1-1-any.pkg.tar.zst"), Listing::Unlisted);
    }

    #[test]
    fn pgpsig_digest_is_the_sig_files() {
        let sig = b"\x89\x01\x33binary signature";
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(sig);
        let desc = format!(
            "%FILENAME%\na-1-1-any.pkg.tar.zst\n\n%NAME%\na\n\n%VERSION%\n1-1\n\n%PGPSIG%\n{b64}\n"
        );
        let e = parse_desc("a-1-1/desc", &desc).expect("parse");
        let want: [u8; 32] = Sha256::digest(sig).into();
        assert_eq!(e.pgpsig_sha256, Some(want));
        assert!(e.has_pgpsig);
    }

    fn desc_of(i: usize, pad: usize) -> String {
        format!(
            "%FILENAME%\np{i}-1-1-any.pkg.tar.zst\n\n%NAME%\np{i}\n\n%VERSION%\n1-1\n\n%DESC%\n{}\n",
            "d".repeat(pad)
        )
    }

    #[test]
    fn limits_bound_entries_memory_desc_and_bytes() {
        let descs: Vec<(String, String)> = (0..50)
            .map(|i| (format!("p{i}-1-1/desc"), desc_of(i, 10)))
            .collect();
        let members: Vec<(&str, &str)> = descs
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let tar = tar_with(&members);
        let gz = {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(&tar).expect("gz");
            gz.finish().expect("gz")
        };
        assert_eq!(
            parse_db(&gz[..]).expect("within the limits").entries.len(),
            50
        );
        let limited = |l: DbLimits| {
            parse_db_limited(&gz[..], &l)
                .expect_err("over a limit")
                .to_string()
        };
        let e = limited(DbLimits {
            max_entries: 49,
            ..DB_LIMITS
        });
        assert!(e.contains("more than 49 packages"), "{e}");
        let e = limited(DbLimits {
            max_index_bytes: 10 * ENTRY_OVERHEAD,
            ..DB_LIMITS
        });
        assert!(e.contains("take more than"), "{e}");
        let e = limited(DbLimits {
            tar: Limits {
                max_bytes: 10_000,
                ..DB_LIMITS.tar
            },
            ..DB_LIMITS
        });
        assert!(e.contains("larger than 10000 bytes"), "{e}");
        let e = limited(DbLimits {
            tar: Limits {
                max_members: 20,
                ..DB_LIMITS.tar
            },
            ..DB_LIMITS
        });
        assert!(e.contains("more than 20 members"), "{e}");
        // A desc over its limit is one malformed entry, not a failed db.
        let big = desc_of(99, 5000);
        let tar = tar_with(&[("p99-1-1/desc", big.as_str()), members[0]]);
        let parsed = parse_db_limited(
            &tar[..],
            &DbLimits {
                max_desc: 4096,
                ..DB_LIMITS
            },
        )
        .expect("parse");
        assert_eq!(parsed.entries.len(), 1);
        assert!(
            parsed.malformed[0].reason.contains("limit is 4096"),
            "{:?}",
            parsed.malformed
        );
    }

    #[test]
    fn a_bomb_of_zeros_stops_at_the_byte_limit() {
        // A member claiming 8 GiB of zeros, streamed through zstd: never written out in full.
        let mut h = tar::Header::new_gnu();
        h.set_path("pad-1-1/files").expect("path");
        h.set_size(8 << 30);
        h.set_mode(0o644);
        h.set_cksum();
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).expect("zstd");
        enc.write_all(h.as_bytes()).expect("write");
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            enc.write_all(&zeros).expect("write");
        }
        let bomb = enc.finish().expect("zstd");
        let limits = DbLimits {
            tar: Limits {
                max_bytes: 16 << 20,
                ..DB_LIMITS.tar
            },
            ..DB_LIMITS
        };
        let e = parse_db_limited(&bomb[..], &limits).expect_err("bounded");
        assert!(e.to_string().contains("larger than"), "{e}");
    }
}
