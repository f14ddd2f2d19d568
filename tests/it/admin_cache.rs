//! The admin API's cache browser and mirror controls (docs/admin-api.md): `GET api/cache`,
//! `GET api/cache/<prefix>` (hits, folded signatures, versions against the cached db),
//! eviction racing the publication of a download, `POST api/mirrors/reset-cooldown` and the
//! mirrors' new status fields.

use std::time::Duration;

use serde_json::Value;

use crate::fixture::{tools_available, Repo};
use crate::support::{client, wait_for, Pkgstash};
use crate::upstream::{payload, Behaviour, FakeMirror};

const TOKEN: &str = "t0ken-for-cache-tests";
const DIR: &str = "/core/os/x86_64";

fn start(mirrors: &[String]) -> Pkgstash {
    let list: Vec<String> = mirrors.iter().map(|m| format!("\"{m}\"")).collect();
    let cfg = format!("[upstreams.arch]\nmirrors = [{}]\n", list.join(", "));
    Pkgstash::start_env(&cfg, &[("PKGSTASH_TOKEN", TOKEN)])
}

fn api(p: &Pkgstash, method: &str, path: &str) -> reqwest::blocking::Response {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    client()
        .request(m, p.url(&format!("/_pkgstash/api/{path}")))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .send()
        .expect("request")
}

fn api_json(p: &Pkgstash, method: &str, path: &str) -> Value {
    let r = api(p, method, path);
    assert_eq!(r.status().as_u16(), 200, "{method} {path}");
    assert_eq!(
        r.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    r.json().expect("json")
}

fn row<'a>(listing: &'a Value, file: &str) -> &'a Value {
    listing["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|r| r["file"] == file)
        .unwrap_or_else(|| panic!("{file} in {listing}"))
}

#[test]
fn cache_browser_lists_hits_signatures_and_newer_versions_in_the_db() {
    if !tools_available() {
        return;
    }
    let repo = Repo::new();
    let old = std::fs::read(repo.add("foo", "1.0-1", 2000)).expect("pkg");
    repo.add("foo", "1.1-1", 2000); // the db now lists 1.1-1
    let up = FakeMirror::start();
    let pkg = "foo-1.0-1-x86_64.pkg.tar.zst";
    up.put(&format!("{DIR}/{pkg}"), old.clone());
    up.put(
        &format!("{DIR}/{pkg}.sig"),
        b"not-a-real-signature".to_vec(),
    );
    let p = start(&[up.url()]);
    let url = format!("/arch{DIR}/{pkg}");
    // A miss, then two hits (fast path, then actix with a Range), a HEAD (not a hit).
    assert_eq!(p.get(&url).1.expect("miss"), old);
    p.wait_cached(&format!("arch{DIR}/{pkg}"));
    assert_eq!(p.get(&url).1.expect("hit"), old);
    let r = client()
        .get(p.url(&url))
        .header("Range", "bytes=0-9")
        .send()
        .expect("range");
    assert_eq!(r.status().as_u16(), 206);
    client().head(p.url(&url)).send().expect("head");
    assert_eq!(p.get(&format!("{url}.sig")).0, 200);
    // Then the db, which lists a newer foo.
    up.put(&format!("{DIR}/core.db"), repo.db());
    assert_eq!(p.get(&format!("/arch{DIR}/core.db")).0, 200);
    p.wait_cached(&format!("arch{DIR}/core.db"));

    let tree = api_json(&p, "GET", "cache");
    let arch = &tree["upstreams"][0];
    assert_eq!(arch["name"], "arch");
    assert_eq!(arch["files"], 3, "{tree}");
    let dir = &arch["dirs"][0];
    assert_eq!(dir["dir"], "core/os/x86_64");
    assert_eq!(
        (dir["files"].as_u64(), dir["packages"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(dir["dbs"], serde_json::json!(["core.db"]));
    assert_eq!(
        dir["bytes"].as_u64(),
        arch["bytes"].as_u64(),
        "one directory holds it all"
    );

    let mut listing = Value::Null;
    wait_for("three hits counted", Duration::from_secs(5), || {
        listing = api_json(&p, "GET", "cache/arch");
        row(&listing, pkg)["hits"] == 3
    });
    assert_eq!(listing["prefix"], "arch");
    assert_eq!(listing["truncated"], false);
    assert!(listing["now"].as_u64().is_some());
    assert_eq!(
        listing["files"].as_array().map(Vec::len),
        Some(2),
        "the .sig is folded: {listing}"
    );
    let foo = row(&listing, pkg);
    assert_eq!(foo["path"], format!("arch{DIR}/{pkg}"));
    assert_eq!(foo["dir"], "core/os/x86_64");
    assert_eq!(foo["kind"], "package");
    assert_eq!(
        (
            foo["name"].as_str(),
            foo["version"].as_str(),
            foo["arch"].as_str()
        ),
        (Some("foo"), Some("1.0-1"), Some("x86_64"))
    );
    assert_eq!(foo["size"], old.len());
    assert_eq!(foo["sig"], true);
    assert_eq!(foo["sig_size"], 20);
    assert_eq!(foo["db_version"], "1.1-1");
    assert_eq!(foo["newer_in_db"], true);
    assert_eq!(foo["downloading"], false);
    assert!(foo["last_served"].as_u64().expect("last_served") > 0);
    assert!(foo["mtime"].as_u64().is_some());
    let db = row(&listing, "core.db");
    assert_eq!(db["kind"], "database");
    assert!(db["name"].is_null() && db["version"].is_null() && db["db_version"].is_null());
    assert_eq!(db["newer_in_db"], false);
    assert_eq!(db["hits"], 1);

    // Deeper prefixes, unknown ones, refused ones.
    let deeper = api_json(&p, "GET", "cache/arch/core/os");
    assert_eq!(deeper["prefix"], "arch/core/os");
    assert_eq!(deeper["files"].as_array().map(Vec::len), Some(2));
    for (path, status) in [
        ("cache/arch/extra", 404),
        ("cache/nope", 404),
        ("cache/arch/core/o", 404),
        ("cache/arch/core%5Cx", 400),
        ("cache/arch/core%252e/x", 400),
        ("cache/arch/core%00/x", 400),
    ] {
        assert_eq!(api(&p, "GET", path).status().as_u16(), status, "{path}");
    }
    // The token is needed to see what the LAN installs.
    let r = client()
        .get(p.url("/_pkgstash/api/cache/arch"))
        .send()
        .expect("get");
    assert_eq!(r.status().as_u16(), 401);

    // Evict the package and its signature: gone from the listing and the disk.
    let gone = api_json(&p, "DELETE", &format!("cache/arch{DIR}/{pkg}"));
    assert_eq!(gone["bytes"], old.len());
    api_json(&p, "DELETE", &format!("cache/arch{DIR}/{pkg}.sig"));
    let listing = api_json(&p, "GET", "cache/arch");
    assert_eq!(
        listing["files"].as_array().map(Vec::len),
        Some(1),
        "{listing}"
    );
    assert!(!p.cache_dir.join(format!("arch{DIR}/{pkg}")).exists());
}

#[test]
fn evict_waits_for_a_downloaded_file_to_be_published_and_refuses_one_still_arriving() {
    let up = FakeMirror::start();
    let big = payload(96 << 20, 5);
    let pkg = format!("{DIR}/big-1.0-1-x86_64.pkg.tar.zst");
    up.put(&pkg, big.clone());
    let p = start(&[up.url()]);
    let cached = p.cache_dir.join(format!("arch{pkg}"));
    // The client has every byte once the file is verified, before its fsync and rename: an
    // eviction right then waits for the publication instead of answering 409.
    for round in 0..3 {
        let body = p.get(&format!("/arch{pkg}")).1.expect("get");
        assert_eq!(body.len(), big.len());
        let r = api(&p, "DELETE", &format!("cache/arch{pkg}"));
        let status = r.status().as_u16();
        let text = r.text().expect("body");
        assert_eq!(status, 200, "round {round}: {text}");
        let v: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["bytes"], big.len());
        assert!(!cached.exists(), "evicted from disk");
    }
    // While the body is still arriving: 409, and the download goes on.
    up.set(Behaviour::Trickle(512 << 10));
    let small = payload(2 << 20, 6);
    let slow = format!("{DIR}/slow-1.0-1-x86_64.pkg.tar.zst");
    up.put(&slow, small.clone());
    let reader = crate::support::get_in_background(&p.url(&format!("/arch{slow}")));
    wait_for("download in flight", Duration::from_secs(10), || {
        p.status_json_or_null()["inflight"][0]["bytes_done"]
            .as_u64()
            .unwrap_or(0)
            > 0
    });
    let r = api(&p, "DELETE", &format!("cache/arch{slow}"));
    assert_eq!(r.status().as_u16(), 409);
    assert_eq!(
        r.text().expect("body").trim(),
        format!("conflict: /arch{slow} is being downloaded")
    );
    assert_eq!(reader.join().expect("join").expect("body"), small);
}

#[test]
fn mirrors_show_rates_and_times_and_a_cooldown_can_be_cleared() {
    let up = FakeMirror::start();
    let data = payload(900_000, 8);
    let pkg = format!("{DIR}/m-1.0-1-x86_64.pkg.tar.zst");
    up.put(&pkg, data.clone());
    // Nothing listens on the first mirror: it fails and cools down, the second serves.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let p = start(&[dead.clone(), up.url()]);
    assert_eq!(p.get(&format!("/arch{pkg}")).1.expect("get"), data);
    // The client has every byte once it is verified; the mirror's success is recorded when the
    // file is published, a moment later.
    let mut mirrors = Value::Null;
    wait_for("the success recorded", Duration::from_secs(10), || {
        mirrors = api_json(&p, "GET", "mirrors");
        mirrors[1]["last_success_at"].is_u64()
    });
    let (d, good) = (&mirrors[0], &mirrors[1]);
    assert_eq!(d["url"], dead);
    assert_eq!(d["healthy"], false);
    assert!(d["cooldown_secs"].as_u64().expect("cooldown") > 0);
    assert_eq!(d["consecutive_failures"], 1);
    assert!(d["last_failure_at"].as_u64().is_some(), "{d}");
    assert!(d["last_success_at"].is_null());
    assert_eq!(d["recent_rate_bps"], 0);
    assert!(good["last_success_at"].as_u64().is_some(), "{good}");
    assert!(good["last_failure_at"].is_null());
    assert_eq!(good["recent_rate_bps"], data.len() as u64 / 300, "{good}");
    // status.json carries the same fields.
    assert_eq!(
        p.status_json()["mirrors"][1]["recent_rate_bps"],
        good["recent_rate_bps"]
    );

    let path = |upstream: &str, url: &str| {
        format!(
            "mirrors/reset-cooldown?upstream={upstream}&url={}",
            percent_encode(url)
        )
    };
    let cleared = api_json(&p, "POST", &path("arch", &dead));
    assert_eq!(cleared["url"], dead);
    assert_eq!(cleared["healthy"], true);
    assert_eq!(
        (
            cleared["cooldown_secs"].as_u64(),
            cleared["consecutive_failures"].as_u64()
        ),
        (Some(0), Some(0))
    );
    assert_eq!(cleared["failures"], 1, "the history stays");
    assert_eq!(api_json(&p, "GET", "mirrors")[0]["healthy"], true);
    assert!(p
        .log()
        .contains(&format!("admin: cooldown of {dead} cleared")));
    let r = api(&p, "POST", &path("arch", "http://elsewhere"));
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(
        r.text().expect("body").trim(),
        "not found: no mirror http://elsewhere in upstream arch"
    );
    assert_eq!(api(&p, "POST", &path("nope", &dead)).status().as_u16(), 404);
    assert_eq!(
        api(&p, "POST", "mirrors/reset-cooldown").status().as_u16(),
        400
    );
    assert_eq!(api(&p, "GET", &path("arch", &dead)).status().as_u16(), 405);
    let r = client()
        .post(p.url(&format!("/_pkgstash/api/{}", path("arch", &dead))))
        .send()
        .expect("post");
    assert_eq!(r.status().as_u16(), 401, "an action needs the token");
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
