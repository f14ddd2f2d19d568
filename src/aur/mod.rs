//! The AUR build server (placeholder; filled in below).
pub mod approval;
pub mod config;
