//! The mirror pool of each upstream: preference order, health with exponential-backoff
//! cooldown, and db affinity (a repo's databases keep coming from the mirror that served them
//! last, so a `.db` and its `.db.sig` never mix mirrors).
//!
//! Ordering and backoff are pure functions ([`order_mirrors`], [`backoff`]) so they are tested
//! without a network. The pool only records facts; the fetch task decides what to do next.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Serialize;

use crate::config::mirror_url::MirrorUrl;
use crate::config::Config;
use crate::repo::path::{FileKind, RepoPath};

/// First cooldown after a failure; doubles per consecutive failure.
const BASE_COOLDOWN: Duration = Duration::from_secs(5);
/// Longest cooldown.
const MAX_COOLDOWN: Duration = Duration::from_secs(600);
/// The window of a mirror's recent rate, seconds.
const RECENT_SECS: u64 = 300;
/// Buckets of that window (10 s each).
const RECENT_BUCKETS: usize = 30;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Body bytes received over the last [`RECENT_SECS`], in 10-second buckets (each remembers
/// which 10 seconds it holds, so an idle mirror costs nothing and reads as 0).
#[derive(Debug, Default)]
struct RecentBytes {
    /// (Unix seconds ÷ 10, bytes).
    buckets: [(u64, u64); RECENT_BUCKETS],
}

impl RecentBytes {
    fn add(&mut self, now: u64, n: u64) {
        let slot = now / 10;
        let b = &mut self.buckets[(slot % RECENT_BUCKETS as u64) as usize];
        if b.0 != slot {
            *b = (slot, 0);
        }
        b.1 += n;
    }

    /// Bytes per second over the window ending at `now`.
    fn rate(&self, now: u64) -> u64 {
        let slot = now / 10;
        let oldest = slot.saturating_sub(RECENT_BUCKETS as u64 - 1);
        let bytes: u64 = self
            .buckets
            .iter()
            .filter(|(s, _)| *s >= oldest && *s <= slot)
            .map(|(_, n)| n)
            .sum();
        bytes / RECENT_SECS
    }
}

/// Cooldown after `consecutive` failures (1 → 5 s, 2 → 10 s, … capped at 10 min).
pub fn backoff(consecutive: u32) -> Duration {
    let shift = consecutive.saturating_sub(1).min(16);
    BASE_COOLDOWN.saturating_mul(1 << shift).min(MAX_COOLDOWN)
}

/// Order mirror indices for one download: `preferred` first (if not cooling down), then every
/// mirror not in cooldown in configured order, then the cooling ones, soonest-available first
/// (so a download is still tried when every mirror is cooling down).
pub fn order_mirrors(
    cooldowns: &[Option<Instant>],
    now: Instant,
    preferred: Option<usize>,
) -> Vec<usize> {
    let cooling = |i: usize| cooldowns[i].is_some_and(|t| t > now);
    let mut out = Vec::with_capacity(cooldowns.len());
    let first = preferred.filter(|&p| p < cooldowns.len() && !cooling(p));
    out.extend(first);
    out.extend((0..cooldowns.len()).filter(|&i| !cooling(i) && Some(i) != first));
    let mut rest: Vec<usize> = (0..cooldowns.len()).filter(|&i| cooling(i)).collect();
    rest.sort_by_key(|&i| cooldowns[i]);
    out.extend(rest);
    out
}

#[derive(Debug, Default, Clone)]
struct Health {
    consecutive_failures: u32,
    cooldown_until: Option<Instant>,
    last_error: Option<String>,
    successes: u64,
    failures: u64,
    /// Unix seconds of the last success and failure.
    last_success_at: Option<u64>,
    last_failure_at: Option<u64>,
}

/// One mirror base URL and what we know about it.
#[derive(Debug)]
pub struct Mirror {
    /// Its configured base URL; `Display` shows it redacted.
    pub url: MirrorUrl,
    health: Mutex<Health>,
    /// Where its last redirected answer came from (see [`MirrorPool::record_redirect`]).
    redirects_to: Mutex<Option<String>>,
    /// Body bytes received from this mirror.
    pub bytes: AtomicU64,
    recent: Mutex<RecentBytes>,
}

/// A mirror's health, for status output.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct MirrorStatus {
    pub upstream: String,
    /// The base URL, credentials redacted (`user:***@`).
    pub url: String,
    /// The mirror redirects: where its last redirected answer came from (the base the file
    /// was found under, or the origin), shown without credentials or query.
    #[serde(default)]
    pub redirects_to: Option<String>,
    pub healthy: bool,
    pub cooldown_secs: u64,
    pub consecutive_failures: u32,
    pub successes: u64,
    pub failures: u64,
    pub bytes: u64,
    pub last_error: Option<String>,
    /// Body bytes received over the last 5 minutes ÷ 300 (0 when idle).
    #[serde(default)]
    pub recent_rate_bps: u64,
    /// Unix seconds of the last success, of the last failure.
    #[serde(default)]
    pub last_success_at: Option<u64>,
    #[serde(default)]
    pub last_failure_at: Option<u64>,
}

/// The mirrors of one upstream.
#[derive(Debug)]
pub struct MirrorPool {
    pub upstream: String,
    pub mirrors: Vec<Mirror>,
    /// repo directory → index of the mirror that last served its databases.
    db_affinity: Mutex<HashMap<String, usize>>,
}

impl MirrorPool {
    pub fn new(upstream: &str, bases: &[MirrorUrl]) -> MirrorPool {
        MirrorPool {
            upstream: upstream.to_string(),
            mirrors: bases
                .iter()
                .map(|b| Mirror {
                    url: b.clone(),
                    health: Mutex::new(Health::default()),
                    redirects_to: Mutex::new(None),
                    bytes: AtomicU64::new(0),
                    recent: Mutex::new(RecentBytes::default()),
                })
                .collect(),
            db_affinity: Mutex::new(HashMap::new()),
        }
    }

    /// The order in which to try mirrors for `path`.
    pub fn order(&self, path: &RepoPath) -> Vec<usize> {
        let now = Instant::now();
        let cooldowns: Vec<Option<Instant>> = self
            .mirrors
            .iter()
            .map(|m| m.health.lock().cooldown_until)
            .collect();
        let preferred = match path.kind() {
            FileKind::Mutable => self.db_affinity.lock().get(path.dir()).copied(),
            FileKind::Immutable => None,
        };
        order_mirrors(&cooldowns, now, preferred)
    }

    /// Full URL of `path` on mirror `i`, without credentials (they go in a header).
    pub fn url(&self, i: usize, path: &RepoPath) -> String {
        self.mirrors[i].url.join(&path.rel_url_encoded())
    }

    /// Mirror `i` answered through a redirect to `target` (`Some`), or directly (`None`).
    pub fn record_redirect(&self, i: usize, target: Option<String>) {
        *self.mirrors[i].redirects_to.lock() = target;
    }

    /// Mirror `i` answered properly: clear its cooldown.
    pub fn record_success(&self, i: usize, path: &RepoPath) {
        {
            let mut h = self.mirrors[i].health.lock();
            if h.cooldown_until.is_some() {
                log::info!("mirror {} is healthy again", self.mirrors[i].url);
            }
            h.consecutive_failures = 0;
            h.cooldown_until = None;
            h.successes += 1;
            h.last_success_at = Some(unix_now());
        }
        if path.kind() == FileKind::Mutable {
            self.db_affinity.lock().insert(path.dir().to_string(), i);
        }
    }

    /// Mirror `i` failed (connection, timeout, 5xx, bad body): put it in cooldown.
    pub fn record_failure(&self, i: usize, error: &str) {
        let mut h = self.mirrors[i].health.lock();
        h.consecutive_failures += 1;
        h.failures += 1;
        let cool = backoff(h.consecutive_failures);
        h.cooldown_until = Some(Instant::now() + cool);
        h.last_error = Some(error.to_string());
        h.last_failure_at = Some(unix_now());
        log::warn!(
            "mirror {} failed ({error}); cooling down for {}",
            self.mirrors[i].url,
            humantime::format_duration(cool)
        );
    }

    /// Count body bytes received from mirror `i`.
    pub fn add_bytes(&self, i: usize, n: u64) {
        self.mirrors[i].bytes.fetch_add(n, Ordering::Relaxed);
        self.mirrors[i].recent.lock().add(unix_now(), n);
    }

    /// An admin clears the cooldown of the mirror shown as `url` (a [`MirrorStatus::url`]) and
    /// its consecutive failures (the backoff starts over): it is tried in its configured place
    /// again. Its status, or `None` when no mirror of this pool is shown as `url`.
    pub fn reset_cooldown(&self, url: &str) -> Option<MirrorStatus> {
        let i = self.mirrors.iter().position(|m| m.url.to_string() == url)?;
        {
            let mut h = self.mirrors[i].health.lock();
            h.consecutive_failures = 0;
            h.cooldown_until = None;
        }
        self.status().into_iter().nth(i)
    }

    /// Is mirror `i` out of cooldown?
    pub fn is_healthy(&self, i: usize) -> bool {
        let now = Instant::now();
        self.mirrors[i]
            .health
            .lock()
            .cooldown_until
            .is_none_or(|t| t <= now)
    }

    /// Health of every mirror.
    pub fn status(&self) -> Vec<MirrorStatus> {
        let now = Instant::now();
        let unix = unix_now();
        self.mirrors
            .iter()
            .map(|m| {
                let h = m.health.lock().clone();
                let cooldown = h
                    .cooldown_until
                    .map(|t| t.saturating_duration_since(now))
                    .unwrap_or_default();
                MirrorStatus {
                    upstream: self.upstream.clone(),
                    url: m.url.to_string(),
                    redirects_to: m.redirects_to.lock().clone(),
                    healthy: cooldown.is_zero(),
                    cooldown_secs: cooldown.as_secs(),
                    consecutive_failures: h.consecutive_failures,
                    successes: h.successes,
                    failures: h.failures,
                    bytes: m.bytes.load(Ordering::Relaxed),
                    last_error: h.last_error,
                    recent_rate_bps: m.recent.lock().rate(unix),
                    last_success_at: h.last_success_at,
                    last_failure_at: h.last_failure_at,
                }
            })
            .collect()
    }
}

/// Every upstream's pool, by upstream name.
#[derive(Debug, Default)]
pub struct Pools(BTreeMap<String, Arc<MirrorPool>>);

impl Pools {
    pub fn from_config(cfg: &Config) -> Pools {
        Pools(
            cfg.upstreams
                .values()
                .map(|u| {
                    (
                        u.name.clone(),
                        Arc::new(MirrorPool::new(&u.name, &u.mirrors)),
                    )
                })
                .collect(),
        )
    }

    pub fn get(&self, upstream: &str) -> Option<&Arc<MirrorPool>> {
        self.0.get(upstream)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<MirrorPool>> {
        self.0.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(3), Duration::from_secs(20));
        assert_eq!(backoff(20), MAX_COOLDOWN);
        assert_eq!(backoff(u32::MAX), MAX_COOLDOWN);
    }

    #[test]
    fn order_prefers_healthy_then_soonest_cooling() {
        let now = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(order_mirrors(&[None, None, None], now, None), vec![0, 1, 2]);
        assert_eq!(
            order_mirrors(&[None, None, None], now, Some(2)),
            vec![2, 0, 1]
        );
        let cd = [Some(now + s(50)), None, Some(now + s(10))];
        assert_eq!(order_mirrors(&cd, now, None), vec![1, 2, 0]);
        // A cooling preferred mirror is not preferred.
        assert_eq!(order_mirrors(&cd, now, Some(0)), vec![1, 2, 0]);
        // Expired cooldowns count as healthy.
        let cd = [Some(now - s(1)), Some(now + s(3))];
        assert_eq!(order_mirrors(&cd, now, None), vec![0, 1]);
        // All cooling: still every mirror, soonest first.
        let cd = [Some(now + s(9)), Some(now + s(3))];
        assert_eq!(order_mirrors(&cd, now, None), vec![1, 0]);
    }

    #[test]
    fn failure_cools_down_success_clears_and_sets_db_affinity() {
        let urls = ["http://a", "http://b"].map(|u| MirrorUrl::parse(u).expect("url"));
        let pool = MirrorPool::new("arch", &urls);
        let db = RepoPath::parse("/arch/core/os/x86_64/core.db").expect("path");
        let pkg = RepoPath::parse("/arch/core/os/x86_64/a-1-1-any.pkg.tar.zst").expect("path");
        assert_eq!(pool.order(&db), vec![0, 1]);
        pool.record_failure(0, "connection refused");
        assert_eq!(pool.order(&pkg), vec![1, 0]);
        assert!(!pool.status()[0].healthy);
        assert!(!pool.is_healthy(0));
        assert!(pool.is_healthy(1));
        pool.record_success(1, &db);
        pool.record_success(0, &pkg);
        assert!(pool.status()[0].healthy);
        // The db keeps coming from mirror 1, packages follow the configured order.
        assert_eq!(pool.order(&db), vec![1, 0]);
        assert_eq!(pool.order(&pkg), vec![0, 1]);
        assert_eq!(
            pool.url(1, &pkg),
            "http://b/core/os/x86_64/a-1-1-any.pkg.tar.zst"
        );
    }

    #[test]
    fn recent_rate_is_the_last_five_minutes() {
        let mut r = RecentBytes::default();
        let t = 1_000_000;
        assert_eq!(r.rate(t), 0);
        r.add(t, 300_000);
        r.add(t + 150, 300_000);
        assert_eq!(r.rate(t + 150), 2000);
        // 300 s later the first 300 kB left the window; 600 s later all did.
        assert_eq!(r.rate(t + 300), 1000);
        assert_eq!(r.rate(t + 460), 0);
        // A bucket reused for a later slot starts from 0.
        r.add(t + 3000, 3000);
        assert_eq!(r.rate(t + 3000), 10);
    }

    #[test]
    fn reset_cooldown_clears_the_backoff() {
        let urls = ["http://u:pw@a", "http://b"].map(|u| MirrorUrl::parse(u).expect("url"));
        let pool = MirrorPool::new("arch", &urls);
        pool.record_failure(0, "boom");
        pool.record_failure(0, "boom");
        let st = &pool.status()[0];
        assert!(!st.healthy && st.consecutive_failures == 2);
        assert!(st.last_failure_at.is_some() && st.last_success_at.is_none());
        assert!(
            pool.reset_cooldown("http://u:pw@a").is_none(),
            "shown redacted"
        );
        let st = pool.reset_cooldown("http://u:***@a").expect("known");
        assert!(st.healthy);
        assert_eq!((st.cooldown_secs, st.consecutive_failures), (0, 0));
        assert_eq!(st.failures, 2, "history stays");
        assert_eq!(st.last_error.as_deref(), Some("boom"));
        // The next failure starts the backoff over (5 s).
        pool.record_failure(0, "again");
        assert!(pool.status()[0].cooldown_secs <= 5);
    }

    #[test]
    fn status_shows_redacted_urls_and_redirects() {
        let urls =
            ["http://u:secret@a/arch", "http://b"].map(|u| MirrorUrl::parse(u).expect("url"));
        let pool = MirrorPool::new("arch", &urls);
        let pkg = RepoPath::parse("/arch/core/os/x86_64/a-1-1-any.pkg.tar.zst").expect("path");
        // Requests never carry the credentials in the URL.
        assert_eq!(
            pool.url(0, &pkg),
            "http://a/arch/core/os/x86_64/a-1-1-any.pkg.tar.zst"
        );
        pool.record_redirect(1, Some("https://c.example/arch".into()));
        let st = pool.status();
        assert_eq!(st[0].url, "http://u:***@a/arch");
        assert_eq!(st[0].redirects_to, None);
        assert_eq!(
            st[1].redirects_to.as_deref(),
            Some("https://c.example/arch")
        );
        pool.record_redirect(1, None);
        assert_eq!(pool.status()[1].redirects_to, None);
    }
}
