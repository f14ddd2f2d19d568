//! `GET api/aur/builds/<id>/log`: a build's log file as written so far (`text/plain`, `Range`
//! honoured), or — with `Accept: text/event-stream` — as Server-Sent Events that follow the
//! build while it runs (docs/admin-api.md): `log` events of whole lines whose `id` is the byte
//! offset after them (for `Last-Event-ID`), a `: keep-alive` comment after 15 s of silence, and
//! `end` with the final build once it has ended and its whole log was sent. The stream is woken
//! by the builder's writes ([`crate::aur::AurService::log_changes`]), never by polling.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;

use crate::aur::history::BuildState;
use crate::aur::AurService;
use crate::http::error::ApiError;

/// Silence after which a comment keeps proxies from closing the stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Log bytes read per event at most.
const CHUNK: u64 = 64 << 10;

/// Answer the log of build `id`.
pub(super) async fn answer(
    req: &HttpRequest,
    aur: Arc<AurService>,
    id: u64,
) -> Result<HttpResponse, ApiError> {
    let sse = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    let svc = aur.clone();
    let (build, log) = web::block(move || svc.build(id))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or(ApiError::NotFound)?;
    if sse {
        let start = req
            .headers()
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        return Ok(HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "text/event-stream"))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header(("x-accel-buffering", "no"))
            .streaming(follow(aur, id, log, start)));
    }
    let building = build.state == BuildState::Building;
    let opened = web::block(move || {
        let f = std::fs::File::open(&log)?;
        let meta = f.metadata()?;
        Ok::<_, std::io::Error>((f, meta))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut resp = match opened {
        Ok((file, meta)) => crate::http::file_response::respond(req, file, &meta)?.0,
        // Not written yet: the build is being set up.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && building => {
            HttpResponse::Ok().finish()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::NotFoundWhy(format!(
                "the log of build {id} is gone"
            )))
        }
        Err(e) => return Err(ApiError::Internal(format!("cannot read a build log: {e}"))),
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

/// Where a stream following a log stands.
struct Follow {
    aur: Arc<AurService>,
    id: u64,
    log: PathBuf,
    /// Bytes of the log sent (or skipped with `Last-Event-ID`).
    offset: u64,
    changes: tokio::sync::watch::Receiver<u64>,
    started: bool,
    ended: bool,
}

/// The event stream of build `id`'s log from byte `start`.
fn follow(
    aur: Arc<AurService>,
    id: u64,
    log: PathBuf,
    start: u64,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    let st = Follow {
        changes: aur.log_changes(),
        aur,
        id,
        log,
        offset: start,
        started: false,
        ended: false,
    };
    futures::stream::unfold(st, |mut st| async move {
        let next = st.next_event().await;
        next.map(|event| (Ok(Bytes::from(event)), st))
    })
}

impl Follow {
    /// The next thing to send; `None` when the stream is over.
    async fn next_event(&mut self) -> Option<String> {
        if !self.started {
            self.started = true;
            return Some("retry: 3000\n\n".into());
        }
        if self.ended {
            return None;
        }
        loop {
            self.changes.borrow_and_update();
            // The state first: a build seen ended has written its whole log.
            let aur = self.aur.clone();
            let id = self.id;
            let build = web::block(move || aur.build(id)).await.ok().flatten()?;
            let done = build.0.state != BuildState::Building;
            let (log, offset) = (self.log.clone(), self.offset);
            let read = web::block(move || read_from(&log, offset))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            // A read cut at CHUNK may end inside a line: that line is not the last.
            let all = done && (read.len() as u64) < CHUNK;
            if let Some((event, used)) = log_event(&read, self.offset, all) {
                self.offset += used;
                return Some(event);
            }
            if done {
                self.ended = true;
                let json = serde_json::to_string(&build.0).unwrap_or_default();
                return Some(format!("event: end\ndata: {json}\n\n"));
            }
            match tokio::time::timeout(KEEP_ALIVE, self.changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return None,
                Err(_) => return Some(": keep-alive\n\n".into()),
            }
        }
    }
}

/// Up to [`CHUNK`] bytes of `log` from `offset` (none when it does not exist yet).
fn read_from(log: &std::path::Path, offset: u64) -> std::io::Result<Vec<u8>> {
    let mut f = match std::fs::File::open(log) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.take(CHUNK).read_to_end(&mut buf)?;
    Ok(buf)
}

/// A `log` event of the whole lines at the start of `bytes` (log bytes from `offset`), and how
/// many bytes it covers; with `all` (the build ended) a last unterminated line too. A `\r` or
/// `\r\n` ends a line as `\n` does (an event's `data:` lines cannot carry one); invalid UTF-8
/// becomes U+FFFD. `None` when there is no whole line yet.
fn log_event(bytes: &[u8], offset: u64, all: bool) -> Option<(String, u64)> {
    // A `\r` at the very end may be the first half of `\r\n`: wait for the next byte.
    let usable = match bytes.last() {
        Some(b'\r') if !all => &bytes[..bytes.len() - 1],
        _ => bytes,
    };
    let end = match usable.iter().rposition(|b| *b == b'\n' || *b == b'\r') {
        Some(i) => i + 1,
        None if all && !usable.is_empty() => usable.len(),
        None => return None,
    };
    let text = String::from_utf8_lossy(&usable[..end]);
    let body = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .or_else(|| text.strip_suffix('\r'))
        .unwrap_or(&text);
    let mut event = format!("event: log\nid: {}\n", offset + end as u64);
    for line in body.split("\r\n").flat_map(|l| l.split(['\n', '\r'])) {
        event.push_str("data: ");
        event.push_str(line);
        event.push('\n');
    }
    event.push('\n');
    Some((event, end as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_lines_become_data_lines_with_the_offset_after_them() {
        let (ev, used) = log_event(b"==> Making\n==> Checking\npart", 100, false).expect("event");
        assert_eq!(
            ev,
            "event: log\nid: 124\ndata: ==> Making\ndata: ==> Checking\n\n"
        );
        assert_eq!(used, 24);
        assert_eq!(log_event(b"no newline yet", 0, false), None);
        let (ev, used) = log_event(b"last words", 7, true).expect("event");
        assert_eq!(
            (ev.as_str(), used),
            ("event: log\nid: 17\ndata: last words\n\n", 10)
        );
        assert_eq!(log_event(b"", 0, true), None);
    }

    #[test]
    fn carriage_returns_end_lines_and_bad_utf8_is_replaced() {
        let (ev, used) = log_event(b"a\r\nb\rc\n", 0, false).expect("event");
        assert_eq!(ev, "event: log\nid: 7\ndata: a\ndata: b\ndata: c\n\n");
        assert_eq!(used, 7);
        // A `\r` at the end waits for a possible `\n`.
        let (ev, used) = log_event(b"x\ny\r", 0, false).expect("event");
        assert_eq!((ev.as_str(), used), ("event: log\nid: 2\ndata: x\n\n", 2));
        let (ev, _) = log_event(b"\xff ok\n", 0, false).expect("event");
        assert_eq!(ev, "event: log\nid: 5\ndata: \u{fffd} ok\n\n");
        // An empty line is an empty data line.
        let (ev, _) = log_event(b"\n", 0, false).expect("event");
        assert_eq!(ev, "event: log\nid: 1\ndata: \n\n");
    }
}
