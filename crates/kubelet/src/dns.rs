//! A pod's resolv.conf as upstream's kubelet forms it (CRI `DNSConfig` of the sandbox):
//! `dnsPolicy` ClusterFirst → the cluster DNS servers, `<ns>.svc.<domain> svc.<domain>
//! <domain>` before the host's search domains and `ndots:5`; Default (and ClusterFirst on
//! the host network, or without cluster DNS) → the host's resolv.conf; None → only
//! `dnsConfig`; then `dnsConfig` merged in and upstream's limits applied (3 nameservers,
//! 32 search domains, 2048 characters), with the events upstream records.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Pod, PodDNSConfig};

use crate::cri::api::DnsConfig;
use crate::pod_config::{host_network, pod_ref};

/// Upstream's limits (`pkg/apis/core/validation`).
pub const MAX_NAMESERVERS: usize = 3;
pub const MAX_SEARCH_PATHS: usize = 32;
pub const MAX_SEARCH_LIST_CHARS: usize = 2048;
/// A longer search domain makes some resolvers (glibc 2.28) abort; upstream drops it.
const MAX_DOMAIN_LEN: usize = 253;
/// The default `--cluster-domain`.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
/// The default `--resolv-conf`.
pub const DEFAULT_RESOLV_CONF: &str = "/etc/resolv.conf";

/// The kubelet's DNS settings (`--cluster-dns`, `--cluster-domain`, `--resolv-conf`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub cluster_dns: Vec<String>,
    pub cluster_domain: String,
    /// The host resolv.conf pods with the Default policy get; `None` (flag set to "")
    /// gives them `127.0.0.1` and no search, as upstream.
    pub resolv_conf: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            cluster_dns: Vec::new(),
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.into(),
            resolv_conf: Some(DEFAULT_RESOLV_CONF.into()),
        }
    }
}

/// A warning event about the pod: (reason, message).
pub type Warning = (&'static str, String);

/// The parsed host resolv.conf.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct HostDns {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// Parses resolv.conf as upstream: the last `search` line wins (without `.` and trailing
/// dots), `options` accumulate, `#` and `;` start comments.
pub fn parse_resolv_conf(text: &str) -> HostDns {
    let mut d = HostDns::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or_default();
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.split_first() {
            Some((&"nameserver", rest)) if !rest.is_empty() => d.servers.push(rest[0].into()),
            Some((&"search", rest)) => {
                d.searches = rest
                    .iter()
                    .filter(|s| **s != ".")
                    .map(|s| s.trim_end_matches('.').to_owned())
                    .collect();
            }
            Some((&"options", rest)) => {
                d.options = merge_options(&d.options, rest.iter().map(|o| split_option(o)));
            }
            _ => {}
        }
    }
    d
}

impl Settings {
    /// The host's resolv.conf, read now (it may change while the kubelet runs).
    pub fn host(&self) -> std::io::Result<HostDns> {
        match &self.resolv_conf {
            None => Ok(HostDns::default()),
            Some(p) => std::fs::read_to_string(p).map(|t| parse_resolv_conf(&t)),
        }
    }

    /// The pod's DNS config and the warning events it causes.
    pub fn pod_dns(&self, pod: &Pod, host: HostDns) -> (DnsConfig, Vec<Warning>) {
        let spec = pod.spec.clone().unwrap_or_default();
        let mut warnings = Vec::new();
        let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
        let cluster = match policy {
            "None" => None,
            "ClusterFirstWithHostNet" => Some(true),
            "Default" => Some(false),
            "ClusterFirst" => Some(!host_network(pod)),
            // The API rejects others; upstream falls back to ClusterFirst.
            _ => Some(true),
        };
        let mut d = DnsConfig {
            servers: host.servers,
            searches: host.searches,
            options: host.options,
        };
        match cluster {
            None => d = DnsConfig::default(),
            Some(true) if !self.cluster_dns.is_empty() => {
                d.servers = self.cluster_dns.clone();
                if !self.cluster_domain.is_empty() {
                    let (_, ns, _) = pod_ref(pod);
                    let domain = &self.cluster_domain;
                    let mut s = vec![
                        format!("{ns}.svc.{domain}"),
                        format!("svc.{domain}"),
                        domain.clone(),
                    ];
                    s.append(&mut d.searches);
                    d.searches = omit_duplicates(s);
                }
                d.options = vec!["ndots:5".into()];
            }
            Some(use_cluster) => {
                if use_cluster {
                    let (name, ns, uid) = pod_ref(pod);
                    warnings.push((
                        "MissingClusterDNS",
                        format!("pod: \"{name}_{ns}({uid})\". kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy."),
                    ));
                }
                if self.resolv_conf.is_none() {
                    d.servers = vec!["127.0.0.1".into()];
                    d.searches = vec![".".into()];
                }
            }
        }
        if let Some(c) = &spec.dns_config {
            append(&mut d, c);
        }
        if d.servers.len() > MAX_NAMESERVERS {
            d.servers.truncate(MAX_NAMESERVERS);
            warnings.push(("DNSConfigForming", format!("Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: {}", d.servers.join(" "))));
        }
        if fit_search(&mut d.searches) {
            warnings.push(("DNSConfigForming", format!("Search Line limits were exceeded, some search paths have been omitted, the applied search line is: {}", d.searches.join(" "))));
        }
        (d, warnings)
    }
}

/// Applies the search limits; whether something was cut.
fn fit_search(s: &mut Vec<String>) -> bool {
    let mut exceeded = false;
    if s.len() > MAX_SEARCH_PATHS {
        s.truncate(MAX_SEARCH_PATHS);
        exceeded = true;
    }
    let before = s.len();
    s.retain(|d| d.len() <= MAX_DOMAIN_LEN);
    exceeded |= s.len() != before;
    let line_len = |s: &[String]| s.join(" ").len();
    if line_len(s) > MAX_SEARCH_LIST_CHARS {
        while line_len(s) > MAX_SEARCH_LIST_CHARS {
            s.pop();
        }
        exceeded = true;
    }
    exceeded
}

fn append(d: &mut DnsConfig, c: &PodDNSConfig) {
    d.servers = omit_duplicates(
        d.servers
            .drain(..)
            .chain(c.nameservers.iter().flatten().cloned())
            .collect(),
    );
    d.searches = omit_duplicates(
        d.searches
            .drain(..)
            .chain(c.searches.iter().flatten().cloned())
            .collect(),
    );
    d.options = merge_options(
        &d.options,
        c.options
            .iter()
            .flatten()
            .map(|o| (o.name.clone().unwrap_or_default(), o.value.clone())),
    );
}

fn split_option(o: &str) -> (String, Option<String>) {
    match o.split_once(':') {
        Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
        None => (o.to_owned(), None),
    }
}

/// Options by name, later ones overriding; `name` or `name:value`, sorted by name.
fn merge_options(
    existing: &[String],
    more: impl Iterator<Item = (String, Option<String>)>,
) -> Vec<String> {
    let mut m: BTreeMap<String, String> = existing
        .iter()
        .map(|o| split_option(o))
        .map(|(n, v)| (n, v.unwrap_or_default()))
        .collect();
    for (n, v) in more {
        m.insert(n, v.unwrap_or_default());
    }
    m.into_iter()
        .map(|(n, v)| if v.is_empty() { n } else { format!("{n}:{v}") })
        .collect()
}

fn omit_duplicates(v: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(v.len());
    for s in v {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodDNSConfigOption, PodSpec};

    use super::*;

    const HOST: &str = "# generated\nnameserver 10.0.0.2\nnameserver 10.0.0.3 ; second\nsearch corp.example. lab.example .\noptions edns0 timeout:2\n";

    fn pod(policy: Option<&str>, host_net: bool, cfg: Option<PodDNSConfig>) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some("web".into());
        p.metadata.namespace = Some("shop".into());
        p.metadata.uid = Some("u1".into());
        p.spec = Some(PodSpec {
            dns_policy: policy.map(Into::into),
            host_network: Some(host_net),
            dns_config: cfg,
            ..Default::default()
        });
        p
    }

    fn settings(dns: &[&str]) -> Settings {
        Settings {
            cluster_dns: dns.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn parses_the_host_resolv_conf() {
        let h = parse_resolv_conf(HOST);
        assert_eq!(h.servers, ["10.0.0.2", "10.0.0.3"]);
        assert_eq!(h.searches, ["corp.example", "lab.example"]);
        assert_eq!(h.options, ["edns0", "timeout:2"]);
    }

    #[test]
    fn policies() {
        let s = settings(&["10.43.0.10"]);
        let host = parse_resolv_conf(HOST);
        let (d, w) = s.pod_dns(&pod(None, false, None), host.clone());
        assert_eq!(d.servers, ["10.43.0.10"]);
        assert_eq!(
            d.searches,
            [
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example",
                "lab.example"
            ]
        );
        assert_eq!(d.options, ["ndots:5"]);
        assert!(w.is_empty());

        // ClusterFirst on the host network means Default; ClusterFirstWithHostNet does not.
        let (d, _) = s.pod_dns(&pod(Some("ClusterFirst"), true, None), host.clone());
        assert_eq!(d.servers, host.servers);
        assert_eq!(d.options, host.options);
        let (d, _) = s.pod_dns(
            &pod(Some("ClusterFirstWithHostNet"), true, None),
            host.clone(),
        );
        assert_eq!(d.servers, ["10.43.0.10"]);

        let (d, _) = s.pod_dns(&pod(Some("Default"), false, None), host.clone());
        assert_eq!(d.searches, host.searches);

        let cfg = PodDNSConfig {
            nameservers: Some(vec!["1.1.1.1".into()]),
            searches: Some(vec!["a.example".into()]),
            options: Some(vec![PodDNSConfigOption {
                name: Some("ndots".into()),
                value: Some("2".into()),
            }]),
        };
        let (d, _) = s.pod_dns(&pod(Some("None"), false, Some(cfg.clone())), host.clone());
        assert_eq!(d.servers, ["1.1.1.1"]);
        assert_eq!(d.searches, ["a.example"]);
        assert_eq!(d.options, ["ndots:2"]);

        // Merged into ClusterFirst: pod options override, duplicates dropped.
        let (d, _) = s.pod_dns(&pod(None, false, Some(cfg)), host.clone());
        assert_eq!(d.servers, ["10.43.0.10", "1.1.1.1"]);
        assert_eq!(d.searches.last().unwrap(), "a.example");
        assert_eq!(d.options, ["ndots:2"]);
    }

    #[test]
    fn no_cluster_dns_falls_back_to_default_with_an_event() {
        let host = parse_resolv_conf(HOST);
        let (d, w) = settings(&[]).pod_dns(&pod(None, false, None), host.clone());
        assert_eq!(d.servers, host.servers);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].0, "MissingClusterDNS");
        assert_eq!(w[0].1, "pod: \"web_shop(u1)\". kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy.");

        let mut s = settings(&[]);
        s.resolv_conf = None;
        let (d, _) = s.pod_dns(&pod(Some("Default"), false, None), HostDns::default());
        assert_eq!(d.servers, ["127.0.0.1"]);
        assert_eq!(d.searches, ["."]);
    }

    #[test]
    fn limits_cut_and_warn() {
        let cfg = PodDNSConfig {
            nameservers: Some(vec!["1.1.1.1".into(), "8.8.8.8".into(), "9.9.9.9".into()]),
            searches: Some((0..40).map(|i| format!("d{i}.example")).collect()),
            options: None,
        };
        let (d, w) =
            settings(&["10.43.0.10"]).pod_dns(&pod(None, false, Some(cfg)), HostDns::default());
        assert_eq!(d.servers, ["10.43.0.10", "1.1.1.1", "8.8.8.8"]);
        assert_eq!(d.searches.len(), MAX_SEARCH_PATHS);
        assert_eq!(w[0].1, "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: 10.43.0.10 1.1.1.1 8.8.8.8");
        assert!(w[1].1.starts_with("Search Line limits were exceeded, some search paths have been omitted, the applied search line is: shop.svc.cluster.local "));

        let mut long: Vec<String> = (0..20).map(|i| format!("{i:0>200}")).collect();
        assert!(fit_search(&mut long));
        assert!(long.join(" ").len() <= MAX_SEARCH_LIST_CHARS);
        assert_eq!(long.len(), 10);
        let mut too_long = vec!["x".repeat(254), "ok".into()];
        assert!(fit_search(&mut too_long));
        assert_eq!(too_long, ["ok"]);
    }
}
