//! Limits for reading untrusted tar archives — repo dbs from mirrors, uploaded packages — with
//! the `tar` crate.
//!
//! The `tar` crate reads some members whole into memory before the caller sees the member
//! they describe: GNU long names and long link names (`L`, `K`) and PAX extension headers
//! (`x`). A hostile archive with a 4 GiB PAX header would make that a 4 GiB allocation, and an
//! archive of a million members or of terabytes of zeros costs minutes of CPU. [`Bounded`]
//! wraps the (decompressed) stream the `tar` crate reads and follows the archive's block
//! structure as the bytes pass (POSIX.1-2008 `pax` / GNU tar format: 512-byte header blocks,
//! data padded to 512 bytes, PAX `size` overriding the next header's, old-GNU sparse extension
//! blocks), and fails the read with [`std::io::ErrorKind::InvalidData`] as soon as
//! - more than [`Limits::max_bytes`] bytes were read,
//! - the archive holds more than [`Limits::max_members`] members (extension headers not
//!   counted),
//! - an extension header is larger than [`Limits::max_extension`] bytes.
//!
//! It only observes: the bytes the `tar` crate gets are the stream's, unchanged.

use std::io::{self, Read};

/// Tar block size.
const BLOCK: usize = 512;

/// What a tar stream may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of the (decompressed) tar stream.
    pub max_bytes: u64,
    /// Members (files, directories, links; not the extension headers describing them).
    pub max_members: u64,
    /// Bytes of one extension header (GNU long name/link, PAX), each read whole into memory.
    pub max_extension: u64,
}

/// Where the observer stands in the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting a header block.
    Header,
    /// Old-GNU sparse extension blocks, then `data` bytes of member data (padded).
    SparseExt { data: u64 },
    /// `left` bytes of member data (with padding) to pass.
    Data { left: u64 },
    /// An all-zero block ended the archive: the `tar` crate reads no further headers.
    Ended,
}

/// A reader of a tar stream that enforces [`Limits`] (see the module docs).
pub struct Bounded<R> {
    inner: R,
    limits: Limits,
    read: u64,
    members: u64,
    state: State,
    block: Box<[u8; BLOCK]>,
    fill: usize,
    /// A PAX extension header's records being collected, and how many bytes it has.
    pax: Option<(Vec<u8>, u64)>,
    /// `size` from the last PAX header: the next member's data size.
    pax_size: Option<u64>,
}

fn limit_error(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

impl<R: Read> Bounded<R> {
    pub fn new(inner: R, limits: Limits) -> Bounded<R> {
        Bounded {
            inner,
            limits,
            read: 0,
            members: 0,
            state: State::Header,
            block: Box::new([0; BLOCK]),
            fill: 0,
            pax: None,
            pax_size: None,
        }
    }

    /// Follow the archive structure over `buf`, the next bytes of the stream.
    fn observe(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.state {
                State::Ended => return Ok(()),
                State::Header | State::SparseExt { .. } => {
                    let n = (BLOCK - self.fill).min(buf.len());
                    self.block[self.fill..self.fill + n].copy_from_slice(&buf[..n]);
                    self.fill += n;
                    buf = &buf[n..];
                    if self.fill == BLOCK {
                        self.fill = 0;
                        self.block_complete()?;
                    }
                }
                State::Data { left } => {
                    let n = left.min(buf.len() as u64) as usize;
                    if let Some((records, want)) = self.pax.as_mut() {
                        let room = (*want as usize).saturating_sub(records.len()).min(n);
                        records.extend_from_slice(&buf[..room]);
                    }
                    buf = &buf[n..];
                    self.state = State::Data {
                        left: left - n as u64,
                    };
                    if left == n as u64 {
                        self.data_complete();
                    }
                }
            }
        }
        Ok(())
    }

    /// A whole block was collected in `State::Header` or `State::SparseExt`.
    fn block_complete(&mut self) -> io::Result<()> {
        if let State::SparseExt { data } = self.state {
            // `isextended` of a `GnuExtSparseHeader` is its byte 504.
            if self.block[504] == 0 {
                self.start_data(data);
            }
            return Ok(());
        }
        if self.block.iter().all(|&b| b == 0) {
            self.state = State::Ended;
            return Ok(());
        }
        let header = tar::Header::from_byte_slice(&self.block[..]);
        let kind = header.entry_type();
        let mut size = header.entry_size()?;
        let is_extension = kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions();
        if is_extension {
            if size > self.limits.max_extension {
                return Err(limit_error(format!(
                    "tar extension header of {size} bytes (the limit is {})",
                    self.limits.max_extension
                )));
            }
            if kind.is_pax_local_extensions() {
                self.pax = Some((Vec::with_capacity(size as usize), size));
            }
        } else {
            self.members += 1;
            if self.members > self.limits.max_members {
                return Err(limit_error(format!(
                    "archive has more than {} members",
                    self.limits.max_members
                )));
            }
            if let Some(s) = self.pax_size.take() {
                size = s;
            }
            let sparse_ext =
                kind.is_gnu_sparse() && header.as_gnu().is_some_and(|g| g.is_extended());
            if sparse_ext {
                self.state = State::SparseExt { data: size };
                return Ok(());
            }
        }
        self.start_data(size);
        Ok(())
    }

    fn start_data(&mut self, size: u64) {
        let padded = size.div_ceil(BLOCK as u64).saturating_mul(BLOCK as u64);
        if padded == 0 {
            self.data_complete();
        } else {
            self.state = State::Data { left: padded };
        }
    }

    fn data_complete(&mut self) {
        self.state = State::Header;
        if let Some((records, _)) = self.pax.take() {
            self.pax_size = tar::PaxExtensions::new(&records)
                .flatten()
                .filter(|e| e.key_bytes() == b"size")
                .filter_map(|e| e.value().ok()?.trim().parse().ok())
                .last();
        }
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limits.max_bytes {
            return Err(limit_error(format!(
                "archive is larger than {} bytes uncompressed",
                self.limits.max_bytes
            )));
        }
        self.observe(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOMY: Limits = Limits {
        max_bytes: 1 << 30,
        max_members: 1000,
        max_extension: 64 * 1024,
    };

    fn header(path: &str, size: u64, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).expect("path");
        h.set_size(size);
        h.set_mode(0o644);
        h.set_entry_type(kind);
        h.set_cksum();
        h
    }

    /// Read every member (paths and data) of `tar` through a `Bounded` reader that hands out
    /// `chunk` bytes per read.
    fn read_all(tar: &[u8], limits: Limits, chunk: usize) -> io::Result<Vec<(String, Vec<u8>)>> {
        struct Chunked<'a>(&'a [u8], usize);
        impl Read for Chunked<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(self.1);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut archive = tar::Archive::new(Bounded::new(Chunked(tar, chunk), limits));
        let mut out = Vec::new();
        for e in archive.entries()? {
            let mut e = e?;
            let path = String::from_utf8_lossy(&e.path_bytes()).to_string();
            let mut data = Vec::new();
            e.read_to_end(&mut data)?;
            out.push((path, data));
        }
        Ok(out)
    }

    fn sample() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let long = format!("{}/desc", "a".repeat(300));
        for (path, data) in [
            ("x-1-1/desc", &b"one"[..]),
            (long.as_str(), &b"two, with a long name"[..]),
            ("y-1-1/files", &[7u8; 5000][..]),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, path, data).expect("append");
        }
        // A PAX header, as bsdtar writes for long names.
        let mut b2 = b;
        let mut h = tar::Header::new_ustar();
        h.set_size(3);
        h.set_mode(0o644);
        b2.append_pax_extensions([("path", &b"z-1-1/desc-with-a-pax-path"[..])])
            .expect("pax");
        b2.append_data(&mut h, "z", &b"pax"[..]).expect("append");
        b2.into_inner().expect("tar")
    }

    #[test]
    fn passes_real_archives_unchanged_whatever_the_read_sizes() {
        let tar = sample();
        let want = read_all(
            &tar,
            Limits {
                max_bytes: u64::MAX,
                max_members: u64::MAX,
                max_extension: u64::MAX,
            },
            1 << 20,
        )
        .expect("unbounded");
        assert_eq!(want.len(), 4);
        assert_eq!(want[3].0, "z-1-1/desc-with-a-pax-path");
        for chunk in [1, 7, 511, 512, 513, 4096] {
            assert_eq!(
                read_all(&tar, ROOMY, chunk).expect("bounded"),
                want,
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn refuses_huge_extension_headers_before_reading_them() {
        // A GNU long-name header claiming 4 GiB: the tar crate would read it whole.
        let mut tar = header("././@LongLink", 4 << 30, tar::EntryType::GNULongName)
            .as_bytes()
            .to_vec();
        tar.extend_from_slice(&[b'a'; 4096]);
        let e = read_all(&tar, ROOMY, 1 << 16).expect_err("must refuse");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(
            e.to_string()
                .contains("extension header of 4294967296 bytes"),
            "{e}"
        );
    }

    #[test]
    fn bounds_members_and_bytes_and_follows_pax_sizes() {
        let tar = sample();
        let few = Limits {
            max_members: 3,
            ..ROOMY
        };
        let e = read_all(&tar, few, 4096).expect_err("4 members");
        assert!(e.to_string().contains("more than 3 members"), "{e}");
        let small = Limits {
            max_bytes: 4096,
            ..ROOMY
        };
        let e = read_all(&tar, small, 4096).expect_err("bytes");
        assert!(e.to_string().contains("larger than 4096 bytes"), "{e}");

        // A PAX `size` overrides the ustar header's: the observer must skip the real data, or
        // it would take the data for headers (here: a member count that is too high).
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("size", &b"2048"[..])])
            .expect("pax");
        let mut h = tar::Header::new_ustar();
        h.set_path("big").expect("path");
        h.set_size(0);
        h.set_mode(0o644);
        h.set_cksum();
        let mut raw = b.into_inner().expect("tar");
        raw.truncate(raw.len() - 1024); // the end-of-archive blocks
        raw.extend_from_slice(h.as_bytes());
        // Data that looks like headers if misread.
        for i in 0..4 {
            raw.extend_from_slice(
                header(&format!("fake{i}"), 0, tar::EntryType::Regular).as_bytes(),
            );
        }
        raw.extend_from_slice(&[0u8; 1024]);
        let two = Limits {
            max_members: 1,
            ..ROOMY
        };
        let got = read_all(&raw, two, 100).expect("one member of 2048 bytes");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1.len(), 2048);
    }
}
