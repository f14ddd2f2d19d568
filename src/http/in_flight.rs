//! Answers from a download in flight, streaming its growing partial file (a [`Tail`]): the
//! rules of a cached file — 200, 206 (one range, or `multipart/byteranges`), 304/412/416 by
//! [`crate::http::ranges::evaluate`] — with upstream's `Last-Modified` as the only validator;
//! a body whose length nobody knows yet (no `Content-Length` upstream, no repo db entry) gets
//! a 200 as it comes, and a `Range` on it waits for the length first ([`length_known`]: a 200
//! would make pacman and curl give up resuming). The last byte reaches a client only once the
//! download is verified and published (the [`Tail`]'s rule).

use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::SizedStream;
use actix_web::http::{header, Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use futures::StreamExt as _;
use tokio::sync::watch;

use crate::cache::inflight::{BodyMeta, ClientGuard, Download, Phase, Progress};
use crate::cache::tail::Tail;
use crate::http::error::ApiError;
use crate::http::file_response::CONTENT_TYPE;
use crate::http::miss::tail_stall_limit;
use crate::http::ranges::{Answer, BodyStream, ByteRange, Multipart, Representation};
use crate::state::AppState;

/// The download's progress once its length is known: `progress` itself unless it streams a
/// body whose length nobody knows yet (no length upstream, no repo db entry), else the first
/// later progress that knows it or ends the download (for a `GET` with a `Range`).
pub async fn length_known(
    state: &AppState,
    mut progress: Progress,
    rx: &mut watch::Receiver<Progress>,
) -> Result<Progress, ApiError> {
    let stall = tail_stall_limit(state);
    loop {
        match &progress.phase {
            Phase::Connecting => {}
            Phase::Streaming(meta) if meta.total.is_none() => {}
            _ => return Ok(progress),
        }
        match tokio::time::timeout(stall, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(ApiError::Upstream("download task went away".into())),
            Err(_) => return Err(ApiError::UpstreamTimeout),
        }
        progress = rx.borrow_and_update().clone();
    }
}

/// Where bodies from a download in flight come from.
#[derive(Clone)]
struct TailSource {
    file: Arc<File>,
    rx: watch::Receiver<Progress>,
    stall: Duration,
    metrics: Arc<crate::metrics::Metrics>,
}

impl TailSource {
    /// Bytes `[start, end)` (`end`: `None` = until the download is done), counted as sent
    /// from upstream; `client` keeps the download's client count while the body lives.
    fn body(&self, start: u64, end: Option<u64>, client: Option<ClientGuard>) -> BodyStream {
        let tail = Tail::new(
            self.file.clone(),
            self.rx.clone(),
            start,
            end,
            self.stall,
            client,
        );
        let metrics = self.metrics.clone();
        Box::pin(tail.into_stream().inspect(move |chunk| {
            if let Ok(b) = chunk {
                metrics.served_from_download(b.len() as u64);
            }
        }))
    }
}

/// Answer from a download of unknown length (no `Content-Length` upstream, no repo db entry):
/// 200 with the body as it comes (or 304/412). A `Range` never gets here ([`length_known`]).
fn unknown_length(
    req: &HttpRequest,
    mut resp: actix_web::HttpResponseBuilder,
    rep: &Representation,
    src: &TailSource,
    download: &Arc<Download>,
) -> HttpResponse {
    match crate::http::ranges::preconditions(req, rep) {
        Some(Answer::NotModified) => return HttpResponse::NotModified().finish(),
        Some(_) => return HttpResponse::PreconditionFailed().finish(),
        None => {}
    }
    resp.insert_header((header::CONTENT_TYPE, CONTENT_TYPE));
    let body = if req.method() == Method::HEAD {
        Box::pin(futures::stream::empty())
    } else {
        src.body(0, None, Some(download.attach()))
    };
    resp.body(actix_web::body::BodyStream::new(body))
}

/// Answer from a download in flight, streaming the growing file: 200, or 206 (one range, or
/// `multipart/byteranges`), 304/412/416 — the rules of a cached file
/// ([`crate::http::ranges::evaluate`]), with upstream's `Last-Modified` as the only validator. A
/// `HEAD` gets the headers a `GET` would.
pub fn tail_response(
    req: &HttpRequest,
    state: &AppState,
    download: &Arc<Download>,
    meta: &BodyMeta,
    rx: watch::Receiver<Progress>,
) -> Result<HttpResponse, ApiError> {
    let src = TailSource {
        file: download
            .file()
            .ok_or_else(|| ApiError::Internal("download has no partial file".into()))?,
        rx,
        stall: tail_stall_limit(state),
        metrics: state.metrics.clone(),
    };
    let head = req.method() == Method::HEAD;
    let mut resp = HttpResponse::Ok();
    if let Some(lm) = meta.last_modified {
        resp.insert_header((header::LAST_MODIFIED, httpdate::fmt_http_date(lm)));
    }
    let rep = Representation {
        len: meta.total.unwrap_or(0),
        etag: None,
        last_modified: meta.last_modified,
    };
    let Some(total) = meta.total else {
        return Ok(unknown_length(req, resp, &rep, &src, download));
    };
    resp.insert_header((header::ACCEPT_RANGES, "bytes"));
    let (range, status) = match crate::http::ranges::evaluate(req, &rep) {
        Answer::NotModified => return Ok(resp.status(StatusCode::NOT_MODIFIED).finish()),
        Answer::PreconditionFailed => {
            return Ok(resp.status(StatusCode::PRECONDITION_FAILED).finish())
        }
        Answer::Unsatisfiable => {
            return Ok(resp
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .insert_header((header::CONTENT_RANGE, format!("bytes */{total}")))
                .finish())
        }
        Answer::Full => (
            ByteRange {
                start: 0,
                len: total,
            },
            StatusCode::OK,
        ),
        Answer::Partial(ranges) if ranges.len() == 1 => {
            resp.insert_header((header::CONTENT_RANGE, ranges[0].content_range(total)));
            (ranges[0], StatusCode::PARTIAL_CONTENT)
        }
        Answer::Partial(ranges) => {
            let m = Multipart::new(&ranges, total, CONTENT_TYPE);
            resp.status(StatusCode::PARTIAL_CONTENT)
                .insert_header((header::CONTENT_TYPE, m.content_type()));
            let size = m.body_len();
            // One client for the whole body, held by the closure that makes its parts.
            let client = download.attach();
            let body = m.body(move |r| {
                let _held = &client;
                src.body(r.start, Some(r.start + r.len), None)
            });
            return Ok(resp.body(SizedStream::new(size, body)));
        }
    };
    resp.status(status)
        .insert_header((header::CONTENT_TYPE, CONTENT_TYPE));
    let body = if head {
        Box::pin(futures::stream::empty())
    } else {
        src.body(
            range.start,
            Some(range.start + range.len),
            Some(download.attach()),
        )
    };
    Ok(resp.body(SizedStream::new(range.len, body)))
}
