//! One attempt of a [`Job`] on one mirror: the request (redirects followed, resuming at the
//! bytes written, or conditional when revalidating), the checks on its head, and its body
//! appended to the partial file within its bound.

use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;

use super::Job;
use crate::cache::store::StorageError;
use crate::cache::validators::Validators;
use crate::config::mirror_url::Shown;
use crate::repo::path::{FileKind, RepoPath};
use crate::upstream::fetch::admit;
use crate::upstream::fetch::head::{self, BodyPlan, Head, Known};
use crate::upstream::fetch::request::{self, Ask};
use crate::upstream::fetch::revalidate;

/// Window over which a download's rate is compared with `min_rate`.
const SLOW_WINDOW: Duration = Duration::from_secs(10);

/// How one attempt on one mirror ended.
pub(super) enum Attempt {
    Complete,
    NotModified,
    /// A 304 for another version than ours ([`Validators::confirmed_by`]): ask the same mirror
    /// again, unconditionally.
    NotOurs,
    NotFound,
    /// Under `min_rate` (bytes/s measured) while a mirror not yet tried may be faster: move
    /// on. Not a failure: no cooldown, no use of the failure budget.
    Slow(u64),
    /// The mirror failed (counts against its health); try the next one.
    Failed(String),
    /// The mirror sent a body past its bound: counts against it, and ends the download (the
    /// bytes so far are suspect, so they are not resumed elsewhere).
    Fatal(String),
    /// The file is refused by policy (`max_unknown_size`): ends the download, no mirror blamed.
    Refused(String),
    /// The cache could not store the body: ends the download, no mirror blamed, no retry.
    Storage(StorageError),
}

impl Job<'_> {
    /// One request to mirror `i` (redirects followed), resuming at the bytes written.
    pub(super) async fn attempt(&mut self, i: usize, path: &RepoPath) -> Attempt {
        let mirror = &self.pool.mirrors[i].url;
        let written = self.partial.written();
        let resume = match &self.resume_at {
            Some((m, url)) if *m == i && written > 0 => Some(url.to_string()),
            _ => None,
        };
        let from_base = resume.is_none();
        let start = resume.unwrap_or_else(|| self.pool.url(i, path));
        let conditional = self
            .conditional
            .as_ref()
            .map(Validators::conditional_headers)
            .unwrap_or_default();
        let ask = Ask {
            url: &start,
            base: mirror.base(),
            credentials: mirror.credentials(),
            from: written,
            conditional: &conditional,
            timeout: self.ctx.timeout,
        };
        let answer = match request::send(&self.client, &ask).await {
            Ok(a) => a,
            Err(e) => {
                self.forget_resume(from_base);
                return Attempt::Failed(e);
            }
        };
        if from_base {
            let target = answer
                .redirected
                .then(|| request::shown_base(&answer.url, &path.rel_url_encoded()));
            self.pool.record_redirect(i, target);
        }
        let request::Answer {
            response: mut resp,
            url,
            redirected,
        } = answer;
        let name = path.file_name();
        let known = Known {
            written,
            conditional: self.conditional.is_some(),
            first_total: self.partial.total(),
            expected_size: self.expected.as_ref().map(|e| e.size),
            kind: path.kind(),
            never_empty: admit::never_empty(path),
            max_unknown_size: self.ctx.max_unknown_size,
        };
        let plan = match head::check(resp.status(), resp.version(), resp.headers(), &known) {
            Head::Body(plan) => plan,
            Head::NotModified => return self.not_modified(resp.headers()),
            Head::NotFound => return Attempt::NotFound,
            Head::Failed(e) => {
                self.forget_resume(from_base);
                return Attempt::Failed(e);
            }
            Head::Refused(e) => return Attempt::Refused(format!("{name}: {e}")),
        };
        if !self.partial.is_open() {
            // The mirror's current version is the truth, whatever its date: a repaired file
            // may well be older than the broken one it replaces.
            self.received = Validators::from_headers(resp.headers());
            let last_modified = self.served_last_modified(plan.last_modified, plan.total);
            // Without a length from upstream (a chunked body), the repo db's size is the
            // length clients are told (and held to: the body must end exactly there), so a
            // Range on the download in flight gets its 206 (issue 15).
            let known = plan.total.or(self.expected.as_ref().map(|e| e.size));
            let opened = self
                .partial
                .open(&self.ctx.store, known, known, last_modified);
            if let Err((op, e)) = opened {
                return self.storage(op, e);
            }
        }
        if redirected || !from_base {
            log::debug!("{path}: body from {} ({mirror})", Shown(url.clone()));
        }
        let outcome = self.body(i, path, &mut resp, plan).await;
        if self.partial.written() > written {
            self.via = (redirected || !from_base).then(|| url.clone());
            self.resume_at = Some((i, url));
        } else {
            self.forget_resume(from_base);
        }
        outcome
    }

    /// An attempt from a remembered URL failed: the next one on that mirror starts at its base.
    fn forget_resume(&mut self, from_base: bool) {
        if !from_base {
            self.resume_at = None;
        }
    }

    /// A 304 to our conditional request: the cached copy is current only if the 304 agrees
    /// with the validators sent; otherwise it was about another version (a server comparing
    /// dates with "earlier or equal"), and the next attempt asks unconditionally.
    fn not_modified(&mut self, headers: &awc::http::header::HeaderMap) -> Attempt {
        match &self.conditional {
            Some(v) if v.confirmed_by(headers) => Attempt::NotModified,
            _ => {
                log::info!(
                    "{}: a 304 for another version than ours; asking again unconditionally",
                    self.download.path
                );
                self.conditional = None;
                Attempt::NotOurs
            }
        }
    }

    /// The `Last-Modified` clients get for this body ([`revalidate::served_last_modified`]).
    fn served_last_modified(
        &self,
        lm: Option<SystemTime>,
        total: Option<u64>,
    ) -> Option<SystemTime> {
        let path = &self.download.path;
        let cached = match path.kind() {
            FileKind::Mutable => std::fs::metadata(self.ctx.store.final_path(path)).ok(),
            FileKind::Immutable => None,
        };
        let served = revalidate::served_last_modified(lm, total, cached.as_ref());
        if served != lm {
            log::info!(
                "{path}: the mirror's new version is not dated after the cached one; served as of {}",
                served.map(httpdate::fmt_http_date).unwrap_or_default()
            );
        }
        served
    }

    /// Receive the body of an accepted response.
    async fn body(
        &mut self,
        i: usize,
        path: &RepoPath,
        resp: &mut awc::ClientResponse,
        plan: BodyPlan,
    ) -> Attempt {
        let timeout = self.ctx.timeout;
        let mut skip = plan.skip;
        let total = plan.total.or(self.partial.total());
        let (bound, over) = head::bound(
            self.expected.as_ref().map(|e| e.size),
            total,
            self.ctx.max_unknown_size,
        );
        let mut window = RateWindow::new();
        loop {
            // Bytes clients have not heard of yet are announced at the latest NOTIFY_DELAY
            // after the last announcement, also while upstream is quiet.
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
            let chunk = match next {
                Err(_) => {
                    return Attempt::Failed(format!(
                        "stalled: no data for {}",
                        humantime::format_duration(timeout)
                    ))
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => return Attempt::Failed(format!("body error: {e}")),
                Ok(Some(Ok(c))) => c,
            };
            let mut chunk = &chunk[..];
            if skip > 0 {
                let n = (skip as usize).min(chunk.len());
                let offset = self.partial.written() - skip;
                match self.partial.matches(offset, &chunk[..n]) {
                    Ok(true) => {}
                    Ok(false) => {
                        return Attempt::Failed(
                            "mirror ignored Range and its bytes differ from the first mirror's"
                                .into(),
                        )
                    }
                    Err(e) => return self.storage("read partial file", e),
                }
                skip -= n as u64;
                chunk = &chunk[n..];
                if chunk.is_empty() {
                    continue;
                }
            }
            if self.partial.written() + chunk.len() as u64 > bound {
                return Attempt::Fatal(over);
            }
            if let Err(e) = self.partial.append(chunk) {
                return self.storage("write partial file", e);
            }
            self.pool.add_bytes(i, chunk.len() as u64);
            self.ctx
                .metrics
                .upstream_bytes
                .with_label_values(&[&self.pool.upstream])
                .inc_by(chunk.len() as u64);
            if let (Some(min), Some(rate)) = (self.ctx.min_rate, window.add(chunk.len())) {
                if rate < min && self.faster_candidate(i).is_some() {
                    return Attempt::Slow(rate);
                }
            }
        }
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
