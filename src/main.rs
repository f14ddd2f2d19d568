//! The `pkgstash` binary: parse the command line, run it ([`pkgstash::cli::run`]), turn the
//! outcome into an exit code — 0 ok, 1 runtime failure, 2 bad usage or bad config.

use std::process::ExitCode;

use clap::Parser;

use pkgstash::cli::Cli;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // `--help` and `--version` are "errors" printed on stdout: exit 0.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match pkgstash::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = e.exit_code();
            // `{:#}`: the error and its sources, `: `-separated.
            eprintln!("pkgstash: {:#}", anyhow::Error::new(e));
            ExitCode::from(code)
        }
    }
}
