//! One request to a mirror, following its redirects ourselves (awc's own redirect handling is
//! off: it would keep `Authorization` on every host and follow any scheme).
//!
//! Rules (what pacman's curl does with `--location`, tightened):
//! - at most [`MAX_REDIRECTS`] hops of `301`, `302`, `303`, `307` or `308`; a relative
//!   `Location` is resolved against the URL that answered (RFC 9110 §10.2.2);
//! - only `http:` and `https:` targets (never `file:` or anything else); userinfo and fragment
//!   of a target are dropped;
//! - the mirror's credentials go only to the mirror's own origin (scheme, host, port), or to
//!   the same host upgraded from `http` to `https` — never to another host (like curl since
//!   CVE-2022-27776);
//! - `Range`, or the conditional headers (`If-None-Match`, `If-Modified-Since`), are sent again
//!   on every hop.
//!
//! A redirect only ever starts from a configured mirror's URL: clients never choose a host.

use std::time::Duration;

use awc::http::header::{self, HeaderName};
use awc::http::StatusCode;
use url::Url;

use crate::config::mirror_url::{Credentials, Shown};

/// Most redirects followed for one request.
pub const MAX_REDIRECTS: usize = 5;

/// What to ask.
pub struct Ask<'a> {
    /// Where to start: a configured mirror's URL of the file, or where an earlier attempt's
    /// body came from (when resuming on the same mirror).
    pub url: &'a str,
    /// The mirror's base URL: the origin its credentials belong to.
    pub base: &'a str,
    pub credentials: Option<&'a Credentials>,
    /// `Range: bytes=N-` when above 0.
    pub from: u64,
    /// The headers of a conditional request (sent only when `from` is 0): the mirror's own
    /// validators of the cached copy ([`crate::cache::validators::Validators::conditional_headers`]).
    pub conditional: &'a [(HeaderName, String)],
    /// Limit for each hop's response head.
    pub timeout: Duration,
}

/// A final (non-redirect) response and where it came from.
pub struct Answer {
    pub response: awc::ClientResponse,
    /// The URL that answered (no userinfo).
    pub url: Url,
    /// At least one redirect was followed.
    pub redirected: bool,
}

/// Send `ask`, following redirects. `Err` is the mirror's failure, described.
pub async fn send(client: &awc::Client, ask: &Ask<'_>) -> Result<Answer, String> {
    let mut url = Url::parse(ask.url).map_err(|e| format!("bad URL: {e}"))?;
    let base = Url::parse(ask.base).map_err(|e| format!("bad URL: {e}"))?;
    for hop in 0..=MAX_REDIRECTS {
        let mut req = client.get(url.as_str());
        if ask.from > 0 {
            req = req.insert_header((header::RANGE, format!("bytes={}-", ask.from)));
        } else {
            for h in ask.conditional {
                req = req.insert_header(h.clone());
            }
        }
        if let Some(c) = ask
            .credentials
            .filter(|_| may_send_credentials(&base, &url))
        {
            req = req.basic_auth(&c.user, c.password.as_deref().unwrap_or(""));
        }
        log::debug!("GET {} (from byte {})", Shown(url.clone()), ask.from);
        let response = match tokio::time::timeout(ask.timeout, req.send()).await {
            Err(_) => {
                return Err(format!(
                    "no response within {}",
                    humantime::format_duration(ask.timeout)
                ))
            }
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        if !is_followed(status) {
            return Ok(Answer {
                response,
                url,
                redirected: hop > 0,
            });
        }
        if hop == MAX_REDIRECTS {
            return Err(format!("more than {MAX_REDIRECTS} redirects"));
        }
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| format!("HTTP {} without a Location", status.as_u16()))?;
        let next = redirect_target(&url, location)
            .map_err(|why| format!("HTTP {} {why}", status.as_u16()))?;
        log::debug!(
            "{} redirects ({}) to {}",
            Shown(url.clone()),
            status.as_u16(),
            Shown(next.clone())
        );
        url = next;
    }
    Err(format!("more than {MAX_REDIRECTS} redirects"))
}

/// Redirect statuses that are followed (`300`, `304`, `305` are not).
fn is_followed(s: StatusCode) -> bool {
    matches!(
        s,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    )
}

/// Resolve `location` against `current`: an `http(s)` URL without userinfo or fragment.
pub fn redirect_target(current: &Url, location: &str) -> Result<Url, String> {
    let mut next = current
        .join(location.trim())
        .map_err(|e| format!("to an invalid Location: {e}"))?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(format!("to a {}: URL, refused", next.scheme()));
    }
    if next.host_str().is_none_or(str::is_empty) {
        return Err("to a URL without a host".into());
    }
    // Credentials in a Location are never used (nor shown); ours follow their own rule.
    let _ = next.set_username("");
    let _ = next.set_password(None);
    next.set_fragment(None);
    Ok(next)
}

/// May the credentials of the mirror at `base` go to `target`? Same origin, or the same host
/// moved from `http` to `https` on default ports.
pub fn may_send_credentials(base: &Url, target: &Url) -> bool {
    if base.host_str() != target.host_str() {
        return false;
    }
    let same_origin = base.scheme() == target.scheme()
        && base.port_or_known_default() == target.port_or_known_default();
    let upgraded = base.scheme() == "http"
        && target.scheme() == "https"
        && base.port().is_none()
        && target.port().is_none();
    same_origin || upgraded
}

/// What status shows for a mirror that redirected to `url` for `rel` (a path under the
/// mirror's base): the base the file was found under when the target keeps the layout, else
/// the target's origin; without userinfo or query.
pub fn shown_base(url: &Url, rel: &str) -> String {
    let shown = Shown(url.clone()).to_string();
    let suffix = format!("/{rel}");
    match shown.strip_suffix(&suffix) {
        Some(base) if url.query().is_none() && !base.ends_with(':') => base.to_string(),
        _ => url.origin().ascii_serialization(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn targets_resolve_and_only_http_is_followed() {
        let cur = u("http://m.example/arch/core/os/x86_64/a.pkg.tar.zst");
        assert_eq!(
            redirect_target(&cur, "/mirror2/core/a.pkg.tar.zst")
                .expect("ok")
                .as_str(),
            "http://m.example/mirror2/core/a.pkg.tar.zst"
        );
        assert_eq!(
            redirect_target(&cur, "b.pkg.tar.zst").expect("ok").as_str(),
            "http://m.example/arch/core/os/x86_64/b.pkg.tar.zst"
        );
        assert_eq!(
            redirect_target(&cur, "https://u:p@cdn.example/x?sig=1#frag")
                .expect("ok")
                .as_str(),
            "https://cdn.example/x?sig=1"
        );
        for bad in ["file:///etc/passwd", "ftp://h/x", "gopher://h/", "data:,x"] {
            let e = redirect_target(&cur, bad).expect_err(bad);
            assert!(e.contains("refused"), "{bad}: {e}");
        }
    }

    #[test]
    fn shown_base_of_a_redirect_target() {
        let rel = "core/os/x86_64/a-1-1-any.pkg.tar.zst";
        let t = u("https://m2.example/archlinux/core/os/x86_64/a-1-1-any.pkg.tar.zst");
        assert_eq!(shown_base(&t, rel), "https://m2.example/archlinux");
        let cdn = u("https://cdn.example/blob/1234?sig=abc");
        assert_eq!(shown_base(&cdn, rel), "https://cdn.example");
    }

    #[test]
    fn credentials_stay_with_the_mirrors_host() {
        let base = u("http://m.example/arch");
        assert!(may_send_credentials(&base, &u("http://m.example/other/x")));
        assert!(may_send_credentials(&base, &u("http://M.EXAMPLE:80/x")));
        assert!(may_send_credentials(&base, &u("https://m.example/arch/x")));
        assert!(!may_send_credentials(
            &base,
            &u("http://cdn.example/arch/x")
        ));
        assert!(!may_send_credentials(&base, &u("http://m.example:8080/x")));
        assert!(!may_send_credentials(&base, &u("http://m.example.evil/x")));
        let tls = u("https://m.example/arch");
        assert!(!may_send_credentials(&tls, &u("http://m.example/arch/x")));
    }
}
