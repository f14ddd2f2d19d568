//! pacman repo databases (`*.db`, `*.files`): a tar archive — compressed with gzip, zstd, xz or
//! not at all, detected by magic bytes, never by name — of `name-version/desc` members (and, in
//! `.files` dbs, `name-version/files`).
//!
//! Parsing streams: tar entries are visited in order and only `desc` members are read, so a
//! large `.files` db never sits in memory. A `desc` is sections (`%FILENAME%`, `%NAME%`,
//! `%VERSION%`, `%ARCH%`, `%CSIZE%`, `%ISIZE%`, `%SHA256SUM%`, `%PGPSIG%`, …), each a header line
//! followed by value lines up to a blank line; unknown sections are ignored.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

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
}

/// Why a db could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RepoDbError {
    #[error("cannot read repo db: {0}")]
    Io(#[source] std::io::Error),
    #[error("repo db is not a (gzip/zstd/xz-compressed) tar archive: {0}")]
    BadArchive(String),
    #[error("repo db member {member}: missing %{field}%")]
    MissingField { member: String, field: &'static str },
    #[error("repo db member {member}: bad %{field}% value `{value}`")]
    BadField {
        member: String,
        field: &'static str,
        value: String,
    },
}

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

/// Parse a db from a reader.
pub fn parse_db<R: Read>(reader: R) -> Result<Vec<DbEntry>, RepoDbError> {
    match decompress(reader)? {
        Some(decoder) => parse_tar(decoder),
        None => Ok(Vec::new()),
    }
}

/// The decompressed stream of a (gzip/zstd/xz/un-)compressed archive, by magic bytes;
/// `None` for zero bytes.
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

/// Parse the db file at `path`.
pub fn parse_db_file(path: &Path) -> Result<Vec<DbEntry>, RepoDbError> {
    let f = std::fs::File::open(path).map_err(RepoDbError::Io)?;
    parse_db(f)
}

fn parse_tar<R: Read>(reader: R) -> Result<Vec<DbEntry>, RepoDbError> {
    let mut archive = tar::Archive::new(reader);
    let mut out = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| RepoDbError::BadArchive(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| RepoDbError::BadArchive(e.to_string()))?;
        let member = entry
            .path()
            .map_err(|e| RepoDbError::BadArchive(e.to_string()))?
            .to_string_lossy()
            .to_string();
        if !(member.ends_with("/desc") && entry.header().entry_type().is_file()) {
            continue; // skipped without reading (the tar reader seeks past it)
        }
        let mut text = String::new();
        entry
            .by_ref()
            .take(1 << 20)
            .read_to_string(&mut text)
            .map_err(|e| RepoDbError::BadArchive(format!("{member}: {e}")))?;
        out.push(parse_desc(&member, &text)?);
    }
    Ok(out)
}

/// Parse one `desc` member.
pub fn parse_desc(member: &str, text: &str) -> Result<DbEntry, RepoDbError> {
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
    let number = |field: &'static str| -> Result<Option<u64>, RepoDbError> {
        match one(field) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| RepoDbError::BadField {
                    member: member.to_string(),
                    field,
                    value: v,
                }),
        }
    };
    let sha256 = match one("SHA256SUM") {
        Some(v) if v.len() == 64 && v.bytes().all(|c| c.is_ascii_hexdigit()) => {
            Some(v.to_ascii_lowercase())
        }
        Some(v) => {
            return Err(RepoDbError::BadField {
                member: member.to_string(),
                field: "SHA256SUM",
                value: v,
            })
        }
        None => None,
    };
    Ok(DbEntry {
        name: need("NAME")?,
        version: need("VERSION")?,
        arch: one("ARCH").unwrap_or_else(|| "any".into()),
        filename: need("FILENAME")?,
        csize: number("CSIZE")?,
        isize: number("ISIZE")?,
        sha256,
        has_pgpsig: sections.get("PGPSIG").is_some_and(|v| !v.is_empty()),
    })
}

/// Entries of one db with lookups by file name and by name + arch.
#[derive(Debug, Default)]
pub struct RepoIndex {
    entries: Vec<DbEntry>,
    by_filename: HashMap<String, usize>,
    by_name_arch: HashMap<(String, String), usize>,
}

impl RepoIndex {
    pub fn from_entries(entries: Vec<DbEntry>) -> RepoIndex {
        let mut by_filename = HashMap::with_capacity(entries.len());
        let mut by_name_arch = HashMap::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            by_filename.insert(e.filename.clone(), i);
            by_name_arch.insert((e.name.clone(), e.arch.clone()), i);
        }
        RepoIndex {
            entries,
            by_filename,
            by_name_arch,
        }
    }

    pub fn by_filename(&self, f: &str) -> Option<&DbEntry> {
        self.by_filename.get(f).map(|&i| &self.entries[i])
    }

    pub fn by_name_arch(&self, name: &str, arch: &str) -> Option<&DbEntry> {
        self.by_name_arch
            .get(&(name.to_string(), arch.to_string()))
            .map(|&i| &self.entries[i])
    }

    pub fn entries(&self) -> &[DbEntry] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        check(&parse_db(&tar[..]).expect("plain"));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar).expect("gz");
        check(&parse_db(&gz.finish().expect("gz")[..]).expect("gzip"));
        let zst = zstd::encode_all(&tar[..], 3).expect("zstd");
        check(&parse_db(&zst[..]).expect("zstd"));
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 6);
        xz.write_all(&tar).expect("xz");
        check(&parse_db(&xz.finish().expect("xz")[..]).expect("xz"));
    }

    #[test]
    fn errors_are_clear() {
        assert!(matches!(
            parse_db(&b"<html>not a db</html>"[..]),
            Err(RepoDbError::BadArchive(_))
        ));
        let tar = tar_with(&[("x-1-1/desc", "%NAME%\nx\n\n%VERSION%\n1-1\n")]);
        let e = parse_db(&tar[..]).expect_err("no filename");
        assert!(
            e.to_string().contains("x-1-1/desc") && e.to_string().contains("FILENAME"),
            "{e}"
        );
        let tar = tar_with(&[(
            "x-1-1/desc",
            "%FILENAME%\nx\n\n%NAME%\nx\n\n%VERSION%\n1-1\n\n%CSIZE%\nlots\n",
        )]);
        assert!(parse_db(&tar[..])
            .expect_err("bad size")
            .to_string()
            .contains("CSIZE"));
        assert_eq!(parse_db(&b""[..]).expect("empty").len(), 0);
    }
}
