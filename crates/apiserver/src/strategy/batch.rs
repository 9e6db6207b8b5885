//! Jobs and CronJobs: upstream's defaults, the generated selector and template labels of a
//! Job (`batch.kubernetes.io/controller-uid`, `job-name`), and the restart policy a job's
//! pods must have; a CronJob's schedule and time zone checked as upstream (robfig/cron's
//! parser, IANA zones from the system zone database).

use rkube_api::FieldError;
use serde_json::{json, Value};

use super::pods::{default_pod_spec, validate_pod_spec};
use super::{set_default, KindStrategy};
use crate::meta::meta_str;

pub struct Jobs;
pub struct CronJobs;

/// Job spec defaults (also applied to a CronJob's job template).
fn job_spec_defaults(spec: &mut Value) {
    set_default(spec, "parallelism", json!(1));
    if spec.get("completions").is_none_or(Value::is_null) && spec["parallelism"].as_i64() == Some(1)
    {
        spec["completions"] = json!(1);
    }
    set_default(spec, "backoffLimit", json!(6));
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    set_default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    if spec["template"]["spec"].is_object() {
        default_pod_spec(&mut spec["template"]["spec"]);
    }
}

fn validate_job_spec(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = validate_pod_spec(&spec["template"]["spec"], &format!("{path}.template.spec"));
    match spec["template"]["spec"]["restartPolicy"].as_str() {
        Some("OnFailure" | "Never") => {}
        other => errors.push(FieldError::not_supported(
            &format!("{path}.template.spec.restartPolicy"),
            other.unwrap_or(""),
            &["OnFailure", "Never"],
        )),
    }
    for field in ["parallelism", "completions", "backoffLimit"] {
        if let Some(v) = spec[field].as_i64().filter(|v| *v < 0) {
            errors.push(FieldError::invalid(
                &format!("{path}.{field}"),
                v,
                "must be greater than or equal to 0",
            ));
        }
    }
    errors
}

impl KindStrategy for Jobs {
    fn prepare_for_create(&self, obj: &mut Value) {
        if !obj["spec"].is_object() {
            return;
        }
        let uid = meta_str(obj, "uid").unwrap_or("").to_owned();
        let name = meta_str(obj, "name").unwrap_or("").to_owned();
        let spec = &mut obj["spec"];
        // Unless the user manages the selector, it is generated from the job's uid.
        if spec["manualSelector"] != true {
            spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
            let template_meta = spec["template"]
                .as_object_mut()
                .map(|t| t.entry("metadata").or_insert_with(|| json!({})));
            if let Some(Value::Object(meta)) = template_meta {
                let labels = meta.entry("labels").or_insert_with(|| json!({}));
                if let Value::Object(labels) = labels {
                    for (k, v) in [
                        ("batch.kubernetes.io/controller-uid", &uid),
                        ("batch.kubernetes.io/job-name", &name),
                        ("controller-uid", &uid),
                        ("job-name", &name),
                    ] {
                        labels.insert(k.into(), json!(v));
                    }
                }
            }
        }
        job_spec_defaults(spec);
    }

    fn prepare_for_update(&self, obj: &mut Value, _old: &Value) {
        if obj["spec"].is_object() {
            job_spec_defaults(&mut obj["spec"]);
        }
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errors = validate_job_spec(&obj["spec"], "spec");
        if let Some(old) = old {
            if old["spec"]["template"] != obj["spec"]["template"] && obj["spec"]["suspend"] != true
            {
                errors.push(FieldError::invalid(
                    "spec.template",
                    rkube_api::field_error::BadValue::Omitted,
                    "field is immutable",
                ));
            }
        }
        errors
    }
}

impl KindStrategy for CronJobs {
    fn prepare_for_create(&self, obj: &mut Value) {
        if !obj["spec"].is_object() {
            return;
        }
        let spec = &mut obj["spec"];
        set_default(spec, "concurrencyPolicy", json!("Allow"));
        set_default(spec, "suspend", json!(false));
        set_default(spec, "successfulJobsHistoryLimit", json!(3));
        set_default(spec, "failedJobsHistoryLimit", json!(1));
        if spec["jobTemplate"]["spec"].is_object() {
            job_spec_defaults(&mut spec["jobTemplate"]["spec"]);
        }
    }

    fn prepare_for_update(&self, obj: &mut Value, _old: &Value) {
        self.prepare_for_create(obj);
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let time_zone = obj["spec"]["timeZone"].as_str();
        match obj["spec"]["schedule"].as_str() {
            None | Some("") => errors.push(FieldError::required("spec.schedule", "")),
            Some(schedule) => {
                // Upstream keeps accepting TZ in a schedule that already had it.
                let old_has_tz = _old
                    .and_then(|o| o["spec"]["schedule"].as_str())
                    .is_some_and(|s| s.contains("TZ"));
                errors.extend(validate_schedule(schedule, old_has_tz, time_zone));
            }
        }
        if !obj["spec"]["timeZone"].is_null() {
            errors.extend(validate_time_zone(time_zone.unwrap_or_default()));
        }
        let policy = obj["spec"]["concurrencyPolicy"].as_str().unwrap_or("Allow");
        if !["Allow", "Forbid", "Replace"].contains(&policy) {
            errors.push(FieldError::not_supported(
                "spec.concurrencyPolicy",
                policy,
                &["Allow", "Forbid", "Replace"],
            ));
        }
        errors.extend(validate_job_spec(
            &obj["spec"]["jobTemplate"]["spec"],
            "spec.jobTemplate.spec",
        ));
        errors
    }
}

/// Go's `time.LoadLocation`: `UTC` (or empty) and `Local` are built in, anything else
/// comes from the zone database.
pub fn load_location(name: &str) -> Result<jiff::tz::TimeZone, String> {
    match name {
        "" | "UTC" => Ok(jiff::tz::TimeZone::UTC),
        // The controller manager runs in UTC; Local is rejected by validation anyway.
        "Local" => Ok(jiff::tz::TimeZone::UTC),
        _ => jiff::tz::db()
            .get(name)
            .map_err(|_| format!("unknown time zone {name}")),
    }
}

fn validate_schedule(schedule: &str, allow_tz: bool, time_zone: Option<&str>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Err(e) = rkube_api::cron::parse_standard(schedule, &load_location) {
        errors.push(FieldError::invalid("spec.schedule", schedule, &e));
    }
    if schedule.contains("TZ") {
        if !allow_tz {
            errors.push(FieldError::invalid(
                "spec.schedule",
                schedule,
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        } else if time_zone.is_some() {
            errors.push(FieldError::invalid(
                "spec.schedule",
                schedule,
                "cannot use both timeZone field and TZ or CRON_TZ in schedule",
            ));
        }
    }
    errors
}

fn validate_time_zone(tz: &str) -> Vec<FieldError> {
    const FIELD: &str = "spec.timeZone";
    if tz.is_empty() {
        return vec![FieldError::invalid(
            FIELD,
            tz,
            "timeZone must be nil or non-empty string",
        )];
    }
    let part_ok = |p: &str| {
        p != "."
            && p != ".."
            && !p.starts_with('-')
            && (1..=14).contains(&p.len())
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c))
    };
    if !tz.split('/').all(part_ok) {
        return vec![FieldError::invalid(
            FIELD,
            tz,
            &format!("unknown time zone {tz}"),
        )];
    }
    let mut errors = Vec::new();
    if tz.eq_ignore_ascii_case("Local") {
        errors.push(FieldError::invalid(
            FIELD,
            tz,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
    }
    if let Err(e) = load_location(tz) {
        errors.push(FieldError::invalid(FIELD, tz, &e));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_get_a_generated_selector_and_defaults() {
        let mut job = json!({"metadata": {"name": "pi", "uid": "u-1"}, "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "perl:5"}]}}}});
        Jobs.prepare_for_create(&mut job);
        assert_eq!(
            job["spec"]["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
        );
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"]["batch.kubernetes.io/job-name"],
            "pi"
        );
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"]["controller-uid"],
            "u-1"
        );
        assert_eq!(
            (
                job["spec"]["parallelism"].clone(),
                job["spec"]["completions"].clone(),
                job["spec"]["backoffLimit"].clone()
            ),
            (json!(1), json!(1), json!(6))
        );
        assert!(Jobs.validate(&job, None).is_empty());

        let mut always = json!({"metadata": {"name": "x", "uid": "u"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        Jobs.prepare_for_create(&mut always);
        let errs: Vec<String> = Jobs
            .validate(&always, None)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            [
                r#"spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never""#
            ]
        );
    }

    #[test]
    fn cronjob_defaults() {
        let mut cj = json!({"spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "i"}]}}}}}});
        CronJobs.prepare_for_create(&mut cj);
        assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(cj["spec"]["jobTemplate"]["spec"]["backoffLimit"], 6);
        assert!(CronJobs.validate(&cj, None).is_empty());
        let errs = |schedule: &str, tz: Option<&str>| -> Vec<String> {
            let mut cj = cj.clone();
            cj["spec"]["schedule"] = json!(schedule);
            if let Some(tz) = tz {
                cj["spec"]["timeZone"] = json!(tz);
            }
            CronJobs
                .validate(&cj, None)
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            errs("invalid", None),
            [
                r#"spec.schedule: Invalid value: "invalid": expected exactly 5 fields, found 1: [invalid]"#
            ]
        );
        assert_eq!(
            errs("TZ=UTC * * * * *", None),
            [
                r#"spec.schedule: Invalid value: "TZ=UTC * * * * *": cannot use TZ or CRON_TZ in schedule, use timeZone field instead"#
            ]
        );
        assert_eq!(
            errs("@hourly", Some("Mars/Base")),
            [r#"spec.timeZone: Invalid value: "Mars/Base": unknown time zone Mars/Base"#]
        );
        assert_eq!(
            errs("@hourly", Some("../etc")),
            [r#"spec.timeZone: Invalid value: "../etc": unknown time zone ../etc"#]
        );
        assert!(errs("0 3 * * *", Some("Europe/Berlin")).is_empty());
    }
}
