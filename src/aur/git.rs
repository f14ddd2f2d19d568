//! A package's git repository, mirrored with the `git` command into the state dir
//! (`<state>/git/<pkgbase>.git`, a bare `--mirror` clone), and what the rest of the build
//! server reads from it: the head revision, every file at a revision, a diff between
//! revisions, and an export of one exact revision into a build directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::aur::approval::Files;

/// git's well-known empty tree: the "old" side of a first review's diff.
const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

/// A git failure: the command and its stderr.
#[derive(Debug, thiserror::Error)]
#[error("git {what}: {why}")]
pub struct GitError {
    what: String,
    why: String,
}

/// The local mirror of one package base.
pub struct GitMirror {
    dir: PathBuf,
}

/// Is `rev` a full hex object id?
pub fn is_full_rev(rev: &str) -> bool {
    matches!(rev.len(), 40 | 64) && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

fn git_command() -> Command {
    let mut cmd = Command::new("git");
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    cmd
}

impl GitMirror {
    pub fn new(git_root: &Path, pkgbase: &str) -> GitMirror {
        GitMirror {
            dir: git_root.join(format!("{pkgbase}.git")),
        }
    }

    fn run(&self, what: &str, args: &[&str]) -> Result<Vec<u8>, GitError> {
        let out = git_command()
            .arg("-C")
            .arg(&self.dir)
            .args(args)
            .output()
            .map_err(|e| GitError {
                what: what.into(),
                why: format!("cannot run git: {e}"),
            })?;
        if !out.status.success() {
            return Err(GitError {
                what: what.into(),
                why: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(out.stdout)
    }

    /// Clone (first time) or fetch `url`, then answer the head commit's full id.
    pub fn sync(&self, url: &str) -> Result<String, GitError> {
        if self.dir.join("HEAD").is_file() {
            self.run("set-url", &["remote", "set-url", "origin", url])?;
            self.run("fetch", &["fetch", "--prune", "--quiet", "origin"])?;
        } else {
            let parent = self.dir.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(parent).map_err(|e| GitError {
                what: "clone".into(),
                why: format!("cannot create {}: {e}", parent.display()),
            })?;
            let tmp = self.dir.with_extension("git.partial");
            let _ = std::fs::remove_dir_all(&tmp);
            let out = git_command()
                .args(["clone", "--mirror", "--quiet", "--", url])
                .arg(&tmp)
                .output()
                .map_err(|e| GitError {
                    what: "clone".into(),
                    why: format!("cannot run git: {e}"),
                })?;
            if !out.status.success() {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(GitError {
                    what: format!("clone {url}"),
                    why: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                });
            }
            std::fs::rename(&tmp, &self.dir).map_err(|e| GitError {
                what: "clone".into(),
                why: format!("cannot rename into {}: {e}", self.dir.display()),
            })?;
        }
        self.head()
    }

    /// The full id of the head commit.
    pub fn head(&self) -> Result<String, GitError> {
        let out = self.run("rev-parse", &["rev-parse", "--verify", "HEAD^{commit}"])?;
        Ok(String::from_utf8_lossy(&out).trim().to_string())
    }

    /// Does `rev` name a commit of this repository?
    pub fn has_commit(&self, rev: &str) -> bool {
        is_full_rev(rev)
            && self
                .run(
                    "cat-file",
                    &["cat-file", "-e", &format!("{rev}^{{commit}}")],
                )
                .is_ok()
    }

    /// Every file of the tree at `rev` with its contents.
    pub fn files(&self, rev: &str) -> Result<Files, GitError> {
        let listing = self.run("ls-tree", &["ls-tree", "-r", "-z", "--full-tree", rev])?;
        let mut files = Files::new();
        for entry in listing.split(|b| *b == 0).filter(|e| !e.is_empty()) {
            let entry = String::from_utf8_lossy(entry);
            let Some((meta, path)) = entry.split_once('\t') else {
                continue;
            };
            let mut parts = meta.split(' ');
            let (_mode, kind, object) = (parts.next(), parts.next(), parts.next());
            let content = match (kind, object) {
                (Some("blob"), Some(obj)) => self.run("cat-file", &["cat-file", "blob", obj])?,
                (Some(kind), Some(obj)) => format!("{kind} {obj}").into_bytes(),
                _ => continue,
            };
            files.insert(path.to_string(), content);
        }
        Ok(files)
    }

    /// `git diff` from `old` (or the empty tree) to `new`.
    pub fn diff(&self, old: Option<&str>, new: &str) -> Result<String, GitError> {
        let out = self.run(
            "diff",
            &[
                "diff",
                "--no-color",
                "--no-ext-diff",
                "--no-textconv",
                old.unwrap_or(EMPTY_TREE),
                new,
                "--",
            ],
        )?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Write the tree of exactly `rev` into `dest` (which must exist).
    pub fn export(&self, rev: &str, dest: &Path) -> Result<(), GitError> {
        if !is_full_rev(rev) {
            return Err(GitError {
                what: "archive".into(),
                why: format!("`{rev}` is not a full revision id"),
            });
        }
        let tar = self.run("archive", &["archive", "--format=tar", rev])?;
        tar::Archive::new(&tar[..])
            .unpack(dest)
            .map_err(|e| GitError {
                what: "archive".into(),
                why: format!("cannot unpack into {}: {e}", dest.display()),
            })
    }
}
