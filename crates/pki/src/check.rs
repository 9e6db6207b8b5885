//! `rkube certs check`: every certificate and key of the PKI directory, one row each of
//! [`cert_files`], with subject, issuer, validity, days left and a status.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::inventory::{cert_files, CertFile, CertKind};
use crate::material;

/// What is wrong with a file, or that nothing is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Valid for longer than the warning threshold.
    Ok,
    /// Valid, but expires within the warning threshold.
    ExpiresSoon,
    /// Past its notAfter.
    Expired,
    /// Before its notBefore (clock behind, or made on another machine).
    NotYetValid,
    /// The key file does not belong to the certificate.
    KeyMismatch,
    /// Not signed by any CA in its issuer's bundle.
    WrongIssuer,
    /// A file rkube makes is missing.
    Missing,
    /// A file another component makes is absent: fine.
    Absent,
    /// The file cannot be read or parsed.
    Unreadable(String),
}

impl Status {
    /// Whether this status makes `certs check` fail.
    pub fn is_problem(&self) -> bool {
        !matches!(self, Self::Ok | Self::Absent)
    }

    /// The table's wording.
    pub fn text(&self) -> String {
        match self {
            Self::Ok => "ok".into(),
            Self::ExpiresSoon => "expires soon".into(),
            Self::Expired => "EXPIRED".into(),
            Self::NotYetValid => "NOT YET VALID".into(),
            Self::KeyMismatch => "KEY DOES NOT MATCH".into(),
            Self::WrongIssuer => "NOT SIGNED BY ITS CA".into(),
            Self::Missing => "MISSING".into(),
            Self::Absent => "absent (optional)".into(),
            Self::Unreadable(why) => format!("UNREADABLE: {why}"),
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct CheckRow {
    /// The file, relative to the PKI directory (`ca.crt[2]` for the second CA of a bundle).
    pub file: String,
    /// What it is.
    pub kind: CertKind,
    /// The subject (`CN=admin, O=system:masters`), empty for keys.
    pub subject: String,
    /// The issuer's subject.
    pub issuer: String,
    /// Start of validity.
    pub not_before: Option<OffsetDateTime>,
    /// End of validity.
    pub not_after: Option<OffsetDateTime>,
    /// The verdict.
    pub status: Status,
}

impl CheckRow {
    /// Whole days until `not_after` (negative once expired).
    pub fn days_left(&self, now: SystemTime) -> Option<i64> {
        self.not_after.map(|t| {
            (t - OffsetDateTime::from(now))
                .whole_seconds()
                .div_euclid(86_400)
        })
    }
}

/// Checks every file of the PKI directory `pki_dir` at `now`; a certificate expiring
/// within `warn_within` is [`Status::ExpiresSoon`]. Reads only; never writes.
pub fn check(
    pki_dir: &Path,
    node_name: &str,
    now: SystemTime,
    warn_within: Duration,
) -> Vec<CheckRow> {
    let files = cert_files(node_name);
    let mut rows = Vec::new();
    for row in &files {
        match row.kind {
            CertKind::SigningKey => rows.push(check_signing_key(pki_dir, row)),
            _ => check_cert(pki_dir, row, &files, now, warn_within, &mut rows),
        }
    }
    rows
}

fn missing_status(row: &CertFile) -> Status {
    if row.managed {
        Status::Missing
    } else {
        Status::Absent
    }
}

fn blank(file: String, kind: CertKind, status: Status) -> CheckRow {
    CheckRow {
        file,
        kind,
        subject: String::new(),
        issuer: String::new(),
        not_before: None,
        not_after: None,
        status,
    }
}

fn read_certs(path: &Path) -> Result<Option<Vec<CertificateDer<'static>>>, String> {
    let Some(bytes) = material::read_optional(path).map_err(|e| error_chain(&e))? else {
        return Ok(None);
    };
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in the file".into());
    }
    Ok(Some(certs))
}

fn check_cert(
    dir: &Path,
    row: &CertFile,
    files: &[CertFile],
    now: SystemTime,
    warn_within: Duration,
    rows: &mut Vec<CheckRow>,
) {
    let file = row.cert_file();
    let certs = match read_certs(&dir.join(&file)) {
        Ok(Some(certs)) => certs,
        Ok(None) => return rows.push(blank(file, row.kind, missing_status(row))),
        Err(why) => return rows.push(blank(file, row.kind, Status::Unreadable(why))),
    };
    // The CAs that may have signed it: every certificate of the issuer's bundle.
    let issuer_bundle = row
        .issuer
        .and_then(|stem| files.iter().find(|f| f.stem == stem))
        .and_then(|ca| read_certs(&dir.join(ca.cert_file())).ok().flatten())
        .unwrap_or_default();
    // A leaf file's extra certificates are its chain; a CA file's are still-trusted CAs.
    let shown = if row.kind == CertKind::Ca {
        certs.len()
    } else {
        1
    };
    for (i, der) in certs.iter().take(shown).enumerate() {
        let name = if i == 0 {
            file.clone()
        } else {
            format!("{file}[{}]", i + 1)
        };
        let cert = match X509Certificate::from_der(der) {
            Ok((_, cert)) => cert,
            Err(e) => {
                rows.push(blank(name, row.kind, Status::Unreadable(e.to_string())));
                continue;
            }
        };
        let not_before = cert.validity().not_before.to_datetime();
        let not_after = cert.validity().not_after.to_datetime();
        let now_dt = OffsetDateTime::from(now);
        let status = if now_dt < not_before {
            Status::NotYetValid
        } else if now_dt > not_after {
            Status::Expired
        } else if let Some(bad_key) = (i == 0).then(|| key_status(dir, row, &cert)).flatten() {
            bad_key
        } else if row.kind != CertKind::Ca
            && !issuer_bundle
                .iter()
                .any(|ca| crate::ca::issued_by(&cert, ca))
        {
            Status::WrongIssuer
        } else if not_after - now_dt
            <= time::Duration::try_from(warn_within).unwrap_or(time::Duration::MAX)
        {
            Status::ExpiresSoon
        } else {
            Status::Ok
        };
        rows.push(CheckRow {
            file: name,
            kind: row.kind,
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_before: Some(not_before),
            not_after: Some(not_after),
            status,
        });
    }
}

/// What is wrong with the row's key file for `cert`, or `None` when it is its key.
fn key_status(dir: &Path, row: &CertFile, cert: &X509Certificate<'_>) -> Option<Status> {
    let path = dir.join(row.key_file());
    let bytes = match material::read_optional(&path) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Some(Status::Unreadable(format!("{} is missing", row.key_file()))),
        Err(e) => return Some(Status::Unreadable(error_chain(&e))),
    };
    match material::read_key_pem(&path, &bytes) {
        Ok((key, _)) if material::key_matches(&key, cert) => None,
        Ok(_) => Some(Status::KeyMismatch),
        Err(e) => Some(Status::Unreadable(error_chain(&e))),
    }
}

fn check_signing_key(dir: &Path, row: &CertFile) -> CheckRow {
    let file = row.key_file();
    let status = match material::read_optional(&dir.join(&file)) {
        Ok(None) => missing_status(row),
        Ok(Some(bytes)) => {
            match crate::ServiceAccountKey::from_pem(&String::from_utf8_lossy(&bytes)) {
                Ok(_) => Status::Ok,
                Err(why) => Status::Unreadable(why),
            }
        }
        Err(e) => Status::Unreadable(error_chain(&e)),
    };
    blank(file, row.kind, status)
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

/// Whether any row makes `certs check` fail.
pub fn has_problems(rows: &[CheckRow]) -> bool {
    rows.iter().any(|r| r.status.is_problem())
}

/// The report as an aligned text table.
pub fn render_table(rows: &[CheckRow], now: SystemTime) -> String {
    let date = |t: Option<OffsetDateTime>| t.map(crate::ca::rfc3339).unwrap_or_else(|| "-".into());
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    let mut table = vec![[
        "FILE".to_owned(),
        "KIND".to_owned(),
        "SUBJECT".to_owned(),
        "ISSUER".to_owned(),
        "NOT BEFORE".to_owned(),
        "NOT AFTER".to_owned(),
        "DAYS LEFT".to_owned(),
        "STATUS".to_owned(),
    ]];
    for r in rows {
        table.push([
            r.file.clone(),
            r.kind.as_str().to_owned(),
            dash(&r.subject),
            dash(&r.issuer),
            date(r.not_before),
            date(r.not_after),
            r.days_left(now)
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
            r.status.text(),
        ]);
    }
    let mut widths = [0usize; 8];
    for line in &table {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in &table {
        let mut text = String::new();
        for (i, (cell, w)) in line.iter().zip(widths).enumerate() {
            if i + 1 == line.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}   ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}
