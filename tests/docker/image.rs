//! The image under test: base images made with debootstrap under the names the Dockerfile
//! pulls (kept in the engine's data root between runs), then README's `docker build`,
//! once per test process.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::lint::base_images;
use crate::{readme, repo, text};

/// Every base image of the Dockerfile present in `engine`: `debian:SUITE[-slim]` made by
/// `tests/docker/debian-image.sh` (debootstrap + docker import) when missing.
pub fn ensure_base_images(engine: &Engine) {
    for image in base_images() {
        let present = engine
            .run(&["image", "inspect", "--format", "{{.Id}}", &image])
            .status
            .success();
        if present {
            continue;
        }
        let suite = image
            .strip_prefix("debian:")
            .map(|t| t.trim_end_matches("-slim"))
            .unwrap_or_else(|| panic!("base image {image}: only debian:SUITE[-slim] can be made"));
        let started = Instant::now();
        let out = Command::new("bash")
            .arg(repo().join("tests/docker/debian-image.sh"))
            .args([suite, &image])
            .env("DOCKER_HOST", &engine.host)
            .output()
            .expect("run debian-image.sh");
        assert!(
            out.status.success(),
            "making base image {image} failed:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        eprintln!(
            "base image {image} made with debootstrap in {:.0?}: {}",
            started.elapsed(),
            text(&out.stdout).trim()
        );
    }
}

/// README's `docker build` (plus `--network host`: the engine has no bridge), run once per
/// test process from the repository root; panics in every caller if it failed.
pub fn build(engine: &Engine) {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let outcome = BUILT.get_or_init(|| {
        ensure_base_images(engine);
        let cmd = readme::adapted(
            &readme::command(&readme::docker_commands(), "docker build"),
            &["--network", "host"],
            &[],
        );
        let started = Instant::now();
        let out = timed_steps(engine, &cmd);
        if !out.ok {
            return Err(format!("`{cmd}` failed:\n{}", out.log));
        }
        let cached = out.log.matches("Using cache").count();
        let size = engine.ok(&["image", "inspect", "-f", "{{.Size}}", readme::IMAGE]);
        let mb = size.parse::<f64>().unwrap_or(0.0) / 1e6;
        eprintln!(
            "`{cmd}` took {:.0?} ({cached} of {} steps from the layer cache; image {mb:.0} MB); \
             slow steps:",
            started.elapsed(),
            out.steps.len()
        );
        for (step, wall, cpu) in out.steps.iter().filter(|s| s.1.as_secs() >= 2) {
            let cpu = cpu.map_or("?".into(), |c| format!("{c:.0}"));
            let step: String = step.chars().take(90).collect();
            eprintln!("  {wall:>6.0?} {cpu:>5} CPU-s  {step}");
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

/// The output of a build, and per step (`Step N/M : …` of the classic builder) its wall time
/// and the CPU time the engine's containers used meanwhile (`None` without cgroup access).
struct Build {
    ok: bool,
    log: String,
    steps: Vec<(String, Duration, Option<f64>)>,
}

fn timed_steps(engine: &Engine, cmd: &str) -> Build {
    let mut child = engine
        .sh(&format!("{cmd} 2>&1"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("run docker build");
    let stdout = child.stdout.take().expect("stdout");
    let mut log = String::new();
    let mut steps = Vec::new();
    let mut current: Option<(String, Instant, Option<f64>)> = None;
    let mut close = |current: &mut Option<(String, Instant, Option<f64>)>| {
        if let Some((name, at, cpu)) = current.take() {
            let used = engine.cpu_seconds().zip(cpu).map(|(a, b)| a - b);
            steps.push((name, at.elapsed(), used));
        }
    };
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if line.starts_with("Step ") {
            close(&mut current);
            current = Some((line.clone(), Instant::now(), engine.cpu_seconds()));
        }
        log.push_str(&line);
        log.push('\n');
    }
    close(&mut current);
    let ok = child.wait().map(|s| s.success()).unwrap_or(false);
    Build { ok, log, steps }
}
