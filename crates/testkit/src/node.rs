//! Cleaning up after a node a test (or benchmark) ran in a temp dir: everything a
//! kubelet with its own containerd leaves outside that dir when it is killed.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Removes what a node whose data dir is `dir` made outside it: runc containers, the
/// processes started from the dir (server, containerd, shims), mounts under it (rootfs,
/// shm, network namespaces), the CNI bridge `bridge`, masquerade rules for `cidr` and
/// CNI result caches of its sandboxes. Best effort; never panics.
pub fn clean_up(dir: &Path, bridge: &str, cidr: &str) {
    stop(dir);
    remove_host_network(bridge, cidr);
}

/// Stops what a node whose data dir is `dir` runs and unmounts what it mounted: runc
/// containers (and the CNI result caches of their sandboxes), every process naming the
/// dir on its command line (server or agent, containerd, shims), mounts under the dir
/// (rootfs, shm, network namespaces). Network state is left alone: a node in its own
/// network namespace loses it with the namespace. Best effort; never panics.
pub fn stop(dir: &Path) {
    let dir = dir.to_string_lossy().into_owned();
    let runc_root = format!("{dir}/containerd/state/runc/k8s.io");
    if let Ok(out) = Command::new("runc")
        .args(["--root", &runc_root, "list", "-q"])
        .output()
    {
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            // CNI's result cache of a sandbox killed without a CNI DEL.
            let cache = Path::new("/var/lib/cni/results");
            let _ = std::fs::remove_file(cache.join(format!("rkube-{id}-eth0")));
            let _ = std::fs::remove_file(cache.join(format!("cni-loopback-{id}-lo")));
            let _ = Command::new("runc")
                .args(["--root", &runc_root, "delete", "--force", id])
                .output();
        }
    }
    // The server, containerd and its shims all name the temp dir on their command line.
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if pid != std::process::id() && String::from_utf8_lossy(&cmdline).contains(&dir) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<&str> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&dir))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        if !Command::new("umount")
            .arg(m)
            .status()
            .is_ok_and(|s| s.success())
        {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
    }
}

/// Removes the host's CNI bridge `bridge`, the kubelet's masquerade rule for it (with
/// the shared chain and its jump once no node's rule is left) and masquerade rules the
/// bridge plugin left for `cidr`.
fn remove_host_network(bridge: &str, cidr: &str) {
    let _ = Command::new("ip").args(["link", "del", bridge]).output();
    remove_pod_masquerade(bridge);
    // Masquerade rules the bridge plugin left for this range (none after clean pod
    // deletion).
    let prefix = cidr.trim_end_matches("0/24");
    let listing = Command::new("iptables")
        .args(["-t", "nat", "-L", "POSTROUTING", "--line-numbers", "-n"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut rules: Vec<(u32, String)> = listing
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let num = f.first()?.parse().ok()?;
            // num target prot opt source destination ...
            let source = f.get(4)?;
            source.starts_with(prefix).then(|| (num, f[1].to_owned()))
        })
        .collect();
    rules.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut chains = Vec::new();
    for (num, chain) in rules {
        let _ = Command::new("iptables")
            .args(["-t", "nat", "-D", "POSTROUTING", &num.to_string()])
            .output();
        chains.push(chain);
    }
    // Chains for this range whose jump is already gone (a DEL cut short).
    let rules = Command::new("iptables")
        .args(["-t", "nat", "-S"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for rule in rules.lines() {
        let f: Vec<&str> = rule.split(' ').collect();
        if f.len() > 3 && f[0] == "-A" && f[2] == "-d" && f[3] == cidr {
            chains.push(f[1].to_owned());
        }
    }
    for chain in chains.iter().filter(|c| c.starts_with("CNI-")) {
        let _ = Command::new("iptables")
            .args(["-t", "nat", "-F", chain])
            .output();
        let _ = Command::new("iptables")
            .args(["-t", "nat", "-X", chain])
            .output();
    }
}

/// `iptables -w 5 -t nat ARGS`' stdout (empty when it fails).
fn nat(args: &[&str]) -> String {
    Command::new("iptables")
        .args(["-w", "5", "-t", "nat"])
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The kubelet's masquerade chain and jump comment (`rkube_kubelet::masquerade`, not a
/// dependency of this crate; the kubelet e2e test checks they are removed).
const MASQ_CHAIN: &str = "RKUBE-POD-MASQ";
const MASQ_JUMP_COMMENT: &str = "rkube: masquerade pod traffic leaving the pod network";

/// Removes the kubelet's masquerade rule(s) for `bridge` from its chain; when no rule
/// is left there (no other node on this host), the chain and its POSTROUTING jump go
/// too.
pub fn remove_pod_masquerade(bridge: &str) {
    let marker = format!("/* rkube: masquerade pods of bridge {bridge} */");
    let listing = nat(&["-L", MASQ_CHAIN, "-n", "--line-numbers"]);
    let mut ours: Vec<u32> = listing
        .lines()
        .filter(|l| l.contains(&marker))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    ours.sort_unstable_by(|a, b| b.cmp(a));
    for num in ours {
        nat(&["-D", MASQ_CHAIN, &num.to_string()]);
    }
    let left = nat(&["-S", MASQ_CHAIN]);
    if !left.is_empty() && !left.lines().any(|l| l.starts_with("-A ")) {
        while Command::new("iptables")
            .args(["-w", "5", "-t", "nat", "-D", "POSTROUTING"])
            .args([
                "-m",
                "comment",
                "--comment",
                MASQ_JUMP_COMMENT,
                "-j",
                MASQ_CHAIN,
            ])
            .output()
            .is_ok_and(|o| o.status.success())
        {}
        nat(&["-X", MASQ_CHAIN]);
    }
}
