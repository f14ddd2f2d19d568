//! Retention policy (keep N versions, max age, size cap) and cache usage. (Being implemented:
//! see issue 6.)

use std::collections::BTreeMap;

use serde::Serialize;

use crate::server::AppState;

/// One file cleanup removed (or would remove, in a dry run).
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    /// Cache path, `upstream/rel`.
    pub path: String,
    pub bytes: u64,
    pub reason: String,
}

/// What one cleanup did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CleanupReport {
    pub dry_run: bool,
    pub removed: Vec<Removed>,
    pub freed_bytes: u64,
}

/// Files and bytes in the cache of one upstream.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Usage {
    pub files: u64,
    pub bytes: u64,
}

/// Apply the retention policy now (blocking file-system work: call from `web::block`).
pub fn cleanup_now(_state: &AppState, dry_run: bool) -> CleanupReport {
    CleanupReport {
        dry_run,
        ..CleanupReport::default()
    }
}

/// Cache usage per upstream.
pub fn usage(state: &AppState) -> BTreeMap<String, Usage> {
    let mut out = BTreeMap::new();
    for name in state.cfg.upstreams.keys() {
        let mut u = Usage::default();
        let mut stack = vec![state.store.root().join(name)];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for e in entries.flatten() {
                match e.metadata() {
                    Ok(m) if m.is_dir() => stack.push(e.path()),
                    Ok(m) => {
                        u.files += 1;
                        u.bytes += m.len();
                    }
                    Err(_) => {}
                }
            }
        }
        out.insert(name.clone(), u);
    }
    out
}
