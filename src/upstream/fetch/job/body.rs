//! The download loop of one [`Attempt`]: an accepted response's body appended to the partial
//! file — past the bytes a mirror that ignored our `Range` sends again (they must equal ours),
//! never past the body's bound ([`head::bound`]), its rate measured against `min_rate` — then
//! the checks on how the body ended (its announced length, [`admit::check_length`]).

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;

use super::attempt::Attempt;
use super::Job;
use crate::repo::path::RepoPath;
use crate::upstream::fetch::admit;
use crate::upstream::fetch::head::{self, BodyPlan};

/// Window over which a download's rate is compared with `min_rate`.
const SLOW_WINDOW: Duration = Duration::from_secs(10);

/// Where a body may go: past `bound` bytes it is the mirror's fault (`over` says so).
struct Bound {
    bound: u64,
    over: String,
}

impl Job<'_> {
    /// Receive the body of an accepted response from mirror `i`.
    pub(super) async fn body(
        &mut self,
        i: usize,
        path: &RepoPath,
        resp: &mut awc::ClientResponse,
        plan: BodyPlan,
    ) -> Attempt {
        let mut skip = plan.skip;
        let total = plan.total.or(self.partial.total());
        let (bound, over) = head::bound(
            self.expected.as_ref().map(|e| e.size),
            total,
            self.ctx.max_unknown_size,
        );
        let bound = Bound { bound, over };
        let mut window = RateWindow::new();
        loop {
            let chunk = match self.next_chunk(resp).await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(failed) => return failed,
            };
            let new = match self.past_resent(&mut skip, &chunk) {
                Ok(Some(new)) => new,
                Ok(None) => continue,
                Err(failed) => return failed,
            };
            if let Some(end) = self.keep(i, new, &bound, &mut window) {
                return end;
            }
        }
        self.ended(path, skip, total)
    }

    /// The next chunk of `resp`'s body (`None`: it ended), within the upstream timeout. Bytes
    /// clients have not heard of yet are announced at the latest [`crate::upstream::fetch::partial::NOTIFY_DELAY`]
    /// after the last announcement, also while upstream is quiet.
    async fn next_chunk(
        &mut self,
        resp: &mut awc::ClientResponse,
    ) -> Result<Option<Bytes>, Attempt> {
        let timeout = self.ctx.timeout;
        let next = match self.partial.notify_due() {
            Some(due) => match tokio::time::timeout_at(due.into(), resp.next()).await {
                Ok(c) => Ok(c),
                Err(_) => {
                    self.partial.notify();
                    tokio::time::timeout(timeout, resp.next()).await
                }
            },
            None => tokio::time::timeout(timeout, resp.next()).await,
        };
        match next {
            Err(_) => Err(Attempt::Failed(format!(
                "stalled: no data for {}",
                humantime::format_duration(timeout)
            ))),
            Ok(None) => Ok(None),
            Ok(Some(Err(e))) => Err(Attempt::Failed(format!("body error: {e}"))),
            Ok(Some(Ok(c))) => Ok(Some(c)),
        }
    }

    /// The part of `chunk` that is new: while `skip` bytes already written are sent again (a
    /// `200` to a `Range` request), they are compared with ours, not kept. `None`: nothing
    /// new in this chunk.
    fn past_resent<'c>(
        &self,
        skip: &mut u64,
        chunk: &'c [u8],
    ) -> Result<Option<&'c [u8]>, Attempt> {
        if *skip == 0 {
            return Ok(Some(chunk));
        }
        let n = (*skip as usize).min(chunk.len());
        let offset = self.partial.written() - *skip;
        match self.partial.matches(offset, &chunk[..n]) {
            Ok(true) => {}
            Ok(false) => {
                return Err(Attempt::Failed(
                    "mirror ignored Range and its bytes differ from the first mirror's".into(),
                ))
            }
            Err(e) => return Err(self.storage("read partial file", e)),
        }
        *skip -= n as u64;
        let rest = &chunk[n..];
        Ok((!rest.is_empty()).then_some(rest))
    }

    /// Append `new` bytes from mirror `i` within `bound`, count them, and measure the rate in
    /// `window`: `Some` ends the attempt (past the bound, a storage error, too slow).
    fn keep(
        &mut self,
        i: usize,
        new: &[u8],
        bound: &Bound,
        window: &mut RateWindow,
    ) -> Option<Attempt> {
        if self.partial.written() + new.len() as u64 > bound.bound {
            return Some(Attempt::Fatal(bound.over.clone()));
        }
        if let Err(e) = self.partial.append(new) {
            return Some(self.storage("write partial file", e));
        }
        self.pool.add_bytes(i, new.len() as u64);
        self.ctx
            .metrics
            .fetched(&self.pool.upstream, new.len() as u64);
        if let (Some(min), Some(rate)) = (self.ctx.min_rate, window.add(new.len())) {
            if rate < min && self.faster_candidate(i).is_some() {
                return Some(Attempt::Slow(rate));
            }
        }
        None
    }

    /// The checks once the body ended: nothing still owed of the bytes sent again (`skip`),
    /// the announced `total` reached, and the length rules of [`admit::check_length`].
    fn ended(&self, path: &RepoPath, skip: u64, total: Option<u64>) -> Attempt {
        if skip > 0 {
            return Attempt::Failed("body shorter than what was already received".into());
        }
        let written = self.partial.written();
        if total.is_some_and(|t| written < t) {
            return Attempt::Failed(format!(
                "body ended early at {written} of {} bytes",
                total.unwrap_or_default()
            ));
        }
        if let Err(why) = admit::check_length(path, written, total.is_some()) {
            return Attempt::Failed(why);
        }
        Attempt::Complete
    }
}

/// A download's rate, measured over windows of [`SLOW_WINDOW`].
struct RateWindow {
    start: Instant,
    bytes: u64,
}

impl RateWindow {
    fn new() -> RateWindow {
        RateWindow {
            start: Instant::now(),
            bytes: 0,
        }
    }

    /// Count `n` bytes; at the end of a window, its rate (bytes/s), and a new window starts.
    fn add(&mut self, n: usize) -> Option<u64> {
        self.bytes += n as u64;
        let elapsed = self.start.elapsed();
        if elapsed < SLOW_WINDOW {
            return None;
        }
        let rate = (self.bytes as f64 / elapsed.as_secs_f64()) as u64;
        *self = RateWindow::new();
        Some(rate)
    }
}
