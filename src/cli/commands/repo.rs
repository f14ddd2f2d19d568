//! The client commands on a custom repo (`[repos.NAME]`): `repo add NAME FILE [SIG]`,
//! `repo remove NAME PKG`, `repo list NAME`.

use std::path::Path;

use actix_web::http::Method;
use base64::Engine;

use super::{segment, Answer, QUICK, UPLOAD};
use crate::cli::client::{AdminClient, Upload};
use crate::cli::error::CliError;
use crate::cli::tables;
use crate::repo::package::PackageMeta;

/// `pkgstash repo add NAME FILE [SIG]`: upload the package (streamed) and its detached
/// signature (base64 in a header).
pub(in crate::cli) fn add(
    client: &AdminClient,
    name: &str,
    file: &Path,
    sig: Option<&Path>,
) -> Result<Answer, CliError> {
    let filename = file
        .file_name()
        .and_then(|f| f.to_str())
        .ok_or_else(|| CliError::NotAFileName(file.to_path_buf()))?;
    if !file.is_file() {
        return Err(CliError::NotAFile(file.to_path_buf()));
    }
    let mut headers = Vec::new();
    if let Some(sig) = sig {
        let data = std::fs::read(sig).map_err(|cause| CliError::ReadSignature {
            path: sig.to_path_buf(),
            cause,
        })?;
        headers.push((
            crate::admin::routes::SIGNATURE_HEADER.to_string(),
            base64::engine::general_purpose::STANDARD.encode(data),
        ));
    }
    let upload = Upload {
        file: file.to_path_buf(),
        headers,
    };
    let path = format!(
        "repos/{}/packages?filename={}",
        segment(name),
        segment(filename)
    );
    let (a, raw) = client.call_json_with(Method::PUT, &path, UPLOAD, Some(upload))?;
    Ok(Answer::new(tables::render_repo_added(&a), raw))
}

/// `pkgstash repo remove NAME PKG`.
pub(in crate::cli) fn remove(
    client: &AdminClient,
    name: &str,
    pkg: &str,
) -> Result<Answer, CliError> {
    let path = format!("repos/{}/packages/{}", segment(name), segment(pkg));
    let (p, raw): (PackageMeta, _) = client.call_json(Method::DELETE, &path, QUICK)?;
    Ok(Answer::new(tables::render_repo_removed(name, &p), raw))
}

/// `pkgstash repo list NAME`.
pub(in crate::cli) fn list(client: &AdminClient, name: &str) -> Result<Answer, CliError> {
    let path = format!("repos/{}/packages", segment(name));
    let (l, raw): (Vec<PackageMeta>, _) = client.call_json(Method::GET, &path, QUICK)?;
    Ok(Answer::new(tables::render_repo_list(name, &l), raw))
}
