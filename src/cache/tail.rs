//! The body a client reads from a download in flight: bytes `[start, end)` of the partial file,
//! read with positional reads as soon as the fetch task reports them written.
//!
//! The stream waits on the download's watch channel for progress (no polling of the file
//! size), ends cleanly only when the download is `Done` and every requested byte was sent, and
//! yields an error — which makes actix abort the connection, so a client never mistakes a
//! short body for a complete one — when the download fails or stalls past `stall_limit`.
//! The final byte of a known-length body is only sent once the download is verified (length,
//! and sha256 when the repo db knows it), so a file that fails verification is always a short
//! body to every client; the fsync and rename that publish it do not delay clients.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::sync::watch;

use crate::cache::inflight::{ClientGuard, Phase, Progress};

/// Largest chunk handed to actix in one piece.
const MAX_CHUNK: u64 = 256 * 1024;

/// What one tailing client reads.
pub struct Tail {
    file: Arc<File>,
    rx: watch::Receiver<Progress>,
    pos: u64,
    /// Exclusive end; `None` = until the download is done.
    end: Option<u64>,
    stall_limit: Duration,
    finished: bool,
    _client: Option<ClientGuard>,
}

impl Tail {
    pub fn new(
        file: Arc<File>,
        rx: watch::Receiver<Progress>,
        start: u64,
        end: Option<u64>,
        stall_limit: Duration,
        client: Option<ClientGuard>,
    ) -> Tail {
        Tail {
            file,
            rx,
            pos: start,
            end,
            stall_limit,
            finished: false,
            _client: client,
        }
    }

    /// The next chunk: `Ok(Some)` bytes, `Ok(None)` clean end, `Err` abort.
    pub async fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        let Some((pos, len)) = self.next_range().await? else {
            return Ok(None);
        };
        let want = len.min(MAX_CHUNK) as usize;
        let mut buf = vec![0u8; want];
        let n = self.file.read_at(&mut buf, pos)?;
        if n == 0 {
            return self.abort(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "partial file shorter than reported",
            ));
        }
        buf.truncate(n);
        self.consumed(n as u64);
        Ok(Some(Bytes::from(buf)))
    }

    /// The partial file (for `sendfile` of the ranges [`Tail::next_range`] gives).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Wait until bytes may be sent: `Ok(Some((offset, length)))` of the partial file,
    /// `Ok(None)` clean end, `Err` abort. Tell [`Tail::consumed`] how many were sent.
    pub async fn next_range(&mut self) -> io::Result<Option<(u64, u64)>> {
        if self.finished {
            return Ok(None);
        }
        loop {
            let progress = self.rx.borrow_and_update().clone();
            let (done, total) = match &progress.phase {
                Phase::Done(m) => (true, m.total),
                // Verified: complete and correct, only the fsync + rename are left.
                Phase::Streaming(m) => (progress.verified, m.total),
                Phase::Connecting => (false, None),
                Phase::Failed(reason) => {
                    return self.abort(io::Error::other(format!(
                        "upstream download failed: {reason}"
                    )))
                }
                Phase::NotFound | Phase::NotModified => {
                    return self.abort(io::Error::other("download ended without a body"))
                }
            };
            if self.end.is_some_and(|end| self.pos >= end) {
                self.finished = true;
                return Ok(None);
            }
            let readable = match self.end {
                // The file's last byte is held back until the download is verified: a
                // client that got every byte would take a failed verification for success.
                Some(end) if !done && total == Some(end) && progress.written >= end => end - 1,
                Some(end) => progress.written.min(end),
                None => progress.written,
            };
            if self.pos < readable {
                return Ok(Some((self.pos, readable - self.pos)));
            }
            if done {
                if self.end.is_some_and(|end| self.pos < end) {
                    return self.abort(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file ended before the requested range",
                    ));
                }
                self.finished = true;
                return Ok(None);
            }
            match tokio::time::timeout(self.stall_limit, self.rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return self.abort(io::Error::other("download task went away")),
                Err(_) => {
                    return self.abort(io::Error::new(io::ErrorKind::TimedOut, "download stalled"))
                }
            }
        }
    }

    /// `n` bytes from the range [`Tail::next_range`] gave were sent.
    pub fn consumed(&mut self, n: u64) {
        self.pos += n;
    }

    fn abort<T>(&mut self, e: io::Error) -> io::Result<Option<T>> {
        self.finished = true;
        Err(e)
    }

    /// As a `Stream` for an actix response body.
    pub fn into_stream(self) -> impl Stream<Item = io::Result<Bytes>> {
        futures::stream::unfold(self, |mut tail| async move {
            match tail.next_chunk().await {
                Ok(Some(b)) => Some((Ok(b), tail)),
                Ok(None) => None,
                Err(e) => Some((Err(e), tail)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::inflight::{BodyMeta, Failure};
    use std::io::Write;

    fn setup() -> (watch::Sender<Progress>, Arc<File>, tempfile::NamedTempFile) {
        let tmp = tempfile::NamedTempFile::new().expect("tmp");
        let file = Arc::new(tmp.reopen().expect("reopen"));
        let (tx, _) = watch::channel(Progress {
            phase: Phase::Connecting,
            written: 0,
            verified: false,
        });
        (tx, file, tmp)
    }

    fn meta() -> Arc<BodyMeta> {
        Arc::new(BodyMeta {
            total: Some(10),
            last_modified: None,
        })
    }

    #[tokio::test]
    async fn follows_writer_and_ends_on_done() {
        let (tx, file, mut tmp) = setup();
        let mut tail = Tail::new(file, tx.subscribe(), 0, None, Duration::from_secs(5), None);
        let writer = async {
            tmp.write_all(b"hello").expect("w");
            tx.send_replace(Progress {
                phase: Phase::Streaming(meta()),
                written: 5,
                verified: false,
            });
            tokio::task::yield_now().await;
            tmp.write_all(b"world").expect("w");
            tx.send_modify(|p| p.written = 10);
            tokio::task::yield_now().await;
            tx.send_modify(|p| p.phase = Phase::Done(meta()));
        };
        let reader = async {
            let mut got = Vec::new();
            while let Some(b) = tail.next_chunk().await.expect("no error") {
                got.extend_from_slice(&b);
            }
            got
        };
        let ((), got) = tokio::join!(writer, reader);
        assert_eq!(got, b"helloworld");
    }

    #[tokio::test]
    async fn range_start_waits_for_bytes_and_stops_at_end() {
        let (tx, file, mut tmp) = setup();
        tmp.write_all(b"0123456789").expect("w");
        tx.send_replace(Progress {
            phase: Phase::Streaming(meta()),
            written: 3,
            verified: false,
        });
        let mut tail = Tail::new(
            file,
            tx.subscribe(),
            4,
            Some(7),
            Duration::from_secs(5),
            None,
        );
        let writer = async {
            tokio::task::yield_now().await;
            tx.send_modify(|p| p.written = 10);
        };
        let reader = async {
            let mut got = Vec::new();
            while let Some(b) = tail.next_chunk().await.expect("no error") {
                got.extend_from_slice(&b);
            }
            got
        };
        let ((), got) = tokio::join!(writer, reader);
        assert_eq!(got, b"456");
    }

    #[tokio::test]
    async fn failure_is_an_error_not_a_clean_end() {
        let (tx, file, mut tmp) = setup();
        tmp.write_all(b"abc").expect("w");
        tx.send_replace(Progress {
            phase: Phase::Streaming(meta()),
            written: 3,
            verified: false,
        });
        let mut tail = Tail::new(file, tx.subscribe(), 0, None, Duration::from_secs(5), None);
        assert_eq!(
            tail.next_chunk().await.expect("bytes").as_deref(),
            Some(&b"abc"[..])
        );
        tx.send_modify(|p| p.phase = Phase::Failed(Failure::upstream("mirror died")));
        assert!(tail.next_chunk().await.is_err());
        assert!(tail.next_chunk().await.expect("then nothing").is_none());
    }

    #[tokio::test]
    async fn last_byte_waits_for_verification() {
        let (tx, file, mut tmp) = setup();
        tmp.write_all(b"0123456789").expect("w");
        tx.send_replace(Progress {
            phase: Phase::Streaming(meta()),
            written: 10,
            verified: false,
        });
        let mut tail = Tail::new(
            file,
            tx.subscribe(),
            0,
            Some(10),
            Duration::from_secs(5),
            None,
        );
        assert_eq!(
            tail.next_chunk().await.expect("bytes").as_deref(),
            Some(&b"012345678"[..])
        );
        tx.send_modify(|p| p.phase = Phase::Failed(Failure::upstream("sha256 mismatch")));
        assert!(
            tail.next_chunk().await.is_err(),
            "the last byte is never sent for a bad file"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stall_limit_aborts() {
        let (tx, file, _tmp) = setup();
        tx.send_replace(Progress {
            phase: Phase::Streaming(meta()),
            written: 0,
            verified: false,
        });
        let mut tail = Tail::new(file, tx.subscribe(), 0, None, Duration::from_secs(30), None);
        let e = tail.next_chunk().await.expect_err("stalled");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
