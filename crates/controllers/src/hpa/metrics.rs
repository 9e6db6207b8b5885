//! The HPA's metrics client (upstream's `restMetricsClient`): resource metrics from
//! `metrics.k8s.io/v1beta1` PodMetrics, pod and object metrics from
//! `custom.metrics.k8s.io` (its preferred version), external metrics from `external.metrics.k8s.io/v1beta1`
//! — all through the API server (aggregated APIServices), each request under a deadline,
//! with upstream's error wording.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::Client;
use serde_json::Value;

/// The window assumed for a custom metric that gives none (upstream's
/// `metricServerDefaultMetricWindow`).
const DEFAULT_WINDOW_MS: i64 = 60_000;

/// One pod's sample: value in milli-units, when it was taken (ms), over what window (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodMetric {
    pub value: i64,
    pub timestamp: i64,
    pub window: i64,
}

/// Samples by pod name.
pub type PodMetrics = BTreeMap<String, PodMetric>;

/// Reads metrics APIs with the controller's own client.
#[derive(Clone)]
pub struct MetricsClient {
    client: Client,
    timeout: Duration,
}

/// A label selector as a query value.
fn query(pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            q.append_pair(k, v);
        }
    }
    let q = q.finish();
    if q.is_empty() {
        q
    } else {
        format!("?{q}")
    }
}

/// client-go's message for a failed request on `resource` (e.g. `pods.metrics.k8s.io`):
/// the server's own message where it gave one, else the generic text for the status
/// code with `(get <resource>)`, as `NewGenericServerResponse` words it.
pub fn error_message(error: &kube::Error, resource: &str) -> String {
    let kube::Error::Api(s) = error else {
        return error.to_string();
    };
    let generic = match s.code {
        400 => "the server rejected our request for an unknown reason",
        401 => "the server has asked for the client to provide credentials",
        403 => "the server does not allow access to the requested resource",
        404 => "the server could not find the requested resource",
        405 => "the server does not allow this method on the requested resource",
        409 => "the server reported a conflict",
        410 => "the server has asked for the client to provide credentials",
        422 => "the server rejected our request due to an error in our request",
        429 => "the server has received too many requests and has asked us to try again later",
        500 => "an error on the server has prevented the request from succeeding",
        503 => "the server is currently unable to handle the request",
        504 => "the server was unable to return a response in the time allotted, but may still be processing the request",
        _ => "",
    };
    let unparsed = s.reason.is_empty() || s.reason == "Failed to parse error data";
    if (unparsed || s.message == generic || s.message.is_empty()) && !generic.is_empty() {
        format!("{generic} (get {resource})")
    } else if unparsed {
        format!(
            "an error on the server ({}) has prevented the request from succeeding (get {resource})",
            s.message
        )
    } else {
        s.message.clone()
    }
}

/// A Kubernetes timestamp (RFC 3339) in milliseconds since the epoch; 0 if absent or bad.
fn millis(v: &Value) -> i64 {
    v.as_str()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
        .map_or(0, |t| t.as_millisecond())
}

/// A Go duration (`30s`, `1m0s`, `500ms`) in milliseconds.
pub fn duration_millis(s: &str) -> Option<i64> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "ns" => 1e-6,
            "us" | "µs" => 1e-3,
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3600e3,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[u..];
    }
    Some(total as i64)
}

fn milli(q: &Value) -> Option<i64> {
    q.as_str()
        .and_then(|s| rkube_api::quantity::milli_value(s).ok())
}

/// PodMetrics items → samples of `resource` (summed over containers, or one container's);
/// a pod missing the resource in any container has no sample (upstream's
/// `getPodMetrics` / `getContainerMetrics`).
pub fn pod_samples(items: &[Value], resource: &str, container: &str) -> Result<PodMetrics, String> {
    let mut out = PodMetrics::new();
    for m in items {
        let name = m["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let timestamp = millis(&m["timestamp"]);
        let window = m["window"].as_str().and_then(duration_millis).unwrap_or(0);
        let containers = m["containers"].as_array().cloned().unwrap_or_default();
        if !container.is_empty() {
            let Some(c) = containers.iter().find(|c| c["name"] == container) else {
                return Err(format!(
                    "container {container} not present in metrics for pod {}/{name}",
                    m["metadata"]["namespace"].as_str().unwrap_or_default()
                ));
            };
            if let Some(value) = milli(&c["usage"][resource]) {
                out.insert(
                    name,
                    PodMetric {
                        value,
                        timestamp,
                        window,
                    },
                );
            }
            continue;
        }
        let mut sum = 0i64;
        let mut missing = containers.is_empty();
        for c in &containers {
            match milli(&c["usage"][resource]) {
                Some(v) => sum = sum.saturating_add(v),
                None => {
                    missing = true;
                    break;
                }
            }
        }
        if !missing {
            out.insert(
                name,
                PodMetric {
                    value: sum,
                    timestamp,
                    window,
                },
            );
        }
    }
    Ok(out)
}

impl MetricsClient {
    pub fn new(client: Client, timeout: Duration) -> MetricsClient {
        MetricsClient { client, timeout }
    }

    async fn get(&self, path: String) -> Result<Value, kube::Error> {
        let req = http::Request::get(path)
            .body(Vec::new())
            .map_err(kube::Error::HttpError)?;
        match tokio::time::timeout(self.timeout, self.client.request::<Value>(req)).await {
            Ok(r) => r,
            Err(_) => Err(kube::Error::Api(
                kube::core::Status::failure(
                    "the server was unable to return a response in the time allotted, but may still be processing the request",
                    "Timeout",
                )
                .with_code(504)
                .boxed(),
            )),
        }
    }

    /// The custom metrics API's preferred version, as client-go's custom metrics client
    /// finds it through discovery before every use.
    async fn custom_metrics_version(&self) -> Result<String, String> {
        let groups = tokio::time::timeout(self.timeout, self.client.list_api_groups())
            .await
            .map_err(|_| "the server was unable to return a response in the time allotted, but may still be processing the request".to_owned())?
            .map_err(|e| crate::discovery::error_message(&e))?;
        groups
            .groups
            .iter()
            .find(|g| g.name == "custom.metrics.k8s.io")
            .and_then(|g| g.preferred_version.as_ref().or(g.versions.first()))
            .map(|v| v.version.clone())
            .ok_or_else(|| "no custom metrics API (custom.metrics.k8s.io) registered".to_owned())
    }

    /// `resource` of the pods `selector` picks in `namespace`, and the first sample's time
    /// (upstream's `GetResourceMetric`).
    pub async fn resource_metric(
        &self,
        resource: &str,
        namespace: &str,
        selector: &str,
        container: &str,
    ) -> Result<(PodMetrics, i64), String> {
        let path = format!(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods{}",
            query(&[("labelSelector", selector)])
        );
        let list = self.get(path).await.map_err(|e| {
            format!(
                "unable to fetch metrics from resource metrics API: {}",
                error_message(&e, "pods.metrics.k8s.io")
            )
        })?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            return Err("no metrics returned from resource metrics API".into());
        }
        let samples = pod_samples(&items, resource, container)
            .map_err(|e| format!("failed to get container metrics: {e}"))?;
        Ok((samples, millis(&items[0]["timestamp"])))
    }

    /// A custom metric of every pod `selector` picks (upstream's `GetRawMetric`).
    pub async fn raw_metric(
        &self,
        metric: &str,
        namespace: &str,
        selector: &str,
        metric_selector: &str,
    ) -> Result<(PodMetrics, i64), String> {
        let version = self
            .custom_metrics_version()
            .await
            .map_err(|e| format!("unable to fetch metrics from custom metrics API: {e}"))?;
        let path = format!(
            "/apis/custom.metrics.k8s.io/{version}/namespaces/{namespace}/pods/*/{metric}{}",
            query(&[
                ("labelSelector", selector),
                ("metricLabelSelector", metric_selector)
            ])
        );
        let list = self.get(path).await.map_err(|e| {
            format!(
                "unable to fetch metrics from custom metrics API: {}",
                error_message(&e, "pods.custom.metrics.k8s.io")
            )
        })?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            return Err("no metrics returned from custom metrics API".into());
        }
        let mut out = PodMetrics::new();
        for m in &items {
            let window = m["windowSeconds"]
                .as_i64()
                .map_or(DEFAULT_WINDOW_MS, |s| s * 1000);
            out.insert(
                m["describedObject"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                PodMetric {
                    value: milli(&m["value"]).unwrap_or(0),
                    timestamp: millis(&m["timestamp"]),
                    window,
                },
            );
        }
        Ok((out, millis(&items[0]["timestamp"])))
    }

    /// A custom metric of one object (upstream's `GetObjectMetric`); `resource` is the
    /// object's `resource.group` (`deployments.apps`), or `namespaces` for the namespace.
    pub async fn object_metric(
        &self,
        metric: &str,
        namespace: &str,
        resource: &str,
        name: &str,
        metric_selector: &str,
    ) -> Result<(i64, i64), String> {
        let version = self
            .custom_metrics_version()
            .await
            .map_err(|e| format!("unable to fetch metrics from custom metrics API: {e}"))?;
        let q = query(&[("metricLabelSelector", metric_selector)]);
        let path = if resource == "namespaces" {
            format!(
                "/apis/custom.metrics.k8s.io/{version}/namespaces/{namespace}/metrics/{metric}{q}"
            )
        } else {
            format!(
                "/apis/custom.metrics.k8s.io/{version}/namespaces/{namespace}/{resource}/{name}/{metric}{q}"
            )
        };
        let v = self.get(path).await.map_err(|e| {
            format!(
                "unable to fetch metrics from custom metrics API: {}",
                error_message(&e, &format!("{resource}.custom.metrics.k8s.io"))
            )
        })?;
        // A list of one MetricValue (v1beta2 answers with a MetricValueList).
        let item = v["items"].get(0).cloned().unwrap_or(v);
        Ok((
            milli(&item["value"]).unwrap_or(0),
            millis(&item["timestamp"]),
        ))
    }

    /// Every value of an external metric (upstream's `GetExternalMetric`).
    pub async fn external_metric(
        &self,
        metric: &str,
        namespace: &str,
        selector: &str,
    ) -> Result<(Vec<i64>, i64), String> {
        let path = format!(
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric}{}",
            query(&[("labelSelector", selector)])
        );
        let list = self.get(path).await.map_err(|e| {
            format!(
                "unable to fetch metrics from external metrics API: {}",
                error_message(&e, &format!("{metric}.external.metrics.k8s.io"))
            )
        })?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            return Err("no metrics returned from external metrics API".into());
        }
        Ok((
            items
                .iter()
                .map(|m| milli(&m["value"]).unwrap_or(0))
                .collect(),
            millis(&items[0]["timestamp"]),
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn missing_api_reads_like_client_go() {
        let not_found = kube::core::Status::failure(
            "the server could not find the requested resource",
            "NotFound",
        )
        .with_code(404);
        assert_eq!(
            error_message(&kube::Error::Api(not_found.boxed()), "pods.metrics.k8s.io"),
            "the server could not find the requested resource (get pods.metrics.k8s.io)"
        );
        let down = kube::core::Status::failure("service unavailable", "Failed to parse error data")
            .with_code(503);
        assert_eq!(
            error_message(&kube::Error::Api(down.boxed()), "pods.metrics.k8s.io"),
            "the server is currently unable to handle the request (get pods.metrics.k8s.io)"
        );
        let forbidden = kube::core::Status::failure(
            "pods.metrics.k8s.io is forbidden: User \"x\" cannot list resource \"pods\"",
            "Forbidden",
        )
        .with_code(403);
        assert!(
            error_message(&kube::Error::Api(forbidden.boxed()), "pods.metrics.k8s.io")
                .starts_with("pods.metrics.k8s.io is forbidden")
        );
    }

    #[test]
    fn pod_metrics_sum_containers_and_skip_incomplete_pods() {
        let items = vec![
            json!({"metadata": {"name": "a", "namespace": "ns"}, "timestamp": "2026-01-01T00:00:00Z", "window": "30s",
                "containers": [{"name": "c1", "usage": {"cpu": "100m", "memory": "10Mi"}}, {"name": "c2", "usage": {"cpu": "0.2"}}]}),
            json!({"metadata": {"name": "b", "namespace": "ns"}, "timestamp": "2026-01-01T00:00:00Z", "window": "1m0s",
                "containers": [{"name": "c1", "usage": {"memory": "1Mi"}}]}),
            json!({"metadata": {"name": "c", "namespace": "ns"}, "containers": []}),
        ];
        let got = pod_samples(&items, "cpu", "").unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            got["a"],
            PodMetric {
                value: 300,
                timestamp: 1_767_225_600_000,
                window: 30_000
            }
        );
        let c1 = pod_samples(&items[..1], "cpu", "c1").unwrap();
        assert_eq!(c1["a"].value, 100);
        assert_eq!(
            pod_samples(&items[..1], "cpu", "nope").unwrap_err(),
            "container nope not present in metrics for pod ns/a"
        );
        assert_eq!(duration_millis("1m0s"), Some(60_000));
        assert_eq!(duration_millis("500ms"), Some(500));
        assert_eq!(duration_millis("x"), None);
    }
}
