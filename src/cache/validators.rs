//! A mirror's validators of a cached mutable file (RFC 9110 §8.8: `ETag`, `Last-Modified`),
//! exactly as the mirror sent them, and the conditional request built from them (§13.1.2
//! `If-None-Match`, §13.1.3 `If-Modified-Since`).
//!
//! Revalidation asks the mirror about *its* version, never about ours: our file's mtime, or a
//! date compared with "earlier or equal", would let a mirror that restored an older, repaired
//! file answer 304 for ever. So a `304 Not Modified` is only taken when it agrees with what we
//! sent ([`Validators::confirmed_by`]): many servers (Apache, nginx with
//! `if_modified_since before`) answer 304 to any `If-Modified-Since` later than their file.
//!
//! [`crate::cache::store::Store`] keeps them next to the cached file (a sidecar under
//! `.state/validators/`).

use actix_http::header::{self, HeaderMap, HeaderName};
use serde::{Deserialize, Serialize};

/// `ETag` and `Last-Modified` of one response, verbatim.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// A header's value as text, trimmed; `None` when absent, empty or not visible ASCII.
fn text(h: &HeaderMap, name: &HeaderName) -> Option<String> {
    let v = h.get(name)?.to_str().ok()?.trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// The opaque tag of an entity tag, without the weakness indicator (`W/"x"` → `"x"`): the
/// weak comparison of RFC 9110 §8.8.3.2, the one `If-None-Match` uses.
fn opaque(etag: &str) -> &str {
    etag.strip_prefix("W/").unwrap_or(etag)
}

impl Validators {
    /// The validators of a response's headers.
    pub fn from_headers(h: &HeaderMap) -> Validators {
        Validators {
            etag: text(h, &header::ETAG),
            last_modified: text(h, &header::LAST_MODIFIED),
        }
    }

    /// Neither validator: a conditional request is impossible.
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }

    /// The headers of a conditional GET: `If-None-Match` with the ETag, `If-Modified-Since`
    /// with the mirror's own `Last-Modified` string (§13.1.3: a server may then compare
    /// exactly, as nginx does by default).
    pub fn conditional_headers(&self) -> Vec<(HeaderName, String)> {
        let mut out = Vec::new();
        if let Some(tag) = &self.etag {
            out.push((header::IF_NONE_MATCH, tag.clone()));
        }
        if let Some(lm) = &self.last_modified {
            out.push((header::IF_MODIFIED_SINCE, lm.clone()));
        }
        out
    }

    /// Does a `304 Not Modified` with headers `h` confirm that our copy is the mirror's current
    /// version? Every validator the 304 carries must match ours (the ETag by weak comparison,
    /// `Last-Modified` as the same instant); a 304 that carries none is taken at its word when
    /// we sent an ETag, or a date the mirror can only have compared with its own.
    pub fn confirmed_by(&self, h: &HeaderMap) -> bool {
        let same_date = |a: &str, b: &str| {
            a == b
                || matches!(
                    (httpdate::parse_http_date(a), httpdate::parse_http_date(b)),
                    (Ok(x), Ok(y)) if x == y
                )
        };
        let etag_ok = match (text(h, &header::ETAG), &self.etag) {
            (Some(theirs), Some(ours)) => opaque(&theirs) == opaque(ours),
            (Some(_), None) => true,
            (None, _) => true,
        };
        let date_ok = match (text(h, &header::LAST_MODIFIED), &self.last_modified) {
            (Some(theirs), Some(ours)) => same_date(&theirs, ours),
            _ => true,
        };
        etag_ok && date_ok && !self.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_http::header::HeaderValue;

    fn headers(pairs: &[(HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    const LM: &str = "Tue, 14 Nov 2023 22:13:20 GMT";

    #[test]
    fn conditional_headers_are_the_mirrors_own() {
        let v = Validators::from_headers(&headers(&[
            (header::ETAG, "\"6553f100-2a\""),
            (header::LAST_MODIFIED, LM),
        ]));
        assert_eq!(
            v.conditional_headers(),
            vec![
                (header::IF_NONE_MATCH, "\"6553f100-2a\"".to_string()),
                (header::IF_MODIFIED_SINCE, LM.to_string()),
            ]
        );
        assert!(Validators::default().conditional_headers().is_empty());
        assert!(Validators::from_headers(&headers(&[(header::ETAG, "  ")])).is_empty());
    }

    #[test]
    fn a_304_must_agree_with_what_was_sent() {
        let ours = Validators {
            etag: Some("W/\"abc\"".into()),
            last_modified: Some(LM.into()),
        };
        assert!(ours.confirmed_by(&headers(&[])));
        assert!(ours.confirmed_by(&headers(&[(header::ETAG, "\"abc\"")])));
        assert!(ours.confirmed_by(&headers(&[(header::LAST_MODIFIED, LM)])));
        assert!(!ours.confirmed_by(&headers(&[(header::ETAG, "\"xyz\"")])));
        // A repaired, older file: the mirror compared dates with "<=" and says 304.
        let older = "Mon, 13 Nov 2023 22:13:20 GMT";
        let only_date = Validators {
            etag: None,
            last_modified: Some(LM.into()),
        };
        assert!(!only_date.confirmed_by(&headers(&[(header::LAST_MODIFIED, older)])));
        assert!(only_date.confirmed_by(&headers(&[(header::LAST_MODIFIED, LM)])));
        assert!(!Validators::default().confirmed_by(&headers(&[])));
    }
}
