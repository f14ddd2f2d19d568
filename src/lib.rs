//! pkgstash: a sparse caching pacman mirror.
//!
//! # Layout
//! - [`config`]: raw TOML/env config → validated [`config::Config`].
//! - [`path`]: request path → [`path::RepoPath`]; the only way to name a cached file.
//! - [`server`]: the actix `App`, shared state, listeners, graceful shutdown.
//! - [`mirror`]: the GET/HEAD handler: hit from disk, miss via the in-flight registry.
//! - [`mirrorlist`]: pacman mirrorlist files → mirror base URLs.
//! - [`mirror_url`]: a mirror base URL: credentials apart, shown only redacted.
//! - [`metrics`]: Prometheus counters and gauges.
//! - [`inflight`]: one download per file; clients tail the growing partial file.
//! - [`tail`]: the body stream a client reads from a growing (or finished) file.
//! - [`upstream`]: the mirror pool: ordering, health, failover, Range resume.
//! - [`fetch`]: the download task: upstream body → partial file → verify → publish; a repo
//!   db and its `.sig` revalidated and published together ([`fetch::pair`]).
//! - [`validators`]: a mirror's `ETag`/`Last-Modified` of a cached file; conditional requests.
//! - [`republish`]: cached packages a newly published db describes differently are removed.
//! - [`conn`]: the front end of every connection: frames requests, bounds the connection,
//!   answers plain package requests via [`fastpath`], hands the rest to actix via [`handoff`].
//! - [`http1`], [`http1_body`]: HTTP/1.1 framing exactly as actix-http applies it.
//! - [`handoff`]: the I/O actix-http gets for one request (or a whole connection).
//! - [`fastpath`]: plain package requests answered with sendfile.
//! - [`file_response`]: responses for files on disk (validators, conditionals, ranges).
//! - [`ranges`]: conditional and range requests (RFC 9110 order, multipart/byteranges).
//! - [`open_files`]: open handles of recently hit files, revalidated by one stat per use.
//! - [`filebody`]: large cached files as response bodies (big reads, one read ahead).
//! - [`store`]: the on-disk cache: final paths, partial dir, atomic publish.
//! - [`cache_index`]: in-memory index of cached files (size, mtime, last served).
//! - [`catalog`]: parsed cached repo dbs: expected size/sha256, current versions.
//! - [`repodb`]: parse pacman repo databases (bounded: untrusted input).
//! - [`repoindex`]: one parsed repo db: lookups by file name and by name + arch.
//! - [`boundedtar`]: limits on what reading an untrusted tar archive may cost.
//! - [`localrepo`]: custom repos published through pkgstash (`[repos.NAME]`).
//! - [`pkgfile`]: read a package archive's `.PKGINFO`, file list and checksums.
//! - [`repogen`]: write repo dbs (`.db`, `.files`) like `repo-add`.
//! - [`refresh`]: scheduled db refresh and prefetch of updated cached packages.
//! - [`cleanup`]: retention policy and cache usage.
//! - [`vercmp`]: pacman's version comparison.
//! - [`verify`]: check cached packages against cached dbs; quarantine mismatches.
//! - [`aur`]: the AUR build server: watch, approve, build, publish to the custom repo.
//! - [`admin`]: `/_pkgstash/` routes: status page, status.json, metrics, admin API.
//! - [`auth`]: admin token check and failed-attempt limiter.
//! - [`status`]: the status snapshot shared by the API, the web page and the CLI.
//! - [`client`]: the CLI's side of the admin API (requests, tables).
//! - [`error`]: typed errors of the HTTP layer.
pub mod admin;
pub mod aur;
pub mod auth;
pub mod boundedtar;
pub mod cache_index;
pub mod catalog;
pub mod cleanup;
pub mod client;
pub mod config;
pub mod conn;
pub mod error;
pub mod fastpath;
pub mod fetch;
pub mod file_response;
pub mod filebody;
pub mod handoff;
pub mod http1;
pub mod http1_body;
pub mod inflight;
pub mod localrepo;
pub mod metrics;
pub mod mirror;
pub mod mirror_url;
pub mod mirrorlist;
pub mod open_files;
pub mod path;
pub mod pkgfile;
pub mod ranges;
pub mod refresh;
pub mod repodb;
pub mod repogen;
pub mod repoindex;
pub mod republish;
pub mod server;
pub mod status;
pub mod store;
pub mod tail;
pub mod upstream;
pub mod validators;
pub mod vercmp;
pub mod verify;
