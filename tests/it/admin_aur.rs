//! The AUR build server through the admin interface's endpoints (docs/admin-api.md, "AUR build
//! server"): `GET api/aur`, reject of a stale revision (409), approve of exactly the revision
//! shown, the build's id, its log followed live as Server-Sent Events while makepkg runs,
//! `GET api/aur/builds[/<id>[/log]]` with `Range` and `Last-Event-ID`.
//!
//! Uses the fake AUR of `aur.rs` and the real `makepkg`.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use crate::aur::{package_files, tools, World};
use crate::support::{client, wait_for};

const TOKEN: &str = "aur-t0ken-for-tests";

fn get(w: &World, path: &str, headers: &[(&str, &str)]) -> reqwest::blocking::Response {
    let mut r = client()
        .get(w.server().url(&format!("/_pkgstash/api/{path}")))
        .bearer_auth(TOKEN);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().expect("get")
}

/// The events of an SSE answer, each with the time it arrived: (event, id, data lines).
fn read_events(
    resp: reqwest::blocking::Response,
) -> Vec<(Instant, String, Option<u64>, Vec<String>)> {
    let mut out = Vec::new();
    let (mut event, mut id, mut data) = (String::new(), None, Vec::new());
    for line in BufReader::new(resp).lines() {
        let line = line.expect("line");
        if line.is_empty() {
            if !event.is_empty() || !data.is_empty() {
                let name = std::mem::take(&mut event);
                out.push((
                    Instant::now(),
                    name.clone(),
                    id.take(),
                    std::mem::take(&mut data),
                ));
                if name == "end" {
                    break;
                }
            }
            continue;
        }
        if let Some(v) = line.strip_prefix("event: ") {
            event = v.to_string();
        } else if let Some(v) = line.strip_prefix("id: ") {
            id = v.parse().ok();
        } else if let Some(v) = line.strip_prefix("data: ") {
            data.push(v.to_string());
        }
    }
    out
}

#[test]
fn aur_view_approve_exactly_the_shown_revision_and_follow_the_build_log_live() {
    if !tools() {
        return;
    }
    let mut w = World::new();
    let repo = w.repo("ui-aur");
    let body = "  for i in 1 2 3 4 5 6; do echo \"step $i\"; sleep 1; done";
    let rev1 = repo.commit(&package_files("ui-aur", "1.0", 1, body), "1.0-1");
    w.aur.set("ui-aur", "1.0-1");
    w.start(&["ui-aur"]);
    w.wait_pending("ui-aur", &rev1);

    let (st, view) = w.api(Method::GET, "aur");
    assert_eq!(st, 200, "{view}");
    assert_eq!(
        (view["repo"].as_str(), view["check_interval_secs"].as_u64()),
        (Some("custom"), Some(1))
    );
    assert_eq!(view["concurrent_builds"], 1);
    let pkg = &view["packages"][0];
    assert_eq!(
        (pkg["name"].as_str(), pkg["pkgbase"].as_str()),
        (Some("ui-aur"), Some("ui-aur"))
    );
    assert_eq!(pkg["state"], "pending", "{view}");
    assert_eq!(pkg["pending"]["rev"], rev1.as_str());
    assert_eq!(pkg["pending"]["version"], "1.0-1");
    assert!(pkg["repo_version"].is_null() && pkg["last_build"].is_null());
    assert_eq!(view["queue"], serde_json::json!([]));
    assert_eq!(view["building"], serde_json::json!([]));

    // A page showing an older revision cannot reject or approve the new one.
    let stale = "0".repeat(40);
    for action in ["reject", "approve"] {
        let r = client()
            .post(
                w.server()
                    .url(&format!("/_pkgstash/api/aur/{action}/ui-aur?rev={stale}")),
            )
            .bearer_auth(TOKEN)
            .send()
            .expect("post");
        assert_eq!(r.status().as_u16(), 409, "{action}");
        assert_eq!(
            r.text().expect("body").trim(),
            format!("conflict: `ui-aur`: the pending revision is {rev1}, not {stale}")
        );
    }
    let (st, _) = w.api(Method::POST, "aur/reject/ui-aur?rev=abc");
    assert_eq!(st, 400);
    assert_eq!(w.pending().len(), 1, "still held");

    let (st, a) = w.api(Method::POST, &format!("aur/approve/ui-aur?rev={rev1}"));
    assert_eq!(st, 200, "{a}");
    let mut id = 0;
    wait_for("the build starts", Duration::from_secs(60), || {
        let (_, v) = w.api(Method::GET, "aur");
        id = v["building"][0]["id"].as_u64().unwrap_or(0);
        id > 0
    });
    let (_, v) = w.api(Method::GET, "aur");
    assert_eq!(v["packages"][0]["state"], "building", "{v}");
    assert_eq!(v["building"][0]["state"], "building");
    assert_eq!(v["building"][0]["rev"], rev1.as_str());
    assert!(v["building"][0]["ended_at"].is_null());

    // Follow the log while makepkg runs: the steps arrive about a second apart, then `end`.
    let resp = get(
        &w,
        &format!("aur/builds/{id}/log"),
        &[("Accept", "text/event-stream")],
    );
    assert_eq!(resp.status().as_u16(), 200);
    let h = |r: &reqwest::blocking::Response, n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(h(&resp, "content-type"), "text/event-stream");
    assert_eq!(h(&resp, "cache-control"), "no-store");
    assert_eq!(h(&resp, "x-accel-buffering"), "no");
    let events = read_events(resp);
    let step_at = |n: u32| {
        events
            .iter()
            .find(|(_, e, _, d)| e == "log" && d.iter().any(|l| l == &format!("step {n}")))
            .map(|(t, ..)| *t)
            .unwrap_or_else(|| panic!("step {n} in {events:?}"))
    };
    let spread = step_at(6).duration_since(step_at(1));
    assert!(
        spread >= Duration::from_secs(3),
        "lines arrive as makepkg writes them: {spread:?}"
    );
    let (_, last, _, data) = events.last().expect("events");
    assert_eq!(last, "end");
    let end: Value = serde_json::from_str(&data.join("\n")).expect("end json");
    assert_eq!(
        (end["id"].as_u64(), end["state"].as_str()),
        (Some(id), Some("built")),
        "{end}"
    );
    let ids: Vec<u64> = events.iter().filter_map(|(_, _, i, _)| *i).collect();
    assert!(ids.windows(2).all(|p| p[0] < p[1]), "{ids:?}");

    // The finished build and its log.
    let b: Value = get(&w, &format!("aur/builds/{id}"), &[])
        .json()
        .expect("build");
    assert_eq!(b["state"], "built");
    assert_eq!(b["version"], "1.0-1");
    assert_eq!(b["by"], "admin");
    assert!(
        b["packages"][0]
            .as_str()
            .unwrap_or("")
            .starts_with("ui-aur-1.0-1-any.pkg.tar"),
        "{b}"
    );
    assert!(b["error"].is_null() && b["duration_secs"].as_u64().is_some());
    let log_bytes = b["log_bytes"].as_u64().expect("log_bytes");
    let list: Value = get(&w, "aur/builds?limit=10", &[]).json().expect("builds");
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["id"], id);
    assert_eq!(
        get(&w, &format!("aur/builds?before={id}"), &[])
            .json::<Value>()
            .expect("json"),
        serde_json::json!([])
    );
    for missing in ["aur/builds/999", "aur/builds/999/log", "aur/builds/x"] {
        assert_eq!(get(&w, missing, &[]).status().as_u16(), 404, "{missing}");
    }
    let r = get(&w, &format!("aur/builds/{id}/log"), &[]);
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(h(&r, "content-type"), "text/plain; charset=utf-8");
    let text = r.text().expect("log");
    assert_eq!(text.len() as u64, log_bytes);
    assert!(
        text.contains("step 6") && text.contains("makepkg --noconfirm"),
        "{text}"
    );
    let r = get(
        &w,
        &format!("aur/builds/{id}/log"),
        &[("Range", "bytes=0-9")],
    );
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(r.bytes().expect("range").as_ref(), &text.as_bytes()[..10]);
    // A finished build's stream resumes after Last-Event-ID and ends at once.
    let (_, _, resume, _) = events
        .iter()
        .find(|(_, e, ..)| e == "log")
        .expect("a log event");
    let resume = resume.expect("id");
    let again = read_events(get(
        &w,
        &format!("aur/builds/{id}/log"),
        &[
            ("Accept", "text/event-stream"),
            ("Last-Event-ID", &resume.to_string()),
        ],
    ));
    let resent: String = again
        .iter()
        .filter(|(_, e, ..)| e == "log")
        .flat_map(|(_, _, _, d)| d.iter().map(|l| format!("{l}\n")))
        .collect();
    assert_eq!(resent, text[resume as usize..].replace('\r', "\n"));
    assert_eq!(again.last().map(|e| e.1.as_str()), Some("end"));

    let (_, v) = w.api(Method::GET, "aur");
    let pkg = &v["packages"][0];
    assert_eq!(pkg["state"], "built", "{v}");
    assert_eq!(pkg["repo_version"], "1.0-1");
    assert_eq!(pkg["last_build"]["id"], id);
    assert_eq!(pkg["approved"]["rev"], rev1.as_str());
    // status.json's summary still shows the build.
    assert_eq!(w.status()["aur"]["builds"][0]["ok"], true);

    // A new revision, rejected with the revision shown.
    let rev2 = repo.commit(
        &package_files("ui-aur", "1.1", 1, "  echo changed"),
        "1.1-1",
    );
    w.aur.set("ui-aur", "1.1-1");
    w.wait_pending("ui-aur", &rev2);
    let (st, done) = w.api(Method::POST, &format!("aur/reject/ui-aur?rev={rev2}"));
    assert_eq!(st, 200, "{done}");
    assert_eq!(done["rev"], rev2.as_str());
    assert_eq!(
        done["message"],
        format!("rejected ui-aur 1.1-1 (rev {rev2})")
    );
    let (_, v) = w.api(Method::GET, "aur");
    assert_eq!(v["packages"][0]["rejected_rev"], rev2.as_str());
    assert!(v["packages"][0]["pending"].is_null());
}
