//! Integration tests: one binary, one module per area. They start the real
//! `pkgstash` binary and real upstream servers on 127.0.0.1.
mod admin;
mod aur;
mod aur_install;
mod cli;
mod failover;
mod fixture;
mod framing;
mod localrepo;
mod makepkg;
mod nginx;
mod package_contents;
mod packaging;
mod pacman;
mod pacman7;
mod pkgfiles;
mod proxy;
mod redirect;
mod refresh;
mod release;
mod sandbox;
mod storage;
mod support;
mod systemd;
mod trixie;
mod upstream;
