//! What a package must be — its size and sha256 in the cached repo db of its directory — found
//! *beside* its download, not before it ([`Expectation`]).
//!
//! A miss does not wait for the catalog before asking upstream: what the catalog has in memory
//! answers at once ([`crate::cache::catalog::Catalog::verification_if_parsed`]); otherwise
//! (a db not parsed yet in its current version, e.g. right after start-up) the blocking lookup
//! runs on the blocking pool while the request goes out, and the download takes its answer
//! as soon as it is there:
//! - at the response head, when the size decides something (a body of unknown length is told to
//!   clients with the db's size; a length over `max_unknown_size` is allowed only when a db
//!   lists the file): then the head waits for the answer;
//! - at every body chunk, without waiting: a db size that the declared length or the bytes
//!   written contradict ends the download, and the body is held to that size from then on;
//! - before verification, waiting: the last byte reaches no client, and nothing is published,
//!   before the body is checked against the answer.
//!
//! A malformed entry still refuses the package (issue 16's fail-closed rule): before the head
//! when the answer is there by then (a 502 naming the entry), else by aborting the download.
//! A lookup that panicked is such a refusal too, never "not listed".

use std::path::PathBuf;

use futures::FutureExt;
use tokio::task::JoinHandle;

use super::{unverifiable_if_unfinished, Expected, FetchContext};
use crate::cache::catalog::Verification;
use crate::repo::path::{FileKind, RepoPath};

/// What a download knows of what its body must be.
#[derive(Debug)]
pub(crate) enum Expectation {
    /// A db lists it: size (bytes) and sha256 the body must have.
    Known(Expected),
    /// Nothing to verify against: not a package, or no cached db lists it.
    Unknown,
    /// The catalog is being asked on the blocking pool (it may be parsing a db).
    Pending(JoinHandle<Verification>),
}

impl Expectation {
    /// What `given` says (a caller that knows, or nothing to verify).
    pub(crate) fn given(given: Option<Expected>) -> Expectation {
        given.map_or(Expectation::Unknown, Expectation::Known)
    }

    /// For a download of `path`: `given`, else the catalog's answer from memory, else a lookup
    /// started on the blocking pool. `Err`: a malformed entry lists it (the reason). Must run
    /// inside a tokio runtime.
    pub(crate) fn start(
        ctx: &FetchContext,
        path: &RepoPath,
        given: Option<Expected>,
    ) -> Result<Expectation, String> {
        if given.is_some() {
            return Ok(Expectation::given(given));
        }
        let Some((dir, name)) = lookup_target(ctx, path) else {
            return Ok(Expectation::Unknown);
        };
        if let Some(v) = ctx.catalog.verification_if_parsed(&dir, &name) {
            return settle(v);
        }
        let catalog = ctx.catalog.clone();
        Ok(Expectation::Pending(tokio::task::spawn_blocking(
            move || catalog.verification(&dir, &name),
        )))
    }

    /// The size the body must have, when known.
    pub(crate) fn size(&self) -> Option<u64> {
        self.known().map(|e| e.size)
    }

    /// What the body must be, when known.
    pub(crate) fn known(&self) -> Option<&Expected> {
        match self {
            Expectation::Known(e) => Some(e),
            _ => None,
        }
    }

    pub(crate) fn is_pending(&self) -> bool {
        matches!(self, Expectation::Pending(_))
    }

    /// May the body's sha256 be needed (known, or still being looked up)?
    pub(crate) fn wants_digest(&self) -> bool {
        !matches!(self, Expectation::Unknown)
    }

    /// Take the lookup's answer if it is there, without waiting: `Ok(true)` when it was just
    /// taken, `Err` when it refuses the package (the reason).
    pub(crate) fn poll(&mut self) -> Result<bool, String> {
        let Expectation::Pending(lookup) = self else {
            return Ok(false);
        };
        let Some(done) = lookup.now_or_never() else {
            return Ok(false);
        };
        *self = settle(unverifiable_if_unfinished(done))?;
        Ok(true)
    }

    /// Wait for the lookup's answer: `Ok(true)` when it was just taken, `Err` when it refuses
    /// the package (the reason).
    pub(crate) async fn resolve(&mut self) -> Result<bool, String> {
        let Expectation::Pending(lookup) = self else {
            return Ok(false);
        };
        let done = lookup.await;
        *self = settle(unverifiable_if_unfinished(done))?;
        Ok(true)
    }
}

/// The catalog's answer as an expectation: `Err` for a malformed entry (the reason).
fn settle(v: Verification) -> Result<Expectation, String> {
    match v {
        Verification::Known(e) => Ok(Expectation::Known(e)),
        Verification::Unknown => Ok(Expectation::Unknown),
        Verification::Malformed(why) => Err(why),
    }
}

/// The directory and file name the catalog is asked about for `path`; `None` when it is not a
/// package (nothing to look up).
pub(crate) fn lookup_target(ctx: &FetchContext, path: &RepoPath) -> Option<(PathBuf, String)> {
    if path.kind() != FileKind::Immutable {
        return None;
    }
    let dir = ctx.store.final_path(path).parent()?.to_path_buf();
    Some((dir, path.file_name().to_string()))
}

/// Why a package whose db entry is malformed (`why`) is not served: for the log and the
/// client's 502 (pacman then tries its next `Server`).
pub(crate) fn malformed_message(path: &RepoPath, why: &str) -> String {
    format!("{path}: its repo db entry is malformed ({why}); not serving it unverified")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(size: u64) -> Expected {
        Expected {
            size,
            sha256: "ab".repeat(32),
        }
    }

    #[tokio::test]
    async fn a_lookup_is_taken_when_it_ends_and_a_malformed_entry_refuses() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let mut e = Expectation::Pending(tokio::task::spawn_blocking(move || {
            rx.recv().ok();
            Verification::Known(expected(7))
        }));
        assert!(e.wants_digest());
        // Still running: nothing known, nothing waited for.
        assert_eq!(e.poll(), Ok(false));
        assert!(e.is_pending() && e.size().is_none());
        tx.send(()).expect("send");
        assert_eq!(e.resolve().await, Ok(true));
        assert_eq!(e.size(), Some(7));
        assert_eq!(e.poll(), Ok(false), "taken once");

        let mut e = Expectation::Pending(tokio::task::spawn_blocking(|| {
            Verification::Malformed("bad %CSIZE%".into())
        }));
        assert_eq!(e.resolve().await, Err("bad %CSIZE%".to_string()));

        let mut e = Expectation::Pending(tokio::task::spawn_blocking(|| Verification::Unknown));
        assert_eq!(e.resolve().await, Ok(true));
        assert!(!e.wants_digest(), "nothing to verify: no digest needed");
    }

    #[tokio::test]
    async fn a_panicked_lookup_refuses_the_package() {
        let mut e = Expectation::Pending(tokio::task::spawn_blocking(|| -> Verification {
            panic!("parser bug")
        }));
        match e.resolve().await {
            Err(why) => assert!(why.contains("panic"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
