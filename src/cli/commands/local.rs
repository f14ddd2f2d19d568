//! The commands that work without the running server: `serve` runs it, `check-config` prints
//! the effective config, `verify` checks the cache directory against the cached repo dbs.

use crate::cli::error::CliError;
use crate::config::Config;

/// `pkgstash serve`: open the cache and the custom repos, bind every `listen` address, run
/// until stopped.
pub(in crate::cli) fn serve(cfg: Config) -> Result<(), CliError> {
    let store = crate::cache::store::Store::open(&cfg.cache_dir)?;
    let repos = crate::custom_repo::CustomRepos::open(&cfg)?;
    let listeners = crate::server::bind(&cfg).map_err(CliError::Bind)?;
    crate::server::raise_file_limit();
    actix_web::rt::System::new()
        .block_on(async move {
            let state = crate::state::AppState::new(cfg, store, repos);
            crate::server::run(state, listeners).await
        })
        .map_err(CliError::Serve)
}

/// `pkgstash check-config`: the effective config as TOML on stdout (secrets redacted).
pub(in crate::cli) fn check_config(cfg: &Config) -> Result<(), CliError> {
    print!("{cfg}");
    Ok(())
}

/// `pkgstash verify [--no-quarantine] [--json]`: check every cached package (size, sha256)
/// and print the report; a mismatch is a failure (exit 1).
pub(in crate::cli) fn verify(
    cfg: &Config,
    no_quarantine: bool,
    json: bool,
) -> Result<(), CliError> {
    if !cfg.cache_dir.is_dir() {
        return Err(CliError::NoCacheDir(cfg.cache_dir.clone()));
    }
    let rows = crate::jobs::verify::verify_cache(&cfg.cache_dir, !no_quarantine);
    let bad = crate::jobs::verify::print_report(&rows, json);
    if bad > 0 {
        return Err(CliError::Mismatch {
            bad,
            quarantined: !no_quarantine,
        });
    }
    Ok(())
}
