//! pkgstash: a sparse caching pacman mirror.
//!
//! # Layout
//! Layers from the top down; a module imports only from layers below it
//! (`docs/architecture.md` tells the whole story).
//! - [`cli`]: the command line: arguments, commands, the admin API client, text tables.
//! - [`server`]: listeners, the per-connection service, background tasks, shutdown.
//! - [`http`], [`admin`]: the faces — the mirror (`GET|HEAD /<upstream>/…`) and `/_pkgstash/`.
//! - [`state`]: the state shared by the faces.
//! - [`jobs`], [`aur`]: refresh, cleanup, verify; the AUR build server.
//! - [`custom_repo`]: custom repos (`[repos.NAME]`) published through pkgstash.
//! - [`upstream`]: mirror pools and the download task.
//! - [`cache`]: the on-disk cache, its index and catalog, downloads in flight.
//! - [`config`]: raw TOML/env config → validated [`config::Config`], one module per section.
//! - [`repo`], [`durable`], [`metrics`]: pacman's formats; the one atomic, durable file write
//!   (temp, fsync, rename, fsync dir) every stored file follows; Prometheus metrics.
// The docs are for contributors (`cargo doc --document-private-items`): a public item's doc
// may link the crate-private items it is built on.
#![allow(rustdoc::private_intra_doc_links)]

pub(crate) mod admin;
pub(crate) mod aur;
pub mod cache;
pub mod cli;
pub mod config;
pub(crate) mod custom_repo;
pub(crate) mod durable;
pub(crate) mod http;
pub mod jobs;
pub(crate) mod metrics;
pub(crate) mod repo;
pub(crate) mod server;
pub(crate) mod state;
pub(crate) mod upstream;
