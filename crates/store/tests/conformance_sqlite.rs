//! The conformance suite against the embedded SQLite backend.
mod support;

conformance_suite!(support::sqlite());
