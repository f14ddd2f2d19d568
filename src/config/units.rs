//! The one parser (and printer) of the config's units, used by every section: durations
//! (humantime: `"30s"`, `"5m"`, `"1h 30m"`, `"0s"`), sizes (bytesize: `"50GiB"`, `"200MB"`,
//! `"1024"` bytes) and rates (a size per second: `"200KiB/s"`, the `/s` optional).
//!
//! A value that does not parse is a [`ConfigError::Invalid`] naming the key. The printers
//! write what `check-config` shows, in a form these parsers read back.

use std::time::Duration;

use super::{invalid, ConfigError};

/// Parse a duration at `key`: `"30s"`, `"5m"`, `"1h 30m"`, `"0s"` (surrounding spaces ignored).
pub(super) fn parse_duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value.trim()).map_err(|e| {
        invalid(
            key,
            format!("`{value}` is not a duration like \"30s\" or \"5m\": {e}"),
        )
    })
}

/// Parse a duration at `key` that must be more than zero; `default` when absent.
pub(super) fn parse_positive_duration(
    key: &str,
    value: Option<&str>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let d = match value {
        Some(v) => parse_duration(key, v)?,
        None => default,
    };
    if d.is_zero() {
        return Err(invalid(key, "must be more than 0s"));
    }
    Ok(d)
}

/// Parse a size at `key`, in bytes: `"50GiB"`, `"200MB"`, `"1024"`.
pub(super) fn parse_size(key: &str, value: &str) -> Result<u64, ConfigError> {
    value
        .trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| invalid(key, format!("`{value}` is not a size like \"50GiB\": {e}")))
}

/// Parse a rate at `key`, in bytes per second: `"200KiB/s"`, `"1MiB/s"` (`/s` optional).
pub(super) fn parse_rate(key: &str, value: &str) -> Result<u64, ConfigError> {
    let v = value.trim();
    let v = v.strip_suffix("/s").unwrap_or(v);
    parse_size(key, v)
}

/// A duration as [`parse_duration`] reads it: `"1h 30m"`.
pub(super) fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// A size in bytes as [`parse_size`] reads it, binary units: `"512.0 MiB"`.
pub(super) fn format_size(bytes: u64) -> String {
    bytesize::ByteSize(bytes).to_string_as(true)
}

/// A rate in bytes per second as [`parse_rate`] reads it: `"200.0 kiB/s"`.
pub(super) fn format_rate(bytes_per_sec: u64) -> String {
    format!("{}/s", format_size(bytes_per_sec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_parse_and_print_back() {
        let d = parse_duration("k", " 1h 30m ").expect("duration");
        assert_eq!(d, Duration::from_secs(5400));
        assert_eq!(parse_duration("k", &format_duration(d)).expect("again"), d);
        assert_eq!(parse_size("k", "512MiB").expect("size"), 512 << 20);
        assert_eq!(
            parse_size("k", &format_size(512 << 20)).expect("again"),
            512 << 20
        );
        assert_eq!(parse_rate("k", "200KiB/s").expect("rate"), 200 << 10);
        assert_eq!(parse_rate("k", "1024").expect("rate"), 1024);
        assert_eq!(format_rate(200 << 10), "200.0 kiB/s");
        assert_eq!(
            parse_rate("k", &format_rate(200 << 10)).expect("again"),
            200 << 10
        );
    }

    #[test]
    fn errors_name_the_key_and_the_value() {
        let e = parse_duration("aur.check_interval", "often").expect_err("bad");
        assert!(
            e.to_string().contains("aur.check_interval") && e.to_string().contains("`often`"),
            "{e}"
        );
        let e = parse_size("cleanup.max_size", "lots").expect_err("bad");
        assert!(e.to_string().contains("cleanup.max_size"), "{e}");
        let e = parse_rate("min_rate", "fast/s").expect_err("bad");
        assert!(e.to_string().contains("min_rate"), "{e}");
    }
}
