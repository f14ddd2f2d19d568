//! The mirror's HTTP face: every connection's front end ([`conn`]: request framing, the
//! sendfile fast path, the hand-off to actix), the actix handler ([`mirror`]), conditional
//! and range requests ([`ranges`], [`file_response`]), bodies of cached files
//! ([`filebody`]), the errors answered to clients ([`error`]) and the access log
//! ([`access_log`]).

pub mod access_log;
pub mod conn;
pub mod error;
pub mod file_response;
pub mod filebody;
pub mod mirror;
pub mod ranges;
