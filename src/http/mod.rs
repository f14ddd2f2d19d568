//! The mirror's HTTP face: every connection's front end ([`conn`]: request framing, the
//! sendfile fast path, the hand-off to actix), the actix handler ([`mirror`]) behind the
//! RFC 9112 rules actix-http leaves out ([`request_rules`]), the miss logic both share
//! ([`miss`]), answers from a download in flight ([`in_flight`]), conditional and range
//! requests ([`ranges`], [`file_response`]), bodies of cached files ([`filebody`]), the errors
//! answered to clients and how they count ([`error`]) and the access log ([`access_log`]).

pub mod access_log;
pub mod conn;
pub mod error;
pub mod file_response;
pub mod filebody;
pub mod in_flight;
pub mod mirror;
pub mod miss;
pub mod ranges;
pub mod request_rules;
