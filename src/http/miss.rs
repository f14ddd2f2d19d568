//! The miss logic both front ends share — the mirror handler ([`crate::http::mirror`]) and the
//! sendfile fast path ([`crate::http::conn::fastpath`]) — so a miss is the same whichever
//! side answers it:
//! - which requests are packages of a mirrored upstream ([`is_mirrored_package`]: the only
//!   ones the fast path takes);
//! - joining the download of a file in flight or starting it, and how the request counts
//!   ([`join_or_start`]: [`Outcome::Joined`] or [`Outcome::Miss`]);
//! - waiting for upstream's first answer ([`wait_answered`], within every mirror's head
//!   timeout plus slack), and how long a client tailing a download waits for its next bytes
//!   ([`tail_stall_limit`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::cache::inflight::{Download, Progress};
use crate::http::error::ApiError;
use crate::metrics::Outcome;
use crate::repo::path::{FileKind, RepoPath};
use crate::state::AppState;
use crate::upstream::fetch::Role;

/// Is `path` a package (or signature) of a mirrored upstream, cached forever once
/// downloaded? Hits on exactly these may be answered by [`crate::http::conn::fastpath`].
pub fn is_mirrored_package(state: &AppState, path: &RepoPath) -> bool {
    path.kind() == FileKind::Immutable
        && state.repos.get(path.upstream()).is_none()
        && state.pools.get(path.upstream()).is_some()
}

/// Join the download of `path` in flight, or start it (`needed` decides, under the registry
/// lock, whether a download is still needed): the download and how the request counts.
/// `None`: not needed (the file was published meanwhile).
pub fn join_or_start(
    state: &AppState,
    path: &RepoPath,
    if_modified_since: Option<SystemTime>,
    needed: impl FnOnce() -> bool,
) -> Option<(Arc<Download>, Outcome)> {
    let (download, role) = state
        .fetcher
        .join_or_start(path, if_modified_since, None, needed)?;
    let outcome = match role {
        Role::Joined => Outcome::Joined,
        Role::Started => Outcome::Miss,
    };
    Some((download, outcome))
}

/// Wait (within [`answer_limit`]) until upstream has answered `download`: its progress then,
/// and a receiver of what follows. `Err`: 502 when the download task went away, 504 past the
/// limit.
pub async fn wait_answered(
    state: &AppState,
    path: &RepoPath,
    download: &Download,
) -> Result<(Progress, watch::Receiver<Progress>), ApiError> {
    let mut rx = download.subscribe();
    let limit = answer_limit(state, path);
    let progress = match tokio::time::timeout(limit, rx.wait_for(|p| p.answered())).await {
        Ok(Ok(p)) => p.clone(),
        Ok(Err(_)) => return Err(ApiError::Upstream("download task went away".into())),
        Err(_) => return Err(ApiError::UpstreamTimeout),
    };
    Ok((progress, rx))
}

/// How long a client tailing a download waits for its next bytes before giving up: four
/// `upstream_timeout`s (a mirror stalling, then the next ones trying) plus 30 s.
pub fn tail_stall_limit(state: &AppState) -> Duration {
    state.cfg.upstream_timeout * 4 + Duration::from_secs(30)
}

/// How long a client waits for upstream's first answer: every mirror's head timeout, plus slack.
fn answer_limit(state: &AppState, path: &RepoPath) -> Duration {
    let mirrors = state
        .pools
        .get(path.upstream())
        .map(|p| p.mirrors.len())
        .unwrap_or(1) as u32;
    state.cfg.upstream_timeout * (mirrors + 1) + Duration::from_secs(5)
}
