//! One attempt of a [`Job`] on one mirror: the request (redirects followed, resuming at the
//! bytes written, or conditional when revalidating), the checks on its head, the partial file
//! opened for a first body; then its body is received ([`super::body`]).

use std::time::SystemTime;

use super::Job;
use crate::cache::store::StorageError;
use crate::cache::validators::Validators;
use crate::config::mirror_url::Shown;
use crate::repo::path::{FileKind, RepoPath};
use crate::upstream::fetch::admit;
use crate::upstream::fetch::head::{self, BodyPlan, Head, Known};
use crate::upstream::fetch::request::{self, Ask};
use crate::upstream::fetch::revalidate;

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
    /// The repo db entry of the package is malformed (the reason): ends the download, no
    /// mirror blamed, clients refused.
    Unverifiable(String),
    /// The cache could not store the body: ends the download, no mirror blamed, no retry.
    Storage(StorageError),
}

impl Job<'_> {
    /// One request to mirror `i` (redirects followed), resuming at the bytes written.
    pub(super) async fn attempt(&mut self, i: usize, path: &RepoPath) -> Attempt {
        let written = self.partial.written();
        let (answer, from_base) = match self.send(i, path, written).await {
            Ok(sent) => sent,
            Err(failed) => return failed,
        };
        let request::Answer {
            response: mut resp,
            url,
            redirected,
        } = answer;
        let plan = match self.checked_head(&resp, path, written, from_base).await {
            Ok(plan) => plan,
            Err(end) => return end,
        };
        if !self.partial.is_open() {
            if let Err(failed) = self.open_partial(resp.headers(), &plan) {
                return failed;
            }
        }
        if redirected || !from_base {
            let mirror = &self.pool.mirrors[i].url;
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

    /// Ask mirror `i` for `path` from byte `written` on: at the URL the last body bytes came
    /// from when resuming on that mirror, else at the mirror's base (whose redirect, if any,
    /// the pool records). The answer, and whether it was asked at the base.
    async fn send(
        &mut self,
        i: usize,
        path: &RepoPath,
        written: u64,
    ) -> Result<(request::Answer, bool), Attempt> {
        let mirror = &self.pool.mirrors[i].url;
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
                return Err(Attempt::Failed(e));
            }
        };
        if from_base {
            let target = answer
                .redirected
                .then(|| request::shown_base(&answer.url, &path.rel_url_encoded()));
            self.pool.record_redirect(i, target);
        }
        Ok((answer, from_base))
    }

    /// [`Job::check_head`] with the repo db's answer when it is there, and waiting for it when
    /// the size decides how the body is taken (a body of unknown length, or over
    /// `max_unknown_size`): see [`crate::upstream::fetch::expect`].
    async fn checked_head(
        &mut self,
        resp: &awc::ClientResponse,
        path: &RepoPath,
        written: u64,
        from_base: bool,
    ) -> Result<BodyPlan, Attempt> {
        self.expected.poll().map_err(Attempt::Unverifiable)?;
        self.partial.set_hashing(self.expected.wants_digest());
        let checked = self.check_head(resp, path, written, from_base);
        let size_decides = matches!(
            checked,
            Err(Attempt::Refused(_)) | Ok(BodyPlan { total: None, .. })
        );
        if !(size_decides && self.expected.is_pending()) {
            return checked;
        }
        self.expected
            .resolve()
            .await
            .map_err(Attempt::Unverifiable)?;
        self.partial.set_hashing(self.expected.wants_digest());
        self.check_head(resp, path, written, from_base)
    }

    /// The checks on `resp`'s head ([`head::check`]) with what this download knows
    /// (`written` bytes so far): how to take its body, or how the attempt ends.
    fn check_head(
        &mut self,
        resp: &awc::ClientResponse,
        path: &RepoPath,
        written: u64,
        from_base: bool,
    ) -> Result<BodyPlan, Attempt> {
        let known = Known {
            written,
            conditional: self.conditional.is_some(),
            first_total: self.partial.total(),
            expected_size: self.expected.size(),
            kind: path.kind(),
            never_empty: admit::never_empty(path),
            max_unknown_size: self.ctx.max_unknown_size,
        };
        match head::check(resp.status(), resp.version(), resp.headers(), &known) {
            Head::Body(plan) => Ok(plan),
            Head::NotModified => Err(self.not_modified(resp.headers())),
            Head::NotFound => Err(Attempt::NotFound),
            Head::Failed(e) => {
                self.forget_resume(from_base);
                Err(Attempt::Failed(e))
            }
            Head::Refused(e) => Err(Attempt::Refused(format!("{}: {e}", path.file_name()))),
        }
    }

    /// The first body of this download: the partial file is created, with the length clients
    /// are told reserved, and the validators and `Last-Modified` of this version kept.
    fn open_partial(
        &mut self,
        headers: &awc::http::header::HeaderMap,
        plan: &BodyPlan,
    ) -> Result<(), Attempt> {
        // The mirror's current version is the truth, whatever its date: a repaired file
        // may well be older than the broken one it replaces.
        self.received = Validators::from_headers(headers);
        let last_modified = self.served_last_modified(plan.last_modified, plan.total);
        // Without a length from upstream (a chunked body), the repo db's size is the
        // length clients are told (and held to: the body must end exactly there), so a
        // Range on the download in flight gets its 206 (issue 15).
        let known = plan.total.or(self.expected.size());
        // The digest is the verification of a package a db lists (or may list): nobody else
        // reads it.
        self.partial.set_hashing(self.expected.wants_digest());
        self.partial
            .open(&self.ctx.store, known, known, last_modified)
            .map_err(|(op, e)| self.storage(op, e))
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
}
