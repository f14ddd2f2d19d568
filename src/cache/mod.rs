//! The on-disk cache and what is known about it in memory: final paths and atomic publish
//! ([`store`]), mirrors' validators of cached dbs ([`validators`]), the index of cached files
//! ([`index`]), parsed cached repo dbs ([`catalog`]), packages superseded by a re-published db
//! ([`republish`]), downloads in flight ([`inflight`]) and the clients tailing them
//! ([`tail`]), open handles of hot files ([`open_files`]), the health check's writability
//! probe ([`probe`]).

pub mod catalog;
pub mod index;
pub mod inflight;
pub(crate) mod open_files;
pub(crate) mod probe;
pub(crate) mod republish;
pub mod store;
pub(crate) mod tail;
pub(crate) mod validators;
