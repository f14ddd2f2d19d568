//! The cache policies: `[refresh]` (scheduled revalidation of the repo dbs, prefetch of the
//! packages they update) and `[cleanup]` (retention: keep N versions, max age, size cap).

use std::time::Duration;

use super::raw::{RawCleanup, RawRefresh};
use super::units::{parse_duration, parse_size};
use super::{invalid, ConfigError};

/// Scheduled refresh and prefetch.
#[derive(Debug, Clone)]
pub struct RefreshConfig {
    pub prefetch: bool,
    pub interval: Option<Duration>,
    pub prefetch_concurrency: usize,
}

/// Retention policy.
#[derive(Debug, Clone)]
pub struct CleanupConfig {
    pub keep_versions: usize,
    pub max_age: Option<Duration>,
    pub max_size: Option<u64>,
}

/// Validate `[refresh]`: `interval = "0s"` (or absent) means no schedule.
pub(super) fn refresh(raw: RawRefresh) -> Result<RefreshConfig, ConfigError> {
    Ok(RefreshConfig {
        prefetch: raw.prefetch.unwrap_or(true),
        interval: match raw.interval {
            Some(v) => Some(parse_duration("refresh.interval", &v)?).filter(|d| !d.is_zero()),
            None => None,
        },
        prefetch_concurrency: match raw.prefetch_concurrency {
            Some(0) => {
                return Err(invalid(
                    "refresh.prefetch_concurrency",
                    "must be at least 1",
                ))
            }
            Some(n) => n as usize,
            None => 2,
        },
    })
}

/// Validate `[cleanup]`.
pub(super) fn cleanup(raw: RawCleanup) -> Result<CleanupConfig, ConfigError> {
    Ok(CleanupConfig {
        keep_versions: match raw.keep_versions {
            Some(0) => return Err(invalid("cleanup.keep_versions", "must be at least 1")),
            Some(n) => n as usize,
            None => 3,
        },
        max_age: match raw.max_age {
            Some(v) => Some(parse_duration("cleanup.max_age", &v)?),
            None => None,
        },
        max_size: match raw.max_size {
            Some(v) => Some(parse_size("cleanup.max_size", &v)?),
            None => None,
        },
    })
}
