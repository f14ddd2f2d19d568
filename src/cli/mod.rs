//! The command line's side of the admin API.

pub mod client;
