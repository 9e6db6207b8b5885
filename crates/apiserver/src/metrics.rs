//! Prometheus metrics on `/metrics`, with upstream's names and labels:
//! `apiserver_request_total` and `apiserver_request_duration_seconds`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::Method;

use crate::request::{self, Target};

/// Upstream's buckets for `apiserver_request_duration_seconds`.
const BUCKETS: [f64; 23] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

/// What a request was, in upstream's label terms.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Labels {
    verb: String,
    group: String,
    version: String,
    resource: String,
    subresource: String,
    scope: String,
}

#[derive(Default)]
struct Series {
    /// Requests by response code.
    codes: BTreeMap<u16, u64>,
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The API server's request metrics.
#[derive(Default)]
pub struct Metrics {
    /// Hashed, not ordered: every request looks its series up, and comparing six strings
    /// at each level of a tree was most of that; `/metrics` sorts them when it renders.
    series: Mutex<HashMap<Labels, Series>>,
    /// Other components of this process whose series `/metrics` serves too (the
    /// in-process controller manager of `rkube server`).
    sources: Mutex<Vec<MetricsSource>>,
}

/// Renders one component's series as Prometheus text.
pub type MetricsSource = Box<dyn Fn() -> String + Send + Sync>;

fn labels(method: &Method, path: &str, query: Option<&str>) -> Labels {
    let watch = query.is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    match request::parse(path, |s| s == "status" || s == "finalize") {
        Some(Target::Resource(r)) => {
            let verb = match (method, r.name.is_some(), watch || r.legacy_watch) {
                (&Method::GET, _, true) => "WATCH",
                (&Method::GET, true, false) => "GET",
                (&Method::GET, false, false) => "LIST",
                (&Method::POST, _, _) => "POST",
                (&Method::PUT, _, _) => "PUT",
                (&Method::PATCH, _, _) => "PATCH",
                (&Method::DELETE, true, _) => "DELETE",
                (&Method::DELETE, false, _) => "DELETECOLLECTION",
                _ => method.as_str(),
            };
            let scope = match (&r.namespace, &r.name) {
                (_, Some(_)) => "resource",
                (Some(_), None) => "namespace",
                (None, None) => "cluster",
            };
            Labels {
                verb: verb.into(),
                group: r.group,
                version: r.version,
                resource: r.resource,
                subresource: r.subresource.unwrap_or_default(),
                scope: scope.into(),
            }
        }
        _ => Labels {
            verb: method.as_str().into(),
            group: String::new(),
            version: String::new(),
            resource: String::new(),
            subresource: String::new(),
            scope: String::new(),
        },
    }
}

impl Metrics {
    /// Records one finished request.
    pub fn observe(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        code: u16,
        elapsed: Duration,
    ) {
        let labels = labels(method, path, query);
        let secs = elapsed.as_secs_f64();
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let s = series.entry(labels).or_default();
        *s.codes.entry(code).or_default() += 1;
        s.count += 1;
        s.sum += secs;
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            s.buckets[i] += 1;
        }
    }

    /// Adds `source`'s series to what `/metrics` serves.
    pub fn add_source(&self, source: MetricsSource) {
        self.sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(source);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = self.render_requests();
        for source in self
            .sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            out.push_str(&source());
        }
        out
    }

    fn render_requests(&self) -> String {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let mut series: Vec<(&Labels, &Series)> = series.iter().collect();
        series.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut out = String::new();
        let fmt_labels = |l: &Labels| {
            format!(
                "component=\"apiserver\",group=\"{}\",resource=\"{}\",scope=\"{}\",subresource=\"{}\",verb=\"{}\",version=\"{}\"",
                l.group, l.resource, l.scope, l.subresource, l.verb, l.version
            )
        };
        out.push_str("# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.\n");
        out.push_str("# TYPE apiserver_request_total counter\n");
        for (l, s) in &series {
            for (code, n) in &s.codes {
                let _ = writeln!(
                    out,
                    "apiserver_request_total{{code=\"{code}\",{},dry_run=\"\"}} {n}",
                    fmt_labels(l)
                );
            }
        }
        out.push_str("# HELP apiserver_request_duration_seconds Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.\n");
        out.push_str("# TYPE apiserver_request_duration_seconds histogram\n");
        for (l, s) in &series {
            let labels = fmt_labels(l);
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(s.buckets.iter()) {
                cumulative += n;
                let _ = writeln!(out, "apiserver_request_duration_seconds_bucket{{{labels},dry_run=\"\",le=\"{bound}\"}} {cumulative}");
            }
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_bucket{{{labels},dry_run=\"\",le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_sum{{{labels},dry_run=\"\"}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_count{{{labels},dry_run=\"\"}} {}",
                s.count
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_requests_with_upstream_labels() {
        let m = Metrics::default();
        m.observe(
            &Method::GET,
            "/api/v1/namespaces/default/pods",
            Some("limit=500"),
            200,
            Duration::from_millis(3),
        );
        m.observe(
            &Method::GET,
            "/api/v1/namespaces/default/pods",
            Some("watch=true"),
            200,
            Duration::from_secs(2),
        );
        m.observe(
            &Method::POST,
            "/apis/apps/v1/namespaces/d/deployments",
            None,
            409,
            Duration::from_millis(1),
        );
        let text = m.render();
        assert!(text.contains(r#"apiserver_request_total{code="200",component="apiserver",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1",dry_run=""} 1"#), "{text}");
        assert!(text.contains(r#"verb="WATCH""#), "{text}");
        assert!(text.contains(r#"apiserver_request_total{code="409",component="apiserver",group="apps",resource="deployments",scope="namespace",subresource="",verb="POST",version="v1",dry_run=""} 1"#), "{text}");
        assert!(text.contains(r#"le="0.005"} 1"#), "{text}");
        assert!(text.contains(r#"le="+Inf"} 1"#), "{text}");
    }
}
