//! The PKI's certificates work for mutual TLS with rustls: an in-memory handshake between a
//! server using the serving certificate and a client presenting the admin certificate.

mod support;

use std::io::{Read, Write};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rkube_pki::{identity_from_der, ClusterPki, IssuedCert};
use rustls::pki_types::ServerName;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use support::names;

fn roots(pki: &ClusterPki) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca_cert_der().clone()).unwrap();
    Arc::new(roots)
}

/// A server config that serves `pki`'s certificate and requires a client certificate
/// signed by `client_ca`.
fn server_config(pki: &ClusterPki, client_ca: &ClusterPki) -> Arc<ServerConfig> {
    let mut client_roots = RootCertStore::empty();
    client_roots
        .add(client_ca.client_ca_cert_der().clone())
        .unwrap();
    let verifier = WebPkiClientVerifier::builder(Arc::new(client_roots))
        .build()
        .unwrap();
    Arc::new(
        ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(pki.serving_cert_chain_der(), pki.serving_key_der())
            .unwrap(),
    )
}

/// A client config trusting `ca` and presenting `client`.
fn client_config(ca: &ClusterPki, client: &IssuedCert) -> Arc<ClientConfig> {
    Arc::new(
        ClientConfig::builder()
            .with_root_certificates(roots(ca))
            .with_client_auth_cert(vec![client.cert_der().clone()], client.key_der())
            .unwrap(),
    )
}

/// Moves TLS records between the two ends until both finish the handshake, then sends
/// application data both ways.
fn handshake(client: &mut ClientConnection, server: &mut ServerConnection) -> Result<()> {
    for _ in 0..20 {
        if !client.is_handshaking() && !server.is_handshaking() {
            break;
        }
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf)?;
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            server.read_tls(&mut rd)?;
            server.process_new_packets().context("server")?;
        }
        buf.clear();
        while server.wants_write() {
            server.write_tls(&mut buf)?;
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            client.read_tls(&mut rd)?;
            client.process_new_packets().context("client")?;
        }
    }
    if client.is_handshaking() || server.is_handshaking() {
        bail!("handshake did not finish");
    }
    // Application data, client to server.
    client.writer().write_all(b"GET /version")?;
    let mut buf = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut buf)?;
    }
    let mut rd = &buf[..];
    while !rd.is_empty() {
        server.read_tls(&mut rd)?;
        server.process_new_packets()?;
    }
    let mut got = [0u8; 12];
    server.reader().read_exact(&mut got)?;
    assert_eq!(&got, b"GET /version");
    Ok(())
}

fn connect(
    server_cfg: Arc<ServerConfig>,
    client_cfg: Arc<ClientConfig>,
    name: &str,
) -> Result<ServerConnection> {
    let mut client = ClientConnection::new(client_cfg, ServerName::try_from(name.to_owned())?)?;
    let mut server = ServerConnection::new(server_cfg)?;
    handshake(&mut client, &mut server)?;
    Ok(server)
}

#[test]
fn mutual_tls_with_serving_and_admin_certs() {
    support::install_crypto_provider();
    let tmp = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    let server_cfg = server_config(&pki, &pki);
    let client_cfg = client_config(&pki, pki.admin_cert());

    for name in [
        "localhost",
        "kubernetes",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "node-1",
        "127.0.0.1",
        "::1",
        support::SERVICE_IP,
        support::NODE_IP,
    ] {
        let server = connect(server_cfg.clone(), client_cfg.clone(), name)
            .unwrap_or_else(|e| panic!("handshake for {name}: {e:#}"));
        // What the API server will do with the verified peer certificate.
        let peer = server
            .peer_certificates()
            .expect("client presented a certificate");
        let id = identity_from_der(&peer[0]).unwrap();
        assert_eq!(id.user, "admin");
        assert_eq!(id.groups, vec!["system:masters"]);
    }
}

#[test]
fn component_client_cert_is_accepted() {
    support::install_crypto_provider();
    let tmp = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    let kubelet = pki
        .client_identity_files("kubelet-2", "system:node:node-1", &["system:nodes"])
        .unwrap();
    let server = connect(
        server_config(&pki, &pki),
        client_config(&pki, &kubelet),
        "kubernetes.default.svc",
    )
    .unwrap();
    let id = identity_from_der(&server.peer_certificates().unwrap()[0]).unwrap();
    assert_eq!(id.user, "system:node:node-1");
}

#[test]
fn a_name_not_in_the_certificate_is_refused() {
    support::install_crypto_provider();
    let tmp = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    let err = connect(
        server_config(&pki, &pki),
        client_config(&pki, pki.admin_cert()),
        "not-the-apiserver.example",
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("certificate"), "{err:#}");
}

#[test]
fn certificates_of_another_cluster_are_refused() {
    support::install_crypto_provider();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let ours = ClusterPki::load_or_create(a.path(), &names()).unwrap();
    let theirs = ClusterPki::load_or_create(b.path(), &names()).unwrap();

    // Their admin certificate, presented to our server.
    let err = connect(
        server_config(&ours, &ours),
        client_config(&ours, theirs.admin_cert()),
        "localhost",
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("server"),
        "the server rejects it: {err:#}"
    );

    // Our client, talking to their server.
    let err = connect(
        server_config(&theirs, &ours),
        client_config(&ours, ours.admin_cert()),
        "localhost",
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("client"),
        "the client rejects it: {err:#}"
    );
}
