//! The builder: runs `makepkg` on one exported revision in a throw-away directory.
//!
//! - **Unprivileged.** When pkgstash runs as root (makepkg refuses root), makepkg runs as
//!   `aur.builder.user` via `setpriv --reuid/--regid --clear-groups --no-new-privs`; the build
//!   directory is handed to that user. Run as another user, pkgstash builds as itself.
//! - **Isolated.** With `isolation = "bwrap"` (or `"auto"` when `bwrap` is on PATH) makepkg
//!   runs in bubblewrap: new namespaces except the network (sources are downloaded), the
//!   root file system read-only, a private `/tmp`, and only the build directory writable.
//!   The fallback (`"none"`, or `"auto"` without bwrap) is the unprivileged user in a fresh
//!   `0700` directory under the system temp dir, nothing more: the user can still read what
//!   any local user can. On Arch hosts `devtools`' `makechrootpkg` is the stronger choice.
//!   Both are composed in [`sandbox`].
//! - **Bounded.** makepkg runs in its own process group; after `aur.builder.timeout` the
//!   whole group is killed and the build fails; a build step dropped mid-way (the server
//!   stops) kills its whole group too ([`super::process_group`]).
//! - **Logged.** stdout and stderr go to the log file the caller names (kept after the build)
//!   as they come, waking its followers ([`output`]).
//! - **Dependencies** the host lacks (`pacman -T`) are installed first, from the repos pkgstash
//!   serves, into the build's own root ([`super::deps`]), which makepkg then sees overlaid on
//!   `/usr` ([`super::overlay`]); makepkg itself runs with `--nodeps`. With
//!   `dependencies = "host"` a missing one fails the build at once, naming it.
//!
//! The blocking setup (user, isolation, which dependencies, the dependency root) is [`setup`],
//! run off the async worker; this module runs the steps (dependency install, makepkg).

mod output;
pub(crate) mod sandbox;
mod setup;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use self::output::Output;
pub use self::output::{signal, LogSignal};
use self::sandbox::{wrapped, BuildUser};
use crate::aur::overlay::Overlay;
use crate::aur::process_group::GroupKiller;
use crate::config::aur::BuilderConfig;

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("build setup: {0}")]
    Setup(String),
    #[error("makepkg timed out after {0}")]
    Timeout(String),
    #[error("makepkg failed ({0})")]
    Failed(String),
    #[error("installing the build dependencies failed ({0}): see the log")]
    Dependencies(String),
    #[error("makepkg made no package")]
    NoPackage,
}

/// A throw-away build directory: `tree/` (the exported revision, makepkg's start dir) and
/// `out/` (`PKGDEST`). Removed on drop.
pub struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    pub fn create() -> Result<Workspace, BuildError> {
        let dir = tempfile::Builder::new()
            .prefix("pkgstash-build-")
            .tempdir()
            .map_err(|e| BuildError::Setup(format!("cannot create a build directory: {e}")))?;
        for sub in ["tree", "out", "srcdest", "tmp"] {
            std::fs::create_dir(dir.path().join(sub))
                .map_err(|e| BuildError::Setup(format!("cannot create {sub}/: {e}")))?;
        }
        Ok(Workspace { dir })
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The exported package tree (makepkg's start directory).
    pub fn tree(&self) -> PathBuf {
        tree_of(self.root())
    }

    /// Where makepkg puts the packages.
    pub fn out(&self) -> PathBuf {
        self.root().join("out")
    }

    /// Built packages (with their `.sig`, when one exists).
    pub fn packages(&self) -> Vec<(PathBuf, Option<PathBuf>)> {
        let Ok(entries) = std::fs::read_dir(self.out()) else {
            return Vec::new();
        };
        let mut pkgs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                name.contains(".pkg.tar") && !name.ends_with(".sig") && p.is_file()
            })
            .collect();
        pkgs.sort();
        pkgs.into_iter()
            .map(|p| {
                let mut sig = p.clone().into_os_string();
                sig.push(".sig");
                let sig = PathBuf::from(sig);
                let sig = sig.is_file().then_some(sig);
                (p, sig)
            })
            .collect()
    }
}

/// The exported package tree of the workspace at `ws_root`.
fn tree_of(ws_root: &Path) -> PathBuf {
    ws_root.join("tree")
}

/// The command line that runs makepkg in `ws`.
pub fn command_line(ws_root: &Path, user: Option<BuildUser>, bwrap: bool) -> Vec<String> {
    let makepkg = [
        "makepkg",
        "--noconfirm",
        "--nodeps",
        "--noprogressbar",
        "--nocolor",
    ]
    .map(String::from);
    wrapped(ws_root, user, bwrap, &makepkg)
}

/// Append a `==> pkgstash: …` line to the build log.
fn log_line(log: &Path, msg: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(log) {
        let _ = writeln!(f, "==> pkgstash: {msg}");
    }
}

/// Run makepkg in `ws` with `cfg`, output to `log` as it comes (each write bumps `signal`).
/// Packages are in [`Workspace::packages`].
pub async fn run_makepkg(
    ws: &Workspace,
    cfg: &BuilderConfig,
    log: &Path,
    signal: &LogSignal,
) -> Result<(), BuildError> {
    // The setup runs processes (`id`, `pacman -T`, a bwrap probe) and walks the build
    // directory: off the async worker.
    let (root, setup_cfg, setup_log) = (ws.root().to_path_buf(), cfg.clone(), log.to_path_buf());
    let setup = actix_web::web::block(move || setup::prepare(&root, &setup_cfg, &setup_log))
        .await
        .map_err(|e| BuildError::Setup(format!("the build setup did not finish: {e}")))??;
    let overlay = match &setup.deps {
        Some(d) => install_dependencies(ws, cfg, d, (setup.user, setup.bwrap), log, signal).await?,
        None => None,
    };
    let argv = command_line(ws.root(), setup.user, setup.bwrap);
    run_logged(ws, &argv, overlay, cfg.timeout, (log, signal)).await?;
    if ws.packages().is_empty() {
        return Err(BuildError::NoPackage);
    }
    Ok(())
}

/// Install `deps` into their root (as the build runs: `user`, `bwrap`), and the overlay that
/// shows that root on `/usr` to makepkg (`None` when there is nothing to overlay).
async fn install_dependencies(
    ws: &Workspace,
    cfg: &BuilderConfig,
    deps: &setup::DepInstall,
    (user, bwrap): (Option<BuildUser>, bool),
    log: &Path,
    signal: &LogSignal,
) -> Result<Option<std::sync::Arc<Overlay>>, BuildError> {
    let install = wrapped(
        ws.root(),
        user,
        bwrap,
        &deps.root.install_command(&deps.missing),
    );
    run_logged(ws, &install, None, cfg.timeout, (log, signal))
        .await
        .map_err(|e| match e {
            BuildError::Failed(status) => BuildError::Dependencies(status),
            other => other,
        })?;
    // Running as root is exactly when the build has a user to switch to.
    let as_root = user.is_some();
    let overlay = Overlay::for_root(&deps.root.root(), as_root).map_err(BuildError::Setup)?;
    if let Some(o) = &overlay {
        log_line(log, &format!("dependencies overlaid on {}", o.targets()));
    }
    Ok(overlay.map(std::sync::Arc::new))
}

/// Run `argv` in `ws` (its own process group, a clean environment, stdout/stderr appended to
/// `log` as they come, bumping `signal`), inside `overlay` when given; killed after `timeout`.
async fn run_logged(
    ws: &Workspace,
    argv: &[String],
    overlay: Option<std::sync::Arc<Overlay>>,
    timeout: Duration,
    (log, signal): (&Path, &LogSignal),
) -> Result<(), BuildError> {
    log_line(log, &argv.join(" "));
    let Output {
        stdout,
        stderr,
        copying,
    } = Output::to_log(log, signal)?;
    let root = ws.root();
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(ws.tree())
        .env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
        )
        .env("HOME", root)
        .env("LANG", "C.UTF-8")
        .env("PKGDEST", ws.out())
        .env("SRCDEST", root.join("srcdest"))
        .env("TMPDIR", root.join("tmp"))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true);
    if let Some(o) = &overlay {
        let o = o.clone();
        // SAFETY: `enter` only makes system calls on strings prepared before the fork.
        unsafe {
            cmd.pre_exec(move || o.enter());
        }
    }
    let mut child = cmd.spawn().map_err(|e| match overlay {
        Some(_) => BuildError::Setup(format!(
            "cannot overlay the build dependencies ({e}): needs root, or unprivileged user \
             namespaces with overlayfs (Linux 5.11 or later)"
        )),
        None => BuildError::Setup(format!("cannot start {}: {e}", argv[0])),
    })?;
    // Our copies of the output's write end go: the copy ends when the step's do.
    drop(cmd);
    // Until the step has ended by itself, the whole process group (makepkg's children too)
    // is killed when this goes: at the time limit, or when the server stops mid-build.
    let mut group = GroupKiller::of(child.id());
    let waited = tokio::time::timeout(timeout, child.wait()).await;
    if waited.is_ok() {
        group.disarm();
    }
    drop(group);
    if waited.is_err() {
        let _ = child.kill().await;
    }
    copying.finish().await;
    match waited {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(BuildError::Failed(status.to_string())),
        Ok(Err(e)) => Err(BuildError::Failed(e.to_string())),
        Err(_) => {
            let limit = humantime::format_duration(Duration::from_secs(timeout.as_secs()));
            log_line(log, &format!("killed after {limit}"));
            Err(BuildError::Timeout(limit.to_string()))
        }
    }
}

/// The last `lines` lines of a log file.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read(log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_drops_privileges_then_isolates() {
        let user = BuildUser { uid: 990, gid: 980 };
        let argv = command_line(Path::new("/tmp/b"), Some(user), true);
        let s = argv.join(" ");
        assert!(
            s.starts_with(
                "setpriv --reuid=990 --regid=980 --clear-groups --no-new-privs -- bwrap "
            ),
            "{s}"
        );
        assert!(s.contains("--ro-bind / / --dev /dev --proc /proc --tmpfs /tmp --bind /tmp/b /tmp/b --chdir /tmp/b/tree"), "{s}");
        assert!(
            s.ends_with("-- makepkg --noconfirm --nodeps --noprogressbar --nocolor"),
            "{s}"
        );
        let plain = command_line(Path::new("/tmp/b"), None, false);
        assert_eq!(plain[0], "makepkg");
    }

    #[test]
    fn workspace_lists_packages_with_signatures() {
        let ws = Workspace::create().expect("ws");
        for f in [
            "a-1-1-any.pkg.tar.zst",
            "a-1-1-any.pkg.tar.zst.sig",
            "b-1-1-any.pkg.tar.gz",
            "notes.txt",
        ] {
            std::fs::write(ws.out().join(f), b"x").expect("write");
        }
        let got = ws.packages();
        assert_eq!(got.len(), 2);
        assert!(got[0].1.is_some() && got[1].1.is_none());
    }
}
