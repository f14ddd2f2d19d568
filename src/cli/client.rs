//! The CLI's side of the admin API: `pkgstash status | refresh | cleanup | evict | mirrors`
//! send one request to the running server (address from the config's `listen`, token from
//! `PKGSTASH_TOKEN`) and print a human table, or the JSON with `--json`.

use std::fmt::Write as _;
use std::time::Duration;

use actix_web::http::Method;
use serde::de::DeserializeOwned;

use crate::admin::routes::Evicted;
use crate::admin::status::Status;
use crate::config::Config;
use crate::jobs::cleanup::CleanupReport;
use crate::jobs::refresh::RefreshReport;
use crate::upstream::pool::MirrorStatus;

/// Why a client command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("PKGSTASH_TOKEN is not set: client commands need the admin token (see /etc/pkgstash/pkgstash.env)")]
    NoToken,
    #[error("cannot reach pkgstash at {url}: {why} (is `pkgstash serve` running?)")]
    Unreachable { url: String, why: String },
    #[error("the server refused the admin token (401): PKGSTASH_TOKEN differs from the server's")]
    Unauthorized,
    #[error(
        "the server has no admin token configured (403): set PKGSTASH_TOKEN in its environment"
    )]
    Disabled,
    #[error("too many failed attempts from this address (429): wait a minute")]
    RateLimited,
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: unexpected answer: {why}")]
    BadAnswer { url: String, why: String },
}

impl ClientError {
    /// Exit code: 2 for a local configuration problem, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::NoToken => 2,
            _ => 1,
        }
    }
}

/// A connection to the running server's admin API.
pub struct AdminClient {
    base: String,
    token: String,
}

impl AdminClient {
    pub fn from_config(cfg: &Config) -> Result<AdminClient, ClientError> {
        let token = cfg.token.as_ref().ok_or(ClientError::NoToken)?;
        Ok(AdminClient {
            base: cfg.admin_base_url(),
            token: token.expose().to_string(),
        })
    }

    /// Send `method` to `/_pkgstash/api/<path>` and return the body text.
    pub fn call(
        &self,
        method: Method,
        path: &str,
        timeout: Duration,
    ) -> Result<String, ClientError> {
        self.call_with(method, path, timeout, None)
    }

    /// Like [`AdminClient::call`], sending the file `body` (streamed) and extra headers.
    pub fn call_with(
        &self,
        method: Method,
        path: &str,
        timeout: Duration,
        body: Option<Upload>,
    ) -> Result<String, ClientError> {
        let url = format!("{}/_pkgstash/api/{path}", self.base);
        let token = self.token.clone();
        let url2 = url.clone();
        let result = actix_web::rt::System::new().block_on(async move {
            let client = awc::Client::builder()
                .timeout(timeout)
                .disable_redirects()
                .finish();
            let mut req = client.request(method, &url2).bearer_auth(&token);
            let sent = match body {
                None => req.send().await,
                Some(up) => {
                    for (k, v) in &up.headers {
                        req = req.insert_header((k.as_str(), v.as_str()));
                    }
                    let file = std::fs::File::open(&up.file)
                        .map_err(|e| format!("cannot read {}: {e}", up.file.display()))?;
                    let len = file.metadata().map_err(|e| e.to_string())?.len();
                    req.send_body(awc::body::SizedStream::new(
                        len,
                        crate::http::filebody::file_range(file, 0, len),
                    ))
                    .await
                }
            };
            let mut resp = sent.map_err(|e| e.to_string())?;
            let body = resp
                .body()
                .limit(64 << 20)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((resp.status().as_u16(), body))
        });
        let (status, body) = result.map_err(|why| ClientError::Unreachable {
            url: url.clone(),
            why,
        })?;
        let text = String::from_utf8_lossy(&body).trim().to_string();
        match status {
            200..=299 => Ok(text),
            401 => Err(ClientError::Unauthorized),
            403 => Err(ClientError::Disabled),
            429 => Err(ClientError::RateLimited),
            _ => Err(ClientError::Status {
                url,
                status,
                body: text,
            }),
        }
    }

    /// [`AdminClient::call`] and parse the JSON answer.
    pub fn call_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        timeout: Duration,
    ) -> Result<(T, String), ClientError> {
        self.call_json_with(method, path, timeout, None)
    }

    /// [`AdminClient::call_with`] and parse the JSON answer.
    pub fn call_json_with<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        timeout: Duration,
        body: Option<Upload>,
    ) -> Result<(T, String), ClientError> {
        let text = self.call_with(method, path, timeout, body)?;
        let value = serde_json::from_str(&text).map_err(|e| ClientError::BadAnswer {
            url: format!("{}/_pkgstash/api/{path}", self.base),
            why: e.to_string(),
        })?;
        Ok((value, text))
    }
}

/// A file to send as a request body, with extra headers.
pub struct Upload {
    pub file: std::path::PathBuf,
    pub headers: Vec<(String, String)>,
}

/// Human-readable byte size.
pub fn human_bytes(n: u64) -> String {
    bytesize::ByteSize(n).to_string_as(true)
}

/// Left-aligned text table; columns whose header starts with `>` are right-aligned.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let right: Vec<bool> = headers.iter().map(|h| h.starts_with('>')).collect();
    let headers: Vec<&str> = headers.iter().map(|h| h.trim_start_matches('>')).collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: &[String], out: &mut String| {
        let mut parts = Vec::new();
        for (i, c) in cells.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            parts.push(if right.get(i).copied().unwrap_or(false) {
                format!("{c:>w$}")
            } else {
                format!("{c:<w$}")
            });
        }
        let _ = writeln!(out, "{}", parts.join("  ").trim_end());
    };
    line(
        &headers.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        &mut out,
    );
    for r in rows {
        line(r, &mut out);
    }
    out
}

/// The `status` command's text.
pub fn render_status(s: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pkgstash {} · up {} · cache {} in {} files · hit ratio {:.1} % · {} served from cache\n",
        s.version,
        humantime::format_duration(Duration::from_secs(s.uptime_secs)),
        human_bytes(s.cache_bytes),
        s.cache_files,
        s.hit_ratio * 100.0,
        human_bytes(s.bytes_saved),
    );
    let rows: Vec<Vec<String>> = s
        .upstreams
        .iter()
        .map(|(k, u)| vec![k.clone(), u.files.to_string(), human_bytes(u.bytes)])
        .collect();
    out.push_str(&table(&["UPSTREAM", ">FILES", ">SIZE"], &rows));
    let r = &s.requests;
    let _ = writeln!(
        out,
        "\nrequests: {} hit, {} miss, {} joined, {} revalidated, {} stale, {} not found, {} error\n",
        r.hit, r.miss, r.joined, r.revalidated, r.stale, r.not_found, r.error
    );
    if s.inflight.is_empty() {
        out.push_str("no downloads in flight\n");
    } else {
        let rows: Vec<Vec<String>> = s
            .inflight
            .iter()
            .map(|d| {
                let pct = d
                    .bytes_total
                    .filter(|t| *t > 0)
                    .map(|t| format!("{:.0} %", d.bytes_done as f64 * 100.0 / t as f64))
                    .unwrap_or_else(|| "?".into());
                vec![
                    d.path.clone(),
                    pct,
                    format!(
                        "{} / {}",
                        human_bytes(d.bytes_done),
                        d.bytes_total.map(human_bytes).unwrap_or_else(|| "?".into())
                    ),
                    format!("{}/s", human_bytes(d.rate_bps)),
                    d.clients.to_string(),
                ]
            })
            .collect();
        out.push_str(&table(
            &["IN FLIGHT", ">DONE", ">BYTES", ">RATE", ">CLIENTS"],
            &rows,
        ));
    }
    if let Some(e) = &s.storage_error {
        let _ = writeln!(
            out,
            "\ndisk trouble: {} download(s) could not be stored; last {} ago: {}",
            e.errors,
            humantime::format_duration(Duration::from_secs(s.now.saturating_sub(e.at))),
            e.message
        );
    }
    out.push('\n');
    out.push_str(&render_mirrors(&s.mirrors));
    if let Some(aur) = &s.aur {
        let _ = writeln!(
            out,
            "\nAUR: {} tracked, {} waiting for approval{}, {} queued{}",
            aur.tracked,
            aur.pending,
            if aur.pending_names.is_empty() {
                String::new()
            } else {
                format!(" ({})", aur.pending_names.join(", "))
            },
            aur.queued,
            aur.building
                .as_ref()
                .map(|b| format!(", building {b}"))
                .unwrap_or_default()
        );
    }
    match &s.last_refresh {
        Some(rep) => {
            let _ = writeln!(out, "\nlast refresh: {}", refresh_summary(rep));
        }
        None => out.push_str("\nlast refresh: none since start\n"),
    }
    out
}

/// The `mirrors` command's text.
pub fn render_mirrors(mirrors: &[MirrorStatus]) -> String {
    let rows: Vec<Vec<String>> = mirrors
        .iter()
        .map(|m| {
            vec![
                m.upstream.clone(),
                m.url.clone(),
                m.redirects_to.clone().unwrap_or_default(),
                if m.healthy {
                    "healthy".to_string()
                } else {
                    format!("cooling down {} s", m.cooldown_secs)
                },
                m.successes.to_string(),
                m.failures.to_string(),
                human_bytes(m.bytes),
                m.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "UPSTREAM",
            "MIRROR",
            "REDIRECTS TO",
            "HEALTH",
            ">OK",
            ">FAILED",
            ">RECEIVED",
            "LAST ERROR",
        ],
        &rows,
    )
}

fn refresh_summary(r: &RefreshReport) -> String {
    let mut s = format!(
        "{} dbs checked, {} updated, {} re-published files dropped, {} packages prefetched, {} files cleaned in {} ms",
        r.dbs_checked,
        r.dbs_updated,
        r.republished.len(),
        r.prefetched.len(),
        r.cleaned,
        r.duration_ms
    );
    if !r.errors.is_empty() {
        let _ = write!(s, "; {} error(s): {}", r.errors.len(), r.errors.join("; "));
    }
    s
}

/// The `refresh` command's text.
pub fn render_refresh(r: &RefreshReport) -> String {
    let mut out = format!("refresh: {}\n", refresh_summary(r));
    for p in &r.republished {
        let _ = writeln!(out, "  re-published upstream, dropped {p}");
    }
    for p in &r.prefetched {
        let _ = writeln!(out, "  prefetched {p}");
    }
    out
}

/// The `cleanup` command's text.
pub fn render_cleanup(r: &CleanupReport) -> String {
    let rows: Vec<Vec<String>> = r
        .removed
        .iter()
        .map(|x| vec![x.path.clone(), human_bytes(x.bytes), x.reason.clone()])
        .collect();
    let mut out = String::new();
    if !rows.is_empty() {
        out.push_str(&table(&["FILE", ">SIZE", "REASON"], &rows));
    }
    let _ = writeln!(
        out,
        "{} {} files, {}{}",
        if r.dry_run { "would remove" } else { "removed" },
        r.removed.len(),
        human_bytes(r.freed_bytes),
        if r.errors.is_empty() {
            String::new()
        } else {
            format!("; errors: {}", r.errors.join("; "))
        }
    );
    out
}

/// `pkgstash aur pending`'s text.
pub fn render_aur_pending(pending: &[crate::aur::queue::Pending], with_diff: bool) -> String {
    if pending.is_empty() {
        return "nothing waiting for approval\n".to_string();
    }
    let rows: Vec<Vec<String>> = pending
        .iter()
        .map(|p| {
            vec![
                p.pkgbase.clone(),
                p.old_version.clone().unwrap_or_else(|| "-".into()),
                p.version.clone(),
                p.rev.clone(),
            ]
        })
        .collect();
    let mut out = table(&["PACKAGE", "REPO", "AUR", "REVISION"], &rows);
    for p in pending {
        let _ = writeln!(out, "\n{} {} held because:", p.pkgbase, p.version);
        for r in &p.reasons {
            let _ = writeln!(out, "  - {r}");
        }
        let _ = writeln!(
            out,
            "  approve: pkgstash aur approve {} --rev {}",
            p.pkgbase, p.rev
        );
        if with_diff {
            let _ = writeln!(
                out,
                "\n--- diff against {} ---\n{}",
                p.approved_rev
                    .as_deref()
                    .unwrap_or("nothing (first review)"),
                p.diff
            );
        }
    }
    out
}

/// `pkgstash aur approve`'s text.
pub fn render_aur_approval(a: &crate::aur::queue::Approval) -> String {
    format!(
        "approved {} {} (rev {}); the build is queued\n",
        a.pkgbase, a.version, a.rev
    )
}

/// The `evict` command's text.
pub fn render_evicted(e: &Evicted) -> String {
    format!("evicted {} ({})\n", e.path, human_bytes(e.bytes))
}

/// The `repo list` command's text.
pub fn render_repo_list(repo: &str, pkgs: &[crate::repo::package::PackageMeta]) -> String {
    let rows: Vec<Vec<String>> = pkgs
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.version.clone(),
                p.arch.clone(),
                human_bytes(p.csize),
                if p.pgpsig.is_some() { "yes" } else { "no" }.to_string(),
            ]
        })
        .collect();
    let mut out = table(&["NAME", "VERSION", "ARCH", ">SIZE", "SIGNED"], &rows);
    let _ = writeln!(out, "{} package(s) in {repo}", pkgs.len());
    out
}

/// The `repo add` command's text.
pub fn render_repo_added(a: &crate::custom_repo::Added) -> String {
    let mut out = format!("added {} {} ({}) to {}", a.name, a.version, a.arch, a.repo);
    if let Some(old) = &a.replaced {
        let _ = write!(out, ", replacing {old}");
    }
    out.push('\n');
    for p in &a.pruned {
        let _ = writeln!(out, "  pruned {p}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["NAME", ">SIZE"],
            &[
                vec!["a".into(), "1 B".into()],
                vec!["longer".into(), "10 KiB".into()],
            ],
        );
        assert_eq!(t, "NAME      SIZE\na          1 B\nlonger  10 KiB\n");
    }
}
