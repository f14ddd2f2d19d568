//! A build's setup, the blocking part before any process of the build runs ([`prepare`], called
//! off the async worker): a fresh log, the build user (when pkgstash is root), the isolation
//! (`bwrap` or not), the build dependencies the host lacks (`pacman -T` against the
//! `.SRCINFO`'s `depends`, `makedepends`, `checkdepends`) and the dependency root they will be
//! installed into ([`super::super::deps`]), and the build directory handed to the build user.
//! Errors are [`BuildError::Setup`], with the reason (also written to the log where a user
//! would look for it).

use std::path::Path;
use std::process::Stdio;

use super::sandbox::{chown_tree, lookup_user, on_path, running_as_root, use_bwrap, BuildUser};
use super::{log_line, tree_of, BuildError};
use crate::aur::deps::{self, DepRoot};
use crate::config::aur::{BuilderConfig, Dependencies};

/// What a build's processes run with, found by [`prepare`].
pub(super) struct Setup {
    /// Who makepkg runs as (when pkgstash is root).
    pub(super) user: Option<BuildUser>,
    /// makepkg runs in bubblewrap.
    pub(super) bwrap: bool,
    /// Build dependencies the host lacks, to install first.
    pub(super) deps: Option<DepInstall>,
}

/// The blocking part of a build's setup in the workspace at `ws_root`, logging to `log` (made
/// fresh): the build user, the isolation, the dependencies the host lacks (and the root they
/// go to), the directory handed to the build user.
pub(super) fn prepare(
    ws_root: &Path,
    cfg: &BuilderConfig,
    log: &Path,
) -> Result<Setup, BuildError> {
    std::fs::File::create(log)
        .map_err(|e| BuildError::Setup(format!("cannot create log {}: {e}", log.display())))?;
    let user = if running_as_root() {
        Some(lookup_user(&cfg.user)?)
    } else {
        None
    };
    let bwrap = use_bwrap(cfg.isolation)?;
    let deps = plan_dependencies(ws_root, cfg, log)?;
    if let Some(u) = user {
        chown_tree(ws_root, u).map_err(|e| {
            BuildError::Setup(format!(
                "cannot hand the build directory to {}: {e}",
                cfg.user
            ))
        })?;
    }
    Ok(Setup { user, bwrap, deps })
}

/// Build dependencies the host lacks, to install into the build's own root.
pub(super) struct DepInstall {
    pub(super) missing: Vec<String>,
    pub(super) root: DepRoot,
}

/// What the build needs that the host lacks (`None`: nothing), its dependency root prepared.
///
/// makepkg runs with --nodeps (it cannot install anything as an unprivileged user): what the
/// host lacks is installed from pkgstash's repos into the build's dependency root, or
/// (`dependencies = "host"`) fails the build at once with a clear reason.
fn plan_dependencies(
    ws_root: &Path,
    cfg: &BuilderConfig,
    log: &Path,
) -> Result<Option<DepInstall>, BuildError> {
    let deps = build_dependencies(&tree_of(ws_root).join(".SRCINFO"));
    let missing = missing_dependencies(&deps).unwrap_or_default();
    if missing.is_empty() {
        return Ok(None);
    }
    if cfg.dependencies == Dependencies::Host {
        let msg = format!(
            "missing build dependencies on this host: {} (install them on the build \
             host, or set aur.builder.dependencies = \"repos\")",
            missing.join(", ")
        );
        log_line(log, &msg);
        return Err(BuildError::Setup(msg));
    }
    if cfg.server_url.is_empty() {
        return Err(BuildError::Setup(
            "this server's own address is not known yet: cannot install dependencies".into(),
        ));
    }
    let root = DepRoot::new(ws_root);
    let seeded = root
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
    Ok(Some(DepInstall { missing, root }))
}

/// `depends`, `makedepends` and `checkdepends` (also `_<arch>` variants of the host arch)
/// of a `.SRCINFO`, package base and split packages alike.
fn build_dependencies(srcinfo: &Path) -> Vec<String> {
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
}
