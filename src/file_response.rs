//! Responses for whole files on disk (cached files, custom repo files).

use std::os::unix::fs::MetadataExt;
use std::time::UNIX_EPOCH;

/// The `ETag` of a file, as actix-files makes it (`"ino:len:secs:nanos"` of the mtime, in
/// hex; a test compares the two, so the fast path's and the handler's always agree).
pub fn etag(meta: &std::fs::Metadata) -> String {
    let since = meta
        .modified()
        .unwrap_or(UNIX_EPOCH)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "\"{:x}:{:x}:{:x}:{:x}\"",
        meta.ino(),
        meta.len(),
        since.as_secs(),
        since.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn etag_and_last_modified_match_actix_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.pkg.tar.zst");
        std::fs::write(&p, vec![7u8; 1000]).expect("write");
        let named = actix_files::NamedFile::open(&p).expect("open");
        let req = actix_web::test::TestRequest::get().to_http_request();
        let resp = named
            .use_etag(true)
            .use_last_modified(true)
            .into_response(&req);
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        let meta = std::fs::metadata(&p).expect("meta");
        assert_eq!(header("etag"), Some(etag(&meta)));
        assert_eq!(
            header("last-modified"),
            Some(httpdate::fmt_http_date(meta.modified().expect("mtime")))
        );
    }
}
