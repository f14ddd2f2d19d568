//! Notifications: a log line always, and a webhook JSON POST (`[aur.notify] webhook`) for
//! events an admin must act on: a revision held for approval, a failed build.
//! A webhook failure is logged and otherwise ignored. The webhook URL is never logged (it
//! often carries a secret).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Largest diff sent in a notification; longer ones are cut (the full one is in the API).
pub const MAX_DIFF: usize = 64 << 10;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A new revision needs an admin's approval.
    Held,
    /// An approved revision failed to build (or to publish).
    BuildFailed,
    /// An approved revision was built and published.
    Built,
}

/// The webhook's JSON body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Notice {
    pub event: Event,
    /// The package base.
    pub package: String,
    pub pkgnames: Vec<String>,
    /// The version the custom repo holds (if any).
    pub old_version: Option<String>,
    pub new_version: String,
    /// The git revision concerned.
    pub rev: String,
    #[serde(default)]
    pub reasons: Vec<String>,
    /// The diff against the last approved revision (held), cut to [`MAX_DIFF`].
    pub diff: Option<String>,
    /// The build log file (failed builds).
    pub log: Option<String>,
    /// The last lines of the build log (failed builds).
    pub log_tail: Option<String>,
    pub error: Option<String>,
}

/// Cut `text` to at most `max` bytes on a char boundary, marking the cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[… cut at {max} bytes]\n", &text[..end])
}

/// Log the notice and POST it to the webhook (only held/failed events go to the webhook).
pub async fn send(webhook: Option<&str>, notice: &Notice) {
    match notice.event {
        Event::Held => log::warn!(
            "aur: {} {} (rev {}) held for approval: {}; approve with `pkgstash aur approve {} --rev {}`",
            notice.package,
            notice.new_version,
            notice.rev,
            notice.reasons.join("; "),
            notice.package,
            notice.rev
        ),
        Event::BuildFailed => log::error!(
            "aur: build of {} {} (rev {}) failed: {}; log: {}",
            notice.package,
            notice.new_version,
            notice.rev,
            notice.error.as_deref().unwrap_or("?"),
            notice.log.as_deref().unwrap_or("-")
        ),
        Event::Built => log::info!(
            "aur: built and published {} {} (rev {})",
            notice.package,
            notice.new_version,
            notice.rev
        ),
    }
    let Some(url) = webhook else {
        return;
    };
    if notice.event == Event::Built {
        return;
    }
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(15))
        .finish();
    match client.post(url).send_json(notice).await {
        Ok(resp) if resp.status().is_success() => {
            log::info!(
                "aur: webhook notified ({:?} {})",
                notice.event,
                notice.package
            )
        }
        Ok(resp) => log::warn!(
            "aur: webhook answered HTTP {} for {:?} {}",
            resp.status().as_u16(),
            notice.event,
            notice.package
        ),
        Err(e) => log::warn!(
            "aur: webhook failed for {:?} {}: {e}",
            notice.event,
            notice.package
        ),
    }
}
