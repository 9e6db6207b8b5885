//! The Kubernetes API as data and pure functions: what rkube serves and how it judges requests.
//!
//! This crate does no IO. It holds what every other crate needs to agree on:
//!
//! - [`resources`]: the table of every built-in resource of Kubernetes v1.37 (group, version,
//!   kind, plural, scope, verbs, short names, categories, subresources) and its storage keys;
//! - [`labels`] and [`fields`]: label and field selectors, parsed and matched as upstream does;
//! - [`names`]: object name rules (DNS-1123 subdomain/label, DNS-1035 label, path segment) and
//!   `generateName`;
//! - [`cron`]: CronJob schedules (robfig/cron's standard syntax) and their next activation;
//! - [`field_error`]: field-level validation errors rendered exactly as upstream's `field.Error`;
//! - [`schema`]: every API type's fields, protobuf numbers and merge markers (generated);
//! - [`smp`]: strategic merge patch, driven by the schema's merge markers;
//! - [`ssa`]: server-side apply and field ownership (`managedFields`);
//! - [`status`]: `metav1.Status` errors with upstream's reason, code, message and details.
//!
//! Error messages that clients or users rely on match upstream's wording byte for byte.

#![forbid(unsafe_code)]

pub mod cron;
pub mod field_error;
pub mod fields;
pub mod labels;
pub mod names;
pub mod quantity;
pub mod quota;
pub mod resources;
pub mod schema;
pub mod smp;
pub mod ssa;
pub mod status;
pub mod structural;

pub use field_error::{FieldError, FieldErrorType};
pub use fields::FieldSelector;
pub use labels::LabelSelector;
pub use names::NameRule;
pub use resources::{GroupKind, GroupResource, ResourceInfo, SubresourceInfo};
pub use status::Status;
