//! The per-minute ring behind `/_pkgstash/stats.json`: the last 24 hours of the request and
//! byte counters, one bucket per wall-clock minute, in a fixed array ([`MINUTES`] buckets,
//! about 130 KiB; no database, reset by a restart).
//!
//! Bucket `m % MINUTES` holds minute `m` (Unix seconds ÷ 60) and remembers which minute it
//! holds: a bucket still holding an older minute counts as zero, so minutes without traffic
//! cost nothing. Counting takes one short lock (a few additions); the counters are the same
//! events as the Prometheus counters ([`super::Metrics`] feeds both), so the two never
//! disagree about what was counted.

use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Serialize;

use super::{Outcome, OUTCOMES};

/// Buckets kept: 24 hours of minutes.
pub const MINUTES: usize = 1440;
/// Seconds per bucket.
pub const STEP_SECS: u64 = 60;

/// What moved bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bytes {
    /// Body bytes sent to clients from finished cache files.
    ServedCache,
    /// Body bytes sent to clients from downloads in flight.
    ServedInflight,
    /// Body bytes received from mirrors.
    FetchedUpstream,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// The minute (Unix seconds ÷ 60) this bucket holds.
    minute: u64,
    requests: [u64; OUTCOMES.len()],
    /// By [`Bytes`], in its declaration order.
    bytes: [u64; 3],
}

/// The ring.
#[derive(Debug)]
pub struct MinuteRing {
    buckets: Mutex<Box<[Bucket]>>,
    /// Unix seconds the ring started counting (the server's start).
    since: u64,
}

/// The `stats.json` answer: `buckets` minutes ending with the current one.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Stats {
    /// `1h` or `24h`.
    pub range: String,
    pub step_secs: u64,
    pub buckets: usize,
    /// Unix seconds where bucket 0 starts (a multiple of [`STEP_SECS`]).
    pub start: u64,
    /// Unix seconds of this snapshot (inside the last bucket).
    pub now: u64,
    /// Unix seconds the counting started; buckets that ended before are `null`.
    pub since: u64,
    pub requests: RequestSeries,
    pub bytes: ByteSeries,
}

/// One array per request result (`X-Cache-Status`), `buckets` entries each.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RequestSeries {
    pub hit: Vec<Option<u64>>,
    pub miss: Vec<Option<u64>>,
    pub joined: Vec<Option<u64>>,
    pub revalidated: Vec<Option<u64>>,
    pub stale: Vec<Option<u64>>,
    pub not_found: Vec<Option<u64>>,
    pub error: Vec<Option<u64>>,
}

/// One array per [`Bytes`] source, `buckets` entries each.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ByteSeries {
    pub served_cache: Vec<Option<u64>>,
    pub served_inflight: Vec<Option<u64>>,
    pub fetched_upstream: Vec<Option<u64>>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl MinuteRing {
    /// An empty ring counting from now.
    pub fn new() -> MinuteRing {
        MinuteRing::starting_at(now_secs())
    }

    /// An empty ring counting from `since` (Unix seconds).
    pub fn starting_at(since: u64) -> MinuteRing {
        MinuteRing {
            buckets: Mutex::new(vec![Bucket::default(); MINUTES].into_boxed_slice()),
            since,
        }
    }

    /// Count one request answered as `outcome` now.
    pub fn request(&self, outcome: Outcome) {
        self.request_at(now_secs(), outcome);
    }

    /// Count `n` bytes moved now.
    pub fn bytes(&self, what: Bytes, n: u64) {
        self.bytes_at(now_secs(), what, n);
    }

    fn request_at(&self, at: u64, outcome: Outcome) {
        let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) else {
            return;
        };
        self.with_bucket(at, |b| b.requests[i] += 1);
    }

    fn bytes_at(&self, at: u64, what: Bytes, n: u64) {
        if n == 0 {
            return;
        }
        let i = what as usize;
        self.with_bucket(at, |b| b.bytes[i] = b.bytes[i].saturating_add(n));
    }

    /// Apply `add` to the bucket of the minute of `at`, emptying it first when it holds an
    /// older minute. A time older than what the bucket holds (the clock went back by a day)
    /// is not counted: it would overwrite newer counts.
    fn with_bucket(&self, at: u64, add: impl FnOnce(&mut Bucket)) {
        let minute = at / STEP_SECS;
        let mut buckets = self.buckets.lock();
        let b = &mut buckets[(minute % MINUTES as u64) as usize];
        if b.minute < minute {
            *b = Bucket {
                minute,
                ..Bucket::default()
            };
        }
        if b.minute == minute {
            add(b);
        }
    }

    /// The last `minutes` minutes (at most [`MINUTES`]), the current one last, labelled
    /// `range`.
    pub fn snapshot(&self, range: &str, minutes: usize) -> Stats {
        self.snapshot_at(now_secs(), range, minutes)
    }

    fn snapshot_at(&self, now: u64, range: &str, minutes: usize) -> Stats {
        let n = minutes.clamp(1, MINUTES);
        let last = now / STEP_SECS;
        let first = last + 1 - n as u64;
        let copy: Vec<Option<Bucket>> = {
            let buckets = self.buckets.lock();
            (first..=last)
                .map(|m| {
                    // A minute that ended before counting started has no data.
                    if (m + 1) * STEP_SECS <= self.since {
                        return None;
                    }
                    let b = buckets[(m % MINUTES as u64) as usize];
                    Some(if b.minute == m { b } else { Bucket::default() })
                })
                .collect()
        };
        let req = |i: usize| -> Vec<Option<u64>> {
            copy.iter().map(|b| b.map(|b| b.requests[i])).collect()
        };
        let bytes = |w: Bytes| -> Vec<Option<u64>> {
            copy.iter()
                .map(|b| b.map(|b| b.bytes[w as usize]))
                .collect()
        };
        let of = |o: Outcome| OUTCOMES.iter().position(|x| *x == o).unwrap_or(0);
        Stats {
            range: range.to_string(),
            step_secs: STEP_SECS,
            buckets: n,
            start: first * STEP_SECS,
            now,
            since: self.since,
            requests: RequestSeries {
                hit: req(of(Outcome::Hit)),
                miss: req(of(Outcome::Miss)),
                joined: req(of(Outcome::Joined)),
                revalidated: req(of(Outcome::Revalidated)),
                stale: req(of(Outcome::Stale)),
                not_found: req(of(Outcome::NotFound)),
                error: req(of(Outcome::Error)),
            },
            bytes: ByteSeries {
                served_cache: bytes(Bytes::ServedCache),
                served_inflight: bytes(Bytes::ServedInflight),
                fetched_upstream: bytes(Bytes::FetchedUpstream),
            },
        }
    }
}

impl Default for MinuteRing {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-01-01T00:00:00Z, a multiple of 60.
    const T0: u64 = 1_735_689_600;

    #[test]
    fn counts_land_in_their_minute_and_the_last_bucket_is_now() {
        let ring = MinuteRing::starting_at(T0);
        ring.request_at(T0 + 5, Outcome::Hit);
        ring.request_at(T0 + 59, Outcome::Hit);
        ring.request_at(T0 + 60, Outcome::Miss);
        ring.bytes_at(T0 + 61, Bytes::FetchedUpstream, 1000);
        ring.bytes_at(T0 + 125, Bytes::ServedCache, 7);
        ring.bytes_at(T0 + 125, Bytes::ServedInflight, 3);
        let s = ring.snapshot_at(T0 + 130, "1h", 60);
        assert_eq!((s.buckets, s.step_secs, s.since), (60, 60, T0));
        assert_eq!(s.start, T0 + 120 - 59 * 60);
        assert_eq!(s.start % 60, 0);
        assert!(s.now >= s.start + 59 * 60 && s.now < s.start + 60 * 60);
        for v in [&s.requests.hit, &s.bytes.served_cache, &s.requests.error] {
            assert_eq!(v.len(), 60);
        }
        // Buckets 57, 58, 59 are T0, T0+60, T0+120.
        assert_eq!(&s.requests.hit[57..], &[Some(2), Some(0), Some(0)]);
        assert_eq!(&s.requests.miss[57..], &[Some(0), Some(1), Some(0)]);
        assert_eq!(
            &s.bytes.fetched_upstream[57..],
            &[Some(0), Some(1000), Some(0)]
        );
        assert_eq!(s.bytes.served_cache[59], Some(7));
        assert_eq!(s.bytes.served_inflight[59], Some(3));
        // Before the start: no data, not zero.
        assert_eq!(s.requests.hit[56], None);
        assert!(s.requests.hit[..57].iter().all(Option::is_none));
    }

    #[test]
    fn the_minute_counting_started_in_has_data() {
        let ring = MinuteRing::starting_at(T0 + 30);
        let s = ring.snapshot_at(T0 + 40, "1h", 60);
        assert_eq!(s.requests.hit[59], Some(0));
        assert_eq!(s.requests.hit[58], None);
    }

    #[test]
    fn a_day_later_old_buckets_read_as_zero_and_are_reused() {
        let ring = MinuteRing::starting_at(T0);
        ring.request_at(T0, Outcome::Hit);
        ring.request_at(T0 + 60, Outcome::Stale);
        let day = MINUTES as u64 * STEP_SECS;
        // The same slot, a day later: emptied before counting.
        ring.request_at(T0 + day, Outcome::NotFound);
        let s = ring.snapshot_at(T0 + day + 90, "24h", MINUTES);
        assert_eq!(s.buckets, MINUTES);
        assert_eq!(s.requests.hit.len(), MINUTES);
        // Window: T0+120 .. T0+day+60; T0+60 fell out.
        assert_eq!(s.start, T0 + 120);
        assert!(s.requests.stale.iter().all(|v| *v == Some(0)));
        assert_eq!(s.requests.not_found[MINUTES - 2], Some(1));
        assert_eq!(s.requests.hit.iter().flatten().sum::<u64>(), 0);
        // A late event for a minute whose slot holds a newer minute is dropped.
        ring.request_at(T0, Outcome::Hit);
        let s = ring.snapshot_at(T0 + day + 90, "24h", MINUTES);
        assert_eq!(s.requests.hit.iter().flatten().sum::<u64>(), 0);
        assert_eq!(s.requests.not_found[MINUTES - 2], Some(1));
    }

    #[test]
    fn quiet_minutes_between_counts_are_zero() {
        let ring = MinuteRing::starting_at(T0);
        ring.request_at(T0 + 10, Outcome::Joined);
        ring.request_at(T0 + 10 * 60, Outcome::Revalidated);
        let s = ring.snapshot_at(T0 + 10 * 60 + 1, "1h", 60);
        let joined: Vec<u64> = s.requests.joined.iter().flatten().copied().collect();
        assert_eq!(joined, vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(s.requests.revalidated[59], Some(1));
        assert_eq!(s.requests.revalidated[58], Some(0));
        let json = serde_json::to_value(&s).expect("json");
        assert_eq!(json["requests"]["joined"][48], serde_json::Value::Null);
        assert_eq!(json["requests"]["joined"][49], 1);
        assert_eq!(json["range"], "1h");
    }
}
