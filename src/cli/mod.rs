//! The `pkgstash` command line (DESIGN.md §1): [`args`] is its shape (clap), [`run`] loads
//! the config and dispatches to the command, [`CliError`] says why it failed and with which
//! exit code (0 ok, 1 runtime failure, 2 bad usage or bad config).
//!
//! Inside: `commands/` does each command (local ones, and the client commands: one admin API
//! request through [`client`], the answer rendered by `tables` or printed as JSON).

pub(crate) mod args;
pub(crate) mod client;
mod commands;
mod error;
mod tables;

pub use args::Cli;
pub use error::CliError;

use args::{AurAction, Command, RepoAction};
use commands::{api, aur, cache, local, repo};

use crate::config::Config;

/// Run a parsed command line: load the config (`-c`, else `$PKGSTASH_CONFIG`, else the
/// default path; every command needs it), then the command.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let cfg = Config::load(&Config::resolve_path(cli.config.as_deref()))?;
    match cli.command {
        Command::Serve => local::serve(cfg),
        Command::CheckConfig => local::check_config(&cfg),
        Command::Verify {
            no_quarantine,
            json,
        } => local::verify(&cfg, no_quarantine, json.json),
        Command::Status(j) => api(&cfg, j.json, cache::status),
        Command::Mirrors(j) => api(&cfg, j.json, cache::mirrors),
        Command::Refresh(j) => api(&cfg, j.json, cache::refresh),
        Command::Cleanup { dry_run, json } => api(&cfg, json.json, |c| cache::cleanup(c, dry_run)),
        Command::Evict { path, json } => api(&cfg, json.json, |c| cache::evict(c, &path)),
        Command::Repo { action } => match action {
            RepoAction::Add {
                name,
                file,
                sig,
                json,
            } => api(&cfg, json.json, |c| {
                repo::add(c, &name, &file, sig.as_deref())
            }),
            RepoAction::Remove { name, pkg, json } => {
                api(&cfg, json.json, |c| repo::remove(c, &name, &pkg))
            }
            RepoAction::List { name, json } => api(&cfg, json.json, |c| repo::list(c, &name)),
        },
        Command::Aur { action } => match action {
            AurAction::Pending { diff, json } => api(&cfg, json.json, |c| aur::pending(c, diff)),
            AurAction::Approve { name, rev, json } => {
                api(&cfg, json.json, |c| aur::approve(c, &name, rev.as_deref()))
            }
            AurAction::Reject { name, rev, json } => {
                api(&cfg, json.json, |c| aur::reject(c, &name, rev.as_deref()))
            }
            AurAction::Check(j) => api(&cfg, j.json, aur::check),
        },
    }
}
