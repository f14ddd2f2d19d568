//! A build step's output, into the build's log as it comes: the step's stdout and stderr are
//! one end of a socket pair (one stream, so their lines keep their order); a task appends what
//! arrives to the log file and bumps a [`LogSignal`], which wakes whoever follows the log
//! (`GET api/aur/builds/<id>/log` as Server-Sent Events) — nobody polls the file.

use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;

use super::BuildError;

/// Bumped each time build output is appended to a log (the value is a counter).
pub type LogSignal = Arc<tokio::sync::watch::Sender<u64>>;

/// How long the copy may go on after the step ended (output still buffered in the socket, or a
/// straggler of the step that kept it open): then it is dropped.
const DRAIN: Duration = Duration::from_secs(5);

/// Tell log followers something changed.
pub fn signal(s: &LogSignal) {
    s.send_modify(|n| *n = n.wrapping_add(1));
}

/// The task copying a step's output into its log.
pub(super) struct Copying(tokio::task::JoinHandle<()>);

/// A step's stdout and stderr (the same stream), and the copy of what it writes there.
pub(super) struct Output {
    pub stdout: Stdio,
    pub stderr: Stdio,
    pub copying: Copying,
}

impl Output {
    /// Start copying into `log` (appended), bumping `signal` after every write.
    pub(super) fn to_log(log: &Path, signal: &LogSignal) -> Result<Output, BuildError> {
        let setup = |what: &str, e: std::io::Error| BuildError::Setup(format!("log {what}: {e}"));
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(log)
            .map_err(|e| BuildError::Setup(format!("cannot open log {}: {e}", log.display())))?;
        let (theirs, ours) =
            std::os::unix::net::UnixStream::pair().map_err(|e| setup("socket", e))?;
        ours.set_nonblocking(true).map_err(|e| setup("socket", e))?;
        let ours = tokio::net::UnixStream::from_std(ours).map_err(|e| setup("socket", e))?;
        let stderr = theirs.try_clone().map_err(|e| setup("socket", e))?;
        let copy = actix_web::rt::spawn(copy(ours, file, signal.clone()));
        Ok(Output {
            stdout: Stdio::from(OwnedFd::from(theirs)),
            stderr: Stdio::from(OwnedFd::from(stderr)),
            copying: Copying(copy),
        })
    }
}

impl Copying {
    /// The step ended: let the copy finish what is buffered (at most [`DRAIN`]).
    pub(super) async fn finish(self) {
        let mut copy = self.0;
        if tokio::time::timeout(DRAIN, &mut copy).await.is_err() {
            copy.abort();
        }
    }
}

/// Append everything from `from` to `log` until end of stream (every writer closed).
async fn copy(mut from: tokio::net::UnixStream, mut log: std::fs::File, sig: LogSignal) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                // A page-cache append of a small chunk, as for a partial file.
                if let Err(e) = log.write_all(&buf[..n]) {
                    log::warn!("aur: cannot write the build log: {e}");
                    break;
                }
                signal(&sig);
            }
        }
    }
    signal(&sig);
}
