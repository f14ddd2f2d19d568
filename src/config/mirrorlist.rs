//! pacman `mirrorlist` files: `Server = https://m/archlinux/$repo/os/$arch` lines give the
//! mirror base (everything before `/$repo`). Comments, blank lines and `#Server` are ignored;
//! a `Server` line without `$repo` or any other directive is an error naming the line.

use std::path::{Path, PathBuf};

/// A mirrorlist problem, naming the file and line.
#[derive(Debug, thiserror::Error)]
pub enum MirrorlistError {
    /// (The cause is in the message, so it is no `source`: printed once.)
    #[error("cannot read mirrorlist {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("mirrorlist {path}, line {line}: {reason}")]
    Line {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// Parse mirrorlist text: `(line number, base URL)` for each `Server` line.
pub fn parse(path: &Path, text: &str) -> Result<Vec<(usize, String)>, MirrorlistError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |reason: &str| MirrorlistError::Line {
            path: path.to_path_buf(),
            line: line_no,
            reason: reason.to_string(),
        };
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| err("expected `Server = URL`"))?;
        if key.trim() != "Server" {
            return Err(err(&format!(
                "unknown directive `{}` (only `Server` lines are allowed)",
                key.trim()
            )));
        }
        let url = value.trim();
        let base = url
            .find("/$repo")
            .map(|pos| &url[..pos])
            .ok_or_else(|| err("the Server URL has no `/$repo` (expected …/$repo/os/$arch)"))?;
        out.push((line_no, base.to_string()));
    }
    Ok(out)
}

/// Read and parse a mirrorlist file.
pub fn read(path: &Path) -> Result<Vec<(usize, String)>, MirrorlistError> {
    let text = std::fs::read_to_string(path).map_err(|cause| MirrorlistError::Read {
        path: path.to_path_buf(),
        cause,
    })?;
    parse(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_lines_and_ignores_comments() {
        let text = "##\n## Arch Linux repository mirrorlist\n#Server = http://x/$repo/os/$arch\n\nServer = https://geo.mirror.pkgbuild.com/$repo/os/$arch\n  Server=http://m.example/archlinux/$repo/os/$arch  \n";
        let got = parse(Path::new("ml"), text).expect("valid");
        assert_eq!(
            got,
            vec![
                (5, "https://geo.mirror.pkgbuild.com".to_string()),
                (6, "http://m.example/archlinux".to_string())
            ]
        );
    }

    #[test]
    fn line_without_repo_names_the_line() {
        let e = parse(Path::new("ml"), "# c\nServer = http://m/os/x86_64\n").expect_err("invalid");
        assert!(e.to_string().contains("line 2"), "{e}");
    }

    #[test]
    fn unknown_directive_is_an_error() {
        let e = parse(Path::new("ml"), "Include = /x\n").expect_err("invalid");
        assert!(e.to_string().contains("line 1"), "{e}");
    }
}
