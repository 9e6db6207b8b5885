//! The names the API server's serving certificate must be valid for.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// DNS names every API server serving certificate carries: `localhost` and the in-cluster
/// names of the `kubernetes` service.
pub const DEFAULT_DNS_NAMES: [&str; 5] = [
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// IP addresses every API server serving certificate carries: the loopback addresses.
pub const DEFAULT_IPS: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
];

/// Names the API server is reached by, beyond [`DEFAULT_DNS_NAMES`] and [`DEFAULT_IPS`].
///
/// The serving certificate is re-issued when it lacks any of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServingNames {
    /// The node's hostname, if known.
    pub hostname: Option<String>,
    /// Further DNS names (a load balancer's name, say).
    pub dns_names: Vec<String>,
    /// Further IP addresses: the first service IP (e.g. 10.43.0.1), the node's IPs.
    pub ips: Vec<IpAddr>,
}

impl ServingNames {
    /// Names for a node called `hostname`, with no extra names yet.
    pub fn new(hostname: impl Into<String>) -> Self {
        Self {
            hostname: Some(hostname.into()),
            ..Self::default()
        }
    }

    /// Adds an IP address.
    pub fn with_ip(mut self, ip: IpAddr) -> Self {
        self.ips.push(ip);
        self
    }

    /// Adds a DNS name.
    pub fn with_dns_name(mut self, name: impl Into<String>) -> Self {
        self.dns_names.push(name.into());
        self
    }

    /// Every DNS name the certificate must carry: defaults, hostname, extras; lowercased,
    /// without duplicates, in that order.
    pub fn all_dns_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let candidates = DEFAULT_DNS_NAMES
            .iter()
            .map(|s| s.to_string())
            .chain(self.hostname.iter().cloned())
            .chain(self.dns_names.iter().cloned());
        for name in candidates {
            let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
            if !name.is_empty() && !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// Every IP address the certificate must carry: defaults then extras, without duplicates.
    pub fn all_ips(&self) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = Vec::new();
        for ip in DEFAULT_IPS.iter().chain(&self.ips) {
            let ip = ip.to_canonical();
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        ips
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_hostname_and_extras_without_duplicates() {
        let names = ServingNames::new("Node-1.")
            .with_dns_name("kubernetes")
            .with_dns_name("api.example")
            .with_ip("10.43.0.1".parse().unwrap())
            .with_ip("127.0.0.1".parse().unwrap())
            .with_ip("::ffff:192.168.1.5".parse().unwrap());
        assert_eq!(
            names.all_dns_names(),
            vec![
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                "node-1",
                "api.example",
            ]
        );
        let ips: Vec<String> = names.all_ips().iter().map(|ip| ip.to_string()).collect();
        assert_eq!(ips, vec!["127.0.0.1", "::1", "10.43.0.1", "192.168.1.5"]);
    }

    #[test]
    fn no_hostname() {
        assert_eq!(ServingNames::default().all_dns_names().len(), 5);
        assert_eq!(ServingNames::default().all_ips().len(), 2);
    }
}
