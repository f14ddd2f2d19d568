//! Who and in what a build command runs: as an unprivileged user when pkgstash runs as root
//! (makepkg refuses root), switched with `setpriv --reuid/--regid --clear-groups
//! --no-new-privs`; inside bubblewrap (`aur.builder.isolation`): new namespaces except the
//! network (sources are downloaded), the root file system read-only, fresh `/dev`, `/proc` and
//! `/tmp`, only the build directory writable. [`wrapped`] composes the command line (pure).

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use super::BuildError;
use crate::config::aur::Isolation;

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
pub(super) fn on_path(tool: &str) -> Option<PathBuf> {
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

/// Should makepkg run in bubblewrap? (An error when `"bwrap"` is required but missing.)
pub(super) fn use_bwrap(isolation: Isolation) -> Result<bool, BuildError> {
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
