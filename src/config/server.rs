//! The top-level keys: where the server listens (`listen`), where it caches (`cache_dir`),
//! its timeouts (`db_max_age`, `upstream_timeout`, `send_timeout`, `shutdown_grace`), its
//! limits (`min_rate`, `max_unknown_size`), `fast_path`, which peers are trusted to say who
//! the client is (`trusted_proxies`); and the one rule for reaching a listen address from
//! this machine ([`loopback_url`]: a wildcard host becomes loopback).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::raw::{RawConfig, RawListen, RawTrustedProxies};
use super::units::{parse_duration, parse_positive_duration, parse_rate, parse_size};
use super::{invalid, ConfigError};

/// Default of `max_unknown_size`: above the largest Arch package (a few GiB), far below a
/// filesystem an endless body would fill.
pub const DEFAULT_MAX_UNKNOWN_SIZE: u64 = 8 << 30;

/// Default of `shutdown_grace`: long enough for a large package on a slow line to finish,
/// short of systemd's `TimeoutStopSec` in the shipped unit (3 min 30 s) and of compose's
/// `stop_grace_period`.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(180);

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
    pub shutdown_grace: Duration,
    pub trusted_proxies: Vec<ipnet::IpNet>,
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
    let shutdown_grace = match &raw.shutdown_grace {
        Some(v) => parse_duration("shutdown_grace", v)?,
        None => DEFAULT_SHUTDOWN_GRACE,
    };
    let trusted_proxies = trusted_proxies(match &raw.trusted_proxies {
        None => &[],
        Some(RawTrustedProxies::One(one)) => std::slice::from_ref(one),
        Some(RawTrustedProxies::Many(many)) => many,
    })?;
    Ok(ServerKeys {
        listen,
        cache_dir,
        db_max_age,
        upstream_timeout,
        min_rate,
        max_unknown_size,
        send_timeout,
        fast_path: raw.fast_path.unwrap_or(true),
        shutdown_grace,
        trusted_proxies,
    })
}

/// `trusted_proxies`: addresses (`10.0.0.5`, `::1`) or CIDR networks (`10.0.0.0/24`,
/// `fd00::/8`) of the load balancers allowed to say who the client is (`X-Forwarded-For`).
/// A plain address is a network of one (`/32`, `/128`).
fn trusted_proxies(raw: &[String]) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    raw.iter()
        .enumerate()
        .map(|(i, s)| {
            let s = s.trim();
            s.parse::<ipnet::IpNet>()
                .map(|n| n.trunc())
                .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    invalid(
                        format!("trusted_proxies[{i}]"),
                        format!("`{s}` is not an IP address or a CIDR network like 10.0.0.0/24"),
                    )
                })
        })
        .collect()
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
    fn shutdown_grace_and_trusted_proxies() {
        let c = load(MIN, &[]).expect("valid");
        assert_eq!(c.shutdown_grace, DEFAULT_SHUTDOWN_GRACE);
        assert!(c.trusted_proxies.is_empty());
        let c = load(
            &format!(
                "shutdown_grace = \"0s\"\ntrusted_proxies = [\"10.0.0.5\", \"192.168.1.9/24\", \"fd00::/8\"]\n{MIN}"
            ),
            &[],
        )
        .expect("valid");
        assert_eq!(c.shutdown_grace, Duration::ZERO);
        let nets: Vec<String> = c.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(nets, ["10.0.0.5/32", "192.168.1.0/24", "fd00::/8"]);
        let shown = c.to_string();
        assert!(shown.contains("shutdown_grace = \"0s\""), "{shown}");
        assert!(
            shown.contains("trusted_proxies = [\"10.0.0.5/32\", \"192.168.1.0/24\", \"fd00::/8\"]"),
            "{shown}"
        );
        let c = load(
            MIN,
            &[("PKGSTASH__TRUSTED_PROXIES", "127.0.0.1,10.1.0.0/16")],
        )
        .expect("env");
        assert_eq!(c.trusted_proxies.len(), 2);
        assert!(err_text(&format!("shutdown_grace = \"soon\"\n{MIN}")).contains("shutdown_grace"));
        let e = err_text(&format!(
            "trusted_proxies = [\"10.0.0.1\", \"lb.example\"]\n{MIN}"
        ));
        assert!(e.contains("trusted_proxies[1]"), "{e}");
        assert!(
            err_text(&format!("trusted_proxies = [\"10.0.0.0/33\"]\n{MIN}"))
                .contains("trusted_proxies[0]")
        );
        let c = load(&format!("trusted_proxies = \"10.0.0.1\"\n{MIN}"), &[]).expect("one");
        assert_eq!(c.trusted_proxies.len(), 1);
        assert!(err_text(&format!("trusted_proxies = 7\n{MIN}")).contains("trusted_proxies"));
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
