//! Timestamps in the API's formats.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now as RFC 3339 with seconds (metav1.Time).
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    rfc3339_from_nanos(secs as i64 * 1_000_000_000)
}

/// Now as RFC 3339 with microseconds (metav1.MicroTime).
pub fn now_micro_rfc3339() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    k8s_openapi::jiff::Timestamp::new(d.as_secs() as i64, (d.subsec_micros() * 1000) as i32)
        .map(|t| format!("{t:.6}"))
        .unwrap_or_default()
}

/// A CRI timestamp (nanoseconds since the epoch) as RFC 3339 with seconds.
pub fn rfc3339_from_nanos(nanos: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(nanos.div_euclid(1_000_000_000))
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Now in nanoseconds since the epoch.
pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        assert_eq!(
            super::rfc3339_from_nanos(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20Z"
        );
        assert!(super::now_micro_rfc3339().ends_with('Z'));
    }
}
