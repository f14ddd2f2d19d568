//! What each command does, by group: [`local`] (`serve`, `check-config`, `verify`: work on
//! the config and the cache directory), and the client commands, one admin API request each
//! — [`cache`] (`status`, `mirrors`, `refresh`, `cleanup`, `evict`), [`repo`] (`repo add |
//! remove | list`), [`aur`] (`aur pending | approve | reject | check`). A client command
//! returns an [`Answer`]: the text for humans and the server's JSON, printed with `--json`.

pub(super) mod aur;
pub(super) mod cache;
pub(super) mod local;
pub(super) mod repo;

use std::time::Duration;

use crate::cli::client::AdminClient;
use crate::cli::error::CliError;
use crate::config::Config;

/// Limit of a request answered at once (status, evict, repo and AUR commands).
const QUICK: Duration = Duration::from_secs(30);
/// Limit of a refresh (it prefetches packages) or a cleanup (it may walk a large cache).
const LONG: Duration = Duration::from_secs(6 * 3600);
/// Limit of a package upload.
const UPLOAD: Duration = Duration::from_secs(3600);

/// A client command's answer: the text for humans, and the server's JSON as received.
pub(super) struct Answer {
    text: String,
    raw: String,
}

impl Answer {
    fn new(text: String, raw: String) -> Answer {
        Answer { text, raw }
    }
}

/// Run a client command: connect (the token is needed first), send its request, print the
/// text or, with `--json`, the server's JSON.
pub(super) fn api(
    cfg: &Config,
    json: bool,
    command: impl FnOnce(&AdminClient) -> Result<Answer, CliError>,
) -> Result<(), CliError> {
    let client = AdminClient::from_config(cfg)?;
    let answer = command(&client)?;
    if json {
        println!("{}", answer.raw);
    } else {
        print!("{}", answer.text);
    }
    Ok(())
}

/// `s` as one URL path segment or query value (everything but ASCII alphanumerics escaped).
fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
