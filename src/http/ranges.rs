//! Conditional and range requests on one representation, evaluated in RFC 9110's order
//! (§13.2.2): `If-Match`, `If-Unmodified-Since` (412), `If-None-Match`, `If-Modified-Since`
//! (304; only for exactly the representation's date, as nginx's `if_modified_since exact`),
//! then — for `GET` only (§14.2) — `If-Range` (§13.1.5: a validator that does not match means
//! the whole representation) and `Range`.
//!
//! Ranges in another unit than `bytes` are ignored (§14.1); an invalid or unsatisfiable
//! `bytes` range answers 416. Several satisfiable ranges answer `multipart/byteranges`
//! (§14.6, as nginx does), unless they overlap or are more than [`MAX_RANGES`] — then the
//! whole representation (§14.2 allows ignoring such a `Range`): never a silent subset.
//!
//! The same rules serve cached files ([`crate::http::file_response`]) and downloads in flight
//! ([`crate::http::mirror`]), so both answer alike.

use std::io;
use std::pin::Pin;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header::{
    self, EntityTag, IfMatch, IfModifiedSince, IfNoneMatch, IfRange, IfUnmodifiedSince,
};
use actix_web::http::Method;
use actix_web::{HttpMessage as _, HttpRequest};
use bytes::Bytes;
use futures::{Stream, StreamExt};

/// More ranges than this in one request: the whole representation instead.
pub const MAX_RANGES: usize = 16;

/// What the validators and the length of the representation are.
#[derive(Debug, Clone)]
pub struct Representation {
    pub len: u64,
    /// A strong entity tag, if there is one.
    pub etag: Option<EntityTag>,
    pub last_modified: Option<SystemTime>,
}

/// `[start, start + len)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub len: u64,
}

impl ByteRange {
    /// `bytes START-END/TOTAL` (for `Content-Range`).
    pub fn content_range(&self, total: u64) -> String {
        format!("bytes {}-{}/{total}", self.start, self.start + self.len - 1)
    }
}

/// How to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 412.
    PreconditionFailed,
    /// 304.
    NotModified,
    /// 200, the whole representation.
    Full,
    /// 206: one range, or several (`multipart/byteranges`).
    Partial(Vec<ByteRange>),
    /// 416.
    Unsatisfiable,
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// 412 or 304, when a precondition says so (§13.2.2 steps 1–4).
pub fn preconditions(req: &HttpRequest, rep: &Representation) -> Option<Answer> {
    let lm = rep.last_modified.map(secs);
    match req.get_header::<IfMatch>() {
        Some(IfMatch::Any) | None => {}
        Some(IfMatch::Items(items)) => {
            let matched = rep
                .etag
                .as_ref()
                .is_some_and(|tag| items.iter().any(|i| i.strong_eq(tag)));
            if !matched {
                return Some(Answer::PreconditionFailed);
            }
        }
    }
    if !req.headers().contains_key(header::IF_MATCH) {
        if let (Some(lm), Some(IfUnmodifiedSince(since))) = (lm, req.get_header()) {
            if lm > secs(since.into()) {
                return Some(Answer::PreconditionFailed);
            }
        }
    }
    match req.get_header::<IfNoneMatch>() {
        Some(IfNoneMatch::Any) => return Some(Answer::NotModified),
        Some(IfNoneMatch::Items(items)) => {
            let matched = rep
                .etag
                .as_ref()
                .is_some_and(|tag| items.iter().any(|i| i.weak_eq(tag)));
            return matched.then_some(Answer::NotModified);
        }
        None => {}
    }
    // `If-Modified-Since` is compared exactly (nginx's default, `if_modified_since exact`),
    // not "not later than" (§13.1.3 allows either): a client holding a *newer* copy than ours
    // (the mirror went back to an older, repaired db) must get ours, not a 304.
    if !req.headers().contains_key(header::IF_NONE_MATCH) {
        if let (Some(lm), Some(IfModifiedSince(since))) = (lm, req.get_header()) {
            if lm == secs(since.into()) {
                return Some(Answer::NotModified);
            }
        }
    }
    None
}

/// Does `If-Range` (if any) let the `Range` apply (§13.1.5)?
fn if_range_holds(req: &HttpRequest, rep: &Representation) -> bool {
    if !req.headers().contains_key(header::IF_RANGE) {
        return true;
    }
    match req.get_header::<IfRange>() {
        Some(IfRange::EntityTag(tag)) => rep.etag.as_ref().is_some_and(|t| t.strong_eq(&tag)),
        Some(IfRange::Date(date)) => rep
            .last_modified
            .is_some_and(|lm| secs(lm) == secs(date.into())),
        // Unreadable: it cannot match.
        None => false,
    }
}

/// The ranges to send (§13.2.2 step 5, §14.2), assuming the preconditions passed.
pub fn ranges(req: &HttpRequest, rep: &Representation) -> Answer {
    if req.method() != Method::GET {
        return Answer::Full;
    }
    let Some(value) = req.headers().get(header::RANGE) else {
        return Answer::Full;
    };
    let Ok(value) = value.to_str() else {
        return Answer::Unsatisfiable;
    };
    if !value
        .trim_start()
        .get(..6)
        .is_some_and(|unit| unit.eq_ignore_ascii_case("bytes="))
    {
        return Answer::Full; // another unit: ignored
    }
    if !if_range_holds(req, rep) {
        return Answer::Full;
    }
    let Ok(parsed) = actix_files::HttpRange::parse(value.trim_start(), rep.len) else {
        return Answer::Unsatisfiable;
    };
    let mut ranges: Vec<ByteRange> = parsed
        .iter()
        .map(|r| ByteRange {
            start: r.start,
            len: r.length,
        })
        .collect();
    if ranges.is_empty() {
        return Answer::Unsatisfiable;
    }
    if ranges.len() > MAX_RANGES {
        return Answer::Full;
    }
    let mut sorted = ranges.clone();
    sorted.sort_by_key(|r| r.start);
    if sorted
        .windows(2)
        .any(|w| w[0].start + w[0].len > w[1].start)
    {
        return Answer::Full;
    }
    ranges.dedup();
    Answer::Partial(ranges)
}

/// [`preconditions`], then [`ranges`].
pub fn evaluate(req: &HttpRequest, rep: &Representation) -> Answer {
    preconditions(req, rep).unwrap_or_else(|| ranges(req, rep))
}

/// A body stream, boxed.
pub type BodyStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>>>>;

/// A `multipart/byteranges` body (RFC 9110 §14.6) of `ranges` of a `total`-byte
/// representation of type `content_type`.
pub struct Multipart {
    boundary: String,
    parts: Vec<(ByteRange, Bytes)>,
    closing: Bytes,
}

impl Multipart {
    pub fn new(ranges: &[ByteRange], total: u64, content_type: &str) -> Multipart {
        // Not in any part's bytes with overwhelming probability (RFC 2046 §5.1.1 asks for
        // a delimiter absent from the content), and different per response.
        let seed = format!("{:?}{total}{:?}", SystemTime::now(), ranges);
        let digest = {
            use sha2::Digest as _;
            hex::encode(sha2::Sha256::digest(seed.as_bytes()))
        };
        let boundary = format!("pkgstash-{}", &digest[..32]);
        let parts = ranges
            .iter()
            .map(|r| {
                let head = format!(
                    "--{boundary}\r\ncontent-type: {content_type}\r\ncontent-range: {}\r\n\r\n",
                    r.content_range(total)
                );
                (*r, Bytes::from(head))
            })
            .collect();
        let closing = Bytes::from(format!("--{boundary}--\r\n"));
        Multipart {
            boundary,
            parts,
            closing,
        }
    }

    /// The response's `Content-Type`.
    pub fn content_type(&self) -> String {
        format!("multipart/byteranges; boundary={}", self.boundary)
    }

    /// Body length, bytes.
    pub fn body_len(&self) -> u64 {
        self.parts
            .iter()
            .map(|(r, head)| head.len() as u64 + r.len + 2)
            .sum::<u64>()
            + self.closing.len() as u64
    }

    /// Bytes of the representation in the body.
    pub fn payload_len(&self) -> u64 {
        self.parts.iter().map(|(r, _)| r.len).sum()
    }

    /// The body, each part's bytes from `part`.
    pub fn body(self, mut part: impl FnMut(ByteRange) -> BodyStream + 'static) -> BodyStream {
        let closing = self.closing;
        let parts = futures::stream::iter(self.parts).flat_map(move |(r, head)| {
            futures::stream::once(async move { Ok(head) })
                .chain(part(r))
                .chain(futures::stream::once(async {
                    Ok(Bytes::from_static(b"\r\n"))
                }))
        });
        Box::pin(parts.chain(futures::stream::once(async move { Ok(closing) })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;
    use std::time::Duration;

    fn rep() -> Representation {
        Representation {
            len: 1000,
            etag: Some(EntityTag::new_strong("abc".into())),
            last_modified: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        }
    }

    fn answer(headers: &[(&str, &str)]) -> Answer {
        let mut req = TestRequest::get();
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        evaluate(&req.to_http_request(), &rep())
    }

    const LM: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
    const EARLIER: &str = "Tue, 14 Nov 2023 22:13:19 GMT";
    const LATER: &str = "Tue, 14 Nov 2023 22:13:21 GMT";

    fn one(start: u64, len: u64) -> Answer {
        Answer::Partial(vec![ByteRange { start, len }])
    }

    #[test]
    fn ranges_and_if_range() {
        assert_eq!(answer(&[]), Answer::Full);
        assert_eq!(answer(&[("range", "bytes=0-9")]), one(0, 10));
        assert_eq!(answer(&[("range", "bytes=-10")]), one(990, 10));
        assert_eq!(answer(&[("range", "bytes=990-")]), one(990, 10));
        assert_eq!(answer(&[("range", "bytes=1000-")]), Answer::Unsatisfiable);
        assert_eq!(answer(&[("range", "bytes=x")]), Answer::Unsatisfiable);
        assert_eq!(answer(&[("range", "items=0-9")]), Answer::Full);
        // If-Range: a matching strong tag or the exact date applies the Range...
        assert_eq!(
            answer(&[("range", "bytes=0-9"), ("if-range", "\"abc\"")]),
            one(0, 10)
        );
        assert_eq!(
            answer(&[("range", "bytes=0-9"), ("if-range", LM)]),
            one(0, 10)
        );
        // ... anything else means the whole representation (RFC 9110 §13.1.5).
        for v in ["\"other\"", "W/\"abc\"", EARLIER, "garbage"] {
            assert_eq!(
                answer(&[("range", "bytes=0-9"), ("if-range", v)]),
                Answer::Full,
                "{v}"
            );
        }
        // Several ranges: all of them, or the whole when they overlap.
        assert_eq!(
            answer(&[("range", "bytes=0-0,5-10")]),
            Answer::Partial(vec![
                ByteRange { start: 0, len: 1 },
                ByteRange { start: 5, len: 6 }
            ])
        );
        assert_eq!(answer(&[("range", "bytes=0-10,5-20")]), Answer::Full);
        let many: Vec<String> = (0..20).map(|i| format!("{}-{}", i * 10, i * 10)).collect();
        assert_eq!(
            answer(&[("range", &format!("bytes={}", many.join(",")))]),
            Answer::Full
        );
    }

    #[test]
    fn preconditions_come_first() {
        assert_eq!(answer(&[("if-none-match", "\"abc\"")]), Answer::NotModified);
        assert_eq!(
            answer(&[("if-none-match", "W/\"abc\"")]),
            Answer::NotModified
        );
        assert_eq!(answer(&[("if-none-match", "\"x\"")]), Answer::Full);
        assert_eq!(answer(&[("if-modified-since", LM)]), Answer::NotModified);
        assert_eq!(answer(&[("if-modified-since", EARLIER)]), Answer::Full);
        // Exactly: a later date is another version than ours (a repaired, older db).
        assert_eq!(answer(&[("if-modified-since", LATER)]), Answer::Full);
        assert_eq!(answer(&[("if-modified-since", "garbage")]), Answer::Full);
        // If-None-Match present: If-Modified-Since is not looked at.
        assert_eq!(
            answer(&[("if-none-match", "\"x\""), ("if-modified-since", LM)]),
            Answer::Full
        );
        assert_eq!(answer(&[("if-match", "\"x\"")]), Answer::PreconditionFailed);
        assert_eq!(
            answer(&[("if-match", "W/\"abc\"")]),
            Answer::PreconditionFailed
        );
        assert_eq!(answer(&[("if-match", "\"abc\"")]), Answer::Full);
        assert_eq!(
            answer(&[("if-unmodified-since", EARLIER)]),
            Answer::PreconditionFailed
        );
        // 304 wins over a Range, even an unsatisfiable one.
        assert_eq!(
            answer(&[("if-none-match", "\"abc\""), ("range", "bytes=5000-")]),
            Answer::NotModified
        );
    }

    #[test]
    fn head_ignores_range() {
        let req = TestRequest::default()
            .method(Method::HEAD)
            .insert_header(("range", "bytes=0-9"))
            .to_http_request();
        assert_eq!(evaluate(&req, &rep()), Answer::Full);
    }

    #[actix_web::test]
    async fn multipart_body_has_the_declared_length_and_parts() {
        let ranges = [
            ByteRange { start: 0, len: 1 },
            ByteRange { start: 5, len: 6 },
        ];
        let m = Multipart::new(&ranges, 1000, "application/octet-stream");
        let ct = m.content_type();
        let boundary = ct.split("boundary=").nth(1).expect("boundary").to_string();
        let len = m.body_len();
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let body = m.body(move |r| {
            let bytes = Bytes::copy_from_slice(&data[r.start as usize..(r.start + r.len) as usize]);
            Box::pin(futures::stream::once(async move { Ok(bytes) }))
        });
        let chunks: Vec<_> = body.collect().await;
        let all: Vec<u8> = chunks
            .into_iter()
            .flat_map(|c| c.expect("chunk").to_vec())
            .collect();
        assert_eq!(all.len() as u64, len);
        let text = String::from_utf8_lossy(&all);
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.contains("content-range: bytes 0-0/1000\r\n\r\n\u{0}\r\n"));
        assert!(text.contains("content-range: bytes 5-10/1000\r\n"));
        assert!(text.ends_with(&format!("\r\n--{boundary}--\r\n")));
    }
}
