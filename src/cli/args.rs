//! The command line's shape: the clap structs of `pkgstash [-c FILE] COMMAND …`, as fixed by
//! DESIGN.md (the public interface). Doc comments here are the `--help` texts.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

// No doc comment on `Cli`: clap would take it as the long help.
#[derive(Parser, Debug)]
#[command(name = "pkgstash", version, about = "A sparse caching pacman mirror")]
pub struct Cli {
    /// Config file [default: $PKGSTASH_CONFIG, else /etc/pkgstash/pkgstash.toml]
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the mirror
    Serve,
    /// Parse and validate the config, print the effective config (token redacted)
    CheckConfig,
    /// Show cache usage, traffic, downloads in flight, mirror health (admin API)
    Status(JsonFlag),
    /// Revalidate repo dbs, prefetch updated packages, then clean up (admin API)
    Refresh(JsonFlag),
    /// Apply the retention policy now (admin API)
    Cleanup {
        /// Only show what would be removed
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Drop one cached file, e.g. `archlinux/core/os/x86_64/foo-1.0-1-x86_64.pkg.tar.zst` (admin API)
    Evict {
        /// Cache path: `<upstream>/<path>` (a leading `/` or full URL path is fine)
        path: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Show mirror health (admin API)
    Mirrors(JsonFlag),
    /// Manage a custom repo ([repos.NAME]) (admin API)
    Repo {
        #[command(subcommand)]
        action: RepoAction,
    },
    /// AUR build server: pending approvals, approve, reject, check now (admin API)
    Aur {
        #[command(subcommand)]
        action: AurAction,
    },
    /// Check cached packages against the cached repo dbs (size, sha256); quarantine mismatches.
    /// Works on the cache directory directly; exit 1 if any mismatch.
    Verify {
        /// Report only, move nothing
        #[arg(long)]
        no_quarantine: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Subcommand, Debug)]
pub enum RepoAction {
    /// Upload a package (and its detached signature) into repo NAME
    Add {
        name: String,
        file: PathBuf,
        sig: Option<PathBuf>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Remove package PKG from repo NAME
    Remove {
        name: String,
        pkg: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// List the packages of repo NAME
    List {
        name: String,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Subcommand, Debug)]
pub enum AurAction {
    /// Revisions waiting for approval, with the reasons (and the diff with --diff)
    Pending {
        /// Also print each diff against the last approved revision
        #[arg(long)]
        diff: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Approve a package's pending revision and queue its build (with none pending: build
    /// its failed revision again)
    Approve {
        /// Package name or package base
        name: String,
        /// The revision reviewed (full git commit id): refused if the pending one differs
        #[arg(long, value_name = "SHA")]
        rev: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Reject a package's pending revision (it is not held again; a newer one is)
    Reject {
        /// Package name or package base
        name: String,
        /// The revision reviewed (full git commit id): refused if the pending one differs
        #[arg(long, value_name = "SHA")]
        rev: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Check the AUR for new versions now
    Check(JsonFlag),
}

#[derive(clap::Args, Debug, Clone, Copy)]
pub struct JsonFlag {
    /// Print JSON instead of a table (the server's answer; `verify`'s own report)
    #[arg(long)]
    pub json: bool,
}
