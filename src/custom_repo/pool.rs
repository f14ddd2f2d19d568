//! A custom repo's `pool/`: every package file kept (+ its `.sig`), placed atomically and
//! durably ([`crate::durable`]: temp in the pool, fsync, rename, fsync dir), and pruned to `keep_versions` older versions per package name
//! (pacman's version order, [`crate::repo::vercmp`]).

use std::path::{Path, PathBuf};

use super::{io_err, CustomRepoError};
use crate::repo::package::is_package_file_name;
use crate::repo::vercmp::{parse_pkg_filename, vercmp};

/// The pool of one repo.
pub(super) struct Pool {
    /// The repo's name (for errors).
    repo: String,
    dir: PathBuf,
    /// Older versions kept per package name, besides the current one.
    keep_versions: usize,
}

impl Pool {
    pub(super) fn new(repo: &str, dir: PathBuf, keep_versions: usize) -> Pool {
        Pool {
            repo: repo.to_string(),
            dir,
            keep_versions,
        }
    }

    /// The pool file `file`.
    pub(super) fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Copy `src` (not move: it may be the caller's file) into the pool as `filename`, via a
    /// temp file ([`crate::durable::Staged`]). Answers its path.
    pub(super) fn place(&self, src: &Path, filename: &str) -> Result<PathBuf, CustomRepoError> {
        let name = &self.repo;
        let dest = self.path(filename);
        let mut tmp = crate::durable::Staged::new(&dest)
            .map_err(io_err(name, "cannot create a temp file in the pool"))?;
        let mut from = std::fs::File::open(src).map_err(io_err(name, "cannot read package"))?;
        std::io::copy(&mut from, tmp.file()).map_err(io_err(name, "cannot copy package"))?;
        tmp.commit().map_err(io_err(name, "cannot place package"))?;
        Ok(dest)
    }

    /// Write (or, with `None`, remove) the detached signature of pool file `filename`, durably
    /// (a removal too: the pool directory is fsynced).
    pub(super) fn set_signature(
        &self,
        filename: &str,
        sig: Option<&[u8]>,
    ) -> Result<(), CustomRepoError> {
        let sig_path = self.path(&format!("{filename}.sig"));
        match sig {
            Some(s) => crate::durable::write(&sig_path, s)
                .map_err(io_err(&self.repo, "cannot write signature"))?,
            None => {
                if std::fs::remove_file(&sig_path).is_ok() {
                    let _ = crate::durable::sync_dir(&self.dir);
                }
            }
        }
        Ok(())
    }

    /// Remove pool files of `pkgname` beyond `keep_versions` (never `current`, the file the
    /// dbs list; with no current file, every one). Answers the removed file names.
    pub(super) fn prune(&self, pkgname: &str, current: Option<&str>) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        // (version, file) of every pool file of this package name.
        let mut versions: Vec<(String, String)> = rd
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|f| is_package_file_name(f))
            .filter_map(|f| {
                let p = parse_pkg_filename(&f)?;
                (p.name == pkgname).then(|| (p.version.to_string(), f.clone()))
            })
            .collect();
        versions.sort_by(|a, b| vercmp(&b.0, &a.0));
        let mut kept = 0usize;
        let mut pruned = Vec::new();
        for (_, file) in versions {
            if Some(file.as_str()) == current {
                kept += 1;
                continue;
            }
            if current.is_some() && kept < self.keep_versions {
                kept += 1;
                continue;
            }
            if std::fs::remove_file(self.path(&file)).is_ok() {
                let _ = std::fs::remove_file(self.path(&format!("{file}.sig")));
                pruned.push(file);
            }
        }
        pruned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_the_current_file_and_keep_versions_older_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = [
            "foo-1.0-1-x86_64.pkg.tar.zst",
            "foo-1.10-1-x86_64.pkg.tar.zst",
            "foo-1.9-1-x86_64.pkg.tar.zst",
            "foo-2.0-1-x86_64.pkg.tar.zst",
            "foobar-0.1-1-any.pkg.tar.zst",
        ];
        for f in files {
            std::fs::write(dir.path().join(f), b"x").expect("write");
        }
        std::fs::write(dir.path().join("foo-1.0-1-x86_64.pkg.tar.zst.sig"), b"s").expect("sig");
        let pool = Pool::new("custom", dir.path().to_path_buf(), 1);
        // Newest first by vercmp (1.10 > 1.9): 2.0 takes the one kept slot, 1.10 is the
        // current file (always kept); 1.9 and 1.0 (with its .sig) go; another name stays.
        let mut pruned = pool.prune("foo", Some("foo-1.10-1-x86_64.pkg.tar.zst"));
        pruned.sort();
        assert_eq!(
            pruned,
            vec![
                "foo-1.0-1-x86_64.pkg.tar.zst",
                "foo-1.9-1-x86_64.pkg.tar.zst"
            ]
        );
        assert!(!dir.path().join("foo-1.0-1-x86_64.pkg.tar.zst.sig").exists());
        assert!(dir.path().join("foo-2.0-1-x86_64.pkg.tar.zst").exists());
        assert!(dir.path().join("foobar-0.1-1-any.pkg.tar.zst").exists());
        // Removed from the dbs (no current file): every file of the name goes.
        let pruned = pool.prune("foo", None);
        assert_eq!(pruned.len(), 2);
        assert!(dir.path().join("foobar-0.1-1-any.pkg.tar.zst").exists());
    }
}
