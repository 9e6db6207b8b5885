//! A kube-rs [`Client`] that speaks HTTP/2 when the server offers it (ALPN), as client-go
//! does. All its requests and watches share one connection, so many small requests in
//! flight (a scheduler's bindings and events, a benchmark's creates) cost far fewer reads,
//! writes and TLS records than kube-rs's HTTP/1.1 pool, which opens one connection per
//! request in flight.
//!
//! It keeps kube-rs's layers (base URI, retry of 429/503/504, authentication, extra
//! headers) and its connect/read/write deadlines, and pings an idle connection as
//! client-go does. No upgrade (exec, attach, port-forward) can be made over it; a
//! kubeconfig with a proxy or a fixed TLS server name gets kube-rs's own client.

use std::time::Duration;

use kube::client::ConfigExt;
use kube::{Client, Config};

/// A client for `config` over HTTP/2 (HTTP/1.1 when the server does not offer it); for a
/// proxy or a fixed TLS server name, which this client does not handle, kube-rs's own.
pub fn http2(config: Config) -> kube::Result<Client> {
    if config.proxy_url.is_some() || config.tls_server_name.is_some() {
        return Client::try_from(config);
    }
    let tls = config.rustls_client_config()?;
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    // As Go's dialer: a request's HEADERS and DATA frames may go out in separate writes,
    // and Nagle's algorithm would hold the second until the first is acknowledged (a
    // delayed ACK: ~40 ms per request, which sequential requests pay in full).
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    // Receive windows as Go's HTTP/2 transport has them (4 MiB per stream, 1 GiB per
    // connection), so a large list is not paced by window updates; and client-go's
    // health check: a ping after 30 s without a frame, the connection dropped when
    // unanswered for 15 s.
    let http_client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .timer(hyper_util::rt::TokioTimer::new())
            .http2_initial_stream_window_size(4 << 20)
            .http2_initial_connection_window_size(1 << 30)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .http2_keep_alive_timeout(Duration::from_secs(15))
            .build::<_, kube::client::Body>(connector);
    // kube-rs's retry of 429/503/504 answers (with their Retry-After), as its own client.
    let retry = config
        .default_retry
        .then(|| tower::retry::RetryLayer::new(kube::client::retry::RetryPolicy::server_retry()));
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(retry)
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(|e: hyper_util::client::legacy::Error| {
            Box::new(e) as Box<dyn std::error::Error + Send + Sync>
        })
        .service(http_client);
    Ok(Client::new(service, config.default_namespace))
}
