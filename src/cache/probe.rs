//! Is the cache writable? A probe for the health check (`GET /_pkgstash/health`): create a
//! file in `.partial/` (where every download is written), write a byte, remove it — the same
//! operations a download starts with, so a read-only remount, a full disk or lost permissions
//! fail it. No fsync, no directory walk. The answer is kept [`FRESH_FOR`], so a balancer
//! probing every second costs one probe per few seconds, whatever the number of balancers.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How long a probe's answer is reused.
pub const FRESH_FOR: Duration = Duration::from_secs(2);

/// The cached writability probe of one directory.
#[derive(Debug)]
pub struct WriteProbe {
    dir: PathBuf,
    last: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl WriteProbe {
    /// A probe of `dir` (the cache's `.partial/`).
    pub fn new(dir: PathBuf) -> WriteProbe {
        WriteProbe {
            dir,
            last: Mutex::new(None),
        }
    }

    /// The last answer if it is fresher than [`FRESH_FOR`]: `Err` says why the directory is
    /// not writable.
    pub fn cached(&self) -> Option<Result<(), String>> {
        self.last
            .lock()
            .as_ref()
            .filter(|(at, _)| at.elapsed() < FRESH_FOR)
            .map(|(_, r)| r.clone())
    }

    /// Probe now (blocking file I/O: call it off the async workers) and keep the answer.
    pub fn probe(&self) -> Result<(), String> {
        let result = tempfile::Builder::new()
            .prefix("health-")
            .tempfile_in(&self.dir)
            .and_then(|mut f| f.write_all(b"\0"))
            .map_err(|e| format!("cannot write in {}: {e}", self.dir.display()));
        *self.last.lock() = Some((Instant::now(), result.clone()));
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writable_then_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let probe = WriteProbe::new(dir.path().join("sub"));
        assert!(probe.cached().is_none());
        assert!(
            probe.probe().is_err(),
            "a missing directory is not writable"
        );
        assert!(probe.cached().is_some_and(|r| r.is_err()));
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        assert!(probe.probe().is_ok());
        assert_eq!(probe.cached(), Some(Ok(())));
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub"))
                .expect("ls")
                .count(),
            0,
            "the probe file is removed"
        );
    }
}
