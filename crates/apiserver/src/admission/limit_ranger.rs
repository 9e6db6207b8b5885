//! LimitRanger: a namespace's LimitRange objects default the resources of new pods'
//! containers (`default` limits, `defaultRequest` requests) and bound them (`min`,
//! `max`, `maxLimitRequestRatio`, per Container and per Pod), and bound the storage
//! that claims request (`min`/`max` per PersistentVolumeClaim, on create and update),
//! with upstream's messages.

use serde_json::{json, Map, Value};

use super::{is_pod_create, list, resource, Operation, Plugin, Request, Verdict};
use rkube_api::quantity::milli_value;

const ANNOTATION: &str = "kubernetes.io/limit-ranger";

pub struct LimitRanger;

impl Plugin for LimitRanger {
    fn name(&self) -> &'static str {
        "LimitRanger"
    }

    fn mutate<'a>(&'a self, r: &'a mut Request) -> Verdict<'a> {
        Box::pin(async move {
            if !is_pod_create(r) {
                return Ok(());
            }
            let ranges = list(
                &r.state,
                resource("", "v1", "limitranges"),
                Some(&r.namespace),
            )
            .await?;
            let pod = r.object.as_mut().expect("pod");
            for range in &ranges {
                apply_defaults(pod, range);
            }
            Ok(())
        })
    }

    fn validate<'a>(&'a self, r: &'a mut Request) -> Verdict<'a> {
        Box::pin(async move {
            let claim = matches!(r.operation, Operation::Create | Operation::Update)
                && r.is("", "persistentvolumeclaims", "")
                && r.object.is_some();
            if !is_pod_create(r) && !claim {
                return Ok(());
            }
            let ranges = list(
                &r.state,
                resource("", "v1", "limitranges"),
                Some(&r.namespace),
            )
            .await?;
            let obj = r.object.as_ref().expect("checked");
            let errors: Vec<String> = ranges
                .iter()
                .flat_map(|range| {
                    if claim {
                        check_claim(obj, range)
                    } else {
                        check(obj, range)
                    }
                })
                .collect();
            match errors.len() {
                0 => Ok(()),
                1 => Err(r.forbidden(&errors[0])),
                _ => Err(r.forbidden(format!("[{}]", errors.join(", ")))),
            }
        })
    }
}

/// The limit items of `range` of `kind` (`Container`, `Pod`), with the LimitRange
/// defaults upstream applies to the object: `default` from `max`, `defaultRequest` from
/// `default`.
fn items<'a>(range: &'a Value, kind: &'a str) -> impl Iterator<Item = Value> + 'a {
    range["spec"]["limits"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |l| l["type"] == kind)
        .map(move |l| {
            let mut l = l.clone();
            if kind == "Container" {
                for (from, to) in [("max", "default"), ("default", "defaultRequest")] {
                    if let Some(source) = l[from].as_object().cloned() {
                        let target = l
                            .as_object_mut()
                            .expect("object")
                            .entry(to)
                            .or_insert_with(|| json!({}));
                        for (k, v) in source {
                            if target.get(&k).is_none() {
                                target[&k] = v;
                            }
                        }
                    }
                }
            }
            l
        })
}

/// Fills in each container's missing limits and requests from the range's defaults,
/// and records what was set in the `kubernetes.io/limit-ranger` annotation.
fn apply_defaults(pod: &mut Value, range: &Value) {
    let mut limits = Map::new();
    let mut requests = Map::new();
    for item in items(range, "Container") {
        if let Some(d) = item["default"].as_object() {
            limits.extend(d.clone());
        }
        if let Some(d) = item["defaultRequest"].as_object() {
            requests.extend(d.clone());
        }
    }
    if limits.is_empty() && requests.is_empty() {
        return;
    }
    let mut notes = Vec::new();
    for (field, what) in [
        ("containers", "container"),
        ("initContainers", "init container"),
    ] {
        let Some(containers) = pod["spec"][field].as_array_mut() else {
            continue;
        };
        for c in containers {
            let name = c["name"].as_str().unwrap_or("").to_owned();
            let resources = c
                .as_object_mut()
                .expect("container")
                .entry("resources")
                .or_insert_with(|| json!({}));
            let mut set = |part: &str, defaults: &Map<String, Value>| {
                let mut names = Vec::new();
                for (k, v) in defaults {
                    let entry = resources
                        .as_object_mut()
                        .expect("resources")
                        .entry(part)
                        .or_insert_with(|| json!({}));
                    if entry.get(k).is_none() {
                        entry[k] = v.clone();
                        names.push(k.clone());
                    }
                }
                names.sort();
                names
            };
            let set_requests = set("requests", &requests);
            let set_limits = set("limits", &limits);
            if !set_requests.is_empty() {
                notes.push(format!(
                    "{} request for {what} {name}",
                    set_requests.join(", ")
                ));
            }
            if !set_limits.is_empty() {
                notes.push(format!("{} limit for {what} {name}", set_limits.join(", ")));
            }
        }
    }
    if !notes.is_empty() {
        let meta = crate::meta::metadata_mut(pod);
        let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
        annotations[ANNOTATION] = json!(format!("LimitRanger plugin set: {}", notes.join("; ")));
    }
}

/// The constraint violations of `pod` against `range`.
fn check(pod: &Value, range: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let spec = &pod["spec"];
    let containers = ["initContainers", "containers"]
        .iter()
        .flat_map(|f| spec[*f].as_array().into_iter().flatten());
    for item in items(range, "Container") {
        for c in containers.clone() {
            let res = &c["resources"];
            check_item(
                &item,
                "Container",
                &res["requests"],
                &res["limits"],
                &mut errors,
            );
        }
    }
    let pod_items: Vec<Value> = items(range, "Pod").collect();
    if !pod_items.is_empty() {
        let (requests, limits) = (pod_total(spec, "requests"), pod_total(spec, "limits"));
        for item in &pod_items {
            check_item(item, "Pod", &requests, &limits, &mut errors);
        }
    }
    errors
}

/// The violations of a claim's storage requests against `range`'s PersistentVolumeClaim
/// items: `min` as for containers, `max` against the request (a claim has no limits).
fn check_claim(claim: &Value, range: &Value) -> Vec<String> {
    const KIND: &str = "PersistentVolumeClaim";
    let mut errors = Vec::new();
    let requests = &claim["spec"]["resources"]["requests"];
    for item in items(range, KIND) {
        let min_only = json!({"min": item["min"]});
        check_item(&min_only, KIND, requests, &json!({}), &mut errors);
        for (name, enforced) in item["max"].as_object().into_iter().flatten() {
            let Some((shown, max)) = q(enforced) else {
                continue;
            };
            match q(&requests[name]) {
                None => errors.push(format!(
                    "maximum {name} usage per {KIND} is {shown}.  No request is specified"
                )),
                Some((req, r)) if r > max => errors.push(format!(
                    "maximum {name} usage per {KIND} is {shown}, but request is {req}"
                )),
                _ => {}
            }
        }
    }
    errors
}

/// A pod's total of `part` (requests or limits) in milli-units: the sum over its
/// containers, or the largest init container's if more.
fn pod_total(spec: &Value, part: &str) -> Value {
    let mut total: Map<String, Value> = Map::new();
    let mut add = |c: &Value, max: bool| {
        for (k, v) in c["resources"][part].as_object().into_iter().flatten() {
            let m = v.as_str().and_then(|s| milli_value(s).ok()).unwrap_or(0);
            let cur = total.get(k).and_then(Value::as_i64).unwrap_or(0);
            total.insert(k.clone(), json!(if max { cur.max(m) } else { cur + m }));
        }
    };
    for c in spec["containers"].as_array().into_iter().flatten() {
        add(c, false);
    }
    let summed = total.clone();
    let mut init = Map::new();
    for c in spec["initContainers"].as_array().into_iter().flatten() {
        for (k, v) in c["resources"][part].as_object().into_iter().flatten() {
            let m = v.as_str().and_then(|s| milli_value(s).ok()).unwrap_or(0);
            let cur = init.get(k).and_then(Value::as_i64).unwrap_or(0);
            init.insert(k.clone(), json!(cur.max(m)));
        }
    }
    let mut out = summed;
    for (k, v) in init {
        let cur = out.get(&k).and_then(Value::as_i64).unwrap_or(0);
        out.insert(k, json!(cur.max(v.as_i64().unwrap_or(0))));
    }
    // Back to quantity strings (milli-units) for the shared checks.
    Value::Object(
        out.into_iter()
            .map(|(k, v)| (k, json!(format_milli(v.as_i64().unwrap_or(0)))))
            .collect(),
    )
}

/// A milli-value as a quantity string (`1500m`, `2`).
pub(crate) fn format_milli(m: i64) -> String {
    if m % 1000 == 0 {
        (m / 1000).to_string()
    } else {
        format!("{m}m")
    }
}

fn q(v: &Value) -> Option<(String, i64)> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    milli_value(&s).ok().map(|m| (s, m))
}

/// Upstream's min, max and ratio constraints of one limit item.
fn check_item(
    item: &Value,
    kind: &str,
    requests: &Value,
    limits: &Value,
    errors: &mut Vec<String>,
) {
    for (name, enforced) in item["min"].as_object().into_iter().flatten() {
        let Some((shown, min)) = q(enforced) else {
            continue;
        };
        match q(&requests[name]) {
            None => errors.push(format!(
                "minimum {name} usage per {kind} is {shown}.  No request is specified"
            )),
            Some((req, r)) if r < min => errors.push(format!(
                "minimum {name} usage per {kind} is {shown}, but request is {req}"
            )),
            _ => {
                if let Some((lim, l)) = q(&limits[name]) {
                    if l < min {
                        errors.push(format!(
                            "minimum {name} usage per {kind} is {shown}, but limit is {lim}"
                        ));
                    }
                }
            }
        }
    }
    for (name, enforced) in item["max"].as_object().into_iter().flatten() {
        let Some((shown, max)) = q(enforced) else {
            continue;
        };
        match q(&limits[name]) {
            None => errors.push(format!(
                "maximum {name} usage per {kind} is {shown}.  No limit is specified"
            )),
            Some((lim, l)) if l > max => errors.push(format!(
                "maximum {name} usage per {kind} is {shown}, but limit is {lim}"
            )),
            _ => {
                if let Some((req, r)) = q(&requests[name]) {
                    if r > max {
                        errors.push(format!(
                            "maximum {name} usage per {kind} is {shown}, but request is {req}"
                        ));
                    }
                }
            }
        }
    }
    for (name, enforced) in item["maxLimitRequestRatio"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let Some((shown, ratio)) = q(enforced) else {
            continue;
        };
        let request = q(&requests[name]).map(|(_, r)| r).filter(|r| *r != 0);
        let limit = q(&limits[name]).map(|(_, l)| l).filter(|l| *l != 0);
        match (request, limit) {
            (None, _) => errors.push(format!("{name} max limit to request ratio per {kind} is {shown}, but no request is specified or request is 0")),
            (_, None) => errors.push(format!("{name} max limit to request ratio per {kind} is {shown}, but no limit is specified or limit is 0")),
            (Some(r), Some(l)) => {
                let observed = l as f64 / r as f64;
                if observed * 1000.0 > ratio as f64 {
                    errors.push(format!("{name} max limit to request ratio per {kind} is {shown}, but provided ratio is {observed:.6}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(limits: Value) -> Value {
        json!({"spec": {"limits": limits}})
    }

    fn pod(resources: Value) -> Value {
        json!({"metadata": {}, "spec": {"containers": [{"name": "c", "resources": resources}]}})
    }

    #[test]
    fn defaults() {
        let r = range(
            json!([{"type": "Container", "default": {"cpu": "500m", "memory": "128Mi"}, "defaultRequest": {"cpu": "100m"}}]),
        );
        let mut p = pod(json!({"limits": {"memory": "1Gi"}}));
        apply_defaults(&mut p, &r);
        let res = &p["spec"]["containers"][0]["resources"];
        assert_eq!(res["limits"], json!({"cpu": "500m", "memory": "1Gi"}));
        // defaultRequest memory comes from default.
        assert_eq!(res["requests"], json!({"cpu": "100m", "memory": "128Mi"}));
        assert_eq!(
            p["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu, memory request for container c; cpu limit for container c"
        );
    }

    #[test]
    fn constraints() {
        let r = range(
            json!([{"type": "Container", "min": {"cpu": "100m"}, "max": {"memory": "1Gi"}, "maxLimitRequestRatio": {"cpu": "2"}}]),
        );
        let cases = [
            (json!({"requests": {"cpu": "200m"}, "limits": {"cpu": "300m", "memory": "1Gi"}}), vec![]),
            (json!({"requests": {"cpu": "50m"}, "limits": {"cpu": "100m", "memory": "1Gi"}}), vec!["minimum cpu usage per Container is 100m, but request is 50m"]),
            (json!({"requests": {"cpu": "100m"}, "limits": {"cpu": "100m"}}), vec!["maximum memory usage per Container is 1Gi.  No limit is specified"]),
            (json!({"requests": {"cpu": "100m"}, "limits": {"cpu": "300m", "memory": "2Gi"}}), vec!["maximum memory usage per Container is 1Gi, but limit is 2Gi", "cpu max limit to request ratio per Container is 2, but provided ratio is 3.000000"]),
        ];
        for (resources, want) in cases {
            assert_eq!(check(&pod(resources.clone()), &r), want, "{resources}");
        }
        let per_pod = range(json!([{"type": "Pod", "max": {"cpu": "1"}}]));
        let p = json!({"spec": {"containers": [
            {"name": "a", "resources": {"limits": {"cpu": "600m"}}},
            {"name": "b", "resources": {"limits": {"cpu": "600m"}}},
        ]}});
        assert_eq!(
            check(&p, &per_pod),
            vec!["maximum cpu usage per Pod is 1, but limit is 1200m"]
        );
    }

    #[test]
    fn claims() {
        let r = range(json!([
            {"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}},
            {"type": "Container", "max": {"cpu": "1"}},
        ]));
        let claim = |req: Value| json!({"spec": {"resources": {"requests": req}}});
        let cases = [
            (json!({"storage": "5Gi"}), vec![]),
            (
                json!({"storage": "500Mi"}),
                vec![
                    "minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi",
                ],
            ),
            (
                json!({"storage": "20Gi"}),
                vec![
                    "maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi",
                ],
            ),
            (
                json!({}),
                vec![
                "minimum storage usage per PersistentVolumeClaim is 1Gi.  No request is specified",
                "maximum storage usage per PersistentVolumeClaim is 10Gi.  No request is specified",
            ],
            ),
        ];
        for (req, want) in cases {
            assert_eq!(check_claim(&claim(req.clone()), &r), want, "{req}");
        }
    }
}
