//! Responses for whole files on disk (cached files, custom repo files): validators as
//! actix-files makes them (`ETag`, `Last-Modified`), preconditions and ranges as
//! [`crate::http::ranges`] evaluates them (RFC 9110), bodies read with positional reads — small
//! files at once on the worker (page cache), large ones by [`crate::http::filebody`] (big reads,
//! one read ahead).

use std::fs::{File, Metadata};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use actix_web::body::SizedStream;
use actix_web::http::header::{self, EntityTag};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;

use crate::http::error::ApiError;
use crate::http::ranges::{Answer, BodyStream, ByteRange, Multipart, Representation};

/// Ranges up to this size are read synchronously on the worker.
const SYNC_READ_LIMIT: u64 = 1 << 20;

/// Content type of every file served.
pub const CONTENT_TYPE: &str = "application/octet-stream";

/// The `ETag` of a file, as actix-files makes it (`"ino:len:secs:nanos"` of the mtime, in
/// hex; a test compares the two, so the fast path's and the handler's always agree).
pub fn etag(meta: &Metadata) -> String {
    format!("\"{}\"", etag_value(meta))
}

fn etag_value(meta: &Metadata) -> String {
    let since = meta
        .modified()
        .unwrap_or(UNIX_EPOCH)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{:x}:{:x}:{:x}:{:x}",
        meta.ino(),
        meta.len(),
        since.as_secs(),
        since.subsec_nanos()
    )
}

/// Bytes `r` of `file`, as a body.
fn part(file: &Arc<File>, r: ByteRange) -> BodyStream {
    if r.len <= SYNC_READ_LIMIT {
        let mut buf = vec![0u8; r.len as usize];
        let read = file
            .read_exact_at(&mut buf, r.start)
            .map(|()| Bytes::from(buf));
        return Box::pin(futures::stream::once(async move { read }));
    }
    match file.try_clone() {
        Ok(f) => Box::pin(crate::http::filebody::file_range(f, r.start, r.len)),
        Err(e) => Box::pin(futures::stream::once(async move { Err(e) })),
    }
}

/// The response to `req` (a `GET` or `HEAD`) for `file`, and the body bytes it sends.
pub fn respond(
    req: &HttpRequest,
    file: File,
    meta: &Metadata,
) -> Result<(HttpResponse, u64), ApiError> {
    let len = meta.len();
    let rep = Representation {
        len,
        etag: Some(EntityTag::new_strong(etag_value(meta))),
        last_modified: meta.modified().ok(),
    };
    let mut resp = HttpResponse::build(StatusCode::OK);
    if let Some(lm) = rep.last_modified {
        resp.insert_header((header::LAST_MODIFIED, httpdate::fmt_http_date(lm)));
    }
    resp.insert_header((header::ETAG, etag(meta)))
        .insert_header((header::ACCEPT_RANGES, "bytes"));
    let head = req.method() == Method::HEAD;
    let file = Arc::new(file);
    let (body, sent): (BodyStream, u64) = match crate::http::ranges::evaluate(req, &rep) {
        Answer::PreconditionFailed => {
            return Ok((resp.status(StatusCode::PRECONDITION_FAILED).finish(), 0))
        }
        Answer::NotModified => return Ok((resp.status(StatusCode::NOT_MODIFIED).finish(), 0)),
        Answer::Unsatisfiable => {
            resp.status(StatusCode::RANGE_NOT_SATISFIABLE)
                .insert_header((header::CONTENT_RANGE, format!("bytes */{len}")));
            return Ok((resp.finish(), 0));
        }
        Answer::Full => {
            resp.insert_header((header::CONTENT_TYPE, CONTENT_TYPE));
            (part_or_empty(&file, ByteRange { start: 0, len }, head), len)
        }
        Answer::Partial(ranges) if ranges.len() == 1 => {
            let r = ranges[0];
            resp.status(StatusCode::PARTIAL_CONTENT)
                .insert_header((header::CONTENT_TYPE, CONTENT_TYPE))
                .insert_header((header::CONTENT_RANGE, r.content_range(len)));
            (part_or_empty(&file, r, head), r.len)
        }
        Answer::Partial(ranges) => {
            let m = Multipart::new(&ranges, len, CONTENT_TYPE);
            resp.status(StatusCode::PARTIAL_CONTENT)
                .insert_header((header::CONTENT_TYPE, m.content_type()));
            let (size, payload) = (m.body_len(), m.payload_len());
            let f = file.clone();
            let body = m.body(move |r| part(&f, r));
            return Ok((resp.body(SizedStream::new(size, body)), payload));
        }
    };
    // A HEAD gets the Content-Length a GET would, and no body.
    let resp = resp.body(SizedStream::new(sent, body));
    Ok((resp, if head { 0 } else { sent }))
}

/// The bytes of `r` as a body; nothing for a `HEAD` (whose length is still `r.len`).
fn part_or_empty(file: &Arc<File>, r: ByteRange, head: bool) -> BodyStream {
    if head {
        Box::pin(futures::stream::empty())
    } else {
        part(file, r)
    }
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
