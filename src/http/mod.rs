//! The mirror's HTTP face: every connection's front end ([`conn`]: request framing, the
//! sendfile fast path, the hand-off to actix), the actix handler ([`mirror`]) behind the
//! RFC 9112 rules actix-http leaves out ([`request_rules`]), the miss logic both share
//! ([`miss`]), answers from a download in flight ([`in_flight`]), conditional and range
//! requests ([`ranges`], [`file_response`]), bodies of cached files ([`filebody`]), the errors
//! answered to clients and how they count ([`error`]), the access log ([`access_log`]), who
//! the client is behind a load balancer ([`client_addr`]) and what a draining node answers
//! ([`drain`]).

pub(crate) mod access_log;
pub(crate) mod client_addr;
pub(crate) mod conn;
pub(crate) mod drain;
pub(crate) mod error;
pub(crate) mod file_response;
pub(crate) mod filebody;
pub(crate) mod in_flight;
pub(crate) mod mirror;
pub(crate) mod miss;
pub(crate) mod ranges;
pub(crate) mod request_rules;
