//! The AUR build server against a local fake AUR ([`crate::fake_aur`]: RPC answers from a tiny
//! HTTP server, package git repos are local bare repos (`git_url` template points at them), the
//! webhook receiver is another tiny HTTP server). Builds run the real `makepkg` (as the unprivileged
//! `pkgstash-build` user when the tests run as root) and the result is installed with the
//! real `pacman`.
//!
//! Run only these: `cargo test --test it aur_`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The fake AUR's pieces that [`crate::admin_aur`] takes from here along with [`World`].
pub(crate) use crate::fake_aur::{build_tools as tools, package_files};
use crate::fake_aur::{AurRepo, FakeAur, Webhook, BUILD_USER};
use crate::sandbox::Sandbox;
use crate::support::{assert_success, bin, client, is_root, must, wait_for, Pkgstash};

const TOKEN: &str = "aur-t0ken-for-tests";
const PATIENCE: Duration = Duration::from_secs(120);

/// One test's world: fake AUR, webhook, git repos, pkgstash.
pub(crate) struct World {
    pub(crate) aur: FakeAur,
    pub(crate) hook: Webhook,
    pub(crate) git_root: tempfile::TempDir,
    pub(crate) work: tempfile::TempDir,
    pub(crate) server: Option<Pkgstash>,
    pub(crate) timeout: &'static str,
    /// The `arch` upstream's mirror.
    pub(crate) mirror: String,
    /// More `[aur.builder]` lines.
    pub(crate) builder_extra: String,
}

impl World {
    pub(crate) fn new() -> World {
        World {
            aur: FakeAur::start(),
            hook: Webhook::start(),
            git_root: tempfile::tempdir().expect("tempdir"),
            work: tempfile::tempdir().expect("tempdir"),
            server: None,
            timeout: "120s",
            mirror: "http://127.0.0.1:9".into(),
            builder_extra: String::new(),
        }
    }

    pub(crate) fn cache_dir(&self) -> PathBuf {
        self.work.path().join("cache")
    }

    pub(crate) fn config(&self, packages: &[&str]) -> String {
        let list: Vec<String> = packages.iter().map(|p| format!("\"{p}\"")).collect();
        format!(
            "[upstreams.arch]\nmirrors = [\"{}\"]\n\n\
             [repos.custom]\npath = \"{}\"\n\n\
             [aur]\npackages = [{}]\nrepo = \"custom\"\nrpc_url = \"{}\"\n\
             git_url = \"{}/{{pkgbase}}.git\"\ncheck_interval = \"1s\"\n\n\
             [aur.builder]\nuser = \"{BUILD_USER}\"\ntimeout = \"{}\"\nisolation = \"auto\"\n{}\n\
             [aur.notify]\nwebhook = \"{}\"\n",
            self.mirror,
            self.work.path().join("repo").display(),
            list.join(", "),
            self.aur.rpc_url(),
            self.git_root.path().display(),
            self.timeout,
            self.builder_extra,
            self.hook.url()
        )
    }

    pub(crate) fn start(&mut self, packages: &[&str]) {
        let cfg = self.config(packages);
        self.server = Some(Pkgstash::start_in(
            self.work.path(),
            &self.cache_dir(),
            &cfg,
            &[("PKGSTASH_TOKEN", TOKEN)],
            None,
        ));
    }

    pub(crate) fn server(&self) -> &Pkgstash {
        self.server.as_ref().expect("server running")
    }

    pub(crate) fn repo(&self, name: &str) -> AurRepo {
        AurRepo::create(self.git_root.path(), name)
    }

    /// The custom repo's db (the build server publishes into `[repos.custom]`).
    pub(crate) fn db_path(&self) -> PathBuf {
        self.work.path().join("repo/x86_64/custom.db.tar.gz")
    }

    /// The `Server =` line pacman installs the custom repo from: pkgstash itself.
    pub(crate) fn pacman_server(&self) -> String {
        self.server().url("/custom/os/$arch")
    }

    pub(crate) fn status(&self) -> Value {
        self.server().status_json_or_null()
    }

    pub(crate) fn api(&self, method: reqwest::Method, path: &str) -> (u16, Value) {
        let resp = client()
            .request(method, self.server().url(&format!("/_pkgstash/api/{path}")))
            .bearer_auth(TOKEN)
            .send()
            .expect("api request");
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    /// Run a `pkgstash` client command against the server.
    pub(crate) fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin())
            .arg("-c")
            .arg(&self.server().config_path)
            .args(args)
            .env("PKGSTASH__LISTEN", self.server().addr.to_string())
            .env("PKGSTASH_TOKEN", TOKEN)
            .env_remove("PKGSTASH_CONFIG")
            .env("RUST_LOG", "warn")
            .output()
            .expect("run pkgstash")
    }

    pub(crate) fn pending(&self) -> Vec<Value> {
        match self.api(reqwest::Method::GET, "aur/pending").1 {
            Value::Array(v) => v,
            _ => Vec::new(),
        }
    }

    pub(crate) fn wait_pending(&self, name: &str, rev: &str) -> Value {
        let mut found = None;
        wait_for(&format!("{name} {rev} pending"), PATIENCE, || {
            found = self
                .pending()
                .into_iter()
                .find(|p| p["pkgbase"] == name && p["rev"] == rev);
            found.is_some()
        });
        found.expect("pending")
    }

    /// The last build of `name` (from status.json), once it is for `version`.
    pub(crate) fn wait_build(&self, name: &str, version: &str) -> Value {
        let mut found = None;
        wait_for(&format!("a build of {name} {version}"), PATIENCE, || {
            found = self.status()["aur"]["builds"].as_array().and_then(|b| {
                b.iter()
                    .find(|b| b["pkgbase"] == name && b["version"] == version)
                    .cloned()
            });
            found.is_some()
        });
        found.expect("build")
    }

    /// Versions the repo's db holds (via `bsdtar -t` of the db: `name-version/` entries).
    pub(crate) fn repo_entries(&self) -> Vec<String> {
        let db = self.db_path();
        if !db.is_file() {
            return Vec::new();
        }
        let out = Command::new("bsdtar")
            .arg("-tf")
            .arg(&db)
            .output()
            .expect("bsdtar");
        let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_suffix('/'))
            .map(String::from)
            .collect();
        v.sort();
        v
    }

    pub(crate) fn logs(&self) -> Vec<PathBuf> {
        let dir = self.cache_dir().join(".state/aur/logs");
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Approve `name`'s first revision and wait for its build.
    pub(crate) fn approve_first(&self, name: &str, rev: &str, version: &str) {
        let p = self.wait_pending(name, rev);
        assert!(p["approved_rev"].is_null(), "first review: {p}");
        let (st, a) = self.api(
            reqwest::Method::POST,
            &format!("aur/approve/{name}?rev={rev}"),
        );
        assert_eq!(st, 200, "approve: {a}");
        assert_eq!(a["rev"], rev);
        assert_eq!(a["by"], "admin");
        let b = self.wait_build(name, version);
        if b["ok"] != true {
            let logs: Vec<String> = self
                .logs()
                .iter()
                .map(|l| std::fs::read_to_string(l).unwrap_or_default())
                .collect();
            panic!(
                "build of {name} failed: {b}\nlogs:\n{}",
                logs.join("\n---\n")
            );
        }
    }
}

/// Install `pkg` from the custom repo at `server` with the real pacman in a sandbox; answer
/// the installed file's content.
fn pacman_install(server: &str, pkg: &str) -> String {
    let sb = Sandbox::new(&[("custom", server)], "Never");
    sb.ok(&["-Sy", pkg]);
    std::fs::read_to_string(sb.root().join("usr/share").join(pkg).join("version"))
        .expect("installed file")
        .trim()
        .to_string()
}

#[test]
fn aur_version_bump_is_auto_approved_built_and_installable() {
    if !tools() {
        return;
    }
    let mut w = World::new();
    let repo = w.repo("hello-aur");
    let rev1 = repo.commit(&package_files("hello-aur", "1.0", 1, "  true"), "1.0-1");
    w.aur.set("hello-aur", "1.0-1");
    w.start(&["hello-aur"]);
    // A package's first revision always needs a review.
    w.approve_first("hello-aur", &rev1, "1.0-1");
    assert_eq!(w.repo_entries(), vec!["hello-aur-1.0-1"]);

    // Upstream bumps the version: nothing but pkgver/pkgrel changed.
    let rev2 = repo.commit(&package_files("hello-aur", "1.1", 2, "  true"), "1.1-2");
    w.aur.set("hello-aur", "1.1-2");
    let b = w.wait_build("hello-aur", "1.1-2");
    assert_eq!(b["ok"], true, "{b}");
    assert_eq!(b["rev"], rev2.as_str());
    assert_eq!(w.repo_entries(), vec!["hello-aur-1.1-2"]);
    assert!(w.pending().is_empty(), "nothing held");
    assert!(
        w.hook.events("held").len() == 1,
        "only the first review was notified"
    );
    let log = w.server().log();
    assert!(log.contains("auto-approved"), "{log}");
    // The approval record names the exact revision built. The state file is written off the
    // async worker right after the build is recorded in memory (what the API shows): wait for
    // the write that carries this build.
    let state_file = w.cache_dir().join(".state/aur/state.json");
    let read_state = || -> Value {
        serde_json::from_slice(&std::fs::read(&state_file).expect("state")).expect("json")
    };
    wait_for(
        "the build saved in the AUR state",
        Duration::from_secs(10),
        || read_state()["packages"]["hello-aur"]["last_build"]["rev"] == rev2.as_str(),
    );
    let state = read_state();
    let last = &state["history"][1];
    assert_eq!(
        (last["rev"].as_str(), last["by"].as_str()),
        (Some(rev2.as_str()), Some("auto"))
    );
    assert_eq!(
        state["packages"]["hello-aur"]["last_build"]["rev"],
        rev2.as_str()
    );

    // The build ran makepkg as the build user, inside bubblewrap when it is installed.
    let logs = w.logs();
    assert_eq!(logs.len(), 2);
    let head = std::fs::read_to_string(&logs[0]).expect("log");
    let head = head.lines().next().unwrap_or("");
    assert!(head.contains("makepkg --noconfirm"), "{head}");
    if is_root() {
        assert!(head.contains("setpriv --reuid="), "{head}");
    }
    let has_bwrap = Command::new("sh")
        .args(["-c", "command -v bwrap"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert_eq!(head.contains(" bwrap "), has_bwrap, "{head}");

    // The real pacman installs it from the custom repo.
    assert_eq!(
        pacman_install(&w.pacman_server(), "hello-aur"),
        "hello-aur 1.1-2"
    );
}

#[test]
fn aur_changed_build_is_held_until_approved() {
    if !tools() {
        return;
    }
    let mut w = World::new();
    let repo = w.repo("held-aur");
    let rev1 = repo.commit(&package_files("held-aur", "1.0", 1, "  true"), "1.0-1");
    w.aur.set("held-aur", "1.0-1");
    w.start(&["held-aur"]);
    w.approve_first("held-aur", &rev1, "1.0-1");

    // A new version whose build() also changed.
    let rev2 = repo.commit(
        &package_files("held-aur", "1.1", 1, "  echo 'something new'"),
        "1.1-1 with a new build step",
    );
    w.aur.set("held-aur", "1.1-1");
    let p = w.wait_pending("held-aur", &rev2);
    assert_eq!(p["approved_rev"], rev1.as_str());
    assert_eq!(p["old_version"], "1.0-1");
    assert!(
        p["diff"]
            .as_str()
            .unwrap_or("")
            .contains("+  echo 'something new'"),
        "{p}"
    );
    // The webhook got the diff.
    wait_for("the held notification", PATIENCE, || {
        w.hook
            .events("held")
            .iter()
            .any(|e| e["rev"] == rev2.as_str())
    });
    let held = w
        .hook
        .events("held")
        .into_iter()
        .find(|e| e["rev"] == rev2.as_str())
        .expect("event");
    assert_eq!(held["package"], "held-aur");
    assert_eq!(held["old_version"], "1.0-1");
    assert_eq!(held["new_version"], "1.1-1");
    assert!(
        held["diff"]
            .as_str()
            .unwrap_or("")
            .contains("something new"),
        "{held}"
    );
    assert!(w.status()["aur"]["pending"] == 1);

    // Several check intervals pass: nothing is built.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(w.repo_entries(), vec!["held-aur-1.0-1"]);
    assert_eq!(w.logs().len(), 1, "only the first build ran");

    // Approving another revision than the pending one is refused.
    let wrong = "0".repeat(40);
    let (st, _) = w.api(
        reqwest::Method::POST,
        &format!("aur/approve/held-aur?rev={wrong}"),
    );
    assert_eq!(st, 409);
    // The CLI approves the reviewed revision.
    let out = w.cli(&["aur", "approve", "held-aur", "--rev", &rev2]);
    assert_success(&out, "pkgstash aur approve");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("approved held-aur 1.1-1"), "{text}");
    let b = w.wait_build("held-aur", "1.1-1");
    assert_eq!(b["ok"], true, "{b}");
    assert_eq!(w.repo_entries(), vec!["held-aur-1.1-1"]);
    assert!(w.pending().is_empty());
    assert_eq!(
        pacman_install(&w.pacman_server(), "held-aur"),
        "held-aur 1.1-1"
    );
}

#[test]
fn aur_reject_and_cli_pending() {
    if !tools() {
        return;
    }
    let mut w = World::new();
    let repo = w.repo("rej-aur");
    let rev1 = repo.commit(&package_files("rej-aur", "1.0", 1, "  true"), "1.0-1");
    w.aur.set("rej-aur", "1.0-1");
    w.start(&["rej-aur"]);
    w.wait_pending("rej-aur", &rev1);
    let out = w.cli(&["aur", "pending"]);
    assert_success(&out, "pkgstash aur pending");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("rej-aur") && text.contains(&rev1), "{text}");
    // A revision other than the pending one is refused, and nothing is rejected.
    let stale = "0".repeat(40);
    let out = w.cli(&["aur", "reject", "rej-aur", "--rev", &stale]);
    assert!(!out.status.success(), "a stale --rev is refused");
    assert_eq!(w.pending().len(), 1, "still held");
    let out = w.cli(&["aur", "reject", "rej-aur", "--rev", &rev1]);
    assert_success(&out, "pkgstash aur reject --rev");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        w.pending().is_empty(),
        "a rejected revision is not held again"
    );
    assert!(w.logs().is_empty(), "nothing built");
    let (st, _) = w.api(reqwest::Method::POST, "aur/approve/rej-aur");
    assert_eq!(st, 404);
}

#[test]
fn aur_failing_build_keeps_log_notifies_repo_unchanged() {
    if !tools() {
        return;
    }
    let mut w = World::new();
    let repo = w.repo("ok-aur");
    let rev1 = repo.commit(&package_files("ok-aur", "1.0", 1, "  true"), "1.0-1");
    w.aur.set("ok-aur", "1.0-1");
    w.start(&["ok-aur"]);
    w.approve_first("ok-aur", &rev1, "1.0-1");
    let db_before = std::fs::read(w.db_path()).expect("db");

    let rev2 = repo.commit(
        &package_files(
            "ok-aur",
            "1.1",
            1,
            "  echo 'compiler exploded' >&2\n  exit 3",
        ),
        "broken",
    );
    w.aur.set("ok-aur", "1.1-1");
    w.wait_pending("ok-aur", &rev2);
    let (st, _) = w.api(
        reqwest::Method::POST,
        &format!("aur/approve/ok-aur?rev={rev2}"),
    );
    assert_eq!(st, 200);
    let b = w.wait_build("ok-aur", "1.1-1");
    assert_eq!(b["ok"], false, "{b}");
    wait_for("the failure notification", PATIENCE, || {
        !w.hook.events("build_failed").is_empty()
    });
    let n = &w.hook.events("build_failed")[0];
    assert_eq!(n["rev"], rev2.as_str());
    assert!(
        n["log_tail"]
            .as_str()
            .unwrap_or("")
            .contains("compiler exploded"),
        "{n}"
    );
    let log = PathBuf::from(n["log"].as_str().expect("log path"));
    let text = std::fs::read_to_string(&log).expect("log kept");
    assert!(text.contains("compiler exploded"), "{text}");
    // The repo is unchanged, and the failed revision is not retried on every check.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(std::fs::read(w.db_path()).expect("db"), db_before);
    assert_eq!(w.logs().len(), 2, "one good, one failed build");
}

#[test]
fn aur_restart_mid_queue_resumes() {
    if !tools() {
        return;
    }
    let mut w = World::new();
    let repo = w.repo("slow-aur");
    let rev1 = repo.commit(&package_files("slow-aur", "1.0", 1, "  sleep 3"), "1.0-1");
    w.aur.set("slow-aur", "1.0-1");
    w.start(&["slow-aur"]);
    w.wait_pending("slow-aur", &rev1);
    let (st, _) = w.api(
        reqwest::Method::POST,
        &format!("aur/approve/slow-aur?rev={rev1}"),
    );
    assert_eq!(st, 200);
    wait_for("the build to start", PATIENCE, || {
        w.status()["aur"]["building"]
            .as_str()
            .is_some_and(|b| b.starts_with("slow-aur"))
    });
    // Crash mid-build.
    if let Some(server) = w.server.take() {
        server.kill9();
    }
    assert!(w.repo_entries().is_empty());
    w.start(&["slow-aur"]);
    let b = w.wait_build("slow-aur", "1.0-1");
    assert_eq!(b["ok"], true, "{b}");
    assert_eq!(b["rev"], rev1.as_str());
    assert!(
        w.server().log().contains("resuming 1 queued build"),
        "{}",
        w.server().log()
    );
    assert_eq!(w.repo_entries(), vec!["slow-aur-1.0-1"]);
    assert!(w.pending().is_empty(), "the approval survived the restart");
}

#[test]
fn aur_routes_need_the_token_and_the_section() {
    let p = Pkgstash::start_env(
        "[upstreams.arch]\nmirrors = [\"http://127.0.0.1:9\"]\n",
        &[("PKGSTASH_TOKEN", TOKEN)],
    );
    let get = |auth: Option<&str>| {
        let mut r = client().get(p.url("/_pkgstash/api/aur/pending"));
        if let Some(a) = auth {
            r = r.bearer_auth(a);
        }
        r.send().expect("request").status().as_u16()
    };
    assert_eq!(get(None), 401);
    assert_eq!(get(Some(TOKEN)), 409, "no [aur]: the build server is off");
    let status: Value = client()
        .get(p.url("/_pkgstash/status.json"))
        .send()
        .and_then(|r| r.json())
        .expect("status");
    assert!(status["aur"].is_null());
}

#[test]
fn aur_build_time_limit_kills_the_build() {
    if !tools() {
        return;
    }
    let mut w = World::new();
    w.timeout = "2s";
    let repo = w.repo("stuck-aur");
    let rev1 = repo.commit(
        &package_files("stuck-aur", "1.0", 1, "  sleep 600"),
        "1.0-1",
    );
    w.aur.set("stuck-aur", "1.0-1");
    w.start(&["stuck-aur"]);
    w.wait_pending("stuck-aur", &rev1);
    let started = Instant::now();
    let (st, _) = w.api(
        reqwest::Method::POST,
        &format!("aur/approve/stuck-aur?rev={rev1}"),
    );
    assert_eq!(st, 200);
    let b = w.wait_build("stuck-aur", "1.0-1");
    assert_eq!(b["ok"], false, "{b}");
    assert!(
        b["error"].as_str().unwrap_or("").contains("timed out"),
        "{b}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(w.repo_entries().is_empty());
    let log = std::fs::read_to_string(&w.logs()[0]).expect("log");
    assert!(log.contains("killed after 2s"), "{log}");
}

#[test]
fn aur_missing_build_dependency_is_a_clear_failure() {
    if !tools() {
        return;
    }
    let mut w = World::new();
    let repo = w.repo("deps-aur");
    let rev1 = repo.commit(&package_files("deps-aur", "1.0", 1, "  true"), "1.0-1");
    w.aur.set("deps-aur", "1.0-1");
    w.start(&["deps-aur"]);
    w.approve_first("deps-aur", &rev1, "1.0-1");
    let db_before = std::fs::read(w.db_path()).expect("db");

    let dep = "aurtest-helper";
    let mut files = package_files("deps-aur", "1.1", 1, "  true");
    files[0].1 = files[0].1.replace(
        "license=('MIT')",
        &format!("license=('MIT')\nmakedepends=('{dep}')"),
    );
    files[1].1 = files[1].1.replace(
        "\tlicense = MIT\n",
        &format!("\tlicense = MIT\n\tmakedepends = {dep}\n"),
    );
    let rev2 = repo.commit(&files, "needs a dependency");
    w.aur.set("deps-aur", "1.1-1");
    // A new dependency is not a version bump: held until approved.
    w.wait_pending("deps-aur", &rev2);
    let (st, _) = w.api(
        reqwest::Method::POST,
        &format!("aur/approve/deps-aur?rev={rev2}"),
    );
    assert_eq!(st, 200);
    let b = w.wait_build("deps-aur", "1.1-1");
    assert_eq!(b["ok"], false, "{b}");
    wait_for("the failure notification", PATIENCE, || {
        !w.hook.events("build_failed").is_empty()
    });
    let n = &w.hook.events("build_failed")[0];
    assert!(
        n["error"]
            .as_str()
            .unwrap_or("")
            .contains("installing the build dependencies failed"),
        "{n}"
    );
    let log = PathBuf::from(n["log"].as_str().expect("log path"));
    let text = std::fs::read_to_string(&log).expect("log kept");
    // The host lacks it, so pacman looked for it in the repos pkgstash serves (here only the
    // custom repo) and said which target it could not find; makepkg never ran.
    assert!(
        text.contains(&format!("installing build dependencies {dep} from http://"))
            && text.contains(&format!("target not found: {dep}"))
            && !text.contains("makepkg --noconfirm"),
        "{text}"
    );
    assert_eq!(std::fs::read(w.db_path()).expect("db"), db_before);

    // The admin publishes the dependency to the custom repo and approves the failed
    // revision again: it is queued, and now builds.
    let pkgs = tempfile::tempdir().expect("tempdir");
    let helper = crate::fixture::make_pkg(pkgs.path(), dep, "1.0-1", "x86_64", 64, &[]);
    let out = w.cli(&["repo", "add", "custom", &helper.display().to_string()]);
    assert_success(&out, "pkgstash repo add");
    let out = w.cli(&["aur", "approve", "deps-aur", "--rev", &rev2]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("approved deps-aur 1.1-1"),
        "{out:?}"
    );
    wait_for("the retried build", PATIENCE, || {
        w.status()["aur"]["builds"].as_array().is_some_and(|b| {
            b.iter()
                .any(|b| b["pkgbase"] == "deps-aur" && b["ok"] == true)
        })
    });
    assert_eq!(
        w.repo_entries(),
        vec![format!("{dep}-1.0-1"), "deps-aur-1.1-1".to_string()]
    );
    // Built: approving it once more has nothing to do.
    let out = w.cli(&["aur", "approve", "deps-aur"]);
    assert!(!out.status.success(), "{out:?}");
}

/// A PKGBUILD whose build needs `aurdep-tool>=2` (from the upstream mirror, via pkgstash) and
/// whose package depends on `name`'s sibling `dep_pkg` (an earlier AUR build in the custom
/// repo): `build()` copies the tool's data file into the package.
fn package_with_dependencies(name: &str, dep_pkg: &str) -> Vec<(&'static str, String)> {
    let pkgbuild = format!(
        "pkgname={name}\npkgver=1.0\npkgrel=1\npkgdesc=\"needs dependencies\"\narch=('any')\n\
         license=('MIT')\ndepends=('{dep_pkg}')\nmakedepends=('aurdep-tool>=2')\n\n\
         build() {{\n  test -f /usr/share/{dep_pkg}/version\n  \
         cp /usr/share/aurdep-tool/data \"$srcdir/tool-data\"\n}}\n\n\
         package() {{\n  install -Dm644 \"$srcdir/tool-data\" \"$pkgdir/usr/share/{name}/tool-data\"\n}}\n"
    );
    let srcinfo = format!(
        "pkgbase = {name}\n\tpkgdesc = needs dependencies\n\tpkgver = 1.0\n\tpkgrel = 1\n\
         \tarch = any\n\tlicense = MIT\n\tmakedepends = aurdep-tool>=2\n\tdepends = {dep_pkg}\n\n\
         pkgname = {name}\n"
    );
    vec![("PKGBUILD", pkgbuild), (".SRCINFO", srcinfo)]
}

#[test]
fn aur_build_dependencies_come_from_the_repos_pkgstash_serves() {
    if !tools() || !crate::nginx::available() || !crate::fixture::tools_available() {
        return;
    }
    // The upstream mirror (real nginx) has the build tool; pkgstash caches it on the way.
    let mut mirror = crate::fixture::ArchMirror::new();
    let tool = crate::fixture::PkgSpec::new("aurdep-tool", "2.0-1", 4096);
    mirror.add("core", std::slice::from_ref(&tool));
    let nginx = crate::nginx::Nginx::serve(&mirror.root, "0");
    let mut w = World::new();
    w.mirror = nginx.url();
    w.builder_extra = "dep_repos = [\"custom\", \"arch/core\"]\nsiglevel = \"Never\"\n".into();

    // First an AUR package the second one depends on, built into the custom repo.
    let lib = w.repo("lib-aur");
    let lib_rev = lib.commit(&package_files("lib-aur", "1.0", 1, "  true"), "1.0-1");
    w.aur.set("lib-aur", "1.0-1");
    let app = w.repo("app-aur");
    let app_rev = app.commit(&package_with_dependencies("app-aur", "lib-aur"), "1.0-1");
    w.start(&["lib-aur", "app-aur"]);
    w.approve_first("lib-aur", &lib_rev, "1.0-1");
    w.aur.set("app-aur", "1.0-1");
    w.approve_first("app-aur", &app_rev, "1.0-1");
    assert_eq!(w.repo_entries(), vec!["app-aur-1.0-1", "lib-aur-1.0-1"]);

    // Both dependencies were installed for the build by pacman from pkgstash, and seen at
    // their real paths; the host's /usr never had them.
    let log = std::fs::read_to_string(
        w.logs()
            .into_iter()
            .find(|l| l.to_string_lossy().contains("app-aur"))
            .expect("app-aur log"),
    )
    .expect("log");
    assert!(
        log.contains("installing build dependencies aurdep-tool>=2, lib-aur from http://")
            && log.contains("dependencies overlaid on /usr")
            && log.contains("installing aurdep-tool..."),
        "{log}"
    );
    assert!(!Path::new("/usr/share/aurdep-tool").exists());
    // The tool came through the cache: one upstream download, now a cached file.
    let cached = w
        .cache_dir()
        .join("arch/core/os/x86_64")
        .join(tool.file_name());
    assert_eq!(
        std::fs::read(&cached).expect("cached tool"),
        std::fs::read(mirror.pool_file(&tool.file_name())).expect("mirror tool")
    );
    assert_eq!(nginx.requests_ending(&tool.file_name()).len(), 1);

    // The built package carries the tool's file, byte for byte; pacman installs it (pulling
    // lib-aur from the custom repo too).
    let sb = Sandbox::new(&[("custom", &w.pacman_server())], "Never");
    sb.ok(&["-Sy", "app-aur"]);
    let tool_data = std::fs::read(sb.root().join("usr/share/app-aur/tool-data")).expect("file");
    let expected = must(
        Command::new("bsdtar")
            .arg("-xOf")
            .arg(mirror.pool_file(&tool.file_name()))
            .arg("usr/share/aurdep-tool/data"),
        "bsdtar -xOf",
    );
    assert_eq!(tool_data, expected.stdout);
    assert!(sb.root().join("usr/share/lib-aur/version").is_file());
}

/// `Making package` / `Finished making` times (seconds) of a makepkg log.
fn build_span(log: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(log).expect("log");
    let when = |marker: &str| -> u64 {
        let line = text
            .lines()
            .find(|l| l.contains(marker))
            .unwrap_or_else(|| panic!("no `{marker}` in {text}"));
        // `==> Making package: a 1.0-1 (Wed Nov 25 18:41:38 2026)`
        let date = line
            .rsplit_once('(')
            .and_then(|(_, d)| d.strip_suffix(')'))
            .expect("date");
        let out = Command::new("date")
            .args(["-d", date, "+%s"])
            .output()
            .expect("date");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("epoch")
    };
    (when("Making package:"), when("Finished making:"))
}

#[test]
fn aur_concurrent_builds_overlap() {
    if !tools() {
        return;
    }
    let mut w = World::new();
    w.builder_extra = "concurrent_builds = 2\n".into();
    let mut revs = Vec::new();
    for name in ["slow-a", "slow-b"] {
        let repo = w.repo(name);
        revs.push(repo.commit(&package_files(name, "1.0", 1, "  sleep 3"), "1.0-1"));
        w.aur.set(name, "1.0-1");
    }
    w.start(&["slow-a", "slow-b"]);
    for (name, rev) in ["slow-a", "slow-b"].iter().zip(&revs) {
        w.wait_pending(name, rev);
    }
    for (name, rev) in ["slow-a", "slow-b"].iter().zip(&revs) {
        let (st, a) = w.api(
            reqwest::Method::POST,
            &format!("aur/approve/{name}?rev={rev}"),
        );
        assert_eq!(st, 200, "{a}");
    }
    for name in ["slow-a", "slow-b"] {
        let b = w.wait_build(name, "1.0-1");
        assert_eq!(b["ok"], true, "{b}");
    }
    let logs = w.logs();
    assert_eq!(logs.len(), 2);
    let (a, b) = (build_span(&logs[0]), build_span(&logs[1]));
    // Each one started before the other finished: they ran side by side.
    assert!(a.0 < b.1 && b.0 < a.1, "{a:?} {b:?}");
    assert_eq!(w.repo_entries(), vec!["slow-a-1.0-1", "slow-b-1.0-1"]);
}
