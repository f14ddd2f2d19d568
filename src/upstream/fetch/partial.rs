//! The file a download is written into (in `<cache_dir>/.partial/`): bytes appended in order,
//! hashed (sha256) on the way when the digest may be needed ([`PartialFile::set_hashing`]: a
//! package a repo db lists, or may list; nobody else reads the digest, and hashing was a
//! quarter of a herd's CPU), and announced to the clients tailing it.
//!
//! Clients hear of progress in steps, not per socket read (a read is often a few KiB: waking
//! every tailing client for each would cost more than sending the bytes): the first bytes at
//! once, then every [`NOTIFY_BYTES`], the rest at most [`NOTIFY_DELAY`] later (the body loop
//! asks [`PartialFile::notify_due`]). Dropping the file (or [`PartialFile::discard`]) deletes
//! it: only [`PartialFile::finish`] hands it on for publishing.

use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use crate::cache::inflight::{BodyMeta, Download};
use crate::cache::store::Store;

/// Clients are told of progress every this many bytes...
pub const NOTIFY_BYTES: u64 = 1 << 20;
/// ... or this long after bytes they have not heard of were written.
pub const NOTIFY_DELAY: Duration = Duration::from_millis(50);

/// A download's partial file and what clients know of it.
pub struct PartialFile<'a> {
    download: &'a Download,
    file: Option<tempfile::NamedTempFile>,
    written: u64,
    /// `written` as clients last heard it, and when.
    notified: u64,
    notified_at: Instant,
    /// sha256 of every byte written, while it is wanted; `None` once it is not (or when it
    /// was turned on after the first byte: it would not cover them all).
    hasher: Option<Sha256>,
    meta: Option<BodyMeta>,
}

/// A finished partial file, ready to be published (its checks read it before: [`PartialFile::sha256`], [`PartialFile::reader`]).
pub struct Finished {
    pub file: tempfile::NamedTempFile,
    /// With `total` set to the length written.
    pub meta: BodyMeta,
}

impl<'a> PartialFile<'a> {
    pub fn new(download: &'a Download) -> PartialFile<'a> {
        PartialFile {
            download,
            file: None,
            written: 0,
            notified: 0,
            notified_at: Instant::now(),
            hasher: Some(Sha256::new()),
            meta: None,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Does the file exist (did a mirror's body start)?
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// The total length the first body declared.
    pub fn total(&self) -> Option<u64> {
        self.meta.as_ref().and_then(|m| m.total)
    }

    /// Create the file in `store`, reserve `reserve` bytes of disk for it, and let clients
    /// start. `Err` names what failed.
    pub fn open(
        &mut self,
        store: &Store,
        reserve: Option<u64>,
        total: Option<u64>,
        last_modified: Option<SystemTime>,
    ) -> Result<(), (&'static str, std::io::Error)> {
        let file = store
            .new_partial()
            .map_err(|e| ("create partial file", e))?;
        if let Some(len) = reserve {
            crate::cache::store::reserve(file.as_file(), len)
                .map_err(|e| ("reserve disk space", e))?;
        }
        let reader = file
            .as_file()
            .try_clone()
            .map_err(|e| ("open partial file", e))?;
        self.download.set_file(Arc::new(reader));
        let meta = BodyMeta {
            total,
            last_modified,
        };
        self.download.set_streaming(meta.clone(), 0);
        self.meta = Some(meta);
        self.file = Some(file);
        Ok(())
    }

    /// Hash the bytes as they are written (`true`, the default) or not. Turned on after the
    /// first byte it stays off: [`PartialFile::sha256`] must cover every byte.
    pub fn set_hashing(&mut self, on: bool) {
        match (on, &self.hasher) {
            (false, _) => self.hasher = None,
            (true, None) if self.written == 0 => self.hasher = Some(Sha256::new()),
            (true, _) => {}
        }
    }

    /// Append `bytes` (hashed when wanted, announced in steps).
    pub fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("no partial file"))?;
        // A write into the page cache on the fetch task, as intended (a blocking-pool hop per
        // socket read would cost more); the fsync comes at publish, off the async worker.
        file.as_file_mut().write_all(bytes)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(bytes);
        }
        self.written += bytes.len() as u64;
        if self.notified == 0 || self.written - self.notified >= NOTIFY_BYTES {
            self.notify();
        }
        Ok(())
    }

    /// When bytes clients have not heard of must be announced at the latest.
    pub fn notify_due(&self) -> Option<Instant> {
        (self.written > self.notified).then_some(self.notified_at + NOTIFY_DELAY)
    }

    /// Tell clients how much is written (if that changed).
    pub fn notify(&mut self) {
        if self.written != self.notified {
            self.download.advance(self.written);
            self.notified = self.written;
            self.notified_at = Instant::now();
        }
    }

    /// Are the bytes at `offset` equal to `data`?
    pub fn matches(&self, offset: u64, data: &[u8]) -> std::io::Result<bool> {
        let Some(file) = self.file.as_ref() else {
            return Ok(false);
        };
        let mut buf = vec![0u8; data.len()];
        file.as_file().read_exact_at(&mut buf, offset)?;
        Ok(buf == data)
    }

    /// sha256 (hex) of the bytes written so far, when they were hashed on the way (else
    /// [`sha256_of`] the file).
    pub fn sha256(&self) -> Option<String> {
        self.hasher
            .as_ref()
            .map(|h| hex::encode(h.clone().finalize()))
    }

    /// A new handle on the file for reading it, with its own file offset (the caller may move
    /// it to another thread and seek it).
    pub fn reader(&self) -> std::io::Result<std::fs::File> {
        self.file
            .as_ref()
            .ok_or_else(|| std::io::Error::other("no partial file"))?
            .reopen()
    }

    /// Delete the file.
    pub fn discard(&mut self) {
        self.file = None;
    }

    /// The body is complete: the file and its metadata (`None`: never opened).
    pub fn finish(&mut self) -> Option<Finished> {
        let file = self.file.take()?;
        let mut meta = self.meta.clone().unwrap_or(BodyMeta {
            total: None,
            last_modified: None,
        });
        meta.total = Some(self.written);
        Some(Finished { file, meta })
    }
}

/// Blocking: sha256 (hex) of `file` read from its start (a partial file that was not hashed
/// on the way).
pub fn sha256_of(mut file: std::fs::File) -> std::io::Result<String> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::path::RepoPath;

    fn hex_sha256(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[test]
    fn the_digest_covers_every_byte_or_is_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let path = RepoPath::parse("/arch/core/os/x86_64/a-1-1-any.pkg.tar.zst").expect("path");
        let download = Download::detached(path);
        let body = b"0123456789".repeat(40_000);

        // Hashed on the way (the default: a db may list it).
        let mut p = PartialFile::new(&download);
        p.open(&store, None, None, None).expect("open");
        p.append(&body[..1000]).expect("append");
        p.append(&body[1000..]).expect("append");
        assert_eq!(p.sha256(), Some(hex_sha256(&body)));

        // Not wanted (no db lists it): no digest kept; read back, it is the same.
        let mut p = PartialFile::new(&download);
        p.set_hashing(false);
        p.open(&store, None, None, None).expect("open");
        p.append(&body[..5]).expect("append");
        // Wanted again after the first byte: a digest of part of the body would lie.
        p.set_hashing(true);
        p.append(&body[5..]).expect("append");
        assert_eq!(p.sha256(), None);
        let read_back = sha256_of(p.reader().expect("reader")).expect("read back");
        assert_eq!(read_back, hex_sha256(&body));

        // Off then on before any byte: hashed from the start.
        let mut p = PartialFile::new(&download);
        p.set_hashing(false);
        p.set_hashing(true);
        p.open(&store, None, None, None).expect("open");
        p.append(&body).expect("append");
        assert_eq!(p.sha256(), Some(hex_sha256(&body)));
    }
}
