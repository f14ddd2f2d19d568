//! Who the client is: the TCP peer, or — when the peer is one of the `trusted_proxies` (a load
//! balancer) — the address its `X-Forwarded-For` names. The one rule for the access log (both
//! front-end paths), the admin-auth failure limiter and anything else that tells clients apart.
//!
//! `X-Forwarded-For: client, proxy1, proxy2` lists the hops a request passed, each proxy
//! appending the address it received the request from. Only the entries appended by proxies
//! we trust can be believed, so the client is the **right-most entry that is not itself a
//! trusted proxy** (what nginx's `real_ip_recursive on` and HAProxy's docs call the
//! right-most untrusted address); when every entry is trusted, the left-most. Several
//! `X-Forwarded-For` fields are one list, in order (RFC 9110 §5.3). A peer that is not
//! trusted cannot choose its address: its header is ignored, so nobody forges their way
//! around the limiter or into someone else's log lines. An entry that does not parse as an
//! IP address (`unknown`, an obfuscated node name, RFC 7239 §6) ends the walk: the last
//! trusted hop is the client then.

use std::net::{IpAddr, SocketAddr};

use actix_web::{web, HttpRequest};

use crate::state::AppState;

/// The header load balancers append the client's address to.
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// Is `ip` in one of `trusted` (IPv4-mapped IPv6 peers are compared as IPv4)?
fn is_trusted(ip: IpAddr, trusted: &[ipnet::IpNet]) -> bool {
    let ip = ip.to_canonical();
    trusted.iter().any(|n| n.contains(&ip))
}

/// The client address for a request from `peer` whose `X-Forwarded-For` field values are
/// `forwarded` (in order; each a comma-separated list).
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded: impl IntoIterator<Item = &'a [u8]>,
    trusted: &[ipnet::IpNet],
) -> IpAddr {
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let mut hops: Vec<&[u8]> = Vec::new();
    for value in forwarded {
        hops.extend(value.split(|b| *b == b',').map(<[u8]>::trim_ascii));
    }
    let mut client = peer;
    for hop in hops.iter().rev().filter(|h| !h.is_empty()) {
        let Some(ip) = parse_hop(hop) else {
            break;
        };
        client = ip;
        if !is_trusted(ip, trusted) {
            break;
        }
    }
    client.to_canonical()
}

/// One `X-Forwarded-For` entry: `192.0.2.7`, `2001:db8::7`, and the forms some proxies write
/// with a port (`192.0.2.7:4711`, `[2001:db8::7]:4711`).
fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(hop).ok()?;
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// The client of a request the front end read itself: `head` is the raw request head (request
/// line, fields, the empty line). Headers are looked at only when `peer` is trusted.
pub fn of_head(peer: Option<SocketAddr>, head: &[u8], trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let peer = peer?.ip();
    if !is_trusted(peer, trusted) {
        return Some(peer);
    }
    let mut fields = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut fields);
    // The front end has framed this head already; a head httparse cannot read (too many
    // fields for this array) names no forwarded client.
    if req.parse(head).is_err() {
        return Some(peer);
    }
    let forwarded = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(X_FORWARDED_FOR))
        .map(|h| h.value);
    Some(client_ip(peer, forwarded, trusted))
}

/// The client of a request actix answers, with the `trusted_proxies` of the server's state
/// (none without one: the peer).
pub fn of_request(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let trusted = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.cfg.trusted_proxies.as_slice())
        .unwrap_or_default();
    let forwarded = req.headers().get_all(X_FORWARDED_FOR).map(|v| v.as_bytes());
    Some(client_ip(peer, forwarded, trusted))
}

/// [`of_request`] for the access log: the address, or `-`.
pub fn log_field(req: &actix_web::dev::ServiceRequest) -> String {
    of_request(req.request())
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<ipnet::IpNet> {
        list.iter().map(|s| s.parse().expect("net")).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn client(peer: &str, xff: &[&str], trusted: &[&str]) -> IpAddr {
        client_ip(ip(peer), xff.iter().map(|v| v.as_bytes()), &nets(trusted))
    }

    #[test]
    fn untrusted_peers_cannot_choose_their_address() {
        assert_eq!(client("203.0.113.9", &["10.9.9.9"], &[]), ip("203.0.113.9"));
        assert_eq!(
            client("203.0.113.9", &["10.9.9.9"], &["10.0.0.0/8"]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn right_most_untrusted_entry() {
        let lb = ["10.0.0.2/32", "10.0.1.0/24"];
        // A forged left part stays left of the entry the balancer appended.
        assert_eq!(
            client("10.0.0.2", &["6.6.6.6, 192.0.2.7"], &lb),
            ip("192.0.2.7")
        );
        // Trusted hops are skipped, across several fields.
        assert_eq!(
            client("10.0.0.2", &["192.0.2.7, 10.0.1.5", "10.0.1.6"], &lb),
            ip("192.0.2.7")
        );
        // Every hop trusted: the left-most.
        assert_eq!(client("10.0.0.2", &["10.0.1.5"], &lb), ip("10.0.1.5"));
        // No header: the balancer itself.
        assert_eq!(client("10.0.0.2", &[], &lb), ip("10.0.0.2"));
        // Garbage ends the walk at the last trusted hop.
        assert_eq!(
            client("10.0.0.2", &["192.0.2.7, unknown"], &lb),
            ip("10.0.0.2")
        );
        // Ports and IPv6.
        assert_eq!(
            client("10.0.0.2", &["[2001:db8::7]:4711"], &lb),
            ip("2001:db8::7")
        );
        assert_eq!(client("10.0.0.2", &["192.0.2.7:80"], &lb), ip("192.0.2.7"));
        // An IPv4-mapped peer is its IPv4 address.
        assert_eq!(
            client("::ffff:10.0.0.2", &["192.0.2.7"], &lb),
            ip("192.0.2.7")
        );
    }

    #[test]
    fn from_a_raw_head() {
        let head = b"GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 192.0.2.1\r\nx-forwarded-for: 192.0.2.7\r\n\r\n";
        let peer: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        assert_eq!(
            of_head(Some(peer), head, &nets(&["127.0.0.1/32"])),
            Some(ip("192.0.2.7"))
        );
        assert_eq!(of_head(Some(peer), head, &[]), Some(ip("127.0.0.1")));
        assert_eq!(of_head(None, head, &[]), None);
    }
}
