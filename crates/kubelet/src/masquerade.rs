//! The node's one masquerade rule for its pod range (as upstream's kubenet installed):
//! traffic from the pod CIDR to anywhere outside it (and not multicast) leaves with the
//! node's address. It replaces the CNI bridge plugin's per-pod `ipMasq`, which made a
//! nat chain per pod with several `iptables` runs on every sandbox ADD and DEL.
//!
//! The rule lives in the nat chain [`CHAIN`], jumped from POSTROUTING. Several kubelets
//! may share a host (tests, benchmarks): each owns only the rules whose comment names
//! its bridge, so the chain and its jump are shared and never flushed.

use std::time::Duration;

use thiserror::Error;

/// Our nat chain, jumped from POSTROUTING.
pub const CHAIN: &str = "RKUBE-POD-MASQ";
/// The comment on the POSTROUTING jump.
pub const JUMP_COMMENT: &str = "rkube: masquerade pod traffic leaving the pod network";
/// How long `iptables` waits for the xtables lock (`-w`).
const LOCK_WAIT_SECONDS: &str = "5";
/// The deadline of one `iptables` run (lock wait included).
const IPTABLES_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum Error {
    #[error("cannot run iptables {args}: {source} (is the iptables package installed?)")]
    Spawn {
        args: String,
        #[source]
        source: std::io::Error,
    },
    #[error("iptables {args} did not finish within {IPTABLES_TIMEOUT:?}")]
    Timeout { args: String },
    #[error("iptables {args} failed: {stderr}")]
    Failed { args: String, stderr: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The comment that marks the rule of the node whose CNI bridge is `bridge`.
pub fn rule_comment(bridge: &str) -> String {
    format!("rkube: masquerade pods of bridge {bridge}")
}

/// The rule's arguments after `-t nat -A|-C|-D CHAIN`.
pub fn rule_args(pod_cidr: &str, bridge: &str) -> Vec<String> {
    [
        "-s",
        pod_cidr,
        "!",
        "-d",
        pod_cidr,
        // Not multicast (224.0.0.0/4): iptables takes one `-d` per rule.
        "-m",
        "addrtype",
        "!",
        "--dst-type",
        "MULTICAST",
        "-m",
        "comment",
        "--comment",
        &rule_comment(bridge),
        "-j",
        "MASQUERADE",
    ]
    .map(String::from)
    .to_vec()
}

fn jump_args() -> Vec<String> {
    ["-m", "comment", "--comment", JUMP_COMMENT, "-j", CHAIN]
        .map(String::from)
        .to_vec()
}

/// Runs `iptables -w 5 -t nat ARGS` with a deadline; `Ok(false)` when it exits 1 (a
/// `-C` that found no rule), `Ok(true)` on success.
async fn iptables(args: &[String]) -> Result<bool> {
    let out = run(args).await?;
    match out.status.code() {
        Some(0) => Ok(true),
        Some(1) if args.first().is_some_and(|a| a == "-C") => Ok(false),
        _ => Err(Error::Failed {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        }),
    }
}

/// Runs `iptables -w 5 -t nat ARGS` within the deadline (killed past it).
async fn run(args: &[String]) -> Result<std::process::Output> {
    let shown = || args.join(" ");
    let child = tokio::process::Command::new("iptables")
        .args(["-w", LOCK_WAIT_SECONDS, "-t", "nat"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(IPTABLES_TIMEOUT, child).await {
        Err(_) => Err(Error::Timeout { args: shown() }),
        Ok(Err(source)) => Err(Error::Spawn {
            args: shown(),
            source,
        }),
        Ok(Ok(out)) => Ok(out),
    }
}

/// Appends `rule` to `chain` unless it is there.
async fn ensure_rule(chain: &str, rule: Vec<String>) -> Result<()> {
    let mut check = vec!["-C".to_owned(), chain.to_owned()];
    check.extend(rule.iter().cloned());
    if iptables(&check).await? {
        return Ok(());
    }
    let mut append = vec!["-A".to_owned(), chain.to_owned()];
    append.extend(rule);
    iptables(&append).await.map(drop)
}

/// Numbers (1-based, in `listing` order) of the rules in a `iptables -L CHAIN -n
/// --line-numbers` listing whose comment is `comment` and whose source is not `keep`.
fn stale_rules(listing: &str, comment: &str, keep: Option<&str>) -> Vec<u32> {
    let marker = format!("/* {comment} */");
    listing
        .lines()
        .filter(|l| l.contains(&marker))
        .filter_map(|l| {
            // num target prot opt source destination ...
            let f: Vec<&str> = l.split_whitespace().collect();
            let num = f.first()?.parse().ok()?;
            (keep != f.get(4).copied()).then_some(num)
        })
        .collect()
}

/// Deletes the rules of bridge `bridge` whose source is not `keep` (all, when `None`).
async fn delete_rules(bridge: &str, keep: Option<&str>) -> Result<()> {
    let out = run(&["-L", CHAIN, "-n", "--line-numbers"].map(String::from)).await?;
    let mut stale = stale_rules(
        &String::from_utf8_lossy(&out.stdout),
        &rule_comment(bridge),
        keep,
    );
    // From the bottom up, so the numbers still hold.
    stale.sort_unstable_by(|a, b| b.cmp(a));
    for num in stale {
        iptables(&["-D".to_owned(), CHAIN.to_owned(), num.to_string()]).await?;
    }
    Ok(())
}

/// Makes sure pods of `pod_cidr` behind `bridge` are masqueraded: the chain, its jump
/// from POSTROUTING and the rule exist, and a rule of this bridge for another range
/// (the node's earlier pod CIDR) is gone. Idempotent; cheap when all is in place (two
/// `iptables -C` runs).
pub async fn ensure(pod_cidr: &str, bridge: &str) -> Result<()> {
    let rule = rule_args(pod_cidr, bridge);
    let mut check = vec!["-C".to_owned(), CHAIN.to_owned()];
    check.extend(rule.iter().cloned());
    let mut jump = vec!["-C".to_owned(), "POSTROUTING".to_owned()];
    jump.extend(jump_args());
    // The common case: everything is there.
    if iptables(&check).await.unwrap_or(false) && iptables(&jump).await? {
        return Ok(());
    }
    match iptables(&["-N".to_owned(), CHAIN.to_owned()]).await {
        Ok(_) => {}
        Err(Error::Failed { stderr, .. }) if stderr.contains("already exists") => {}
        Err(e) => return Err(e),
    }
    delete_rules(bridge, Some(pod_cidr)).await?;
    ensure_rule(CHAIN, rule).await?;
    ensure_rule("POSTROUTING", jump_args()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_masquerades_what_leaves_the_pod_range() {
        assert_eq!(
            rule_args("10.42.0.0/24", "cni0").join(" "),
            "-s 10.42.0.0/24 ! -d 10.42.0.0/24 -m addrtype ! --dst-type MULTICAST -m comment --comment \
             rkube: masquerade pods of bridge cni0 -j MASQUERADE"
        );
    }

    #[test]
    fn stale_rules_are_this_bridges_for_other_ranges() {
        let listing = "\
Chain RKUBE-POD-MASQ (1 references)
num  target     prot opt source               destination
1    MASQUERADE  all  --  10.42.0.0/24        !10.42.0.0/24         ADDRTYPE match dst-type !MULTICAST /* rkube: masquerade pods of bridge cni0 */
2    MASQUERADE  all  --  10.43.0.0/24        !10.43.0.0/24         ADDRTYPE match dst-type !MULTICAST /* rkube: masquerade pods of bridge cni0 */
3    MASQUERADE  all  --  10.44.0.0/24        !10.44.0.0/24         ADDRTYPE match dst-type !MULTICAST /* rkube: masquerade pods of bridge cni01 */
";
        let comment = rule_comment("cni0");
        assert_eq!(stale_rules(listing, &comment, Some("10.43.0.0/24")), [1]);
        assert_eq!(stale_rules(listing, &comment, None), [1, 2]);
        assert!(stale_rules(listing, &rule_comment("cni1"), None).is_empty());
    }
}
