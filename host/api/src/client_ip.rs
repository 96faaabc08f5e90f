//! The client's address behind a reverse proxy. With `server.trusted_proxies` set, a request
//! whose TCP peer is one of those proxies is taken to come from the address its
//! `X-Forwarded-For` names: the rightmost entry that is not itself a trusted proxy (entries to
//! its left were written by the client and prove nothing). Every later reader of the address —
//! exposure and API-key IP allowlists, the CSC login limit, the audit trail, the access log —
//! sees that address, because this middleware puts it in the request's `ConnectInfo`. Off by
//! default: with no trusted proxy, `X-Forwarded-For` is ignored.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use ipnet::IpNet;
use sigil_core::ErrorCode;

use crate::error::ApiError;

/// The TCP peer, kept for the record when `ConnectInfo` was replaced by the forwarded client.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// The client named by `forwarded` (the `X-Forwarded-For` values in order) for a request from
/// trusted proxy `peer`; `None` if an entry is not an address.
pub fn forwarded_client(peer: IpAddr, forwarded: &[&str], trusted: &[IpNet]) -> Option<IpAddr> {
    let mut client = peer;
    let entries = forwarded.iter().flat_map(|v| v.split(',')).map(str::trim);
    let hops: Vec<&str> = entries.filter(|e| !e.is_empty()).collect();
    for hop in hops.iter().rev() {
        if !trusted.iter().any(|n| n.contains(&client)) {
            break;
        }
        client = parse_hop(hop)?;
    }
    Some(client)
}

/// An entry: an address, possibly with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// Puts the client's address behind trusted proxies into `req` (as `ConnectInfo`, the proxy as
/// [`Peer`]), or answers 400 when `X-Forwarded-For` from a trusted proxy cannot be read. A step
/// of the outermost layer (`edge` in lib.rs).
pub(crate) fn resolve(trusted: &[IpNet], req: &mut Request) -> Result<(), ApiError> {
    if trusted.is_empty() {
        return Ok(());
    }
    let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() else {
        return Ok(());
    };
    // An IPv4 proxy reaching a dual-stack listener arrives as ::ffff:a.b.c.d.
    let peer_ip = peer.ip().to_canonical();
    if !trusted.iter().any(|n| n.contains(&peer_ip)) {
        return Ok(());
    }
    let raw = req.headers().get_all("x-forwarded-for");
    let values: Vec<&str> = raw.iter().filter_map(|v| v.to_str().ok()).collect();
    // A value that is not visible ASCII must not vanish: the proxy appended the real client to
    // that very line, and dropping it would leave the proxy's own address as the client's.
    let unreadable = raw.iter().count() != values.len();
    let client = if unreadable { None } else { forwarded_client(peer_ip, &values, trusted) };
    let Some(client) = client else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            "X-Forwarded-For holds something that is not an IP address",
        ));
    };
    req.extensions_mut().insert(Peer(peer));
    req.extensions_mut().insert(ConnectInfo(SocketAddr::new(client, 0)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn the_client_is_the_rightmost_address_no_trusted_proxy_wrote() {
        let trusted = nets(&["10.0.0.0/8", "127.0.0.1/32"]);
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let at = |v: &[&str]| forwarded_client(proxy, v, &trusted);
        assert_eq!(at(&[]), Some(proxy), "no header: the proxy itself");
        assert_eq!(at(&["203.0.113.7"]), Some("203.0.113.7".parse().unwrap()));
        // A client cannot choose its address by sending its own header ahead of the proxy's.
        assert_eq!(at(&["127.0.0.1, 203.0.113.7"]), Some("203.0.113.7".parse().unwrap()));
        assert_eq!(at(&["198.51.100.1", "203.0.113.7"]), Some("203.0.113.7".parse().unwrap()));
        // Through two trusted proxies.
        assert_eq!(at(&["203.0.113.7, 10.1.2.3"]), Some("203.0.113.7".parse().unwrap()));
        assert_eq!(at(&["[2001:db8::1]:443"]), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(at(&["::ffff:192.0.2.1"]), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(at(&["not-an-address"]), None);
        // Entries left of the first untrusted hop are never parsed, let alone believed.
        assert_eq!(at(&["garbage, 203.0.113.7"]), Some("203.0.113.7".parse().unwrap()));
    }

    #[test]
    fn an_untrusted_peer_is_never_replaced() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer: IpAddr = "198.51.100.9".parse().unwrap();
        assert_eq!(forwarded_client(peer, &["127.0.0.1"], &trusted), Some(peer));
    }
}
