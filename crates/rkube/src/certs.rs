//! `rkube certs check` and `rkube certs rotate`, and the server's certificate renewal loop
//! that re-issues leaves before they expire and hot-reloads the TLS configuration.
//!
//! Test and tuning knobs (environment): `RKUBE_LEAF_CERT_VALIDITY` (e.g. `30s`, `365d`:
//! the lifetime of new leaf certificates), `RKUBE_CA_CERT_VALIDITY`,
//! `RKUBE_CERT_CHECK_INTERVAL` (how often `rkube server` looks at its certificates:
//! default 1m).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use rkube_apiserver::tls::{DynamicTls, TlsMaterial};
use rkube_pki::{ClusterPki, PkiOptions, ServingNames};

/// `rkube certs`: the cluster's certificates.
#[derive(clap::Args, Debug)]
pub(crate) struct CertsArgs {
    #[command(subcommand)]
    command: CertsCommand,
}

#[derive(clap::Subcommand, Debug)]
enum CertsCommand {
    /// Lists every certificate and key with its subject, issuer, validity and status; exits
    /// 1 when any is expired, not yet valid, mismatched, missing, or expires within
    /// --warn-within.
    Check {
        /// The server's data dir.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Fail when a certificate expires within this (e.g. 30d, 12h, 90s).
        #[arg(long, default_value = "30d", value_parser = parse_duration)]
        warn_within: Duration,
    },
    /// Re-issues every leaf certificate now, and rewrites the kubeconfigs; a running
    /// server picks them up without a restart. With --ca, first makes new CAs: the old
    /// ones stay trusted (bundled with the new) for --overlap, then are dropped.
    Rotate {
        /// The server's data dir.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Rotate the server and client CAs too.
        #[arg(long)]
        ca: bool,
        /// With --ca: how long the old CAs stay trusted next to the new ones.
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        overlap: Duration,
    },
}

/// Parses `90s`, `5m`, `12h`, `30d` (or bare seconds).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: want e.g. 90s, 5m, 12h, 30d"))?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "invalid duration {text:?}: unit must be s, m, h or d"
            ))
        }
    };
    n.checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("duration {text:?} is too long"))
}

pub(crate) fn env_duration(name: &str) -> Result<Option<Duration>> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => parse_duration(&v)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{name}: {e}")),
        _ => Ok(None),
    }
}

/// The PKI options: defaults, with lifetimes from the environment.
pub(crate) fn pki_options() -> Result<PkiOptions> {
    let mut options = PkiOptions::default();
    if let Some(v) = env_duration("RKUBE_LEAF_CERT_VALIDITY")? {
        options.leaf_validity = v;
    }
    if let Some(v) = env_duration("RKUBE_CA_CERT_VALIDITY")? {
        options.ca_validity = v;
    }
    Ok(options)
}

/// How often the server re-checks its certificates.
pub(crate) fn check_interval() -> Result<Duration> {
    Ok(env_duration("RKUBE_CERT_CHECK_INTERVAL")?.unwrap_or(Duration::from_secs(60)))
}

/// This machine's hostname (the local node's name).
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The TLS material of a loaded PKI: serving certificate and the client CA bundle.
pub(crate) fn tls_material(pki: &ClusterPki) -> TlsMaterial {
    TlsMaterial {
        cert_chain: pki.serving_cert_chain_der(),
        key: pki.serving_key_der(),
        client_cas: pki.client_ca_bundle_der().to_vec(),
    }
}

/// Everything the renewal loop needs to reload the PKI as `rkube server` made it.
pub(crate) struct Renewal {
    pub(crate) pki_dir: PathBuf,
    pub(crate) data_dir: PathBuf,
    pub(crate) names: ServingNames,
    pub(crate) options: PkiOptions,
    pub(crate) server_url: String,
    pub(crate) interval: Duration,
}

/// Every `interval`, reloads the PKI directory: re-issues leaves due for renewal, drops
/// old CAs whose overlap ended, picks up what `rkube certs rotate` wrote, swaps a changed
/// serving certificate or client CA bundle into the listener, then rewrites the
/// kubeconfigs that changed (after the swap, so a kubeconfig never names a CA the server
/// does not trust yet). Failures are logged and retried on the next tick; the listener
/// keeps its current certificates meanwhile.
pub(crate) fn spawn_renewal(renewal: Renewal, tls: Arc<DynamicTls>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let renewal = Arc::new(renewal);
        loop {
            tokio::time::sleep(renewal.interval).await;
            let r = renewal.clone();
            let loaded = tokio::task::spawn_blocking(move || {
                ClusterPki::load_or_create_with(&r.pki_dir, &r.names, r.options)
            })
            .await;
            let pki = match loaded {
                Ok(Ok(pki)) => pki,
                Ok(Err(e)) => {
                    tracing::error!(error = %error_chain(&e), "cannot renew the cluster certificates");
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "certificate renewal task failed");
                    continue;
                }
            };
            let serving_changed = tls.serving_chain() != pki.serving_cert_chain_der();
            let cas_changed = tls.client_cas().as_slice() != pki.client_ca_bundle_der();
            if serving_changed || cas_changed {
                match tls.update(tls_material(&pki)) {
                    Ok(()) => tracing::info!(
                        serving_changed,
                        cas_changed,
                        client_cas = pki.client_ca_bundle_der().len(),
                        "reloaded the TLS certificates"
                    ),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot load the renewed certificates");
                        continue;
                    }
                }
            }
            let r = renewal.clone();
            let written = tokio::task::spawn_blocking(move || {
                pki.write_kubeconfigs(&r.data_dir, &r.server_url)
            })
            .await;
            match written {
                Ok(Ok(paths)) => {
                    for path in paths {
                        tracing::info!(path = %path.display(), "rewrote kubeconfig");
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %error_chain(&e), "cannot rewrite the kubeconfigs")
                }
                Err(e) => tracing::error!(error = %e, "kubeconfig writing task failed"),
            }
        }
    })
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

pub(crate) fn run(args: CertsArgs) -> Result<()> {
    match args.command {
        CertsCommand::Check {
            data_dir,
            warn_within,
        } => check(
            &data_dir.unwrap_or_else(crate::default_data_dir),
            warn_within,
        ),
        CertsCommand::Rotate {
            data_dir,
            ca,
            overlap,
        } => rotate(
            &data_dir.unwrap_or_else(crate::default_data_dir),
            ca.then_some(overlap),
        ),
    }
}

fn check(data_dir: &Path, warn_within: Duration) -> Result<()> {
    let pki_dir = data_dir.join("pki");
    if !pki_dir.is_dir() {
        anyhow::bail!(
            "no PKI in {}: start `rkube server --data-dir {}` once to create it",
            pki_dir.display(),
            data_dir.display()
        );
    }
    let now = SystemTime::now();
    let node = rkube_pki::inventory::node_name(Some(&hostname()));
    let rows = rkube_pki::check::check(&pki_dir, &node, now, warn_within);
    print!("{}", rkube_pki::check::render_table(&rows, now));
    if rkube_pki::check::has_problems(&rows) {
        let bad: Vec<String> = rows
            .iter()
            .filter(|r| r.status.is_problem())
            .map(|r| format!("{} ({})", r.file, r.status.text()))
            .collect();
        eprintln!(
            "error: {} certificate(s) need attention: {}\n  re-issue leaves with `rkube certs rotate --data-dir {}`; an expired CA needs `rkube certs rotate --ca`",
            bad.len(),
            bad.join(", "),
            data_dir.display()
        );
        std::process::exit(1);
    }
    Ok(())
}

fn rotate(data_dir: &Path, ca_overlap: Option<Duration>) -> Result<()> {
    let pki_dir = data_dir.join("pki");
    if !pki_dir.is_dir() {
        anyhow::bail!(
            "no PKI in {}: start `rkube server --data-dir {}` once to create it",
            pki_dir.display(),
            data_dir.display()
        );
    }
    let names = ServingNames::new(hostname());
    let options = pki_options()?;
    let pki = match ca_overlap {
        Some(overlap) => ClusterPki::rotate_ca(&pki_dir, &names, options, overlap),
        None => ClusterPki::rotate_leaves(&pki_dir, &names, options),
    }
    .context("cannot rotate the certificates")?;
    match ca_overlap {
        Some(overlap) => {
            // The kubeconfigs are left to the server: it rewrites them right after it
            // trusts the new client CA (at once when it is not running: on its next start).
            println!(
                "rotated the CAs in {}; the old CAs stay trusted for {}s, then are dropped",
                pki_dir.display(),
                overlap.as_secs()
            );
            println!("rkube server rewrites the kubeconfigs in {} when it loads the new CAs; give kubeconfigs made elsewhere the new {} (it holds old and new CA)", data_dir.display(), pki_dir.join("ca.crt").display());
        }
        None => {
            // Same CAs: the new kubeconfigs work at once. Keep the server URL they had.
            let server_url = rkube_pki::kubeconfig::server_url(&data_dir.join("admin.kubeconfig"))
                .unwrap_or_else(|| "https://127.0.0.1:6443".into());
            let written = pki
                .write_kubeconfigs(data_dir, &server_url)
                .context("cannot rewrite the kubeconfigs")?;
            println!("re-issued the leaf certificates in {}", pki_dir.display());
            for path in written {
                println!("wrote {}", path.display());
            }
        }
    }
    println!("a running rkube server picks the new certificates up within RKUBE_CERT_CHECK_INTERVAL (1m by default)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        for bad in ["", "d", "5y", "-1s", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
