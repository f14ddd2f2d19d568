//! The build's view of its dependencies: a private mount namespace in which the dependency
//! root (what pacman installed for this build) is overlaid, read-only, on the host's `/usr`,
//! `/etc` and `/opt`, so makepkg finds every dependency at the path its package put it.
//!
//! [`Overlay::enter`] runs in the forked child just before `exec` (a `pre_exec` hook): only
//! system calls on strings prepared beforehand, nothing allocated. Run as root it only needs
//! a new mount namespace; run as anyone else it first enters a new user namespace that maps
//! the user to itself (unprivileged overlayfs: Linux ≥ 5.11). Propagation is made private
//! before mounting, so nothing reaches the host's mount table; the namespace dies with the
//! build.

use std::ffi::CString;
use std::path::Path;

use rustix::mount::{MountFlags, MountPropagationFlags};

/// Host directories a dependency root may add to (in this order).
pub const OVERLAID: [&str; 3] = ["usr", "etc", "opt"];

/// The mounts one build process makes before it runs.
#[derive(Debug)]
pub struct Overlay {
    /// (target, overlayfs options) per overlaid directory.
    mounts: Vec<(CString, CString)>,
    /// `uid_map` and `gid_map` lines when a user namespace is needed (not root).
    user_maps: Option<(CString, CString)>,
}

impl Overlay {
    /// The overlay of `root`'s `usr`, `etc`, `opt` (those it has and the host has too) on the
    /// host's. `None` when there is nothing to overlay. `as_root`: pkgstash is root (no user
    /// namespace needed).
    pub fn for_root(root: &Path, as_root: bool) -> Result<Option<Overlay>, String> {
        let mut mounts = Vec::new();
        for dir in OVERLAID {
            let upper = root.join(dir);
            let target = Path::new("/").join(dir);
            if !upper.is_dir() || !target.is_dir() {
                continue;
            }
            let upper_s = upper.display().to_string();
            // overlayfs separates layers with ':' and options with ','.
            if upper_s.contains([':', ',', '\\']) {
                return Err(format!(
                    "the build directory {} has a ':', ',' or '\\' in its path: cannot \
                     overlay it (set TMPDIR to a plain path)",
                    root.display()
                ));
            }
            let options = format!("lowerdir={upper_s}:{}", target.display());
            mounts.push((cstring(&target.display().to_string())?, cstring(&options)?));
        }
        if mounts.is_empty() {
            return Ok(None);
        }
        let user_maps = if as_root {
            None
        } else {
            let uid = rustix::process::getuid().as_raw();
            let gid = rustix::process::getgid().as_raw();
            Some((
                cstring(&format!("{uid} {uid} 1"))?,
                cstring(&format!("{gid} {gid} 1"))?,
            ))
        };
        Ok(Some(Overlay { mounts, user_maps }))
    }

    /// The directories overlaid, for the log (`/usr, /etc`).
    pub fn targets(&self) -> String {
        self.mounts
            .iter()
            .map(|(t, _)| t.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Enter a new mount namespace (and user namespace when not root) and mount the overlays.
    /// Meant for the forked child before `exec`: a single thread, nothing allocated.
    pub fn enter(&self) -> std::io::Result<()> {
        use rustix::thread::UnshareFlags;
        let flags = if self.user_maps.is_some() {
            UnshareFlags::NEWUSER | UnshareFlags::NEWNS
        } else {
            UnshareFlags::NEWNS
        };
        // SAFETY: no CLONE_FILES; the caller is the single-threaded child before exec.
        unsafe { rustix::thread::unshare_unsafe(flags) }?;
        if let Some((uid_map, gid_map)) = &self.user_maps {
            write_proc(c"/proc/self/setgroups", c"deny")?;
            write_proc(c"/proc/self/uid_map", uid_map)?;
            write_proc(c"/proc/self/gid_map", gid_map)?;
        }
        rustix::mount::mount_change(
            c"/",
            MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
        )?;
        for (target, options) in &self.mounts {
            rustix::mount::mount(
                c"overlay",
                target.as_c_str(),
                c"overlay",
                MountFlags::RDONLY,
                options.as_c_str(),
            )?;
        }
        Ok(())
    }
}

fn cstring(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("a NUL byte in {s:?}"))
}

/// Write `data` to a `/proc/self/*` file in one `write`.
fn write_proc(path: &std::ffi::CStr, data: &std::ffi::CStr) -> std::io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())?;
    rustix::io::write(&fd, data.to_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlays_only_what_the_root_and_host_both_have() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(Overlay::for_root(dir.path(), true).expect("plan").is_none());
        std::fs::create_dir_all(dir.path().join("usr/share/x")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("srv/y")).expect("mkdir");
        let o = Overlay::for_root(dir.path(), false)
            .expect("plan")
            .expect("something to overlay");
        assert_eq!(o.targets(), "/usr");
        assert_eq!(
            o.mounts[0].1.to_str().expect("utf8"),
            format!("lowerdir={}/usr:/usr", dir.path().display())
        );
        assert!(o.user_maps.is_some());
        let bad = tempfile::Builder::new()
            .prefix("a:b")
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir_all(bad.path().join("usr")).expect("mkdir");
        assert!(Overlay::for_root(bad.path(), true).is_err());
    }

    /// Run `cat /usr/share/<marker>/f` inside the overlay of a root holding that file.
    fn cat_through_overlay(as_root: bool) -> std::process::Output {
        use std::os::unix::process::CommandExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = format!("pkgstash-overlay-test-{}", std::process::id());
        let share = dir.path().join("usr/share").join(&marker);
        std::fs::create_dir_all(&share).expect("mkdir");
        std::fs::write(share.join("f"), "from the dependency root\n").expect("write");
        let o = Overlay::for_root(dir.path(), as_root)
            .expect("plan")
            .expect("overlay");
        let mut cmd = std::process::Command::new("cat");
        cmd.arg(format!("/usr/share/{marker}/f"));
        // SAFETY: `enter` only makes system calls.
        unsafe {
            cmd.pre_exec(move || o.enter());
        }
        let out = cmd.output().expect("run cat");
        // Nothing leaked into this (the host's) mount namespace.
        assert!(!Path::new("/usr/share").join(&marker).exists());
        out
    }

    #[test]
    fn a_user_namespace_overlay_shows_the_root_at_its_real_path() {
        let out = cat_through_overlay(false);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "from the dependency root\n",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn as_root_a_mount_namespace_is_enough() {
        if !crate::aur::builder::sandbox::running_as_root() {
            return; // the root-only path: exercised where tests run as root (CI)
        }
        let out = cat_through_overlay(true);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "from the dependency root\n"
        );
    }
}
