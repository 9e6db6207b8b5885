//! gRPC probes: the standard `grpc.health.v1.Health/Check` over plaintext HTTP/2 to the
//! pod's IP, with upstream's results and messages (`pkg/probe/grpc`). As upstream dials
//! with `WithBlock`, a refused connection is retried until the probe's timeout.

use std::time::Duration;

use tokio::time::Instant;
use tonic::transport::Endpoint;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::pleg::go_duration;
use crate::probe::Outcome;

/// How long to wait between attempts to connect.
const REDIAL: Duration = Duration::from_millis(100);

/// `kube-probe/<major>.<minor>`, as upstream's prober says who it is.
fn user_agent() -> String {
    let v = crate::node::KUBELET_VERSION.trim_start_matches('v');
    let minor = v.rsplit_once('.').map_or(v, |(mm, _)| mm);
    format!("kube-probe/{minor}")
}

/// Checks `service` ("" for the server as a whole) at `host:port` within `timeout`.
pub async fn check(host: &str, port: u16, service: &str, timeout: Duration) -> Outcome {
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let deadline = Instant::now() + timeout;
    let within = go_duration(timeout);
    let endpoint = match Endpoint::from_shared(format!("http://{addr}")) {
        Ok(e) => e
            .user_agent(user_agent())
            .unwrap_or_else(|_| Endpoint::from_static("http://0.0.0.0")),
        Err(e) => {
            return Outcome::Failure(format!(
                "error: failed to connect service at \"{addr}\": {e}"
            ))
        }
    };
    let timed_out = || {
        Outcome::Failure(format!(
            "timeout: failed to connect service \"{addr}\" within {within}: context deadline exceeded"
        ))
    };
    let channel = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, endpoint.connect()).await {
            Ok(Ok(c)) => break c,
            Ok(Err(_)) if Instant::now() + REDIAL < deadline => tokio::time::sleep(REDIAL).await,
            _ => return timed_out(),
        }
    };
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: service.to_owned(),
    });
    let left = deadline.saturating_duration_since(Instant::now());
    request.set_timeout(left);
    let answer = tokio::time::timeout(left, HealthClient::new(channel).check(request)).await;
    match answer {
        Err(_) => Outcome::Failure(format!(
            "timeout: health rpc did not complete within {within}"
        )),
        Ok(Err(s)) => match s.code() {
            tonic::Code::Unimplemented => Outcome::Failure(format!(
                "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
                s.message()
            )),
            tonic::Code::DeadlineExceeded => Outcome::Failure(format!(
                "timeout: health rpc did not complete within {within}"
            )),
            code => Outcome::Failure(format!(
                "error: health rpc probe failed: rpc error: code = {code:?} desc = {}",
                s.message()
            )),
        },
        Ok(Ok(r)) => {
            let status = r.into_inner().status;
            if status == ServingStatus::Serving as i32 {
                Outcome::Success
            } else {
                let name = ServingStatus::try_from(status)
                    .map(|s| s.as_str_name().to_owned())
                    .unwrap_or_else(|_| status.to_string());
                Outcome::Failure(format!("service unhealthy (responded with \"{name}\")"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic_health::ServingStatus as Reported;

    use super::*;

    #[tokio::test]
    async fn checks_a_real_health_server() {
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("shop.Cart", Reported::NotServing)
            .await;
        reporter.set_service_status("", Reported::Serving).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let t = Duration::from_secs(5);
        assert_eq!(check("127.0.0.1", port, "", t).await, Outcome::Success);
        assert_eq!(
            check("127.0.0.1", port, "shop.Cart", t).await,
            Outcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
        );
        match check("127.0.0.1", port, "shop.Unknown", t).await {
            Outcome::Failure(m) => assert!(
                m.starts_with("error: health rpc probe failed: rpc error: code = NotFound"),
                "{m}"
            ),
            o => panic!("{o:?}"),
        }
        server.abort();

        // Nothing listens: retried until the timeout, then upstream's message.
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        assert_eq!(
            check("127.0.0.1", port, "", Duration::from_secs(1)).await,
            Outcome::Failure(format!(
                "timeout: failed to connect service \"127.0.0.1:{port}\" within 1s: context deadline exceeded"
            ))
        );
    }
}
