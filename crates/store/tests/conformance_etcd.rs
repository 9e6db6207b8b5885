//! The conformance suite against the etcd backend, on a real etcd the test starts.
mod support;

conformance_suite!(support::etcd());
