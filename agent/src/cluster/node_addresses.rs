//! The node's own addresses (every interface of the host's network
//! namespace), so that a connection from the node itself (the kubelet's
//! probes, a host process) is named as the node's and not as an unknown
//! address. Read through the host's first process (`/proc/1/net`, the
//! host's network namespace when the agent shares the host's PID
//! namespace).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv6Addr};

/// The host's local addresses; empty when they cannot be read.
pub fn read() -> HashSet<IpAddr> {
    let mut addresses = HashSet::new();
    if let Ok(text) = std::fs::read_to_string("/proc/1/net/fib_trie") {
        addresses.extend(parse_fib_trie(&text));
    }
    if let Ok(text) = std::fs::read_to_string("/proc/1/net/if_inet6") {
        addresses.extend(parse_if_inet6(&text));
    }
    addresses
}

/// The `/32 host LOCAL` entries of `/proc/net/fib_trie`.
pub fn parse_fib_trie(text: &str) -> Vec<IpAddr> {
    let mut found = Vec::new();
    let mut last: Option<IpAddr> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(address) = line.strip_prefix("|-- ") {
            last = address.parse().ok();
        } else if line.starts_with("/32 host LOCAL")
            && let Some(address) = last.take()
            && !found.contains(&address)
        {
            found.push(address);
        }
    }
    found
}

/// The addresses of `/proc/net/if_inet6` (32 hex digits each).
pub fn parse_if_inet6(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|hex| u128::from_str_radix(hex, 16).ok())
        .map(|bits| IpAddr::V6(Ipv6Addr::from(bits)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_addresses_are_read_from_the_kernels_tables() {
        let trie = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.244.0.0\n        /24 link UNICAST\n     |-- 10.244.0.1\n        /32 host LOCAL\n     |-- 10.244.0.255\n        /32 link BROADCAST\nLocal:\n     |-- 10.244.0.1\n        /32 host LOCAL\n     |-- 127.0.0.1\n        /32 host LOCAL\n";
        assert_eq!(
            parse_fib_trie(trie),
            [
                "10.244.0.1".parse::<IpAddr>().unwrap(),
                "127.0.0.1".parse().unwrap()
            ]
        );
        let inet6 = "00000000000000000000000000000001 01 80 10 80       lo\nfe800000000000000000000000000001 02 40 20 80     eth0\n";
        assert_eq!(
            parse_if_inet6(inet6),
            ["::1".parse::<IpAddr>().unwrap(), "fe80::1".parse().unwrap()]
        );
    }
}
