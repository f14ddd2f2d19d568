//! README's Docker section as commands: the tests run exactly these, adding only what this
//! machine needs (`--network host`, and environment overrides that point pkgstash at the
//! test's mirror and port).

use crate::{read, repo};

/// The image, container and volume names README uses (and so the tests).
pub const IMAGE: &str = "pkgstash";
pub const CONTAINER: &str = "pkgstash";
pub const VOLUME: &str = "pkgstash-cache";

/// README's `### Docker` section, up to the next heading.
pub fn docker_section() -> String {
    let readme = read(&repo().join("README.md"));
    let start = readme
        .find("\n### Docker\n")
        .expect("README.md has a `### Docker` section");
    let body = &readme[start + 1..];
    let end = body[4..].find("\n#").map_or(body.len(), |i| i + 4);
    body[..end].to_string()
}

/// The commands of the section's first ```sh block: continuation lines joined, comments
/// and blank lines dropped.
pub fn docker_commands() -> Vec<String> {
    let section = docker_section();
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a ```sh block in README's Docker section");
    let mut cmds = Vec::new();
    let mut cur = String::new();
    for line in block.lines() {
        let line = strip_comment(line).trim_end();
        if let Some(body) = line.strip_suffix('\\') {
            cur.push_str(body.trim());
            cur.push(' ');
            continue;
        }
        cur.push_str(line.trim());
        if !cur.trim().is_empty() {
            cmds.push(cur.trim().to_string());
        }
        cur.clear();
    }
    cmds
}

/// `line` without a `#` comment that is outside quotes and starts a word.
fn strip_comment(line: &str) -> &str {
    let (mut quote, mut prev) = (None, ' ');
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if prev.is_whitespace() => return &line[..i],
            _ => {}
        }
        prev = c;
    }
    line
}

/// The one command starting with `prefix` (e.g. `docker run`).
pub fn command(cmds: &[String], prefix: &str) -> String {
    let found: Vec<&String> = cmds.iter().filter(|c| c.starts_with(prefix)).collect();
    assert_eq!(
        found.len(),
        1,
        "README's Docker block should have one `{prefix}` command: {cmds:?}"
    );
    found[0].clone()
}

/// The shell words of a command line, as written (quotes and `$(…)` kept), split at blanks
/// outside quotes and `$(…)`.
pub fn words(cmd: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quote, mut depth) = (None, 0usize);
    let mut chars = cmd.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, ' ' | '\t') if depth == 0 => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                continue;
            }
            (None, '\'') | (None, '"') => quote = Some(c),
            (Some('"'), '$') if chars.peek() == Some(&'(') => depth += 1,
            (None, '$') if chars.peek() == Some(&'(') => depth += 1,
            (Some(q), _) if c == q && depth == 0 => quote = None,
            (_, ')') if depth > 0 => depth -= 1,
            _ => {}
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// README's `docker SUB …` command with `extra` options added right after `docker SUB`, and,
/// for `docker run`, `-e KEY=VALUE` set for each of `env` (replacing README's value of that
/// key, else added before the image name). Values are single-quoted.
pub fn adapted(cmd: &str, extra: &[&str], env: &[(&str, String)]) -> String {
    let mut w = words(cmd);
    assert!(
        w.len() >= 3 && w[0] == "docker",
        "not a docker command: {cmd}"
    );
    let mut pending: Vec<(&str, String)> = env.to_vec();
    for i in 1..w.len() {
        if w[i - 1] == "-e" {
            if let Some(pos) = pending
                .iter()
                .position(|(k, _)| w[i].starts_with(&format!("{k}=")))
            {
                let (k, v) = pending.remove(pos);
                w[i] = format!("{k}='{v}'");
            }
        }
    }
    let mut tail = Vec::new();
    if !pending.is_empty() {
        assert_eq!(w[1], "run", "environment only for docker run");
        tail.push(w.pop().expect("image"));
    }
    for (k, v) in pending {
        w.push("-e".into());
        w.push(format!("{k}='{v}'"));
    }
    w.extend(tail);
    for (i, e) in extra.iter().enumerate() {
        w.insert(2 + i, (*e).to_string());
    }
    w.join(" ")
}

#[test]
fn words_keep_quotes_and_substitutions() {
    assert_eq!(
        words(r#"docker run -e PKGSTASH_TOKEN="$(openssl rand -hex 32)" -e 'A=b c' pkgstash"#),
        vec![
            "docker",
            "run",
            "-e",
            r#"PKGSTASH_TOKEN="$(openssl rand -hex 32)""#,
            "-e",
            "'A=b c'",
            "pkgstash"
        ]
    );
    assert_eq!(
        adapted(
            "docker run -d -e A=1 pkgstash",
            &["--network", "host"],
            &[("A", "2".into()), ("B", "3".into())]
        ),
        "docker run --network host -d -e A='2' -e B='3' pkgstash"
    );
    assert_eq!(
        strip_comment("docker exec x y   # note"),
        "docker exec x y   "
    );
}
