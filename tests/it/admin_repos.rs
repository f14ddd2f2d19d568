//! The custom repos as the web interface uses them: `GET api/repos` (the summary), the upload
//! the interface sends (`PUT` with the signature in `X-Pkgstash-Signature`) answering the same
//! checks and messages as `pkgstash repo add`, and removal.

use std::process::Command;

use base64::Engine;

use crate::fixture::{make_pkg, tools_available};
use crate::support::{bin, client, exit_and_output, Pkgstash};

const TOKEN: &str = "repos-ui-token-77";

fn put(p: &Pkgstash, filename: &str, body: Vec<u8>, sig: Option<&str>) -> (u16, String) {
    let mut r = client()
        .put(p.url(&format!(
            "/_pkgstash/api/repos/custom/packages?filename={filename}"
        )))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .body(body);
    if let Some(s) = sig {
        r = r.header("X-Pkgstash-Signature", s);
    }
    let r = r.send().expect("upload");
    (r.status().as_u16(), r.text().unwrap_or_default())
}

fn api_json(p: &Pkgstash, method: &str, path: &str) -> serde_json::Value {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let r = client()
        .request(m, p.url(&format!("/_pkgstash/api/{path}")))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .send()
        .expect("request");
    assert_eq!(r.status().as_u16(), 200, "{method} {path}");
    r.json().expect("json")
}

/// `pkgstash repo add custom FILE [SIG]` against `p`: exit code and stderr.
fn cli_add(p: &Pkgstash, file: &std::path::Path, sig: Option<&std::path::Path>) -> (i32, String) {
    let mut cmd = Command::new(bin());
    cmd.args(["repo", "add", "custom"])
        .arg(file)
        .args(sig)
        .arg("-c")
        .arg(&p.config_path)
        .env("PKGSTASH__LISTEN", p.addr.to_string())
        .env("PKGSTASH_TOKEN", TOKEN);
    let out = cmd.output().expect("cli");
    let (code, _, err) = exit_and_output(&out);
    (code, err)
}

#[test]
fn repos_summary_and_the_interface_upload_say_what_the_cli_says() {
    if !tools_available() {
        return;
    }
    let repo_dir = tempfile::tempdir().expect("tempdir");
    let pkgs = tempfile::tempdir().expect("tempdir");
    let p = Pkgstash::start_env(
        &format!(
            "[repos.custom]\npath = \"{}\"\narch = [\"x86_64\"]\nmax_upload = \"1 MiB\"\n",
            repo_dir.path().display()
        ),
        &[("PKGSTASH_TOKEN", TOKEN)],
    );
    let summary = api_json(&p, "GET", "repos");
    assert_eq!(
        summary,
        serde_json::json!([{ "name": "custom", "arch": ["x86_64"], "packages": 0, "bytes": 0,
                             "signed": false, "max_upload": 1048576, "aur": false }])
    );

    // A package for another architecture: the upload and the CLI are refused alike.
    let arm = make_pkg(pkgs.path(), "hello", "1.0-1", "aarch64", 100, &[]);
    let (status, text) = put(
        &p,
        "hello-1.0-1-aarch64.pkg.tar.zst",
        std::fs::read(&arm).expect("read"),
        None,
    );
    assert_eq!(status, 400, "{text}");
    let (code, err) = cli_add(&p, &arm, None);
    assert_ne!(code, 0);
    assert!(err.contains(text.trim()), "CLI: {err}\nAPI: {text}");
    // A bad signature header, a name that is not a package's.
    let good = make_pkg(pkgs.path(), "hello", "1.0-1", "x86_64", 100, &[]);
    let bytes = std::fs::read(&good).expect("read");
    let (status, text) = put(
        &p,
        "hello-1.0-1-x86_64.pkg.tar.zst",
        bytes.clone(),
        Some("%%%"),
    );
    assert_eq!(status, 400);
    assert!(
        text.starts_with("bad request: signature is not base64: "),
        "{text}"
    );
    let (status, text) = put(&p, "notes.txt", bytes.clone(), None);
    assert_eq!(status, 400);
    assert_eq!(
        text.trim(),
        "bad request: `notes.txt` is not a package file name (name-version-arch.pkg.tar.zst)"
    );
    let sig = base64::engine::general_purpose::STANDARD.encode(b"not an OpenPGP signature");
    let (status, text) = put(
        &p,
        "hello-1.0-1-x86_64.pkg.tar.zst",
        bytes.clone(),
        Some(&sig),
    );
    assert_eq!(status, 400, "{text}");
    assert!(text.starts_with("bad request: bad signature: "), "{text}");
    let sig_file = pkgs.path().join("hello.sig");
    std::fs::write(&sig_file, b"not an OpenPGP signature").expect("sig");
    let (code, err) = cli_add(&p, &good, Some(&sig_file));
    assert_ne!(code, 0);
    assert!(err.contains(text.trim()), "CLI: {err}\nAPI: {text}");
    // Over max_upload: 413 before the body is read.
    let (status, text) = put(&p, "big-1-1-x86_64.pkg.tar.zst", vec![0u8; 2 << 20], None);
    assert_eq!(status, 413, "{text}");
    assert!(text.starts_with("payload too large: "), "{text}");

    // The upload the interface sends is accepted, and the summary follows.
    let (status, text) = put(&p, "hello-1.0-1-x86_64.pkg.tar.zst", bytes.clone(), None);
    assert_eq!(status, 200, "{text}");
    let added: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        (
            &added["repo"],
            &added["name"],
            &added["version"],
            &added["arch"]
        ),
        (
            &serde_json::json!("custom"),
            &serde_json::json!("hello"),
            &serde_json::json!("1.0-1"),
            &serde_json::json!("x86_64")
        )
    );
    assert!(added["replaced"].is_null());
    let summary = api_json(&p, "GET", "repos");
    assert_eq!(summary[0]["packages"], 1);
    assert_eq!(summary[0]["bytes"], bytes.len());
    let list = api_json(&p, "GET", "repos/custom/packages");
    assert_eq!(list[0]["filename"], "hello-1.0-1-x86_64.pkg.tar.zst");
    let removed = api_json(&p, "DELETE", "repos/custom/packages/hello");
    assert_eq!(removed["name"], "hello");
    assert_eq!(api_json(&p, "GET", "repos")[0]["packages"], 0);
    let r = client()
        .get(p.url("/_pkgstash/api/repos"))
        .send()
        .expect("get");
    assert_eq!(r.status().as_u16(), 401, "package lists need the token");
}
