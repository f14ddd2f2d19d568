//! Background and on-demand jobs over the cache: db refresh and prefetch ([`refresh`]),
//! retention ([`cleanup`]), verification against the dbs ([`verify`]).

pub mod cleanup;
pub mod refresh;
pub mod verify;
