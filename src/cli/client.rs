//! The admin API client of the client commands (`pkgstash status | refresh | cleanup | evict
//! | mirrors | repo … | aur …`): one request to `/_pkgstash/api/<path>` of the running server
//! (address: the config's first `listen` entry through [`crate::config::loopback_url`];
//! token: `PKGSTASH_TOKEN`), its answer as text or parsed JSON, its failures as
//! [`ClientError`]s that say what to fix (401, 403, 429, an unreachable server and a local
//! file that cannot be uploaded apart).

use std::path::PathBuf;
use std::time::Duration;

use actix_web::http::Method;
use serde::de::DeserializeOwned;

use crate::config::Config;

/// Why a client command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("PKGSTASH_TOKEN is not set: client commands need the admin token (see /etc/pkgstash/pkgstash.env)")]
    NoToken,
    /// The request could not be sent (`why`: awc's error as text — awc's error type is not
    /// `Send`, so it cannot travel in this error).
    #[error("cannot reach pkgstash at {url}: {why} (is `pkgstash serve` running?)")]
    Unreachable { url: String, why: String },
    /// The server answered, but its answer could not be read to the end.
    #[error("{url}: cannot read the answer: {cause}")]
    Answer {
        url: String,
        cause: awc::error::PayloadError,
    },
    /// The local file to upload cannot be read.
    #[error("cannot read {}: {cause}", .path.display())]
    ReadUpload {
        path: PathBuf,
        cause: std::io::Error,
    },
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
    /// Exit code: 2 for a local problem (no token, a file that cannot be read), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::NoToken | ClientError::ReadUpload { .. } => 2,
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

    /// Send `method` to `/_pkgstash/api/<path>` (with the file `body`, streamed, and its extra
    /// headers, when given) and return the body text.
    pub fn call_with(
        &self,
        method: Method,
        path: &str,
        timeout: Duration,
        body: Option<Upload>,
    ) -> Result<String, ClientError> {
        let url = format!("{}/_pkgstash/api/{path}", self.base);
        // The local file first: a file that cannot be read is no network failure.
        let upload = match body {
            None => None,
            Some(up) => {
                let read_error = |cause| ClientError::ReadUpload {
                    path: up.file.clone(),
                    cause,
                };
                let file = std::fs::File::open(&up.file).map_err(read_error)?;
                let len = file.metadata().map_err(read_error)?.len();
                Some((file, len, up.headers))
            }
        };
        let token = self.token.clone();
        let url2 = url.clone();
        let (status, body) = actix_web::rt::System::new().block_on(async move {
            let client = awc::Client::builder()
                .timeout(timeout)
                .disable_redirects()
                .finish();
            let mut req = client.request(method, &url2).bearer_auth(&token);
            let sent = match upload {
                None => req.send().await,
                Some((file, len, headers)) => {
                    for (k, v) in &headers {
                        req = req.insert_header((k.as_str(), v.as_str()));
                    }
                    req.send_body(awc::body::SizedStream::new(
                        len,
                        crate::http::filebody::file_range(file, 0, len),
                    ))
                    .await
                }
            };
            let mut resp = sent.map_err(|e| ClientError::Unreachable {
                url: url2.clone(),
                why: e.to_string(),
            })?;
            let body = resp
                .body()
                .limit(64 << 20)
                .await
                .map_err(|cause| ClientError::Answer {
                    url: url2.clone(),
                    cause,
                })?;
            Ok::<_, ClientError>((resp.status().as_u16(), body))
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

    /// [`AdminClient::call_with`] without a body, and parse the JSON answer.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A local file that cannot be read is said to be that (exit 2), not "cannot reach".
    #[test]
    fn an_unreadable_upload_is_a_local_error_not_an_unreachable_server() {
        let client = AdminClient {
            // Nothing listens on the discard port: were it sent, the request would fail.
            base: "http://127.0.0.1:9".into(),
            token: "t".into(),
        };
        let missing = std::path::PathBuf::from("/nonexistent/foo-1-1-any.pkg.tar.zst");
        let upload = Upload {
            file: missing.clone(),
            headers: Vec::new(),
        };
        let e = client
            .call_with(
                Method::PUT,
                "repos/custom/packages",
                Duration::from_secs(5),
                Some(upload),
            )
            .expect_err("no such file");
        match &e {
            ClientError::ReadUpload { path, cause } => {
                assert_eq!(path, &missing);
                assert_eq!(cause.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string().starts_with("cannot read /nonexistent/"),
            "{e}"
        );

        let e = client
            .call_with(Method::GET, "status", Duration::from_secs(5), None)
            .expect_err("nothing listens");
        assert!(matches!(e, ClientError::Unreachable { .. }), "{e:?}");
        assert_eq!(e.exit_code(), 1);
    }
}
