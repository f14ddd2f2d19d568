//! The client commands on the cache: `status`, `mirrors`, `refresh`, `cleanup [--dry-run]`,
//! `evict PATH`.

use actix_web::http::Method;

use super::{Answer, LONG, QUICK};
use crate::cli::client::AdminClient;
use crate::cli::error::CliError;
use crate::cli::tables;
use crate::repo::path::RepoPath;
use crate::upstream::pool::MirrorStatus;

/// `pkgstash status`.
pub(in crate::cli) fn status(client: &AdminClient) -> Result<Answer, CliError> {
    let (s, raw) = client.call_json(Method::GET, "status", QUICK)?;
    Ok(Answer::new(tables::render_status(&s), raw))
}

/// `pkgstash mirrors`.
pub(in crate::cli) fn mirrors(client: &AdminClient) -> Result<Answer, CliError> {
    let (m, raw): (Vec<MirrorStatus>, _) = client.call_json(Method::GET, "mirrors", QUICK)?;
    Ok(Answer::new(tables::render_mirrors(&m), raw))
}

/// `pkgstash refresh`.
pub(in crate::cli) fn refresh(client: &AdminClient) -> Result<Answer, CliError> {
    let (r, raw) = client.call_json(Method::POST, "refresh", LONG)?;
    Ok(Answer::new(tables::render_refresh(&r), raw))
}

/// `pkgstash cleanup [--dry-run]`.
pub(in crate::cli) fn cleanup(client: &AdminClient, dry_run: bool) -> Result<Answer, CliError> {
    let path = format!("cleanup?dry_run={dry_run}");
    let (r, raw) = client.call_json(Method::POST, &path, LONG)?;
    Ok(Answer::new(tables::render_cleanup(&r), raw))
}

/// `pkgstash evict PATH`.
pub(in crate::cli) fn evict(client: &AdminClient, path: &str) -> Result<Answer, CliError> {
    let rel = evict_path(path)?;
    let (e, raw) = client.call_json(Method::DELETE, &format!("cache/{rel}"), QUICK)?;
    Ok(Answer::new(tables::render_evicted(&e), raw))
}

/// `upstream/rel` from what a user may paste: a cache path, a URL path, or a full URL.
fn evict_path(input: &str) -> Result<String, CliError> {
    let s = input.trim();
    let s = match s.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map(|(_, p)| p).unwrap_or(""),
        None => s,
    };
    let s = s.trim_start_matches('/');
    let path = RepoPath::parse(&format!("/{s}")).map_err(|cause| CliError::BadPath {
        input: input.to_string(),
        cause,
    })?;
    Ok(format!("{}/{}", path.upstream(), path.rel_url_encoded()))
}

#[cfg(test)]
mod tests {
    use super::evict_path;

    #[test]
    fn evict_accepts_cache_paths_url_paths_and_urls() {
        let want = "archlinux/core/os/x86_64/foo-1.0-1-x86_64.pkg.tar.zst";
        for input in [
            "archlinux/core/os/x86_64/foo-1.0-1-x86_64.pkg.tar.zst",
            "/archlinux/core/os/x86_64/foo-1.0-1-x86_64.pkg.tar.zst",
            " http://box:7878/archlinux/core/os/x86_64/foo-1.0-1-x86_64.pkg.tar.zst ",
        ] {
            assert_eq!(evict_path(input).expect(input), want);
        }
        let e = evict_path("../x").expect_err("dot segment");
        assert_eq!(
            e.to_string(),
            "bad path \"../x\": bad request path: dot segment"
        );
        assert_eq!(e.exit_code(), 2);
    }
}
