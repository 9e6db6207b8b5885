//! The `rkube` binary (being written).
fn main() {}
