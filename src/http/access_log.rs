//! The access log: one info line per request under the target [`TARGET`], in one format for
//! both paths of a connection — the actix side's [`actix_logger`] and the front end's
//! [`log_line`] (requests answered with sendfile, cut-short ones included).
//!
//! Format: client ([`crate::http::client_addr`]: the peer, or the address a trusted load
//! balancer forwards), request line, status, body bytes sent, duration, result
//! (hit/miss/joined/…; `-` for non-mirror routes). `RUST_LOG=info,pkgstash::access=warn`
//! silences it.

use std::net::IpAddr;
use std::time::Duration;

use actix_web::middleware::Logger;

/// Log target of the access log.
pub const TARGET: &str = "pkgstash::access";

/// The actix middleware writing the line when a response body ends.
pub fn actix_logger() -> Logger {
    Logger::new("%{client}xi \"%r\" %s %b %Dms %{x-cache-status}o")
        .custom_request_replace("client", crate::http::client_addr::log_field)
        .log_target(TARGET)
}

/// One line in [`actix_logger`]'s format, for a request the front end answered itself.
/// `client` is [`crate::http::client_addr`]'s; `request` the quoted request line (or `-`);
/// `sent` the body bytes that left.
pub fn log_line(
    client: Option<IpAddr>,
    request: &str,
    status: u16,
    sent: u64,
    took: Duration,
    result: &str,
) {
    log::info!(
        target: TARGET,
        "{} {request} {status} {sent} {:.6}ms {result}",
        client
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| "-".into()),
        took.as_secs_f64() * 1000.0,
    );
}
