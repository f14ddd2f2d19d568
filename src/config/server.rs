//! The top-level keys: where the server listens (`listen`), where it caches (`cache_dir`),
//! its timeouts (`db_max_age`, `upstream_timeout`, `send_timeout`), its limits (`min_rate`,
//! `max_unknown_size`) and `fast_path`; and the one rule for reaching a listen address from
//! this machine ([`loopback_url`]: a wildcard host becomes loopback).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::raw::{RawConfig, RawListen};
use super::units::{parse_duration, parse_positive_duration, parse_rate, parse_size};
use super::{invalid, ConfigError};

/// Default of `max_unknown_size`: above the largest Arch package (a few GiB), far below a
/// filesystem an endless body would fill.
pub const DEFAULT_MAX_UNKNOWN_SIZE: u64 = 8 << 30;

/// The validated top-level keys (fields of [`super::Config`] of the same names).
pub(super) struct ServerKeys {
    pub listen: Vec<String>,
    pub cache_dir: PathBuf,
    pub db_max_age: Duration,
    pub upstream_timeout: Duration,
    pub min_rate: Option<u64>,
    pub max_unknown_size: u64,
    pub send_timeout: Duration,
    pub fast_path: bool,
}

/// Validate the top-level keys, in the order they are documented.
pub(super) fn validate(raw: &RawConfig) -> Result<ServerKeys, ConfigError> {
    let listen = listen(raw.listen.as_ref())?;
    let cache_dir = raw
        .cache_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/var/cache/pkgstash"));
    if cache_dir.as_os_str().is_empty() {
        return Err(invalid("cache_dir", "must not be empty"));
    }
    let db_max_age = match &raw.db_max_age {
        Some(v) => parse_duration("db_max_age", v)?,
        None => Duration::from_secs(30),
    };
    let upstream_timeout = parse_positive_duration(
        "upstream_timeout",
        raw.upstream_timeout.as_deref(),
        Duration::from_secs(15),
    )?;
    let min_rate = match &raw.min_rate {
        Some(v) => Some(parse_rate("min_rate", v)?).filter(|r| *r > 0),
        None => None,
    };
    let max_unknown_size = match &raw.max_unknown_size {
        Some(v) => parse_size("max_unknown_size", v)?,
        None => DEFAULT_MAX_UNKNOWN_SIZE,
    };
    if max_unknown_size == 0 {
        return Err(invalid("max_unknown_size", "must be more than 0"));
    }
    let send_timeout = parse_positive_duration(
        "send_timeout",
        raw.send_timeout.as_deref(),
        Duration::from_secs(60),
    )?;
    Ok(ServerKeys {
        listen,
        cache_dir,
        db_max_age,
        upstream_timeout,
        min_rate,
        max_unknown_size,
        send_timeout,
        fast_path: raw.fast_path.unwrap_or(true),
    })
}

/// `listen`: one `host:port` or a list of them (default `0.0.0.0:7878`), at least one.
fn listen(raw: Option<&RawListen>) -> Result<Vec<String>, ConfigError> {
    let listen = match raw {
        None => vec!["0.0.0.0:7878".to_string()],
        Some(RawListen::One(s)) => vec![s.clone()],
        Some(RawListen::Many(v)) => v.clone(),
    };
    if listen.is_empty() {
        return Err(invalid("listen", "needs at least one host:port"));
    }
    for addr in &listen {
        let ok = addr
            .rsplit_once(':')
            .map(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
            .unwrap_or(false);
        if !ok {
            return Err(invalid("listen", format!("`{addr}` is not host:port")));
        }
    }
    Ok(listen)
}

/// `http://HOST:PORT` to reach `addr` — a `listen` entry or a bound socket address, written
/// `host:port` — from this machine: a wildcard host (`0.0.0.0`, `[::]`, any unspecified IP,
/// or an empty host) becomes loopback of its family (`127.0.0.1`, `[::1]`); any other host is
/// kept as written. The one rule for client commands (the first `listen` entry) and for local
/// helpers of the running server (the AUR builder's pacman, from the bound address).
pub fn loopback_url(addr: &str) -> String {
    let (host, port) = addr.rsplit_once(':').unwrap_or(("127.0.0.1", "7878"));
    let ip = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse::<IpAddr>();
    let host = match ip {
        _ if host.is_empty() => "127.0.0.1",
        Ok(IpAddr::V4(ip)) if ip.is_unspecified() => "127.0.0.1",
        Ok(IpAddr::V6(ip)) if ip.is_unspecified() => "[::1]",
        _ => host,
    };
    format!("http://{host}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::{err_text, load, MIN};

    #[test]
    fn admin_url_uses_loopback_for_wildcards() {
        let c = load(&format!("listen = \"0.0.0.0:7878\"\n{MIN}"), &[]).expect("valid");
        assert_eq!(c.admin_base_url(), "http://127.0.0.1:7878");
    }

    /// Listen entries as written and bound socket addresses (`SocketAddr`'s `Display`) follow
    /// the same rule.
    #[test]
    fn wildcards_become_loopback() {
        let bound =
            |s: &str| loopback_url(&s.parse::<std::net::SocketAddr>().expect("addr").to_string());
        assert_eq!(bound("0.0.0.0:7878"), "http://127.0.0.1:7878");
        assert_eq!(bound("[::]:7878"), "http://[::1]:7878");
        assert_eq!(bound("192.0.2.7:80"), "http://192.0.2.7:80");
        assert_eq!(bound("[2001:db8::1]:80"), "http://[2001:db8::1]:80");
        assert_eq!(loopback_url("0.0.0.0:7878"), "http://127.0.0.1:7878");
        assert_eq!(loopback_url("[::]:7879"), "http://[::1]:7879");
        assert_eq!(loopback_url("[0:0::0]:7879"), "http://[::1]:7879");
        assert_eq!(loopback_url("localhost:8080"), "http://localhost:8080");
        assert_eq!(loopback_url("10.1.2.3:7878"), "http://10.1.2.3:7878");
    }

    #[test]
    fn max_unknown_size_is_a_size() {
        let c = load(&format!("max_unknown_size = \"512MiB\"\n{MIN}"), &[]).expect("valid");
        assert_eq!(c.max_unknown_size, 512 << 20);
        assert!(
            c.to_string().contains("max_unknown_size = \"512.0 MiB\""),
            "{c}"
        );
        assert!(
            err_text(&format!("max_unknown_size = \"huge\"\n{MIN}")).contains("max_unknown_size")
        );
        assert!(err_text(&format!("max_unknown_size = \"0\"\n{MIN}")).contains("max_unknown_size"));
    }
}
