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
//! - **Bounded.** makepkg runs in its own process group; after `aur.builder.timeout` the
//!   whole group is killed and the build fails.
//! - **Logged.** stdout and stderr go to the log file the caller names (kept after the build).
//! - **Dependencies** the host lacks (`pacman -T`) are installed first, from the repos pkgstash
//!   serves, into the build's own root ([`super::deps`]), which makepkg then sees overlaid on
//!   `/usr` ([`super::overlay`]); makepkg itself runs with `--nodeps`. With
//!   `dependencies = "host"` a missing one fails the build at once, naming it.

use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::aur::deps::{self, DepRoot};
use crate::aur::overlay::Overlay;
use crate::aur::process_group::GroupKiller;
use crate::config::aur::{BuilderConfig, Dependencies, Isolation};

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
        self.root().join("tree")
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

/// Who the build runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildUser {
    pub uid: u32,
    pub gid: u32,
}

/// Is this process root? (The owner of `/proc/self` is the effective uid.)
pub fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Look `user` up (`id -u`, `id -g`: NSS-aware).
pub fn lookup_user(user: &str) -> Result<BuildUser, BuildError> {
    let id = |flag: &str| -> Result<u32, BuildError> {
        let out = std::process::Command::new("id")
            .arg(flag)
            .arg("--")
            .arg(user)
            .output()
            .map_err(|e| BuildError::Setup(format!("cannot run `id`: {e}")))?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .ok()
            .filter(|_| out.status.success())
            .ok_or_else(|| {
                BuildError::Setup(format!(
                    "build user `{user}` does not exist; create it with \
                     `useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin {user}` \
                     or set aur.builder.user"
                ))
            })
    };
    let who = BuildUser {
        uid: id("-u")?,
        gid: id("-g")?,
    };
    if who.uid == 0 {
        return Err(BuildError::Setup(format!(
            "build user `{user}` is root: makepkg must run unprivileged"
        )));
    }
    Ok(who)
}

/// Hand `dir` and everything in it to `user`.
pub fn chown_tree(dir: &Path, user: BuildUser) -> std::io::Result<()> {
    std::os::unix::fs::lchown(dir, Some(user.uid), Some(user.gid))?;
    if std::fs::symlink_metadata(dir)?.is_dir() {
        for entry in std::fs::read_dir(dir)? {
            chown_tree(&entry?.path(), user)?;
        }
    }
    Ok(())
}

/// Is `tool` an executable on PATH?
fn on_path(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}

/// The namespaces a build runs in: everything unshared but the network, `/` read-only, fresh
/// `/dev` and `/proc`. The probe below tries exactly these.
const BWRAP_NAMESPACES: [&str; 9] = [
    "--unshare-all",
    "--share-net",
    "--ro-bind",
    "/",
    "/",
    "--dev",
    "/dev",
    "--proc",
    "/proc",
];

/// Is bubblewrap installed and able to create its namespaces on this machine (containers
/// often forbid them)? Probed once.
fn bwrap_usable() -> bool {
    static USABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *USABLE.get_or_init(|| {
        on_path("bwrap").is_some()
            && std::process::Command::new("bwrap")
                .args(BWRAP_NAMESPACES)
                .arg("true")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    })
}

/// The command line that runs `program` in `ws` as `user`, inside bubblewrap when `bwrap`
/// (pure: tested without running it).
pub fn wrapped(
    ws_root: &Path,
    user: Option<BuildUser>,
    bwrap: bool,
    program: &[String],
) -> Vec<String> {
    let root = ws_root.display().to_string();
    let tree = ws_root.join("tree").display().to_string();
    let mut argv: Vec<String> = Vec::new();
    if let Some(u) = user {
        argv.extend([
            "setpriv".into(),
            format!("--reuid={}", u.uid),
            format!("--regid={}", u.gid),
            "--clear-groups".into(),
            "--no-new-privs".into(),
            "--".into(),
        ]);
    }
    if bwrap {
        argv.extend(
            ["bwrap", "--die-with-parent", "--new-session"]
                .into_iter()
                .chain(BWRAP_NAMESPACES)
                .map(String::from),
        );
        argv.extend(
            [
                "--tmpfs", "/tmp", "--bind", &root, &root, "--chdir", &tree, "--",
            ]
            .map(String::from),
        );
    }
    argv.extend(program.iter().cloned());
    argv
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

/// Should makepkg run in bubblewrap? (An error when `"bwrap"` is required but missing.)
fn use_bwrap(isolation: Isolation) -> Result<bool, BuildError> {
    match isolation {
        Isolation::None => Ok(false),
        Isolation::Bwrap => {
            if on_path("bwrap").is_none() {
                return Err(BuildError::Setup(
                    "aur.builder.isolation = \"bwrap\" but `bwrap` is not installed \
                     (install bubblewrap, or choose \"none\")"
                        .into(),
                ));
            }
            Ok(true)
        }
        Isolation::Auto => {
            let usable = bwrap_usable();
            if !usable {
                log::warn!(
                    "aur: `bwrap` is not installed or cannot create namespaces here: building \
                     without namespace isolation (unprivileged user + throw-away directory \
                     only); install bubblewrap / allow user namespaces"
                );
            }
            Ok(usable)
        }
    }
}

/// Append a `==> pkgstash: …` line to the build log.
fn log_line(log: &Path, msg: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(log) {
        let _ = writeln!(f, "==> pkgstash: {msg}");
    }
}

/// Run makepkg in `ws` with `cfg`, output to `log`. Packages are in [`Workspace::packages`].
pub async fn run_makepkg(
    ws: &Workspace,
    cfg: &BuilderConfig,
    log: &Path,
) -> Result<(), BuildError> {
    // The setup runs processes (`id`, `pacman -T`, a bwrap probe) and walks the build
    // directory: off the async worker.
    let (root, setup_cfg, setup_log) = (ws.root().to_path_buf(), cfg.clone(), log.to_path_buf());
    let setup = actix_web::web::block(move || prepare(&root, &setup_cfg, &setup_log))
        .await
        .map_err(|e| BuildError::Setup(format!("the build setup did not finish: {e}")))??;
    let overlay = match &setup.dep_root {
        Some(d) => {
            let install = wrapped(
                ws.root(),
                setup.user,
                setup.bwrap,
                &d.install_command(&setup.missing),
            );
            run_logged(ws, &install, None, cfg.timeout, log)
                .await
                .map_err(|e| match e {
                    BuildError::Failed(status) => BuildError::Dependencies(status),
                    other => other,
                })?;
            let overlay = Overlay::for_root(&d.root(), setup.as_root).map_err(BuildError::Setup)?;
            if let Some(o) = &overlay {
                log_line(log, &format!("dependencies overlaid on {}", o.targets()));
            }
            overlay.map(std::sync::Arc::new)
        }
        None => None,
    };
    let argv = command_line(ws.root(), setup.user, setup.bwrap);
    run_logged(ws, &argv, overlay, cfg.timeout, log).await?;
    if ws.packages().is_empty() {
        return Err(BuildError::NoPackage);
    }
    Ok(())
}

/// What a build's processes run with, found by [`prepare`].
struct Setup {
    /// pkgstash runs as root (no user namespace needed to overlay).
    as_root: bool,
    /// Who makepkg runs as (when pkgstash is root).
    user: Option<BuildUser>,
    bwrap: bool,
    /// Build dependencies the host lacks, installed into `dep_root` first.
    missing: Vec<String>,
    dep_root: Option<DepRoot>,
}

/// The blocking part of a build's setup in the workspace at `ws_root`: a fresh log, the build
/// user, the isolation, the dependencies the host lacks (and the root they go to), the
/// directory handed to the build user.
fn prepare(ws_root: &Path, cfg: &BuilderConfig, log: &Path) -> Result<Setup, BuildError> {
    std::fs::File::create(log)
        .map_err(|e| BuildError::Setup(format!("cannot create log {}: {e}", log.display())))?;
    let as_root = running_as_root();
    let user = if as_root {
        Some(lookup_user(&cfg.user)?)
    } else {
        None
    };
    let bwrap = use_bwrap(cfg.isolation)?;
    // makepkg runs with --nodeps (it cannot install anything as an unprivileged user): what
    // the host lacks is installed from pkgstash's repos into the build's dependency root,
    // or (dependencies = "host") fails the build at once with a clear reason.
    let deps = build_dependencies(&ws_root.join("tree").join(".SRCINFO"));
    let missing = missing_dependencies(&deps).unwrap_or_default();
    let dep_root = if missing.is_empty() {
        None
    } else if cfg.dependencies == Dependencies::Host {
        let msg = format!(
            "missing build dependencies on this host: {} (install them on the build \
             host, or set aur.builder.dependencies = \"repos\")",
            missing.join(", ")
        );
        log_line(log, &msg);
        return Err(BuildError::Setup(msg));
    } else if cfg.server_url.is_empty() {
        return Err(BuildError::Setup(
            "this server's own address is not known yet: cannot install dependencies".into(),
        ));
    } else {
        let dep_root = DepRoot::new(ws_root);
        let seeded = dep_root
            .prepare(cfg, Path::new(deps::HOST_DBPATH))
            .map_err(|e| BuildError::Setup(format!("cannot prepare the dependency root: {e}")))?;
        let repos: Vec<String> = cfg.dep_repos().iter().map(|r| r.to_string()).collect();
        log_line(
            log,
            &format!(
                "installing build dependencies {} from {} (repos: {}; {seeded} host packages \
                 count as installed)",
                missing.join(", "),
                cfg.server_url,
                repos.join(", ")
            ),
        );
        Some(dep_root)
    };
    if let Some(u) = user {
        chown_tree(ws_root, u).map_err(|e| {
            BuildError::Setup(format!(
                "cannot hand the build directory to {}: {e}",
                cfg.user
            ))
        })?;
    }
    Ok(Setup {
        as_root,
        user,
        bwrap,
        missing,
        dep_root,
    })
}

/// Run `argv` in `ws` (its own process group, a clean environment, stdout/stderr appended to
/// `log`), inside `overlay` when given; killed after `timeout`.
async fn run_logged(
    ws: &Workspace,
    argv: &[String],
    overlay: Option<std::sync::Arc<Overlay>>,
    timeout: Duration,
    log: &Path,
) -> Result<(), BuildError> {
    log_line(log, &argv.join(" "));
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(log)
        .map_err(|e| BuildError::Setup(format!("cannot open log {}: {e}", log.display())))?;
    let stderr = file
        .try_clone()
        .map_err(|e| BuildError::Setup(format!("log: {e}")))?;
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
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(stderr))
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
    // Until the step has ended by itself, the whole process group (makepkg's children too)
    // is killed when this goes: at the time limit, or when the server stops mid-build.
    let mut group = GroupKiller::of(child.id());
    let waited = tokio::time::timeout(timeout, child.wait()).await;
    if waited.is_ok() {
        group.disarm();
    }
    drop(group);
    match waited {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(BuildError::Failed(status.to_string())),
        Ok(Err(e)) => Err(BuildError::Failed(e.to_string())),
        Err(_) => {
            let _ = child.kill().await;
            let limit = humantime::format_duration(Duration::from_secs(timeout.as_secs()));
            log_line(log, &format!("killed after {limit}"));
            Err(BuildError::Timeout(limit.to_string()))
        }
    }
}

/// `depends`, `makedepends` and `checkdepends` (also `_<arch>` variants of the host arch)
/// of a `.SRCINFO`, package base and split packages alike.
pub fn build_dependencies(srcinfo: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(srcinfo) else {
        return Vec::new();
    };
    let arch = std::env::consts::ARCH;
    let keys: Vec<String> = ["depends", "makedepends", "checkdepends"]
        .iter()
        .flat_map(|k| [k.to_string(), format!("{k}_{arch}")])
        .collect();
    let mut deps: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim().split_once(" = "))
        .filter(|(k, _)| keys.iter().any(|x| x == k.trim()))
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    deps.sort();
    deps.dedup();
    deps
}

/// Which of `deps` the host's pacman cannot satisfy (`pacman -T`); `None` when all are there,
/// or when there is no pacman to ask (a non-Arch host: makepkg's own errors will tell).
fn missing_dependencies(deps: &[String]) -> Option<Vec<String>> {
    if deps.is_empty() || on_path("pacman").is_none() {
        return None;
    }
    let out = std::process::Command::new("pacman")
        .arg("-T")
        .args(deps)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if out.status.success() {
        return None;
    }
    let missing: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    (!missing.is_empty()).then_some(missing)
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
    fn build_dependencies_from_srcinfo() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join(".SRCINFO");
        let arch = std::env::consts::ARCH;
        std::fs::write(
            &p,
            format!(
                "pkgbase = x\n\tmakedepends = cmake\n\tdepends = glibc\n\tdepends_{arch} = libfoo\n\
                 \tdepends_sparc = nope\n\toptdepends = bash: no\n\npkgname = x\n\tdepends = zlib>=1.2\n"
            ),
        )
        .expect("write");
        assert_eq!(
            build_dependencies(&p),
            vec!["cmake", "glibc", "libfoo", "zlib>=1.2"]
        );
        assert!(build_dependencies(&dir.path().join("none")).is_empty());
    }

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
