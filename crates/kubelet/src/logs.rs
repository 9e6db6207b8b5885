//! Container logs: the CRI log files the runtime writes
//! (`<RFC 3339 nano> <stdout|stderr> <F|P> <text>` per line) read back as `kubectl logs`
//! shows them, with upstream's options: tailLines, timestamps, sinceSeconds/sinceTime,
//! limitBytes, and follow (new lines until the container stops).

use std::path::{Path, PathBuf};

/// Options of a log request (upstream's `PodLogOptions`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<usize>,
    /// Only lines at or after this time (RFC 3339), from sinceTime or sinceSeconds.
    pub since: Option<String>,
    pub limit_bytes: Option<usize>,
}

/// One line of a CRI log file.
#[derive(Debug, Clone, PartialEq)]
pub struct Line<'a> {
    pub timestamp: &'a str,
    pub stream: &'a str,
    /// `F`: the line ends here; `P`: a partial line continued by the next.
    pub full: bool,
    pub text: &'a str,
}

/// Parses one CRI log line; `None` for malformed ones.
pub fn parse_line(line: &str) -> Option<Line<'_>> {
    let mut parts = line.splitn(4, ' ');
    let timestamp = parts.next()?;
    let stream = parts.next()?;
    if stream != "stdout" && stream != "stderr" {
        return None;
    }
    let tag = parts.next()?;
    let text = parts.next().unwrap_or("");
    Some(Line {
        timestamp,
        stream,
        full: !tag.split(':').any(|t| t == "P"),
        text,
    })
}

/// Whether RFC 3339 timestamp `ts` is at or after `since` (both UTC).
fn not_before(ts: &str, since: &str) -> bool {
    match (
        ts.parse::<k8s_openapi::jiff::Timestamp>(),
        since.parse::<k8s_openapi::jiff::Timestamp>(),
    ) {
        (Ok(a), Ok(b)) => a >= b,
        _ => true,
    }
}

/// Renders the complete lines of `content` (a CRI log file) as the user sees them.
pub fn render(content: &str, opts: &LogOptions) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut partial = String::new();
    for raw in content.lines() {
        let Some(line) = parse_line(raw) else {
            continue;
        };
        if let Some(since) = &opts.since {
            if !not_before(line.timestamp, since) {
                continue;
            }
        }
        if partial.is_empty() && opts.timestamps {
            partial.push_str(line.timestamp);
            partial.push(' ');
        }
        partial.push_str(line.text);
        if line.full {
            partial.push('\n');
            lines.push(std::mem::take(&mut partial));
        }
    }
    if !partial.is_empty() {
        lines.push(partial);
    }
    let start = opts.tail_lines.map_or(0, |n| lines.len().saturating_sub(n));
    let mut out: String = lines[start..].concat();
    if let Some(limit) = opts.limit_bytes {
        if out.len() > limit {
            let mut cut = limit;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
        }
    }
    out
}

/// The log file of a container run: `<pod log dir>/<container>/<attempt>.log`.
pub fn log_path(pod_log_dir: &Path, container: &str, attempt: u32) -> PathBuf {
    pod_log_dir.join(container).join(format!("{attempt}.log"))
}

/// The attempts that have log files, ascending.
pub fn attempts(pod_log_dir: &Path, container: &str) -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir(pod_log_dir.join(container))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "2026-11-27T16:56:45.155269309Z stdout F hello\n\
2026-11-27T16:56:46.000000000Z stderr P par\n\
2026-11-27T16:56:46.100000000Z stderr F tial\n\
garbage\n\
2026-11-27T16:56:47.000000000Z stdout F \n\
2026-11-27T16:56:48.000000000Z stdout F bye\n";

    #[test]
    fn joins_partial_lines_and_skips_garbage() {
        assert_eq!(
            render(LOG, &LogOptions::default()),
            "hello\npartial\n\nbye\n"
        );
    }

    #[test]
    fn tail_timestamps_since_and_limit() {
        let tail = LogOptions {
            tail_lines: Some(2),
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(
            render(LOG, &tail),
            "2026-11-27T16:56:47.000000000Z \n2026-11-27T16:56:48.000000000Z bye\n"
        );
        let since = LogOptions {
            since: Some("2026-11-27T16:56:46Z".into()),
            ..Default::default()
        };
        assert_eq!(render(LOG, &since), "partial\n\nbye\n");
        let limit = LogOptions {
            limit_bytes: Some(7),
            ..Default::default()
        };
        assert_eq!(render(LOG, &limit), "hello\np");
        assert_eq!(
            render(
                LOG,
                &LogOptions {
                    tail_lines: Some(0),
                    ..Default::default()
                }
            ),
            ""
        );
    }

    #[test]
    fn finds_attempts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("c")).unwrap();
        for n in [0, 2, 1] {
            std::fs::write(log_path(dir.path(), "c", n), "").unwrap();
        }
        assert_eq!(attempts(dir.path(), "c"), [0, 1, 2]);
        assert!(attempts(dir.path(), "missing").is_empty());
    }
}
