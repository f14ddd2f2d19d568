//! The AUR RPC (v5) client: one `info` query for the tracked packages.
//!
//! `GET <rpc_url>/info?arg[]=a&arg[]=b` answers `{"type":"multiinfo","results":[…]}` (or
//! `{"type":"error","error":"…"}`); every result carries `Name`, `PackageBase` and `Version`.
//! Names are sent in batches so the URL stays short.

use std::time::Duration;

use serde::Deserialize;

/// Names per request (the AUR refuses very long URLs).
const BATCH: usize = 100;
/// Largest answer read.
const MAX_BODY: usize = 16 << 20;

/// One package as the AUR describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AurInfo {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "PackageBase")]
    pub package_base: String,
    /// Full version: `[epoch:]pkgver-pkgrel`.
    #[serde(rename = "Version")]
    pub version: String,
}

#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(rename = "type")]
    kind: String,
    error: Option<String>,
    #[serde(default)]
    results: Vec<AurInfo>,
}

/// Why an RPC query failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("AUR RPC {url}: {why}")]
    Http { url: String, why: String },
    #[error("AUR RPC {url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("AUR RPC answer is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("AUR RPC error: {0}")]
    Rpc(String),
}

/// Parse an `info` answer.
pub fn parse_info(body: &[u8]) -> Result<Vec<AurInfo>, RpcError> {
    let answer: Answer = serde_json::from_slice(body)?;
    if answer.kind == "error" {
        return Err(RpcError::Rpc(
            answer.error.unwrap_or_else(|| "unknown error".into()),
        ));
    }
    Ok(answer.results)
}

/// The `info` URL for `names`.
pub fn info_url(rpc_url: &str, names: &[String]) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_');
    let args: Vec<String> = names
        .iter()
        .map(|n| {
            format!(
                "arg%5B%5D={}",
                percent_encoding::utf8_percent_encode(n, SET)
            )
        })
        .collect();
    format!("{rpc_url}/info?{}", args.join("&"))
}

/// Query the AUR for `names` (must run on an actix runtime: awc is `!Send`).
pub async fn info(
    rpc_url: &str,
    names: &[String],
    timeout: Duration,
) -> Result<Vec<AurInfo>, RpcError> {
    let client = awc::Client::builder().timeout(timeout).finish();
    let mut all = Vec::new();
    for chunk in names.chunks(BATCH) {
        let url = info_url(rpc_url, chunk);
        let http = |why: String| RpcError::Http {
            url: url.clone(),
            why,
        };
        let mut resp = client
            .get(&url)
            .insert_header((
                "User-Agent",
                concat!("pkgstash/", env!("CARGO_PKG_VERSION")),
            ))
            .send()
            .await
            .map_err(|e| http(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(RpcError::Status {
                url: url.clone(),
                status: resp.status().as_u16(),
            });
        }
        let body = resp
            .body()
            .limit(MAX_BODY)
            .await
            .map_err(|e| http(e.to_string()))?;
        all.extend(parse_info(&body)?);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_multiinfo_and_errors() {
        let body = br#"{"resultcount":1,"results":[{"ID":1,"Name":"yay","PackageBase":"yay","Version":"12.3.5-1","OutOfDate":null,"Depends":["git"]}],"type":"multiinfo","version":5}"#;
        let got = parse_info(body).expect("parse");
        assert_eq!(
            got,
            vec![AurInfo {
                name: "yay".into(),
                package_base: "yay".into(),
                version: "12.3.5-1".into()
            }]
        );
        let err =
            parse_info(br#"{"type":"error","error":"Too many package results.","results":[]}"#);
        assert!(matches!(err, Err(RpcError::Rpc(m)) if m.contains("Too many")));
        assert!(parse_info(b"<html>").is_err());
    }

    #[test]
    fn url_encodes_names() {
        assert_eq!(
            info_url("http://a/rpc/v5", &["gtk+3-x".into(), "yay".into()]),
            "http://a/rpc/v5/info?arg%5B%5D=gtk%2B3-x&arg%5B%5D=yay"
        );
    }
}
