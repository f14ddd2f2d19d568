//! Integration tests: one binary, one module per area. They start the real
//! `pkgstash` binary and real upstream servers on 127.0.0.1.
mod admin;
mod answers;
mod aur;
mod cli;
mod failover;
mod fixture;
mod framing;
mod localrepo;
mod nginx;
mod packaging;
mod pacman;
mod parity;
mod proxy;
mod rawhttp;
mod refresh;
mod sandbox;
mod support;
mod upstream;
