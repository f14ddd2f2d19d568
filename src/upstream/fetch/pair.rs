//! A repo db and its detached signature — `core.db` + `core.db.sig`, `core.files` +
//! `core.files.sig`, and the `.db.tar.gz` forms — are one thing to pacman: with a `SigLevel`
//! that checks db signatures, a db with another version's signature is "invalid". So the two are
//! revalidated and replaced together, from one mirror ([`run`]):
//!
//! 1. one job per pair at a time ([`PairLocks`]); a job that waited for another finds the pair
//!    validated after it started and answers from the cache, without asking the mirror;
//! 2. the db (a conditional request with its validators) — a new one is verified first
//!    (`Job::verify`: it must parse, [`super::admit`]), so a db that cannot be published never
//!    brings a new `.sig` — then the `.sig` from the mirror that answered for the db,
//!    conditional only when the db did not change: a new db always brings the signature the
//!    mirror has now;
//! 3. when either changed, the db is asked again with its new validators: a 304 shows the
//!    mirror did not replace it meanwhile; anything else fails the pair (the cached pair stays);
//! 4. a `.sig` the mirror no longer has is removed from the cache first (never served with a db
//!    it does not sign), then the other file of the pair is published, then the requested one,
//!    whose clients get their last byte only then. For a requested db that means its `.sig` is
//!    in place before the db is: a client that got the new db gets the new signature.
//!
//! A client asking for the db and then for its `.sig` gets the pair as cached when it asks:
//! only an upstream update landing between its two requests can split them, as with the mirror
//! itself, and [`crate::cache::store::SIG_FOLLOWS_DB`] keeps a `.sig` asked right after its db from
//! being revalidated on its own.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::job::{Fetched, Job};
use super::{conditional_for, FetchContext};
use crate::cache::inflight::{Download, Failure, Phase};
use crate::repo::path::{is_repo_db_name, FileKind, RepoPath};
use crate::upstream::pool::MirrorPool;

/// The two files of a pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub db: RepoPath,
    pub sig: RepoPath,
}

impl Pair {
    /// The pair `p` belongs to, if it is a repo db or a repo db's `.sig`.
    pub fn of(p: &RepoPath) -> Option<Pair> {
        if p.kind() != FileKind::Mutable {
            return None;
        }
        let sibling = |name: &str| {
            let rel = match p.dir() {
                "" => name.to_string(),
                dir => format!("{dir}/{name}"),
            };
            RepoPath::from_parts(p.upstream(), &rel).ok()
        };
        let name = p.file_name();
        match name.strip_suffix(".sig") {
            Some(db) if is_repo_db_name(db) => Some(Pair {
                db: sibling(db)?,
                sig: p.clone(),
            }),
            Some(_) => None,
            None if is_repo_db_name(name) => Some(Pair {
                db: p.clone(),
                sig: sibling(&format!("{name}.sig"))?,
            }),
            None => None,
        }
    }
}

/// One async lock per pair (keyed by the db's cache key; a handful per repo, never removed).
#[derive(Debug, Default)]
pub struct PairLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl PairLocks {
    fn of(&self, pair: &Pair) -> Arc<tokio::sync::Mutex<()>> {
        self.0.lock().entry(pair.db.key()).or_default().clone()
    }
}

/// Fetch (or revalidate) `primary` — one file of `pair` — together with the other file, and
/// publish both (see the module docs). `revalidate`: the caller has a cached copy of `primary`.
pub(crate) async fn run(
    ctx: &FetchContext,
    pool: &MirrorPool,
    client: awc::Client,
    primary: &Download,
    pair: Pair,
    revalidate: bool,
) {
    let lock = ctx.pairs.of(&pair);
    let _one_at_a_time = lock.lock().await;
    if answered_meanwhile(ctx, primary) {
        return;
    }
    let primary_is_db = primary.path == pair.db;
    let companion = Download::detached(if primary_is_db {
        pair.sig.clone()
    } else {
        pair.db.clone()
    });
    let (db_dl, sig_dl) = match primary_is_db {
        true => (primary, &companion),
        false => (&companion, primary),
    };
    let db_cond = match primary_is_db && !revalidate {
        true => None,
        false => conditional_for(ctx, &pair.db).await,
    };
    let mut db = Job::new(ctx, pool, client.clone(), db_dl, db_cond, None);
    // Checked before anything else is fetched or published: a db that cannot be published
    // must not bring a new `.sig` either.
    let db_got = db.fetch().await;
    let db_got = db.verify(db_got).await;
    let i = match db_got {
        Fetched::Complete(i) | Fetched::NotModified(i) => i,
        Fetched::NotFound | Fetched::Failed(_) => {
            return without_db(ctx, pool, client, db, db_got, sig_dl, primary_is_db).await
        }
    };
    let (sig, sig_got) = fetch_sig(ctx, pool, client.clone(), sig_dl, &db_got, i).await;
    let both = Both {
        db,
        db_got,
        sig,
        sig_got,
    };
    match both.failure(ctx, pool, client, &pair, i).await {
        Some(why) => both.fail(&pair, why).await,
        None => both.conclude(ctx, &pair, primary_is_db).await,
    }
}

/// Step 2, the `.sig` (`sig_dl`), from mirror `i` that answered `db_got` for the db.
async fn fetch_sig<'a>(
    ctx: &'a FetchContext,
    pool: &'a MirrorPool,
    client: awc::Client,
    sig_dl: &'a Download,
    db_got: &Fetched,
    i: usize,
) -> (Job<'a>, Fetched) {
    // The db did not change: the cached `.sig` may be confirmed too. It did: the `.sig` the
    // mirror has now, whatever is cached.
    let sig_cond = match db_got {
        Fetched::NotModified(_) => conditional_for(ctx, &sig_dl.path).await,
        _ => None,
    };
    let mut sig = Job::new(ctx, pool, client, sig_dl, sig_cond, None).only_from(i);
    let sig_got = sig.fetch().await;
    let sig_got = sig.verify(sig_got).await;
    (sig, sig_got)
}

/// Both files of a pair, fetched and verified, not yet concluded.
struct Both<'a> {
    db: Job<'a>,
    db_got: Fetched,
    sig: Job<'a>,
    sig_got: Fetched,
}

impl Both<'_> {
    /// Step 3: why the pair cannot be published (the `.sig` failed, or the db changed on
    /// mirror `i` meanwhile), if it cannot.
    async fn failure(
        &self,
        ctx: &FetchContext,
        pool: &MirrorPool,
        client: awc::Client,
        pair: &Pair,
        i: usize,
    ) -> Option<Failure> {
        let db_changed = matches!(self.db_got, Fetched::Complete(_));
        let changed = db_changed || matches!(self.sig_got, Fetched::Complete(_));
        match &self.sig_got {
            Fetched::Failed(e) => Some(about(e, &pair.sig)),
            _ if changed => {
                let fetched = match db_changed {
                    true => match self.db.body_sha256().await {
                        Ok(digest) => Some(digest),
                        Err(e) => return Some(read_back_failed(&e)),
                    },
                    false => None,
                };
                let validators = self.db.validators(&self.db_got).cloned();
                steady(ctx, pool, client, pair, i, validators, fetched).await
            }
            _ => None,
        }
    }

    /// The pair cannot be published: both files fail with `why` (the cached pair stays).
    async fn fail(mut self, pair: &Pair, why: Failure) {
        log::warn!(
            "revalidation of {} and its signature failed: {why}",
            pair.db
        );
        self.db.conclude(Fetched::Failed(why.clone())).await;
        self.sig.conclude(Fetched::Failed(why)).await;
    }

    /// Step 4: a `.sig` the mirror no longer has is removed, then the other file of the pair
    /// is concluded, then the requested one.
    async fn conclude(mut self, ctx: &FetchContext, pair: &Pair, primary_is_db: bool) {
        if self.sig_got == Fetched::NotFound {
            drop_signature(ctx, &pair.sig);
        }
        match primary_is_db {
            true => {
                self.sig.conclude(self.sig_got).await;
                self.db.conclude(self.db_got).await;
            }
            false => {
                self.db.conclude(self.db_got).await;
                self.sig.conclude(self.sig_got).await;
            }
        }
    }
}

/// Did another job revalidate the pair while this one waited for it? Then the cache has the
/// answer, and `primary` is told so.
fn answered_meanwhile(ctx: &FetchContext, primary: &Download) -> bool {
    if !ctx.store.validated_since(&primary.path, primary.started) {
        return false;
    }
    let cached = ctx.store.final_path(&primary.path).is_file();
    primary.finish(if cached {
        Phase::NotModified
    } else {
        Phase::NotFound
    });
    true
}

/// The db could not be fetched (`db_got`): it is concluded so, and so is a requested `.sig` —
/// except when the mirror has no db at all: then the `.sig` is fetched alone, as any file.
async fn without_db(
    ctx: &FetchContext,
    pool: &MirrorPool,
    client: awc::Client,
    mut db: Job<'_>,
    db_got: Fetched,
    sig_dl: &Download,
    primary_is_db: bool,
) {
    if primary_is_db {
        return db.conclude(db_got).await;
    }
    match db_got {
        Fetched::NotFound => {
            let cond = conditional_for(ctx, &sig_dl.path).await;
            Job::new(ctx, pool, client, sig_dl, cond, None).run().await;
        }
        failed => {
            db.conclude(failed.clone()).await;
            Job::new(ctx, pool, client, sig_dl, None, None)
                .conclude(failed)
                .await;
        }
    }
}

/// The mirror has no `.sig` for the db: the cached one is removed before the db is published.
fn drop_signature(ctx: &FetchContext, sig: &RepoPath) {
    match ctx.store.remove(sig) {
        Ok(true) => {
            ctx.index.remove(&sig.key());
            log::info!(
                "{sig}: the mirror has no signature for this db any more; removed the cached one"
            );
        }
        Ok(false) => {}
        Err(e) => log::warn!("cannot remove {sig}: {e}"),
    }
}

/// Our own copy of a db could not be read back to hash it: the cache's fault.
fn read_back_failed(e: &std::io::Error) -> Failure {
    log::error!("cache storage error: read downloaded db back: {e}");
    Failure::Storage(crate::cache::store::StorageError::new(
        "read downloaded file",
        e,
    ))
}

/// `failure` of the file `what`: a mirror's failure says which file it was about.
fn about(failure: &Failure, what: &RepoPath) -> Failure {
    match failure {
        Failure::Upstream(why) => Failure::upstream(&format!("{what}: {why}")),
        other => other.clone(),
    }
}

/// After a change: is the db on mirror `i` still the one fetched (a 304 to its validators, or
/// the same bytes again from a mirror that ignores conditional requests: `fetched` is the
/// sha256 of the body fetched)? `None` when it is (or when the mirror sends no validators to
/// ask with), else why not.
async fn steady(
    ctx: &FetchContext,
    pool: &MirrorPool,
    client: awc::Client,
    pair: &Pair,
    i: usize,
    validators: Option<crate::cache::validators::Validators>,
    fetched: Option<String>,
) -> Option<Failure> {
    let validators = validators?;
    let probe = Download::detached(pair.db.clone());
    let mut job = Job::new(ctx, pool, client, &probe, Some(validators), None).only_from(i);
    match job.fetch().await {
        Fetched::NotModified(_) => None,
        Fetched::Complete(_) => match job.body_sha256().await {
            Ok(again) if fetched.as_deref() == Some(again.as_str()) => None,
            Ok(_) => Some(Failure::upstream(&format!(
                "{} changed on {} while its signature was fetched",
                pair.db, pool.mirrors[i].url
            ))),
            Err(e) => Some(read_back_failed(&e)),
        },
        Fetched::NotFound => Some(Failure::upstream(&format!(
            "{} vanished from {}",
            pair.db, pool.mirrors[i].url
        ))),
        Fetched::Failed(e) => Some(about(&e, &pair.db)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs() {
        let p = |s: &str| RepoPath::parse(s).expect("path");
        let pair = Pair::of(&p("/arch/core/os/x86_64/core.db")).expect("pair");
        assert_eq!(pair.sig, p("/arch/core/os/x86_64/core.db.sig"));
        let pair = Pair::of(&p("/arch/core/os/x86_64/core.files.tar.gz.sig")).expect("pair");
        assert_eq!(pair.db, p("/arch/core/os/x86_64/core.files.tar.gz"));
        assert_eq!(
            Pair::of(&p("/arch/top.db")).map(|p| p.sig),
            Some(p("/arch/top.db.sig"))
        );
        assert_eq!(Pair::of(&p("/arch/core/os/x86_64/lastsync")), None);
        assert_eq!(Pair::of(&p("/arch/iso/latest/archlinux.iso.sig")), None);
        assert_eq!(
            Pair::of(&p("/arch/core/os/x86_64/a-1-1-any.pkg.tar.zst.sig")),
            None
        );
    }
}
