//! A mirror's base URL as configured, split into where requests go, the credentials they
//! carry, and the only form in which it is ever shown.
//!
//! `http://user:pass@host/path` (in `mirrors = [...]` or a mirrorlist `Server =` line) is split
//! when the config is loaded: requests go to `http://host/path` and carry the credentials as
//! `Authorization: Basic` (RFC 7617, what pacman's curl does with such a URL); every place that
//! shows a mirror (status, admin API, CLI, `check-config`, logs) prints the redacted
//! `http://user:***@host/path`. The credentials are reachable only through
//! [`MirrorUrl::credentials`], and both `Display` and `Debug` redact, so a mirror cannot be
//! printed with its password by accident.
//!
//! [`Shown`] does the same for any other upstream URL (a redirect target): no userinfo, and no
//! query string (presigned redirect targets carry tokens there).

use std::fmt;

use percent_encoding::percent_decode_str;

/// Why a mirror URL is refused. The message shows the URL redacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{shown}` {reason}")]
pub struct MirrorUrlError {
    shown: String,
    reason: &'static str,
}

/// User name and password for `Authorization: Basic`, percent-decoded. `Debug` redacts.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A validated mirror base URL: `http(s)://host[:port][/path]`, no trailing slash, no query,
/// fragment or `$variables`, credentials held apart.
#[derive(Clone, PartialEq, Eq)]
pub struct MirrorUrl {
    /// The URL requests use: without userinfo.
    base: String,
    credentials: Option<Credentials>,
    /// The only form ever shown: the base with `user:***@` (as the user name was written).
    shown: String,
}

impl MirrorUrl {
    /// Parse and validate a configured mirror base URL.
    pub fn parse(raw: &str) -> Result<MirrorUrl, MirrorUrlError> {
        let raw = raw.trim().trim_end_matches('/');
        let (scheme, rest) = match raw.split_once("://") {
            Some((s, rest))
                if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") =>
            {
                (s.to_ascii_lowercase(), rest)
            }
            _ => {
                return Err(MirrorUrlError {
                    shown: redact(raw),
                    reason: "is not an http:// or https:// URL",
                })
            }
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let base = format!("{scheme}://{hostport}{path}");
        let shown = redact(&format!(
            "{scheme}://{}{hostport}{path}",
            userinfo.map(|u| format!("{u}@")).unwrap_or_default()
        ));
        let err = |reason| {
            Err(MirrorUrlError {
                shown: shown.clone(),
                reason,
            })
        };
        if hostport.is_empty() {
            return err("has no host");
        }
        if base.contains(['?', '#', ' ', '$']) {
            return err("must be a plain base URL (no query, fragment, spaces or $variables)");
        }
        if base.parse::<awc::http::Uri>().is_err() || url::Url::parse(&base).is_err() {
            return err("is not a valid URL");
        }
        let credentials = match userinfo {
            None => None,
            Some(info) => {
                let (user, password) = match info.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (info, None),
                };
                let decode = |s: &str| percent_decode_str(s).decode_utf8().map(|c| c.into_owned());
                let (Ok(user), Ok(password)) = (decode(user), password.map(decode).transpose())
                else {
                    return err("has credentials that are not valid percent-encoded UTF-8");
                };
                if user.is_empty() && password.is_none() {
                    return err("has an empty user name before `@`");
                }
                Some(Credentials { user, password })
            }
        };
        Ok(MirrorUrl {
            base,
            credentials,
            shown,
        })
    }

    /// The base URL requests go to: without credentials, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The URL of `rel` (already percent-encoded, no leading slash) on this mirror.
    pub fn join(&self, rel: &str) -> String {
        format!("{}/{rel}", self.base)
    }

    /// The credentials to send as `Authorization: Basic`, if the URL had any.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }
}

/// `text` (a URL, or what was meant to be one) with the password of its userinfo replaced:
/// `scheme://user:***@rest`, or `***@rest` when there is only a user name (it may be a token).
fn redact(text: &str) -> String {
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), text),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some((info, hostport)) = rest[..end].rsplit_once('@') else {
        return text.to_string();
    };
    let tail = &rest[end..];
    match info.split_once(':') {
        Some((user, _)) => format!("{scheme}{user}:***@{hostport}{tail}"),
        None => format!("{scheme}***@{hostport}{tail}"),
    }
}

/// The redacted form: `http://user:***@host/path`.
impl fmt::Display for MirrorUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for MirrorUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MirrorUrl({self})")
    }
}

/// Any upstream URL as shown in logs and status: without userinfo, query or fragment.
#[derive(Clone, PartialEq, Eq)]
pub struct Shown(pub url::Url);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let u = &self.0;
        write!(f, "{}://{}", u.scheme(), u.host_str().unwrap_or(""))?;
        if let Some(port) = u.port() {
            write!(f, ":{port}")?;
        }
        f.write_str(u.path())?;
        if u.query().is_some() {
            f.write_str("?…")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Shown({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_split_off_and_redacted_everywhere() {
        let m = MirrorUrl::parse("https://alice:s%40cret@mirror.example/arch/").expect("valid");
        assert_eq!(m.base(), "https://mirror.example/arch");
        assert_eq!(
            m.join("core/os/x86_64/core.db"),
            "https://mirror.example/arch/core/os/x86_64/core.db"
        );
        let c = m.credentials().expect("credentials");
        assert_eq!(
            (c.user.as_str(), c.password.as_deref()),
            ("alice", Some("s@cret"))
        );
        assert_eq!(m.to_string(), "https://alice:***@mirror.example/arch");
        let debug = format!("{m:?} {c:?}");
        assert!(!debug.contains("cret"), "{debug}");
        // A lone user name may be a token: hidden too.
        let t = MirrorUrl::parse("http://ghp_token123@m.example").expect("valid");
        assert_eq!(t.to_string(), "http://***@m.example");
        assert_eq!(t.credentials().map(|c| c.password.is_none()), Some(true));
        // A password with an unencoded `@` still splits at the last one.
        let p = MirrorUrl::parse("http://u:p@ss@h:8080").expect("valid");
        assert_eq!(p.base(), "http://h:8080");
        assert_eq!(
            p.credentials().and_then(|c| c.password.clone()),
            Some("p@ss".into())
        );
        // The user name is shown as written; an `@` in the path is fine.
        let enc = MirrorUrl::parse("http://alice%40corp:pw@h/a@b").expect("valid");
        assert_eq!(enc.to_string(), "http://alice%40corp:***@h/a@b");
        assert_eq!(
            enc.credentials().map(|c| c.user.as_str()),
            Some("alice@corp")
        );
        assert_eq!(enc.base(), "http://h/a@b");
        // Without credentials the URL is shown as is.
        let plain = MirrorUrl::parse("http://m.example/archlinux").expect("valid");
        assert_eq!(plain.to_string(), "http://m.example/archlinux");
        assert!(plain.credentials().is_none());
    }

    #[test]
    fn errors_never_show_the_password() {
        for bad in [
            "u:hunter2@h/arch",
            "ftp://u:hunter2@h",
            "http://u:hunter2@",
            "http://u:hunter2@h/a?x=1",
            "http://u:hunter2@h/$repo",
            "http://u:hunter2%ff@h",
        ] {
            let e = MirrorUrl::parse(bad).expect_err(bad).to_string();
            assert!(!e.contains("hunter2") && e.contains("u:***@"), "{bad}: {e}");
        }
        assert!(MirrorUrl::parse("http://@h").is_err());
        assert!(MirrorUrl::parse("http:///x").is_err());
    }

    #[test]
    fn shown_urls_lose_userinfo_and_query() {
        let u = url::Url::parse("https://u:p@cdn.example:8443/a/b.pkg?X-Amz-Signature=abc")
            .expect("url");
        assert_eq!(Shown(u).to_string(), "https://cdn.example:8443/a/b.pkg?…");
    }
}
