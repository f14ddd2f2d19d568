//! The client commands' text output: a table (columns aligned, `>` headers right-aligned) or
//! a few lines per answer of the admin API. Sizes are binary units (`1.5 GiB`), durations
//! humantime (`2h 5m`). With `--json` the commands print the server's JSON instead.

use std::fmt::Write as _;
use std::time::Duration;

use crate::admin::routes::Evicted;
use crate::admin::status::Status;
use crate::jobs::cleanup::CleanupReport;
use crate::jobs::refresh::RefreshReport;
use crate::upstream::pool::MirrorStatus;

/// Human-readable byte size.
pub(crate) fn human_bytes(n: u64) -> String {
    bytesize::ByteSize(n).to_string_as(true)
}

/// Left-aligned text table; columns whose header starts with `>` are right-aligned.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
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

/// The `status` command's text: the summary, traffic, downloads in flight, disk trouble,
/// mirror health, the AUR build server and the last refresh, blank lines between.
pub(crate) fn render_status(s: &Status) -> String {
    let mut out = status_summary(s);
    out.push('\n');
    out.push_str(&render_inflight(s));
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
    if let Some(line) = aur_summary(s) {
        let _ = writeln!(out, "\n{line}");
    }
    match &s.last_refresh {
        Some(rep) => {
            let _ = writeln!(out, "\nlast refresh: {}", refresh_summary(rep));
        }
        None => out.push_str("\nlast refresh: none since start\n"),
    }
    out
}

/// The first line (version, uptime, cache, hit ratio), the cache by upstream and the
/// request counts.
fn status_summary(s: &Status) -> String {
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
        "\nrequests: {} hit, {} miss, {} joined, {} revalidated, {} stale, {} not found, {} error",
        r.hit, r.miss, r.joined, r.revalidated, r.stale, r.not_found, r.error
    );
    out
}

/// The downloads in flight: path, percent done, bytes, rate, clients.
fn render_inflight(s: &Status) -> String {
    if s.inflight.is_empty() {
        return "no downloads in flight\n".to_string();
    }
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
    table(
        &["IN FLIGHT", ">DONE", ">BYTES", ">RATE", ">CLIENTS"],
        &rows,
    )
}

/// `AUR: 3 tracked, 2 waiting for approval (a, b), 1 queued, building …` (`None`: AUR off).
fn aur_summary(s: &Status) -> Option<String> {
    let aur = s.aur.as_ref()?;
    Some(format!(
        "AUR: {} tracked, {} waiting for approval{}, {} queued{}",
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
    ))
}

/// The `mirrors` command's text.
pub(crate) fn render_mirrors(mirrors: &[MirrorStatus]) -> String {
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
pub(crate) fn render_refresh(r: &RefreshReport) -> String {
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
pub(crate) fn render_cleanup(r: &CleanupReport) -> String {
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
pub(crate) fn render_aur_pending(
    pending: &[crate::aur::queue::Pending],
    with_diff: bool,
) -> String {
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
pub(crate) fn render_aur_approval(a: &crate::aur::queue::Approval) -> String {
    format!(
        "approved {} {} (rev {}); the build is queued\n",
        a.pkgbase, a.version, a.rev
    )
}

/// The `evict` command's text.
pub(crate) fn render_evicted(e: &Evicted) -> String {
    format!("evicted {} ({})\n", e.path, human_bytes(e.bytes))
}

/// The `repo list` command's text.
pub(crate) fn render_repo_list(repo: &str, pkgs: &[crate::repo::package::PackageMeta]) -> String {
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

/// The `repo remove` command's text.
pub(crate) fn render_repo_removed(repo: &str, p: &crate::repo::package::PackageMeta) -> String {
    format!("removed {} {} from {repo}\n", p.name, p.version)
}

/// The text of `aur reject` and `aur check`: the server's message.
pub(crate) fn render_aur_done(d: &crate::admin::aur::Done) -> String {
    format!("{}\n", d.message)
}

/// The `repo add` command's text.
pub(crate) fn render_repo_added(a: &crate::custom_repo::Added) -> String {
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

    /// A status with every part present (downloads in flight, disk trouble, AUR, a last
    /// refresh with errors), as the admin API sends it.
    const STATUS_JSON: &str = r#"{
        "version": "0.1.0", "uptime_secs": 7500, "now": 1000000, "cache_bytes": 3221225472,
        "cache_files": 42,
        "upstreams": {"archlinux": {"bytes": 3000000000, "files": 40}, "arm": {"bytes": 5, "files": 2}},
        "requests": {"hit": 10, "miss": 3, "joined": 2, "revalidated": 1, "stale": 0, "not_found": 4, "error": 1},
        "hit_ratio": 0.6875, "bytes_saved": 1048576, "bytes_from_upstream": 0,
        "inflight": [
            {"path": "archlinux/core/os/x86_64/a-1-1-x86_64.pkg.tar.zst", "phase": "streaming",
             "bytes_done": 512, "bytes_total": 2048, "rate_bps": 1024, "clients": 2, "elapsed_ms": 5, "mirror": null},
            {"path": "archlinux/extra/os/x86_64/b-1-1-any.pkg.tar.zst", "phase": "connecting",
             "bytes_done": 0, "bytes_total": null, "rate_bps": 0, "clients": 1, "elapsed_ms": 5, "mirror": null}
        ],
        "mirrors": [
            {"upstream": "archlinux", "url": "https://u:***@a.example", "redirects_to": "https://cdn.example",
             "healthy": true, "cooldown_secs": 0, "consecutive_failures": 0, "successes": 5, "failures": 1,
             "bytes": 4096, "last_error": null},
            {"upstream": "arm", "url": "http://b.example", "healthy": false, "cooldown_secs": 30,
             "consecutive_failures": 2, "successes": 0, "failures": 2, "bytes": 0, "last_error": "timeout"}
        ],
        "storage_error": {"at": 999940, "kind": "full", "message": "No space left on device", "errors": 3},
        "last_refresh": {"started_at": 1, "duration_ms": 1200, "dbs_checked": 6, "dbs_updated": 2,
            "prefetched": ["archlinux/core/os/x86_64/a-1-1-x86_64.pkg.tar.zst"], "republished": [],
            "cleaned": 4, "errors": ["core.db: timeout", "extra.db: 503"]},
        "admin_enabled": true,
        "aur": {"tracked": 3, "pending": 2, "pending_names": ["yay", "paru"], "queued": 1,
            "building": "foo 1.0-1", "last_check": null, "last_check_error": null, "builds": []}
    }"#;

    /// The status text, every part present and every optional part absent (pinned: the
    /// layout is what admins read and scripts may grep).
    #[test]
    fn status_text() {
        let s: Status = serde_json::from_str(STATUS_JSON).expect("status");
        assert_eq!(render_status(&s), STATUS_FULL);
        let mut s = s;
        s.inflight.clear();
        s.storage_error = None;
        s.aur = None;
        s.last_refresh = None;
        assert_eq!(render_status(&s), STATUS_BARE);
    }

    const STATUS_FULL: &str = "pkgstash 0.1.0 · up 2h 5m · cache 3.0 GiB in 42 files · hit ratio 68.8 % · 1.0 MiB served from cache\n\nUPSTREAM   FILES     SIZE\narchlinux     40  2.8 GiB\narm            2      5 B\n\nrequests: 10 hit, 3 miss, 2 joined, 1 revalidated, 0 stale, 4 not found, 1 error\n\nIN FLIGHT                                          DONE            BYTES       RATE  CLIENTS\narchlinux/core/os/x86_64/a-1-1-x86_64.pkg.tar.zst  25 %  512 B / 2.0 kiB  1.0 kiB/s        2\narchlinux/extra/os/x86_64/b-1-1-any.pkg.tar.zst       ?          0 B / ?      0 B/s        1\n\ndisk trouble: 3 download(s) could not be stored; last 1m ago: No space left on device\n\nUPSTREAM   MIRROR                   REDIRECTS TO         HEALTH             OK  FAILED  RECEIVED  LAST ERROR\narchlinux  https://u:***@a.example  https://cdn.example  healthy             5       1   4.0 kiB\narm        http://b.example                              cooling down 30 s   0       2       0 B  timeout\n\nAUR: 3 tracked, 2 waiting for approval (yay, paru), 1 queued, building foo 1.0-1\n\nlast refresh: 6 dbs checked, 2 updated, 0 re-published files dropped, 1 packages prefetched, 4 files cleaned in 1200 ms; 2 error(s): core.db: timeout; extra.db: 503\n";

    const STATUS_BARE: &str = "pkgstash 0.1.0 · up 2h 5m · cache 3.0 GiB in 42 files · hit ratio 68.8 % · 1.0 MiB served from cache\n\nUPSTREAM   FILES     SIZE\narchlinux     40  2.8 GiB\narm            2      5 B\n\nrequests: 10 hit, 3 miss, 2 joined, 1 revalidated, 0 stale, 4 not found, 1 error\n\nno downloads in flight\n\nUPSTREAM   MIRROR                   REDIRECTS TO         HEALTH             OK  FAILED  RECEIVED  LAST ERROR\narchlinux  https://u:***@a.example  https://cdn.example  healthy             5       1   4.0 kiB\narm        http://b.example                              cooling down 30 s   0       2       0 B  timeout\n\nlast refresh: none since start\n";
}
