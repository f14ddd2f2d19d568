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
enum RepoAction {
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
enum AurAction {
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
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Check the AUR for new versions now
    Check(JsonFlag),
}

#[derive(clap::Args, Debug, Clone, Copy)]
struct JsonFlag {
    /// Print the server's JSON answer instead of a table
    #[arg(long)]
    json: bool,
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
        Command::Verify {
            no_quarantine,
            json,
        } => {
            let cfg = load_config(&cli)?;
            if !cfg.cache_dir.is_dir() {
                return Err(usage(anyhow::anyhow!(
                    "cache_dir {} does not exist",
                    cfg.cache_dir.display()
                )));
            }
            let rows = pkgstash::jobs::verify::verify_cache(&cfg.cache_dir, !no_quarantine);
            let bad = pkgstash::jobs::verify::print_report(&rows, json.json);
            if bad > 0 {
                return Err(runtime(anyhow::anyhow!(
                    "{bad} cached package(s) do not match their repo db{}",
                    if no_quarantine {
                        ""
                    } else {
                        " (moved to .quarantine/)"
                    }
                )));
            }
            Ok(())
        }
        ref client_command => {
            let cfg = load_config(&cli)?;
            admin_command(&cfg, client_command)
        }
    }
}

/// Client commands: one admin API request, then a table or the JSON.
fn admin_command(cfg: &Config, command: &Command) -> Result<(), Failure> {
    use actix_web::http::Method;
    use pkgstash::cli::client as c;
    use std::time::Duration;

    let fail = |e: c::ClientError| Failure {
        code: e.exit_code(),
        error: e.into(),
    };
    let client = c::AdminClient::from_config(cfg).map_err(fail)?;
    let quick = Duration::from_secs(30);
    // A refresh prefetches packages; cleanup may walk a large cache.
    let long = Duration::from_secs(6 * 3600);
    let (text, raw, json) = match command {
        Command::Status(j) => {
            let (s, raw) = client
                .call_json(Method::GET, "status", quick)
                .map_err(fail)?;
            (c::render_status(&s), raw, j.json)
        }
        Command::Mirrors(j) => {
            let (m, raw): (Vec<pkgstash::upstream::pool::MirrorStatus>, _) = client
                .call_json(Method::GET, "mirrors", quick)
                .map_err(fail)?;
            (c::render_mirrors(&m), raw, j.json)
        }
        Command::Refresh(j) => {
            let (r, raw) = client
                .call_json(Method::POST, "refresh", long)
                .map_err(fail)?;
            (c::render_refresh(&r), raw, j.json)
        }
        Command::Cleanup { dry_run, json } => {
            let path = format!("cleanup?dry_run={dry_run}");
            let (r, raw) = client.call_json(Method::POST, &path, long).map_err(fail)?;
            (c::render_cleanup(&r), raw, json.json)
        }
        Command::Evict { path, json } => {
            let rel = evict_path(path).map_err(usage)?;
            let (e, raw) = client
                .call_json(Method::DELETE, &format!("cache/{rel}"), quick)
                .map_err(fail)?;
            (c::render_evicted(&e), raw, json.json)
        }
        Command::Repo { action } => repo_command(&client, action).map_err(|e| match e {
            RepoCmdError::Client(c) => fail(c),
            RepoCmdError::Usage(u) => usage(u),
        })?,
        Command::Aur { action } => aur_command(&client, action, quick).map_err(fail)?,
        Command::Serve | Command::CheckConfig | Command::Verify { .. } => {
            return Err(usage(anyhow::anyhow!("not a client command")))
        }
    };
    if json {
        println!("{raw}");
    } else {
        print!("{text}");
    }
    Ok(())
}

enum RepoCmdError {
    Client(pkgstash::cli::client::ClientError),
    Usage(anyhow::Error),
}

/// `repo add | remove | list`: (text, raw JSON, --json?).
fn repo_command(
    client: &pkgstash::cli::client::AdminClient,
    action: &RepoAction,
) -> Result<(String, String, bool), RepoCmdError> {
    use actix_web::http::Method;
    use pkgstash::cli::client as c;
    use std::time::Duration;
    let quick = Duration::from_secs(30);
    let seg = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    match action {
        RepoAction::Add {
            name,
            file,
            sig,
            json,
        } => {
            let filename = file.file_name().and_then(|f| f.to_str()).ok_or_else(|| {
                RepoCmdError::Usage(anyhow::anyhow!("{} is not a file name", file.display()))
            })?;
            if !file.is_file() {
                return Err(RepoCmdError::Usage(anyhow::anyhow!(
                    "{} is not a file",
                    file.display()
                )));
            }
            let mut headers = Vec::new();
            if let Some(sig) = sig {
                use base64::Engine;
                let data = std::fs::read(sig).map_err(|e| {
                    RepoCmdError::Usage(anyhow::anyhow!("cannot read {}: {e}", sig.display()))
                })?;
                headers.push((
                    pkgstash::admin::routes::SIGNATURE_HEADER.to_string(),
                    base64::engine::general_purpose::STANDARD.encode(data),
                ));
            }
            let upload = c::Upload {
                file: file.clone(),
                headers,
            };
            let path = format!("repos/{}/packages?filename={}", seg(name), seg(filename));
            let (a, raw) = client
                .call_json_with(Method::PUT, &path, Duration::from_secs(3600), Some(upload))
                .map_err(RepoCmdError::Client)?;
            Ok((c::render_repo_added(&a), raw, json.json))
        }
        RepoAction::Remove { name, pkg, json } => {
            let path = format!("repos/{}/packages/{}", seg(name), seg(pkg));
            let (p, raw): (pkgstash::repo::package::PackageMeta, _) = client
                .call_json(Method::DELETE, &path, quick)
                .map_err(RepoCmdError::Client)?;
            Ok((
                format!("removed {} {} from {name}\n", p.name, p.version),
                raw,
                json.json,
            ))
        }
        RepoAction::List { name, json } => {
            let path = format!("repos/{}/packages", seg(name));
            let (l, raw): (Vec<pkgstash::repo::package::PackageMeta>, _) = client
                .call_json(Method::GET, &path, quick)
                .map_err(RepoCmdError::Client)?;
            Ok((c::render_repo_list(name, &l), raw, json.json))
        }
    }
}

/// `pkgstash aur …`: (text, raw JSON, --json).
fn aur_command(
    client: &pkgstash::cli::client::AdminClient,
    action: &AurAction,
    timeout: std::time::Duration,
) -> Result<(String, String, bool), pkgstash::cli::client::ClientError> {
    use actix_web::http::Method;
    use pkgstash::cli::client as c;
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    Ok(match action {
        AurAction::Pending { diff, json } => {
            let (p, raw): (Vec<pkgstash::aur::queue::Pending>, _) =
                client.call_json(Method::GET, "aur/pending", timeout)?;
            (c::render_aur_pending(&p, *diff), raw, json.json)
        }
        AurAction::Approve { name, rev, json } => {
            let mut path = format!("aur/approve/{}", enc(name));
            if let Some(rev) = rev {
                path.push_str(&format!("?rev={}", enc(rev)));
            }
            let (a, raw) = client.call_json(Method::POST, &path, timeout)?;
            (c::render_aur_approval(&a), raw, json.json)
        }
        AurAction::Reject { name, json } => {
            let path = format!("aur/reject/{}", enc(name));
            let (d, raw): (pkgstash::admin::aur::Done, _) =
                client.call_json(Method::POST, &path, timeout)?;
            (format!("{}\n", d.message), raw, json.json)
        }
        AurAction::Check(json) => {
            let (d, raw): (pkgstash::admin::aur::Done, _) =
                client.call_json(Method::POST, "aur/check", timeout)?;
            (format!("{}\n", d.message), raw, json.json)
        }
    })
}

/// `upstream/rel` from what a user may paste: a cache path, a URL path, or a full URL.
fn evict_path(input: &str) -> anyhow::Result<String> {
    let s = input.trim();
    let s = match s.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map(|(_, p)| p).unwrap_or(""),
        None => s,
    };
    let s = s.trim_start_matches('/');
    let path = pkgstash::repo::path::RepoPath::parse(&format!("/{s}"))
        .map_err(|e| anyhow::anyhow!("bad path {input:?}: {e}"))?;
    Ok(format!("{}/{}", path.upstream(), path.rel_url_encoded()))
}

fn serve(cfg: Config) -> Result<(), Failure> {
    let store = pkgstash::cache::store::Store::open(&cfg.cache_dir).map_err(usage)?;
    let repos = pkgstash::custom_repo::CustomRepos::open(&cfg).map_err(usage)?;
    let listeners = pkgstash::server::bind(&cfg).map_err(runtime)?;
    pkgstash::server::raise_file_limit();
    actix_web::rt::System::new()
        .block_on(async move {
            let state = pkgstash::state::AppState::new(cfg, store, repos);
            pkgstash::server::run(state, listeners).await
        })
        .map_err(runtime)
}
