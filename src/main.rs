//! The `pkgstash` command line: parse arguments, load config, run the command.
//! Exit codes: 0 ok, 1 runtime failure, 2 bad usage or bad config.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use pkgstash::config::Config;

#[derive(Parser, Debug)]
#[command(name = "pkgstash", version, about = "A sparse caching pacman mirror")]
struct Cli {
    /// Config file [default: $PKGSTASH_CONFIG, else /etc/pkgstash/pkgstash.toml]
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the mirror
    Serve,
    /// Parse and validate the config, print the effective config (token redacted)
    CheckConfig,
}

/// A failure with its exit code.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

fn usage(error: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: 2,
        error: error.into(),
    }
}

fn runtime(error: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: 1,
        error: error.into(),
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("pkgstash: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config, Failure> {
    let path = Config::resolve_path(cli.config.as_deref());
    Config::load(&path).map_err(usage)
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::CheckConfig => {
            let cfg = load_config(&cli)?;
            print!("{cfg}");
            Ok(())
        }
        Command::Serve => {
            let cfg = load_config(&cli)?;
            serve(cfg)
        }
    }
}

fn serve(cfg: Config) -> Result<(), Failure> {
    let store = pkgstash::store::Store::open(&cfg.cache_dir).map_err(usage)?;
    let listeners = pkgstash::server::bind(&cfg).map_err(runtime)?;
    actix_web::rt::System::new()
        .block_on(async move {
            let state = pkgstash::server::AppState::new(cfg, store);
            pkgstash::server::run(state, listeners).await
        })
        .map_err(runtime)
}
