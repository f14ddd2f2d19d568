//! Response bodies for large cached files: positional reads of `CHUNK` bytes on the blocking
//! pool, with the next chunk already being read while the current one is sent.
//!
//! actix-files reads 64 KiB per blocking-pool hop, which caps a single client far below the
//! disk and the network; this keeps its header logic (Range, conditional requests, HEAD)
//! and replaces only the body.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use tokio::task::JoinHandle;

/// Bytes per read.
pub const CHUNK: u64 = 512 * 1024;

struct State {
    file: Arc<File>,
    pos: u64,
    end: u64,
    ahead: Option<JoinHandle<io::Result<Bytes>>>,
}

fn read_at(file: Arc<File>, pos: u64, len: u64) -> JoinHandle<io::Result<Bytes>> {
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; len as usize];
        let mut filled = 0usize;
        while filled < buf.len() {
            let n = file.read_at(&mut buf[filled..], pos + filled as u64)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "cached file shrank while being served",
                ));
            }
            filled += n;
        }
        Ok(Bytes::from(buf))
    })
}

impl State {
    fn next_read(&mut self) -> Option<JoinHandle<io::Result<Bytes>>> {
        if self.pos >= self.end {
            return None;
        }
        let len = CHUNK.min(self.end - self.pos);
        let h = read_at(self.file.clone(), self.pos, len);
        self.pos += len;
        Some(h)
    }
}

/// Bytes `[offset, offset + len)` of `file`.
pub fn file_range(file: File, offset: u64, len: u64) -> impl Stream<Item = io::Result<Bytes>> {
    let mut st = State {
        file: Arc::new(file),
        pos: offset,
        end: offset.saturating_add(len),
        ahead: None,
    };
    st.ahead = st.next_read();
    futures::stream::unfold(Some(st), |st| async move {
        let mut st = st?;
        let current = st.ahead.take()?;
        // Start the next read before handing this chunk over.
        st.ahead = st.next_read();
        match current.await {
            Ok(Ok(b)) => Some((Ok(b), Some(st))),
            Ok(Err(e)) => Some((Err(e), None)),
            Err(e) => Some((Err(io::Error::other(e)), None)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use std::io::Write;

    #[tokio::test]
    async fn reads_exactly_the_range() {
        let mut f = tempfile::tempfile().expect("tmp");
        let data: Vec<u8> = (0..(3 * CHUNK as usize + 123))
            .map(|i| (i % 251) as u8)
            .collect();
        f.write_all(&data).expect("write");
        for (off, len) in [
            (0u64, data.len() as u64),
            (5, 100),
            (CHUNK - 1, CHUNK + 2),
            (10, 0),
        ] {
            let file = f.try_clone().expect("clone");
            let chunks: Vec<_> = file_range(file, off, len).collect().await;
            let got: Vec<u8> = chunks
                .into_iter()
                .flat_map(|c| c.expect("chunk").to_vec())
                .collect();
            assert_eq!(got, data[off as usize..(off + len) as usize]);
        }
    }

    #[tokio::test]
    async fn a_short_file_is_an_error() {
        let mut f = tempfile::tempfile().expect("tmp");
        f.write_all(b"abc").expect("write");
        let chunks: Vec<_> = file_range(f, 0, 10).collect().await;
        assert!(chunks.iter().any(|c| c.is_err()));
    }
}
