//! Failed logins per client address.
//!
//! A user is locked after `max_login_failures` failures in a row
//! ([`crate::identities`]); that does not stop one client from trying one
//! password against many names. So login attempts are also counted per
//! client address over a window, each *before* its password is looked at (so
//! that attempts sent at once are each counted), and taken back when the
//! login succeeds: beyond `max_login_failures_per_address` within
//! `login_address_window`, the address is refused (429 with
//! `Retry-After`) without its password being checked, which also keeps it
//! from spending the server's Argon2 time.
//!
//! * The address is the TCP peer's (the HTTP server puts it in the request
//!   as [`axum::extract::ConnectInfo`]); behind a proxy listed in
//!   `trusted_proxies`, the last `X-Forwarded-For` hop that is not one of
//!   them. Without either (an in-process call), nothing is counted.
//! * IPv6 addresses count by their /64 network: one host usually has a whole
//!   /64 to pick addresses from.
//! * The count is kept in the store (identity key `u` · `a` · address,
//!   changed by compare-and-swap), so it is shared by every API process on
//!   the store and survives a restart. A window's record is pruned with the
//!   expired sessions once it ends.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use axum::http::HeaderMap;
use chrono::{DateTime, TimeDelta, Utc};

use crate::identities::{Identities, IdentityError};

/// Failed logins per client address in a window.
#[derive(Debug)]
pub struct AddressThrottle {
    max: u32,
    window: TimeDelta,
}

/// What counts as one client: an IPv4 address, or an IPv6 /64.
fn client_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl AddressThrottle {
    /// At most `max` failures per address within `window`.
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max: max.max(1),
            window: TimeDelta::from_std(window).unwrap_or(TimeDelta::MAX),
        }
    }

    /// Counts a login attempt from `addr` at `now` *before* its password is
    /// looked at, so that attempts sent at once are each counted:
    /// `Err(wait)` when the address has used up its attempts in the window
    /// (its password must then not be looked at).
    pub async fn attempt(
        &self,
        identities: &Identities,
        addr: IpAddr,
        now: DateTime<Utc>,
    ) -> Result<Result<(), Duration>, IdentityError> {
        let record = identities
            .count_address_attempt(&client_key(addr).to_string(), self.window, now)
            .await?;
        if record.failures > self.max {
            let wait = (record.expires_at - now).to_std().unwrap_or_default();
            return Ok(Err(wait.max(Duration::from_secs(1))));
        }
        Ok(Ok(()))
    }

    /// Takes back the attempt of a login from `addr` that succeeded: only
    /// failures use up an address's allowance.
    pub async fn succeeded(
        &self,
        identities: &Identities,
        addr: IpAddr,
        now: DateTime<Utc>,
    ) -> Result<(), IdentityError> {
        identities
            .uncount_address_attempt(&client_key(addr).to_string(), now)
            .await
    }
}

/// The client's address: the TCP peer's, or behind a trusted proxy the last
/// `X-Forwarded-For` hop that is not a trusted proxy.
pub fn client_address(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trusted_proxies: &[IpAddr],
) -> Option<IpAddr> {
    let peer = peer?.ip();
    if !trusted_proxies.contains(&peer) {
        return Some(peer);
    }
    // From the right: the hops our proxies appended. A hop that does not
    // read as an address ends the walk at the peer: what stands left of it
    // is the client's to write.
    let hops: Vec<Option<IpAddr>> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().ok())
        .flat_map(|v| {
            v.map_or_else(
                || vec![None],
                |v| v.split(',').map(|h| h.trim().parse().ok()).collect(),
            )
        })
        .collect();
    for hop in hops.into_iter().rev() {
        match hop {
            Some(hop) if trusted_proxies.contains(&hop) => continue,
            Some(hop) => return Some(hop),
            None => return Some(peer),
        }
    }
    Some(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identities() -> Identities {
        let store: posbon_store::Store = std::sync::Arc::new(posbon_store::MemoryStore::new());
        Identities::new(store, crate::identities::IdentityLimits::default())
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[tokio::test]
    async fn an_address_is_refused_after_its_attempts_until_the_window_ends() {
        let ids = identities();
        let t = AddressThrottle::new(3, Duration::from_secs(600));
        let now = Utc::now();
        let (a, b) = (ip("203.0.113.7"), ip("203.0.113.8"));
        let attempt = |addr, at| t.attempt(&ids, addr, at);
        for _ in 0..3 {
            assert_eq!(attempt(a, now).await.expect("count"), Ok(()));
        }
        assert_eq!(
            attempt(a, now).await.expect("count"),
            Err(Duration::from_secs(600)),
            "the fourth attempt is refused unread"
        );
        assert_eq!(
            attempt(b, now).await.expect("count"),
            Ok(()),
            "another address is not affected"
        );
        let later = now + TimeDelta::seconds(601);
        assert_eq!(
            attempt(a, later).await.expect("count"),
            Ok(()),
            "the window ended; a new one starts from one"
        );
    }

    #[tokio::test]
    async fn a_login_that_succeeds_uses_up_nothing() {
        let ids = identities();
        let t = AddressThrottle::new(2, Duration::from_secs(600));
        let now = Utc::now();
        let a = ip("198.51.100.20");
        for _ in 0..5 {
            assert_eq!(t.attempt(&ids, a, now).await.expect("count"), Ok(()));
            t.succeeded(&ids, a, now).await.expect("uncount");
        }
        assert_eq!(t.attempt(&ids, a, now).await.expect("count"), Ok(()));
        assert_eq!(t.attempt(&ids, a, now).await.expect("count"), Ok(()));
        assert!(t.attempt(&ids, a, now).await.expect("count").is_err());
    }

    #[tokio::test]
    async fn ipv6_counts_by_its_64() {
        let ids = identities();
        let t = AddressThrottle::new(2, Duration::from_secs(60));
        let now = Utc::now();
        let attempt = |addr| t.attempt(&ids, addr, now);
        assert!(attempt(ip("2001:db8:1:2::1")).await.expect("count").is_ok());
        assert!(
            attempt(ip("2001:db8:1:2:ffff::9"))
                .await
                .expect("count")
                .is_ok()
        );
        assert!(
            attempt(ip("2001:db8:1:2::77"))
                .await
                .expect("count")
                .is_err()
        );
        assert!(attempt(ip("2001:db8:1:3::1")).await.expect("count").is_ok());
        assert!(
            attempt(ip("::ffff:198.51.100.4"))
                .await
                .expect("count")
                .is_ok()
        );
        assert!(attempt(ip("198.51.100.4")).await.expect("count").is_ok());
        assert!(attempt(ip("198.51.100.4")).await.expect("count").is_err());
    }

    #[tokio::test]
    async fn attempts_at_once_through_processes_on_one_store_are_each_counted() {
        let store: posbon_store::Store = std::sync::Arc::new(posbon_store::MemoryStore::new());
        let limits = crate::identities::IdentityLimits::default();
        let ids = [
            Identities::new(store.clone(), limits),
            Identities::new(store, limits),
        ];
        let t = AddressThrottle::new(20, Duration::from_secs(600));
        let now = Utc::now();
        let a = ip("192.0.2.44");
        // 50 attempts at once, spread over both "processes": exactly 20 get
        // their password looked at.
        let attempts = (0..50).map(|i| t.attempt(&ids[i % 2], a, now));
        let answers = futures::future::join_all(attempts).await;
        let allowed = answers
            .into_iter()
            .map(|r| r.expect("count"))
            .filter(Result::is_ok)
            .count();
        assert_eq!(allowed, 20);
    }

    #[test]
    fn the_address_behind_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.2".parse().expect("ip");
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "198.51.100.1, 203.0.113.9, 10.0.0.2"
                .parse()
                .expect("header"),
        );
        let peer = |ip: &str| Some(SocketAddr::new(ip.parse().expect("ip"), 40000));
        // Not through a trusted proxy: the header is anybody's to write.
        assert_eq!(
            client_address(peer("192.0.2.5"), &headers, &[proxy]),
            Some("192.0.2.5".parse().expect("ip"))
        );
        assert_eq!(
            client_address(peer("10.0.0.2"), &headers, &[proxy]),
            Some("203.0.113.9".parse().expect("ip"))
        );
        assert_eq!(
            client_address(peer("10.0.0.2"), &HeaderMap::new(), &[proxy]),
            Some(proxy)
        );
        assert_eq!(client_address(None, &headers, &[proxy]), None);
        // A hop that does not read as an address (a port, garbage) ends the
        // walk: what stands left of it was written by the client.
        let mut odd = HeaderMap::new();
        odd.insert(
            "x-forwarded-for",
            "198.51.100.1, 203.0.113.9:4711".parse().expect("header"),
        );
        assert_eq!(
            client_address(peer("10.0.0.2"), &odd, &[proxy]),
            Some(proxy),
            "not the client-written 198.51.100.1"
        );
    }
}
