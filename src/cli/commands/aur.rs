//! The client commands of the AUR build server: `aur pending [--diff]`, `aur approve NAME
//! [--rev SHA]`, `aur reject NAME`, `aur check`.

use actix_web::http::Method;

use super::{segment, Answer, QUICK};
use crate::admin::aur::Done;
use crate::aur::queue::Pending;
use crate::cli::client::AdminClient;
use crate::cli::error::CliError;
use crate::cli::tables;

/// `pkgstash aur pending [--diff]`.
pub(in crate::cli) fn pending(client: &AdminClient, diff: bool) -> Result<Answer, CliError> {
    let (p, raw): (Vec<Pending>, _) = client.call_json(Method::GET, "aur/pending", QUICK)?;
    Ok(Answer::new(tables::render_aur_pending(&p, diff), raw))
}

/// `pkgstash aur approve NAME [--rev SHA]`.
pub(in crate::cli) fn approve(
    client: &AdminClient,
    name: &str,
    rev: Option<&str>,
) -> Result<Answer, CliError> {
    let mut path = format!("aur/approve/{}", segment(name));
    if let Some(rev) = rev {
        path.push_str(&format!("?rev={}", segment(rev)));
    }
    let (a, raw) = client.call_json(Method::POST, &path, QUICK)?;
    Ok(Answer::new(tables::render_aur_approval(&a), raw))
}

/// `pkgstash aur reject NAME [--rev SHA]`.
pub(in crate::cli) fn reject(
    client: &AdminClient,
    name: &str,
    rev: Option<&str>,
) -> Result<Answer, CliError> {
    let mut path = format!("aur/reject/{}", segment(name));
    if let Some(rev) = rev {
        path.push_str(&format!("?rev={}", segment(rev)));
    }
    let (d, raw): (Done, _) = client.call_json(Method::POST, &path, QUICK)?;
    Ok(Answer::new(tables::render_aur_done(&d), raw))
}

/// `pkgstash aur check`.
pub(in crate::cli) fn check(client: &AdminClient) -> Result<Answer, CliError> {
    let (d, raw): (Done, _) = client.call_json(Method::POST, "aur/check", QUICK)?;
    Ok(Answer::new(tables::render_aur_done(&d), raw))
}
