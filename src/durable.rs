//! Files replaced atomically and durably: the one write rule of every file pkgstash keeps —
//! cached files ([`crate::cache::store`]), the cache index's last-served times, the
//! validators sidecars, the custom repos' state, dbs and pool, the AUR build server's state.
//!
//! **The rule** ([`persist`]): a file's new content is complete in a temporary file on the
//! destination's filesystem; that file is fsynced, renamed over the destination (`rename(2)`
//! replaces it atomically), then the destination's directory is fsynced, so the rename itself
//! survives a crash. A reader opens the old file or the new one, never a mix; after a crash the
//! file is the old one or the new one, never empty or torn. The temporary file lives in the
//! destination's own directory ([`write()`], [`Staged`]) or, for downloads, in the cache's
//! `.partial/` (same filesystem); it is deleted if it is dropped before being persisted.
//!
//! Errors are the [`std::io::Error`]s of the step that failed (create, write, fsync, rename,
//! directory fsync). A failed directory fsync is reported although the rename happened: the
//! new file is in place but not known to be durable.
//!
//! Blocking: every function here writes and fsyncs; call it off the async workers
//! (`web::block`, `spawn_blocking`).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

/// Prefix of the temporary files made here (`tempfile`'s): a file of that name left in a
/// directory is the remains of a write a crash interrupted.
pub const TEMP_PREFIX: &str = ".tmp";

/// Replace `dest` with `data`: temporary file in `dest`'s directory (created when missing),
/// then [`persist`].
pub fn write(dest: &Path, data: &[u8]) -> io::Result<()> {
    let mut staged = Staged::new(dest)?;
    staged.file().write_all(data)?;
    staged.commit()
}

/// Publish `tmp`, a complete file on `dest`'s filesystem: fsync it, rename it to `dest`
/// (creating `dest`'s directory when missing), fsync that directory.
pub fn persist(tmp: NamedTempFile, dest: &Path) -> io::Result<()> {
    tmp.as_file().sync_all()?;
    let dir = parent_of(dest)?;
    std::fs::create_dir_all(dir)?;
    tmp.persist(dest).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// fsync a directory: its entries (a rename, a new or removed file) reach the disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory of `dest` (`.` for a bare file name).
fn parent_of(dest: &Path) -> io::Result<&Path> {
    match dest.parent() {
        Some(p) if p.as_os_str().is_empty() => Ok(Path::new(".")),
        Some(p) => Ok(p),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no parent directory", dest.display()),
        )),
    }
}

/// A replacement of a file being prepared: a temporary file in the destination's directory,
/// filled by the caller (through [`Staged::file`], or by a tool given [`Staged::path`]), then
/// put in place by [`Staged::commit`]. Dropped uncommitted, it is deleted and the destination
/// is left as it was.
#[derive(Debug)]
pub struct Staged {
    tmp: NamedTempFile,
    dest: PathBuf,
}

impl Staged {
    /// Start replacing `dest` (its directory is created when missing).
    pub fn new(dest: &Path) -> io::Result<Staged> {
        let dir = parent_of(dest)?;
        std::fs::create_dir_all(dir)?;
        Ok(Staged {
            tmp: tempfile::Builder::new()
                .prefix(TEMP_PREFIX)
                .tempfile_in(dir)?,
            dest: dest.to_path_buf(),
        })
    }

    /// The temporary file, to write the new content into.
    pub fn file(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    /// The temporary file's path (for a tool that reads the new content, e.g. `gpg`).
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Put the new content in place ([`persist`]).
    pub fn commit(self) -> io::Result<()> {
        persist(self.tmp, &self.dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("ls")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn write_replaces_whole_files_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("sub/state.json");
        write(&dest, b"one").expect("write");
        assert_eq!(std::fs::read(&dest).expect("read"), b"one");
        write(&dest, b"two, longer").expect("write");
        assert_eq!(std::fs::read(&dest).expect("read"), b"two, longer");
        assert_eq!(names(&dir.path().join("sub")), vec!["state.json"]);
    }

    #[test]
    fn a_staged_file_is_invisible_until_committed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("core.db");
        std::fs::write(&dest, b"old").expect("write");
        let mut staged = Staged::new(&dest).expect("stage");
        staged.file().write_all(b"new").expect("write");
        assert!(staged.path().starts_with(dir.path()));
        assert!(staged
            .path()
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(TEMP_PREFIX)));
        assert_eq!(std::fs::read(&dest).expect("read"), b"old");
        staged.commit().expect("commit");
        assert_eq!(std::fs::read(&dest).expect("read"), b"new");

        // Dropped uncommitted: the destination is untouched, the temporary gone.
        let mut staged = Staged::new(&dest).expect("stage");
        staged.file().write_all(b"abandoned").expect("write");
        drop(staged);
        assert_eq!(std::fs::read(&dest).expect("read"), b"new");
        assert_eq!(names(dir.path()), vec!["core.db"]);
    }

    #[test]
    fn persist_moves_a_file_from_elsewhere_on_the_filesystem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut tmp = NamedTempFile::new_in(dir.path()).expect("tmp");
        tmp.write_all(b"payload").expect("write");
        let dest = dir.path().join("arch/core/pkg");
        persist(tmp, &dest).expect("persist");
        assert_eq!(std::fs::read(&dest).expect("read"), b"payload");
        assert_eq!(names(dir.path()), vec!["arch"]);
    }

    #[test]
    fn errors_are_the_failed_steps() {
        write(Path::new("/proc/pkgstash-no/such"), b"x").expect_err("cannot create the dir");
        let e = write(Path::new("/"), b"x").expect_err("no parent");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
