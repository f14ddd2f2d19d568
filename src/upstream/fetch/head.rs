//! The checks on a mirror's response head, before any body byte is kept: what the status
//! means, how the body is framed, and whether its length agrees with what is already known.
//!
//! A pure function of the head and of what the download knows ([`Known`]), so every rule is
//! unit-tested without a network. Facts used:
//! - RFC 9112 §6.3: an HTTP/1.1 response with neither `Content-Length` nor chunked
//!   `Transfer-Encoding` is delimited by the connection closing. awc (actix-http's client
//!   codec) reads such a body as empty, so it is refused as a failure of that mirror rather
//!   than published as 0 bytes. HTTP/1.0 close-delimited bodies are read to EOF by awc.
//! - RFC 9110 §14.4: a `206` must carry `Content-Range: bytes START-END/TOTAL` for the range
//!   asked (`bytes=N-`: START = N, END = TOTAL - 1).

use std::time::SystemTime;

use awc::http::header::{self, HeaderMap};
use awc::http::{StatusCode, Version};

use crate::repo::path::FileKind;

/// What the download knows when a response head arrives.
#[derive(Debug, Clone)]
pub struct Known {
    /// Bytes already in the partial file (the `Range: bytes=N-` asked).
    pub written: u64,
    /// A conditional request was sent (revalidating a cached mutable file with the mirror's
    /// validators of it).
    pub conditional: bool,
    /// The total length an earlier mirror declared for this download.
    pub first_total: Option<u64>,
    /// The size the repo db gives.
    pub expected_size: Option<u64>,
    pub kind: FileKind,
    /// The file cannot be empty (a package, signature or db: [`super::admit::never_empty`]).
    pub never_empty: bool,
    /// `max_unknown_size`: the largest file accepted when no db gives its size.
    pub max_unknown_size: u64,
}

/// How the body of an accepted response is to be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyPlan {
    /// Leading body bytes that repeat what is already written (a `200` to a `Range` request):
    /// compared, not appended.
    pub skip: u64,
    /// The file's total length, when declared (`Content-Length`, or `Content-Range`'s total).
    pub total: Option<u64>,
    pub last_modified: Option<SystemTime>,
}

/// The verdict on a response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// Take the body.
    Body(BodyPlan),
    /// A `304` to the conditional request: the cached copy is current if the 304 agrees with
    /// the validators sent ([`crate::cache::validators::Validators::confirmed_by`], the caller's check).
    NotModified,
    NotFound,
    /// The mirror failed (its health suffers); another mirror may do better.
    Failed(String),
    /// The file is refused by policy (larger than `max_unknown_size`): no mirror is to blame.
    Refused(String),
}

/// Judge a response head.
pub fn check(status: StatusCode, version: Version, headers: &HeaderMap, known: &Known) -> Head {
    match status {
        StatusCode::NOT_MODIFIED if known.written == 0 && known.conditional => {
            return Head::NotModified
        }
        StatusCode::NOT_FOUND | StatusCode::GONE => return Head::NotFound,
        StatusCode::OK | StatusCode::PARTIAL_CONTENT => {}
        s => return Head::Failed(format!("HTTP {}", s.as_u16())),
    }
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let is_html = text(header::CONTENT_TYPE).is_some_and(|ct| {
        ct.trim_start()
            .to_ascii_lowercase()
            .starts_with("text/html")
    });
    if is_html && known.kind == FileKind::Immutable {
        return Head::Failed("served an HTML page instead of a package".into());
    }
    // A 200 is the mirror's current version, whatever its date (a repaired file may be older
    // than the broken one it replaces): no "mirror lags behind ours" guess.
    let last_modified = text(header::LAST_MODIFIED).and_then(|v| httpdate::parse_http_date(v).ok());
    let chunked = headers
        .get_all(header::TRANSFER_ENCODING)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| coding.trim().eq_ignore_ascii_case("chunked"));
    let content_length = text(header::CONTENT_LENGTH).and_then(|v| v.trim().parse::<u64>().ok());
    if version == Version::HTTP_11 && content_length.is_none() && !chunked {
        return Head::Failed(
            "body delimited by closing the connection (HTTP/1.1 without Content-Length or \
             chunked encoding), which cannot be read reliably"
                .into(),
        );
    }
    let (skip, total) = if status == StatusCode::PARTIAL_CONTENT {
        match text(header::CONTENT_RANGE).and_then(parse_content_range) {
            Some((start, end, total)) if start == known.written && end + 1 == total => {
                (0, Some(total))
            }
            _ => {
                return Head::Failed(
                    "206 with a Content-Range that does not match the request".into(),
                )
            }
        }
    } else {
        (known.written, content_length)
    };
    if let (Some(first), Some(t)) = (known.first_total, total) {
        if first != t {
            return Head::Failed(format!(
                "file is {t} bytes here but {first} on the first mirror"
            ));
        }
    }
    if total == Some(0) && known.never_empty {
        // Refused before clients see a complete empty body.
        return Head::Failed("declares 0 bytes for a file that cannot be empty".into());
    }
    match (known.expected_size, total) {
        (Some(exp), Some(t)) if exp != t => {
            return Head::Failed(format!("file is {t} bytes but the repo db says {exp}"))
        }
        (None, Some(t)) if t > known.max_unknown_size => {
            return Head::Refused(format!(
                "file is {t} bytes, more than max_unknown_size ({} bytes) allows for a file \
                 no repo db lists",
                known.max_unknown_size
            ))
        }
        _ => {}
    }
    Head::Body(BodyPlan {
        skip,
        total,
        last_modified,
    })
}

/// The most body bytes a download may have, and what to say past it: the db's size, else the
/// declared length, else `max_unknown_size`.
pub fn bound(
    expected_size: Option<u64>,
    total: Option<u64>,
    max_unknown_size: u64,
) -> (u64, String) {
    match (expected_size, total) {
        (Some(size), _) => (
            size,
            format!("body longer than the {size} bytes the repo db says"),
        ),
        (None, Some(t)) => (t, format!("body longer than its declared {t} bytes")),
        (None, None) => (
            max_unknown_size,
            format!(
                "body longer than max_unknown_size ({max_unknown_size} bytes) for a file no \
                 repo db lists"
            ),
        ),
    }
}

/// Parse `Content-Range: bytes START-END/TOTAL`.
pub fn parse_content_range(v: &str) -> Option<(u64, u64, u64)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let (start, end, total) = (
        start.trim().parse().ok()?,
        end.trim().parse().ok()?,
        total.trim().parse().ok()?,
    );
    (start <= end && end < total).then_some((start, end, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Known {
        Known {
            written: 0,
            conditional: false,
            first_total: None,
            expected_size: None,
            kind: FileKind::Immutable,
            never_empty: true,
            max_unknown_size: 1000,
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_static(k),
                header::HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    fn ok(pairs: &[(&'static str, &str)], k: &Known) -> Head {
        check(StatusCode::OK, Version::HTTP_11, &headers(pairs), k)
    }

    #[test]
    fn content_range_parsing() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, 199, 200))
        );
        assert_eq!(parse_content_range("bytes 0-0/1"), Some((0, 0, 1)));
        assert_eq!(parse_content_range("bytes 100-199/150"), None);
        assert_eq!(parse_content_range("bytes */200"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
        assert_eq!(parse_content_range("bytes 5-4/10"), None);
    }

    #[test]
    fn close_delimited_http11_bodies_are_a_mirror_failure() {
        let k = known();
        assert!(matches!(ok(&[], &k), Head::Failed(why) if why.contains("closing the connection")));
        assert!(matches!(
            ok(&[("transfer-encoding", "identity")], &k),
            Head::Failed(_)
        ));
        // Declared lengths and chunked bodies are fine; so is HTTP/1.0's read-to-EOF.
        let plan = |total| {
            Head::Body(BodyPlan {
                skip: 0,
                total,
                last_modified: None,
            })
        };
        assert_eq!(ok(&[("content-length", "10")], &k), plan(Some(10)));
        assert!(matches!(
            ok(&[("content-length", "0")], &k),
            Head::Failed(_)
        ));
        let may_be_empty = Known {
            never_empty: false,
            ..known()
        };
        assert_eq!(ok(&[("content-length", "0")], &may_be_empty), plan(Some(0)));
        assert_eq!(
            ok(&[("transfer-encoding", "gzip, chunked")], &k),
            plan(None)
        );
        assert_eq!(
            check(StatusCode::OK, Version::HTTP_10, &HeaderMap::new(), &k),
            plan(None)
        );
        assert_eq!(
            check(StatusCode::OK, Version::HTTP_2, &HeaderMap::new(), &k),
            plan(None)
        );
    }

    #[test]
    fn lengths_must_agree_and_stay_bounded() {
        let mut k = known();
        k.expected_size = Some(10);
        assert!(matches!(
            ok(&[("content-length", "11")], &k),
            Head::Failed(_)
        ));
        // The db knows it: max_unknown_size does not apply.
        k.expected_size = Some(5000);
        assert!(matches!(
            ok(&[("content-length", "5000")], &k),
            Head::Body(_)
        ));
        k.expected_size = None;
        assert!(matches!(
            ok(&[("content-length", "1001")], &k),
            Head::Refused(why) if why.contains("max_unknown_size")
        ));
        assert!(matches!(
            ok(&[("content-length", "1000")], &k),
            Head::Body(_)
        ));
        k.first_total = Some(900);
        assert!(matches!(
            ok(&[("content-length", "901")], &k),
            Head::Failed(_)
        ));
    }

    #[test]
    fn bodies_are_bounded_by_the_db_then_the_declared_length_then_the_setting() {
        assert_eq!(bound(Some(10), Some(20), 1000).0, 10);
        assert_eq!(bound(None, Some(20), 1000).0, 20);
        let (b, why) = bound(None, None, 1000);
        assert_eq!(b, 1000);
        assert!(why.contains("max_unknown_size"), "{why}");
    }

    #[test]
    fn statuses_ranges_and_revalidation() {
        let mut k = known();
        let h = HeaderMap::new();
        let v = Version::HTTP_11;
        assert_eq!(check(StatusCode::NOT_FOUND, v, &h, &k), Head::NotFound);
        assert_eq!(check(StatusCode::GONE, v, &h, &k), Head::NotFound);
        assert!(
            matches!(check(StatusCode::FOUND, v, &h, &k), Head::Failed(why) if why == "HTTP 302")
        );
        assert!(matches!(
            ok(
                &[
                    ("content-type", "text/html; charset=utf-8"),
                    ("content-length", "5")
                ],
                &k
            ),
            Head::Failed(_)
        ));
        k.written = 100;
        let partial = |range: &str| {
            check(
                StatusCode::PARTIAL_CONTENT,
                v,
                &headers(&[("content-range", range), ("content-length", "100")]),
                &k,
            )
        };
        assert_eq!(
            partial("bytes 100-199/200"),
            Head::Body(BodyPlan {
                skip: 0,
                total: Some(200),
                last_modified: None
            })
        );
        assert!(matches!(partial("bytes 0-199/200"), Head::Failed(_)));
        // A 200 to a Range request: the first 100 bytes are compared, not appended.
        assert!(matches!(
            ok(&[("content-length", "200")], &k),
            Head::Body(BodyPlan { skip: 100, .. })
        ));
        let mut k = known();
        k.kind = FileKind::Mutable;
        // A 304 is only taken as an answer to a conditional request.
        assert!(matches!(
            check(StatusCode::NOT_MODIFIED, v, &h, &k),
            Head::Failed(why) if why == "HTTP 304"
        ));
        k.conditional = true;
        assert_eq!(
            check(StatusCode::NOT_MODIFIED, v, &h, &k),
            Head::NotModified
        );
        // A 200 dated before the cached copy is still the mirror's version (issue 16 item 6).
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let lm = httpdate::fmt_http_date(t);
        assert_eq!(
            ok(&[("last-modified", &lm), ("content-length", "5")], &k),
            Head::Body(BodyPlan {
                skip: 0,
                total: Some(5),
                last_modified: Some(t)
            })
        );
    }
}
