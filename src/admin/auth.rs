//! Admin authentication: `Authorization: Bearer <token>` checked in constant time against
//! `PKGSTASH_TOKEN`, and a per-client-IP limit on failed attempts (so the token cannot be
//! guessed at network speed). The client IP is [`crate::http::client_addr`]'s: behind a
//! trusted load balancer, the address it forwards; anyone else's `X-Forwarded-For` is
//! ignored, so it cannot move a client out of its own count. The token itself is never
//! logged or echoed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use parking_lot::Mutex;

use crate::config::Token;
use crate::http::error::ApiError;

/// Failed attempts allowed per client IP within [`WINDOW`].
pub const MAX_FAILURES: u32 = 20;
/// The window failed attempts are counted in; a blocked client waits for it to pass.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Client IPs remembered at most (oldest windows are dropped first when full).
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

/// Checks admin requests.
#[derive(Debug)]
pub struct AdminAuth {
    token: Option<Token>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

impl AdminAuth {
    pub fn new(token: Option<Token>) -> AdminAuth {
        AdminAuth {
            token,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Admit `req`, or say why not: 403 when no token is configured, 429 while the client is
    /// blocked for too many failures, 401 for a missing or wrong token.
    pub fn check(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let Some(token) = &self.token else {
            return Err(ApiError::AdminDisabled);
        };
        let ip = crate::http::client_addr::of_request(req);
        let now = Instant::now();
        if let Some(ip) = ip {
            if self.blocked(ip, now) {
                return Err(ApiError::TooManyRequests);
            }
        }
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match presented {
            Some(p) if token.matches(p) => Ok(()),
            _ => {
                if let Some(ip) = ip {
                    self.record_failure(ip, now);
                }
                log::warn!(
                    "admin: refused {} {} from {}: {} token",
                    req.method(),
                    req.path(),
                    ip.map(|i| i.to_string()).unwrap_or_else(|| "?".into()),
                    if presented.is_some() {
                        "wrong"
                    } else {
                        "missing"
                    }
                );
                Err(ApiError::Unauthorized)
            }
        }
    }

    /// Client addresses blocked now.
    pub fn blocked_clients(&self) -> usize {
        let now = Instant::now();
        self.failures
            .lock()
            .values()
            .filter(|f| now.duration_since(f.since) < WINDOW && f.count >= MAX_FAILURES)
            .count()
    }

    fn blocked(&self, ip: IpAddr, now: Instant) -> bool {
        let map = self.failures.lock();
        map.get(&ip)
            .is_some_and(|f| now.duration_since(f.since) < WINDOW && f.count >= MAX_FAILURES)
    }

    fn record_failure(&self, ip: IpAddr, now: Instant) {
        let mut map = self.failures.lock();
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            map.retain(|_, f| now.duration_since(f.since) < WINDOW);
            if map.len() >= MAX_TRACKED {
                if let Some(oldest) = map.iter().min_by_key(|(_, f)| f.since).map(|(k, _)| *k) {
                    map.remove(&oldest);
                }
            }
        }
        let f = map.entry(ip).or_insert(Failures {
            count: 0,
            since: now,
        });
        if now.duration_since(f.since) >= WINDOW {
            *f = Failures {
                count: 0,
                since: now,
            };
        }
        f.count += 1;
    }
}

/// Admit `req` with the server's [`AdminAuth`], which the server registers as app data
/// (`web::Data<AdminAuth>`); without one, nothing is admitted (403).
pub fn require(req: &HttpRequest) -> Result<(), ApiError> {
    match req.app_data::<web::Data<AdminAuth>>() {
        Some(auth) => auth.check(req),
        None => Err(ApiError::AdminDisabled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn req(auth: Option<&str>) -> HttpRequest {
        let mut r = TestRequest::default().peer_addr("10.0.0.7:4000".parse().expect("addr"));
        if let Some(a) = auth {
            r = r.insert_header((header::AUTHORIZATION, a));
        }
        r.to_http_request()
    }

    fn token(s: &str) -> Option<Token> {
        Some(Token::new(s.to_string()))
    }

    #[test]
    fn no_token_configured_is_forbidden() {
        let a = AdminAuth::new(None);
        assert!(matches!(
            a.check(&req(Some("Bearer x"))),
            Err(ApiError::AdminDisabled)
        ));
    }

    #[test]
    fn right_wrong_missing() {
        let a = AdminAuth::new(token("s3cret"));
        assert!(a.check(&req(Some("Bearer s3cret"))).is_ok());
        assert!(matches!(
            a.check(&req(Some("Bearer nope"))),
            Err(ApiError::Unauthorized)
        ));
        assert!(matches!(a.check(&req(None)), Err(ApiError::Unauthorized)));
        assert!(matches!(
            a.check(&req(Some("Basic s3cret"))),
            Err(ApiError::Unauthorized)
        ));
    }

    #[test]
    fn too_many_failures_block_even_the_right_token() {
        let a = AdminAuth::new(token("s3cret"));
        for _ in 0..MAX_FAILURES {
            assert!(matches!(
                a.check(&req(Some("Bearer guess"))),
                Err(ApiError::Unauthorized)
            ));
        }
        assert!(matches!(
            a.check(&req(Some("Bearer s3cret"))),
            Err(ApiError::TooManyRequests)
        ));
    }
}
