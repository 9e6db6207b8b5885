//! The single-node pod network: a bridge CNI conflist over the node's pod CIDR
//! (host-local IPAM, portmap for hostPort), which containerd's CRI plugin reads from its
//! `conf_dir` (it adds loopback itself). Masquerade is one node-level rule
//! ([`crate::masquerade`]), not the bridge plugin's per-pod `ipMasq`.

use std::path::Path;

use serde_json::json;

/// The pod range when the Node has no `spec.podCIDR`.
pub const DEFAULT_POD_CIDR: &str = "10.42.0.0/24";
/// The conflist's file name.
pub const CONFLIST: &str = "10-rkube.conflist";

/// The conflist for `pod_cidr` on bridge `bridge`; host-local keeps its leases in
/// `ipam_dir`.
pub fn conflist(pod_cidr: &str, bridge: &str, ipam_dir: &Path) -> String {
    serde_json::to_string_pretty(&json!({
        "cniVersion": "1.0.0",
        "name": "rkube",
        "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": true,
             "hairpinMode": true,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": pod_cidr}]],
                      "routes": [{"dst": "0.0.0.0/0"}], "dataDir": ipam_dir}},
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ],
    }))
    .expect("JSON")
}

/// Whether `cidr` is an IPv4 CIDR (`a.b.c.d/n`).
pub fn valid_cidr(cidr: &str) -> bool {
    let Some((ip, bits)) = cidr.split_once('/') else {
        return false;
    };
    ip.parse::<std::net::Ipv4Addr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= 32)
}

/// Writes the conflist into `conf_dir` (atomically: containerd watches the directory).
pub fn write(
    conf_dir: &Path,
    pod_cidr: &str,
    bridge: &str,
    ipam_dir: &Path,
) -> std::io::Result<()> {
    std::fs::create_dir_all(conf_dir)?;
    std::fs::create_dir_all(ipam_dir)?;
    let tmp = conf_dir.join(format!(".{CONFLIST}.tmp"));
    std::fs::write(&tmp, conflist(pod_cidr, bridge, ipam_dir))?;
    std::fs::rename(tmp, conf_dir.join(CONFLIST))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflist_has_bridge_ipam_and_portmap() {
        let c: serde_json::Value =
            serde_json::from_str(&conflist("10.42.0.0/24", "cni0", Path::new("/d/ipam"))).unwrap();
        assert_eq!(c["plugins"][0]["type"], "bridge");
        assert_eq!(c["plugins"][0]["bridge"], "cni0");
        // Masquerade is the node's one rule, not a chain per pod.
        assert!(c["plugins"][0].get("ipMasq").is_none());
        assert_eq!(
            c["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
            "10.42.0.0/24"
        );
        assert_eq!(c["plugins"][0]["ipam"]["dataDir"], "/d/ipam");
        assert_eq!(c["plugins"][1]["capabilities"]["portMappings"], true);
        assert!(valid_cidr("10.42.0.0/24"));
        assert!(!valid_cidr("10.42.0.0"));
        assert!(!valid_cidr("10.42.0.0/40"));
    }
}
