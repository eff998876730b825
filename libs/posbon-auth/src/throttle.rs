//! Failed logins per client address.
//!
//! A user is locked after `max_login_failures` failures in a row
//! ([`crate::identities`]); that does not stop one client from trying one
//! password against many names. So each process also counts failed logins
//! per client address over a window: from the
//! `max_login_failures_per_address`-th failure within
//! `login_address_window_secs`, the address is refused (429 with
//! `Retry-After`) *before* its password is checked, which also keeps it from
//! spending the server's Argon2 time.
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

    /// How long `addr` must wait at `now` before its next login is looked
    /// at, when it has used up its failures.
    pub async fn wait(
        &self,
        identities: &Identities,
        addr: IpAddr,
        now: DateTime<Utc>,
    ) -> Result<Option<Duration>, IdentityError> {
        let record = identities
            .address_failures(&client_key(addr).to_string())
            .await?;
        Ok(record
            .filter(|r| r.failures >= self.max && r.expires_at > now)
            .map(|r| (r.expires_at - now).to_std().unwrap_or_default()))
    }

    /// Counts a failed login from `addr` at `now`.
    pub async fn failed(
        &self,
        identities: &Identities,
        addr: IpAddr,
        now: DateTime<Utc>,
    ) -> Result<(), IdentityError> {
        identities
            .count_address_failure(&client_key(addr).to_string(), self.window, now)
            .await
            .map(drop)
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
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    Some(
        hops.into_iter()
            .rev()
            .find(|hop| !trusted_proxies.contains(hop))
            .unwrap_or(peer),
    )
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
    async fn an_address_is_refused_after_its_failures_until_the_window_ends() {
        let ids = identities();
        let t = AddressThrottle::new(3, Duration::from_secs(600));
        let now = Utc::now();
        let (a, b) = (ip("203.0.113.7"), ip("203.0.113.8"));
        let wait = |addr, at| t.wait(&ids, addr, at);
        for _ in 0..2 {
            t.failed(&ids, a, now).await.expect("count");
        }
        assert_eq!(wait(a, now).await.expect("wait"), None);
        t.failed(&ids, a, now).await.expect("count");
        assert_eq!(
            wait(a, now).await.expect("wait"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            wait(b, now).await.expect("wait"),
            None,
            "another address is not affected"
        );
        let later = now + TimeDelta::seconds(601);
        assert_eq!(
            wait(a, later).await.expect("wait"),
            None,
            "the window ended"
        );
        t.failed(&ids, a, later).await.expect("count");
        assert_eq!(
            wait(a, later).await.expect("wait"),
            None,
            "a new window starts from one"
        );
    }

    #[tokio::test]
    async fn ipv6_counts_by_its_64() {
        let ids = identities();
        let t = AddressThrottle::new(2, Duration::from_secs(60));
        let now = Utc::now();
        t.failed(&ids, ip("2001:db8:1:2::1"), now)
            .await
            .expect("count");
        t.failed(&ids, ip("2001:db8:1:2:ffff::9"), now)
            .await
            .expect("count");
        let wait = |addr| t.wait(&ids, addr, now);
        assert!(wait(ip("2001:db8:1:2::77")).await.expect("wait").is_some());
        assert!(wait(ip("2001:db8:1:3::1")).await.expect("wait").is_none());
        t.failed(&ids, ip("::ffff:198.51.100.4"), now)
            .await
            .expect("count");
        t.failed(&ids, ip("198.51.100.4"), now)
            .await
            .expect("count");
        assert!(wait(ip("198.51.100.4")).await.expect("wait").is_some());
    }

    #[tokio::test]
    async fn processes_on_one_store_share_the_count_and_lose_none() {
        let store: posbon_store::Store = std::sync::Arc::new(posbon_store::MemoryStore::new());
        let limits = crate::identities::IdentityLimits::default();
        let ids = [
            Identities::new(store.clone(), limits),
            Identities::new(store, limits),
        ];
        let t = AddressThrottle::new(40, Duration::from_secs(600));
        let now = Utc::now();
        let a = ip("192.0.2.44");
        // 39 failures at once, spread over both "processes".
        let counts = (0..39).map(|i| t.failed(&ids[i % 2], a, now));
        for r in futures::future::join_all(counts).await {
            r.expect("count");
        }
        for p in &ids {
            assert_eq!(t.wait(p, a, now).await.expect("wait"), None);
        }
        t.failed(&ids[0], a, now).await.expect("count");
        for p in &ids {
            assert!(t.wait(p, a, now).await.expect("wait").is_some());
        }
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
    }
}
