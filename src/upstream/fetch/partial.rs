//! The file a download is written into (in `<cache_dir>/.partial/`): bytes appended in order,
//! hashed (sha256) on the way, and announced to the clients tailing it.
//!
//! Clients hear of progress in steps, not per socket read (a read is often a few KiB: waking
//! every tailing client for each would cost more than sending the bytes): the first bytes at
//! once, then every [`NOTIFY_BYTES`], the rest at most [`NOTIFY_DELAY`] later (the body loop
//! asks [`PartialFile::notify_due`]). Dropping the file (or [`PartialFile::discard`]) deletes
//! it: only [`PartialFile::finish`] hands it on for publishing.

use std::io::Write;
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
    hasher: Sha256,
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
            hasher: Sha256::new(),
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

    /// Append `bytes` (hashed, announced in steps).
    pub fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("no partial file"))?;
        // A write into the page cache on the fetch task, as intended (a blocking-pool hop per
        // socket read would cost more); the fsync comes at publish, off the async worker.
        file.as_file_mut().write_all(bytes)?;
        self.hasher.update(bytes);
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

    /// sha256 (hex) of the bytes written so far.
    pub fn sha256(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
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
