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
//! * The table is bounded ([`MAX_TRACKED`] addresses); when it is full of
//!   live windows, a new address is not tracked until one ends (the
//!   per-user lock still holds). The count is per process and starts empty
//!   after a restart.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

/// Most addresses tracked at once.
pub const MAX_TRACKED: usize = 65_536;

/// Failed logins per client address in a window.
#[derive(Debug)]
pub struct AddressThrottle {
    max: u32,
    window: Duration,
    seen: Mutex<HashMap<IpAddr, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
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
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// How long `addr` must wait before its next login is looked at, when it
    /// has used up its failures.
    pub fn wait(&self, addr: IpAddr, now: Instant) -> Option<Duration> {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let w = seen.get(&client_key(addr))?;
        let ends = w.started + self.window;
        (w.failures >= self.max && ends > now).then(|| ends - now)
    }

    /// Counts a failed login from `addr`.
    pub fn failed(&self, addr: IpAddr, now: Instant) {
        let key = client_key(addr);
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if !seen.contains_key(&key) && seen.len() >= MAX_TRACKED {
            let window = self.window;
            seen.retain(|_, w| w.started + window > now);
            if seen.len() >= MAX_TRACKED {
                return;
            }
        }
        let w = seen.entry(key).or_insert(Window {
            started: now,
            failures: 0,
        });
        if w.started + self.window <= now {
            *w = Window {
                started: now,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
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

    #[test]
    fn an_address_is_refused_after_its_failures_until_the_window_ends() {
        let t = AddressThrottle::new(3, Duration::from_secs(600));
        let now = Instant::now();
        let a: IpAddr = "203.0.113.7".parse().expect("ip");
        let b: IpAddr = "203.0.113.8".parse().expect("ip");
        for _ in 0..2 {
            t.failed(a, now);
        }
        assert_eq!(t.wait(a, now), None);
        t.failed(a, now);
        assert_eq!(t.wait(a, now), Some(Duration::from_secs(600)));
        assert_eq!(t.wait(b, now), None, "another address is not affected");
        let later = now + Duration::from_secs(601);
        assert_eq!(t.wait(a, later), None, "the window ended");
        t.failed(a, later);
        assert_eq!(t.wait(a, later), None, "a new window starts from one");
    }

    #[test]
    fn ipv6_counts_by_its_64() {
        let t = AddressThrottle::new(2, Duration::from_secs(60));
        let now = Instant::now();
        t.failed("2001:db8:1:2::1".parse().expect("ip"), now);
        t.failed("2001:db8:1:2:ffff::9".parse().expect("ip"), now);
        assert!(
            t.wait("2001:db8:1:2::77".parse().expect("ip"), now)
                .is_some()
        );
        assert!(
            t.wait("2001:db8:1:3::1".parse().expect("ip"), now)
                .is_none()
        );
        t.failed("::ffff:198.51.100.4".parse().expect("ip"), now);
        t.failed("198.51.100.4".parse().expect("ip"), now);
        assert!(t.wait("198.51.100.4".parse().expect("ip"), now).is_some());
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
