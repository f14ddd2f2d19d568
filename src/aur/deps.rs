//! Build dependencies from the repos pkgstash serves (`aur.builder.dependencies = "repos"`).
//!
//! The build host's pacman tells which of a `.SRCINFO`'s `depends`/`makedepends`/
//! `checkdepends` it lacks (`pacman -T`). Those are installed by the real pacman, as the build
//! user under fakeroot (inside the same isolation as makepkg), into the build's own
//! dependency root `<build dir>/deps/root`: a throw-away pacman root whose `pacman.conf`
//! lists `aur.builder.dep_repos` at pkgstash's own address, so every dependency is
//! downloaded through the cache like any client's, verified, and kept for the next build.
//! The root's local database starts as a copy of the host's package list (`desc` only), so
//! pacman installs only what is missing, not the whole dependency closure again.
//! Scriptlets and hooks do not run (they would need a chroot). makepkg then sees the root
//! overlaid on `/usr`, `/etc`, `/opt` ([`super::overlay`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::config::aur::{BuilderConfig, DepRepoRef};

/// The host's pacman database.
pub const HOST_DBPATH: &str = "/var/lib/pacman";

/// The paths of one build's dependency installation, under `<build dir>/deps`.
pub struct DepRoot {
    dir: PathBuf,
}

impl DepRoot {
    pub fn new(ws_root: &Path) -> DepRoot {
        DepRoot {
            dir: ws_root.join("deps"),
        }
    }

    /// The pacman root makepkg sees overlaid.
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    fn dbpath(&self) -> PathBuf {
        self.root().join("var/lib/pacman")
    }

    fn conf(&self) -> PathBuf {
        self.dir.join("pacman.conf")
    }

    /// Create the layout: `pacman.conf`, the root with its seeded local db, the package
    /// cache, an empty hook dir. Answers how many host packages were seeded.
    pub fn prepare(&self, cfg: &BuilderConfig, host_dbpath: &Path) -> std::io::Result<usize> {
        for sub in ["cache", "hooks"] {
            std::fs::create_dir_all(self.dir.join(sub))?;
        }
        std::fs::create_dir_all(self.dbpath().join("local"))?;
        std::fs::write(
            self.conf(),
            pacman_conf(&cfg.server_url, cfg.dep_repos(), &cfg.siglevel),
        )?;
        seed_local_db(&host_dbpath.join("local"), &self.dbpath().join("local"))
    }

    /// The pacman command that installs `targets` (dependency strings like `zlib>=1.2`):
    /// refreshes the dbs, installs what is not there yet, no scriptlets, no hooks. Signatures
    /// are checked against the host's pacman keyring.
    pub fn install_command(&self, targets: &[String]) -> Vec<String> {
        let p = |p: PathBuf| p.display().to_string();
        let mut argv: Vec<String> = vec![
            "fakeroot".into(),
            "--".into(),
            "pacman".into(),
            "--config".into(),
            p(self.conf()),
            "--root".into(),
            p(self.root()),
            "--dbpath".into(),
            p(self.dbpath()),
            "--cachedir".into(),
            p(self.dir.join("cache")),
            "--logfile".into(),
            p(self.dir.join("pacman.log")),
            "--hookdir".into(),
            p(self.dir.join("hooks")),
            "--noconfirm".into(),
            "--noprogressbar".into(),
            "--noscriptlet".into(),
            "--needed".into(),
            "-Sy".into(),
            "--".into(),
        ];
        argv.extend(targets.iter().cloned());
        argv
    }
}

/// The `pacman.conf` of a dependency root: `repos` at `server` (pkgstash itself). Upstream
/// repos get `siglevel`; custom repos `Never` (their packages are pkgstash's own).
pub fn pacman_conf(server: &str, repos: &[DepRepoRef], siglevel: &str) -> String {
    let mut conf = format!(
        "# Written by pkgstash for one build's dependencies.\n[options]\n\
         Architecture = auto\nSigLevel = {siglevel}\nLocalFileSigLevel = Optional\n"
    );
    for r in repos {
        let level = match r {
            DepRepoRef::Custom(_) => "Never",
            DepRepoRef::Upstream { .. } => siglevel,
        };
        let _ = write!(
            conf,
            "\n[{}]\nSigLevel = {level}\nServer = {}{}\n",
            r.name(),
            server.trim_end_matches('/'),
            r.path()
        );
    }
    conf
}

/// Copy the host's installed-package list (each package's `desc`, an empty `files`) into a
/// dependency root's local db, so pacman counts them as installed. Answers how many.
pub fn seed_local_db(host_local: &Path, local: &Path) -> std::io::Result<usize> {
    let Ok(entries) = std::fs::read_dir(host_local) else {
        return Ok(0); // no pacman database on this host: nothing is installed
    };
    let mut n = 0;
    for entry in entries.filter_map(Result::ok) {
        let desc = entry.path().join("desc");
        if !desc.is_file() {
            continue;
        }
        let dst = local.join(entry.file_name());
        std::fs::create_dir_all(&dst)?;
        std::fs::copy(&desc, dst.join("desc"))?;
        std::fs::write(dst.join("files"), "")?;
        n += 1;
    }
    let version = host_local.join("ALPM_DB_VERSION");
    if version.is_file() {
        std::fs::copy(version, local.join("ALPM_DB_VERSION"))?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_lists_repos_at_pkgstash_in_order() {
        let repos = vec![
            DepRepoRef::Custom("custom".into()),
            DepRepoRef::Upstream {
                upstream: "archlinux".into(),
                repo: "core".into(),
            },
        ];
        let c = pacman_conf(
            "http://127.0.0.1:7878/",
            &repos,
            "Required DatabaseOptional",
        );
        let custom =
            c.find("[custom]\nSigLevel = Never\nServer = http://127.0.0.1:7878/custom/os/$arch");
        let core = c.find(
            "[core]\nSigLevel = Required DatabaseOptional\n\
             Server = http://127.0.0.1:7878/archlinux/core/os/$arch",
        );
        assert!(custom.is_some() && core.is_some() && custom < core, "{c}");
        assert!(
            c.contains("[options]\nArchitecture = auto\nSigLevel = Required DatabaseOptional\n")
        );
        assert!(!c.contains("Include"), "{c}");
    }

    #[test]
    fn seeding_copies_desc_of_every_installed_package() {
        let host = tempfile::tempdir().expect("tempdir");
        let mine = tempfile::tempdir().expect("tempdir");
        for pkg in ["glibc-2.40-1", "bash-5.2-1"] {
            let d = host.path().join(pkg);
            std::fs::create_dir_all(&d).expect("mkdir");
            std::fs::write(d.join("desc"), format!("%NAME%\n{pkg}\n")).expect("desc");
            std::fs::write(d.join("files"), "%FILES%\nusr/\n").expect("files");
        }
        std::fs::create_dir_all(host.path().join("half-1-1")).expect("mkdir");
        std::fs::write(host.path().join("ALPM_DB_VERSION"), "9\n").expect("version");
        assert_eq!(seed_local_db(host.path(), mine.path()).expect("seed"), 2);
        assert_eq!(
            std::fs::read_to_string(mine.path().join("bash-5.2-1/desc")).expect("desc"),
            "%NAME%\nbash-5.2-1\n"
        );
        assert_eq!(
            std::fs::read_to_string(mine.path().join("bash-5.2-1/files")).expect("files"),
            ""
        );
        assert!(!mine.path().join("half-1-1").exists());
        assert!(mine.path().join("ALPM_DB_VERSION").is_file());
        let none = seed_local_db(&host.path().join("absent"), mine.path()).expect("seed");
        assert_eq!(none, 0);
    }

    #[test]
    fn install_command_is_fakeroot_pacman_without_scriptlets() {
        let d = DepRoot::new(Path::new("/b"));
        let argv = d.install_command(&["zlib>=1.2".into()]).join(" ");
        assert!(argv.starts_with("fakeroot -- pacman --config /b/deps/pacman.conf --root /b/deps/root --dbpath /b/deps/root/var/lib/pacman"), "{argv}");
        assert!(
            argv.ends_with("--noscriptlet --needed -Sy -- zlib>=1.2"),
            "{argv}"
        );
        assert!(argv.contains("--hookdir /b/deps/hooks"), "{argv}");
    }
}
