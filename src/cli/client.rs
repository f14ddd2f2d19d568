//! The admin API client of the client commands (`pkgstash status | refresh | cleanup | evict
//! | mirrors | repo … | aur …`): one request to `/_pkgstash/api/<path>` of the running server
//! (address: the config's first `listen` entry through [`crate::config::loopback_url`];
//! token: `PKGSTASH_TOKEN`), its answer as text or parsed JSON, its failures as
//! [`ClientError`]s that say what to fix (401, 403, 429 and an unreachable server apart).

use std::time::Duration;

use actix_web::http::Method;
use serde::de::DeserializeOwned;

use crate::config::Config;

/// Why a client command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("PKGSTASH_TOKEN is not set: client commands need the admin token (see /etc/pkgstash/pkgstash.env)")]
    NoToken,
    #[error("cannot reach pkgstash at {url}: {why} (is `pkgstash serve` running?)")]
    Unreachable { url: String, why: String },
    #[error("the server refused the admin token (401): PKGSTASH_TOKEN differs from the server's")]
    Unauthorized,
    #[error(
        "the server has no admin token configured (403): set PKGSTASH_TOKEN in its environment"
    )]
    Disabled,
    #[error("too many failed attempts from this address (429): wait a minute")]
    RateLimited,
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: unexpected answer: {why}")]
    BadAnswer { url: String, why: String },
}

impl ClientError {
    /// Exit code: 2 for a local configuration problem, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::NoToken => 2,
            _ => 1,
        }
    }
}

/// A connection to the running server's admin API.
pub struct AdminClient {
    base: String,
    token: String,
}

impl AdminClient {
    /// A client of the server `cfg` describes; [`ClientError::NoToken`] without a token.
    pub fn from_config(cfg: &Config) -> Result<AdminClient, ClientError> {
        let token = cfg.token.as_ref().ok_or(ClientError::NoToken)?;
        Ok(AdminClient {
            base: cfg.admin_base_url(),
            token: token.expose().to_string(),
        })
    }

    /// Send `method` to `/_pkgstash/api/<path>` and return the body text.
    pub fn call(
        &self,
        method: Method,
        path: &str,
        timeout: Duration,
    ) -> Result<String, ClientError> {
        self.call_with(method, path, timeout, None)
    }

    /// Like [`AdminClient::call`], sending the file `body` (streamed) and extra headers.
    pub fn call_with(
        &self,
        method: Method,
        path: &str,
        timeout: Duration,
        body: Option<Upload>,
    ) -> Result<String, ClientError> {
        let url = format!("{}/_pkgstash/api/{path}", self.base);
        let token = self.token.clone();
        let url2 = url.clone();
        let result = actix_web::rt::System::new().block_on(async move {
            let client = awc::Client::builder()
                .timeout(timeout)
                .disable_redirects()
                .finish();
            let mut req = client.request(method, &url2).bearer_auth(&token);
            let sent = match body {
                None => req.send().await,
                Some(up) => {
                    for (k, v) in &up.headers {
                        req = req.insert_header((k.as_str(), v.as_str()));
                    }
                    let file = std::fs::File::open(&up.file)
                        .map_err(|e| format!("cannot read {}: {e}", up.file.display()))?;
                    let len = file.metadata().map_err(|e| e.to_string())?.len();
                    req.send_body(awc::body::SizedStream::new(
                        len,
                        crate::http::filebody::file_range(file, 0, len),
                    ))
                    .await
                }
            };
            let mut resp = sent.map_err(|e| e.to_string())?;
            let body = resp
                .body()
                .limit(64 << 20)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((resp.status().as_u16(), body))
        });
        let (status, body) = result.map_err(|why| ClientError::Unreachable {
            url: url.clone(),
            why,
        })?;
        let text = String::from_utf8_lossy(&body).trim().to_string();
        match status {
            200..=299 => Ok(text),
            401 => Err(ClientError::Unauthorized),
            403 => Err(ClientError::Disabled),
            429 => Err(ClientError::RateLimited),
            _ => Err(ClientError::Status {
                url,
                status,
                body: text,
            }),
        }
    }

    /// [`AdminClient::call`] and parse the JSON answer.
    pub fn call_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        timeout: Duration,
    ) -> Result<(T, String), ClientError> {
        self.call_json_with(method, path, timeout, None)
    }

    /// [`AdminClient::call_with`] and parse the JSON answer.
    pub fn call_json_with<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        timeout: Duration,
        body: Option<Upload>,
    ) -> Result<(T, String), ClientError> {
        let text = self.call_with(method, path, timeout, body)?;
        let value = serde_json::from_str(&text).map_err(|e| ClientError::BadAnswer {
            url: format!("{}/_pkgstash/api/{path}", self.base),
            why: e.to_string(),
        })?;
        Ok((value, text))
    }
}

/// A file to send as a request body, with extra headers.
pub struct Upload {
    pub file: std::path::PathBuf,
    pub headers: Vec<(String, String)>,
}
