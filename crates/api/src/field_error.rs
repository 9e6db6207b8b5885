//! Field-level validation errors, rendered exactly as upstream's `field.Error` and `ErrorList`.
//!
//! Upstream prints an error as `<field>: <type>: <value>: <detail>` (for example
//! `metadata.name: Invalid value: "Foo": a lowercase RFC 1123 subdomain must ...`), quotes string
//! values Go-style and joins a list as `[a, b]` (a single error without brackets). Clients show
//! these strings verbatim, so this module reproduces the formatting, including Go's `%#v` for
//! string slices.

use std::fmt;

/// The machine-readable kind of a field error (upstream `field.ErrorType`); it becomes the
/// `reason` of a `StatusCause`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldErrorType {
    /// A requested value was not found (`FieldValueNotFound`).
    NotFound,
    /// A required value was missing (`FieldValueRequired`).
    Required,
    /// A value that must be unique was repeated (`FieldValueDuplicate`).
    Duplicate,
    /// A value is malformed (`FieldValueInvalid`).
    Invalid,
    /// A value is not one of an enumerated set (`FieldValueNotSupported`).
    NotSupported,
    /// A valid value is not permitted here (`FieldValueForbidden`).
    Forbidden,
    /// A value is too long (`FieldValueTooLong`).
    TooLong,
    /// A list has too many items (`FieldValueTooMany`).
    TooMany,
    /// An error not caused by the input (`InternalError`).
    Internal,
    /// A value has the wrong type (`FieldValueTypeInvalid`).
    TypeInvalid,
}

impl FieldErrorType {
    /// The cause type string sent in `details.causes[].reason`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotFound => "FieldValueNotFound",
            Self::Required => "FieldValueRequired",
            Self::Duplicate => "FieldValueDuplicate",
            Self::Invalid => "FieldValueInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Forbidden => "FieldValueForbidden",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::Internal => "InternalError",
            Self::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// The human-readable prefix of the message (`Required value`, `Invalid value`, ...).
    pub fn message(self) -> &'static str {
        match self {
            Self::NotFound => "Not found",
            Self::Required => "Required value",
            Self::Duplicate => "Duplicate value",
            Self::Invalid | Self::TypeInvalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
            Self::Forbidden => "Forbidden",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::Internal => "Internal error",
        }
    }
}

/// The offending value of a field error, carried in the form upstream prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadValue {
    /// No value is printed (upstream's `omitValue`).
    Omitted,
    /// A nil value, printed as `null`.
    Null,
    /// A string, printed Go-quoted (`"foo"`).
    String(String),
    /// An integer, printed plainly.
    Int(i64),
    /// A boolean, printed as `true`/`false`.
    Bool(bool),
    /// A value already rendered in Go syntax (upstream's `%#v` fallback), e.g. `[]string{"a"}`.
    Raw(String),
}

impl BadValue {
    /// A string slice rendered as Go's `%#v` does: `[]string{"a", "b"}`, `[]string{}`, or
    /// `[]string(nil)` for `None`.
    pub fn string_slice(values: Option<&[String]>) -> Self {
        let Some(values) = values else {
            return Self::Raw("[]string(nil)".to_string());
        };
        let quoted: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
        Self::Raw(format!("[]string{{{}}}", quoted.join(", ")))
    }
}

impl From<&str> for BadValue {
    fn from(value: &str) -> Self {
        Self::String(value.to_string())
    }
}

impl From<String> for BadValue {
    fn from(value: String) -> Self {
        Self::String(value)
    }
}

impl From<i64> for BadValue {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<bool> for BadValue {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

/// One field-level validation error (upstream `field.Error`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// What kind of problem this is.
    pub error_type: FieldErrorType,
    /// The path of the field, e.g. `spec.containers[0].name`; upstream prints a nil path as
    /// `<nil>`.
    pub field: String,
    /// The offending value.
    pub bad_value: BadValue,
    /// Extra explanation appended after the value.
    pub detail: String,
}

impl FieldError {
    fn new(error_type: FieldErrorType, field: &str, bad_value: BadValue, detail: &str) -> Self {
        Self {
            error_type,
            field: field.to_string(),
            bad_value,
            detail: detail.to_string(),
        }
    }

    /// A required value is missing (`field.Required`).
    pub fn required(field: &str, detail: &str) -> Self {
        Self::new(
            FieldErrorType::Required,
            field,
            BadValue::String(String::new()),
            detail,
        )
    }

    /// A value is malformed (`field.Invalid`).
    pub fn invalid(field: &str, value: impl Into<BadValue>, detail: &str) -> Self {
        Self::new(FieldErrorType::Invalid, field, value.into(), detail)
    }

    /// A value is not one of `valid` (`field.NotSupported`).
    pub fn not_supported(field: &str, value: impl Into<BadValue>, valid: &[&str]) -> Self {
        let detail = if valid.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = valid.iter().map(|v| go_quote(v)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(FieldErrorType::NotSupported, field, value.into(), &detail)
    }

    /// A value is not permitted (`field.Forbidden`).
    pub fn forbidden(field: &str, detail: &str) -> Self {
        Self::new(
            FieldErrorType::Forbidden,
            field,
            BadValue::String(String::new()),
            detail,
        )
    }

    /// A value repeats one that must be unique (`field.Duplicate`).
    pub fn duplicate(field: &str, value: impl Into<BadValue>) -> Self {
        Self::new(FieldErrorType::Duplicate, field, value.into(), "")
    }

    /// A referenced value was not found (`field.NotFound`).
    pub fn not_found(field: &str, value: impl Into<BadValue>) -> Self {
        Self::new(FieldErrorType::NotFound, field, value.into(), "")
    }

    /// A value is longer than `max_length` bytes (`field.TooLong`; the value is not printed).
    pub fn too_long(field: &str, max_length: usize) -> Self {
        Self::new(
            FieldErrorType::TooLong,
            field,
            BadValue::Omitted,
            &format!("must have at most {max_length} bytes"),
        )
    }

    /// A list has `actual` items, more than `max` (`field.TooMany`).
    pub fn too_many(field: &str, actual: i64, max: i64) -> Self {
        let detail = if max >= 0 {
            format!("must have at most {max} items")
        } else {
            "has too many items".to_string()
        };
        let value = if actual >= 0 {
            BadValue::Int(actual)
        } else {
            BadValue::Omitted
        };
        Self::new(FieldErrorType::TooMany, field, value, &detail)
    }

    /// An error not caused by the input (`field.InternalError`).
    pub fn internal(field: &str, error: &str) -> Self {
        Self::new(FieldErrorType::Internal, field, BadValue::Null, error)
    }

    /// The message without the field path (upstream `ErrorBody`), as sent in
    /// `details.causes[].message`.
    pub fn body(&self) -> String {
        use FieldErrorType as T;
        let mut s = match (self.error_type, &self.bad_value) {
            (T::Required | T::Forbidden | T::TooLong | T::Internal, _) | (_, BadValue::Omitted) => {
                self.error_type.message().to_string()
            }
            (_, BadValue::Null) => format!("{}: null", self.error_type.message()),
            (_, BadValue::String(v)) => format!("{}: {}", self.error_type.message(), go_quote(v)),
            (_, BadValue::Int(v)) => format!("{}: {v}", self.error_type.message()),
            (_, BadValue::Bool(v)) => format!("{}: {v}", self.error_type.message()),
            (_, BadValue::Raw(v)) => format!("{}: {v}", self.error_type.message()),
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

impl std::error::Error for FieldError {}

/// Joins errors as upstream's `ErrorList.ToAggregate().Error()`: duplicates (by message) are
/// dropped, one error prints alone, several print as `[a, b]`, none as the empty string.
pub fn aggregate(errors: &[FieldError]) -> String {
    aggregate_messages(errors.iter().map(ToString::to_string))
}

/// Joins already-rendered messages the way upstream's error aggregate does.
pub fn aggregate_messages(messages: impl IntoIterator<Item = String>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for message in messages {
        if !seen.contains(&message) {
            seen.push(message);
        }
    }
    match seen.len() {
        0 => String::new(),
        1 => seen.pop().unwrap_or_default(),
        _ => format!("[{}]", seen.join(", ")),
    }
}

/// Quotes a string as Go's `strconv.Quote` (and so `%q`) does.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `strconv.IsPrint`: graphic characters and the ASCII space.
fn is_go_printable(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    !c.is_control() && !c.is_whitespace() && !matches!(c, '\u{ad}' | '\u{fffe}' | '\u{ffff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_upstream() {
        let e = FieldError::invalid("metadata.name", "Foo", "bad");
        assert_eq!(e.to_string(), r#"metadata.name: Invalid value: "Foo": bad"#);
        let e = FieldError::required("spec.containers", "");
        assert_eq!(e.to_string(), "spec.containers: Required value");
        assert_eq!(e.body(), "Required value");
        let e = FieldError::not_supported("spec.restartPolicy", "Sometimes", &["Always", "Never"]);
        assert_eq!(
            e.to_string(),
            r#"spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "Never""#
        );
        let e = FieldError::too_long("metadata.annotations", 262144);
        assert_eq!(
            e.to_string(),
            "metadata.annotations: Too long: must have at most 262144 bytes"
        );
        let e = FieldError::invalid("spec.replicas", -1i64, "must be greater than or equal to 0");
        assert_eq!(
            e.to_string(),
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
    }

    #[test]
    fn string_slices_render_as_go_syntax() {
        assert_eq!(
            BadValue::string_slice(Some(&["a".to_string(), "b\"".to_string()])),
            BadValue::Raw(r#"[]string{"a", "b\""}"#.to_string())
        );
        assert_eq!(
            BadValue::string_slice(Some(&[])),
            BadValue::Raw("[]string{}".to_string())
        );
        assert_eq!(
            BadValue::string_slice(None),
            BadValue::Raw("[]string(nil)".to_string())
        );
    }

    #[test]
    fn aggregates_like_upstream() {
        let a = FieldError::required("a", "");
        let b = FieldError::required("b", "");
        assert_eq!(aggregate(&[]), "");
        assert_eq!(aggregate(std::slice::from_ref(&a)), "a: Required value");
        assert_eq!(
            aggregate(&[a.clone(), b, a]),
            "[a: Required value, b: Required value]"
        );
    }

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote("a b"), r#""a b""#);
        assert_eq!(go_quote("tab\there"), r#""tab\there""#);
        assert_eq!(go_quote("\u{1}"), r#""\x01""#);
        assert_eq!(go_quote("é"), "\"é\"");
    }
}
